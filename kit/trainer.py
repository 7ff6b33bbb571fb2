"""The training step as an object: models, optimisers, grad scalers and EMA of one run, with state, restore and
rollback. What a step does comes from the model family and the loss, never from `if cfg.loss == ...`."""
import copy
import dataclasses
import inspect
import random

import numpy as np
import torch

from kit import losses, models
from kit.data import augment


def to_cpu(obj):
    """A deep copy of nested dicts/lists of tensors with every tensor copied to the CPU."""
    if torch.is_tensor(obj):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return copy.deepcopy(obj)


def rng_state():
    """Every random generator the loop reads: torch CPU and CUDA, numpy, python."""
    return {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_state(state):
    """Restore what rng_state() returned."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def power_iteration_vector(name):
    """Whether a buffer is spectral norm's u or v: a unit vector that an average would shorten."""
    parts = name.split(".")
    return "parametrizations" in parts and parts[-1] in ("_u", "_v")


@torch.no_grad()
def ema_update(ema, model, weight):
    """ema ← ema + weight·(model - ema) for parameters and floating-point buffers (batch-norm statistics); other
    buffers are copied, and so are spectral norm's power-iteration vectors: in eval mode sigma is uᵀWv with the
    stored u and v, and an average of unit vectors is shorter than 1, which inflated every weight of the EMA G.
    `weight` is a 0-d device tensor read on the device (a CUDA graph replays it), never turned into a Python number.
    A handful of multi-tensor operations, not a few per tensor: on a GPU the step is bound by its count of kernels."""
    averaged, sources, copied, originals = list(ema.parameters()), [p.detach() for p in model.parameters()], [], []
    for (name, e), b in zip(ema.named_buffers(), model.buffers()):
        if e.is_floating_point() and not power_iteration_vector(name):
            averaged.append(e)
            sources.append(b)
        else:
            copied.append(e)
            originals.append(b)
    steps = torch._foreach_sub(sources, averaged)
    torch._foreach_mul_(steps, weight)
    torch._foreach_add_(averaged, steps)
    if copied:
        torch._foreach_copy_(copied, originals)


def distributed(module, device_ids):
    """DDP that does not re-send rank 0's buffers before every forward: that wrote in place into tensors autograd had
    saved (a version error with 2 processes on torch 2.3.1); each rank keeps its batch-norm statistics, rank 0's are
    saved and sampled from. Newer torch names the switch forward_sync_buffers, older broadcast_buffers."""
    ddp = torch.nn.parallel.DistributedDataParallel
    newer = "forward_sync_buffers" in inspect.signature(ddp.__init__).parameters
    return ddp(module, device_ids=device_ids, **{"forward_sync_buffers" if newer else "broadcast_buffers": False})


class GraphedStep:
    """Runs `step` eagerly on a side stream for a few calls, then captures it once and replays the CUDA graph."""

    def __init__(self, step, warmup=3):
        self.step, self.warmup, self.calls, self.graph = step, warmup, 0, None

    def __call__(self):
        if self.graph is None and self.calls < self.warmup:
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                self.step()
            torch.cuda.current_stream().wait_stream(stream)
            self.calls += 1
            return
        if self.graph is None:
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.step()
        self.graph.replay()

    def reset(self):
        """Forget the graph (after optimiser states were replaced): warm up and capture again."""
        self.calls, self.graph = 0, None


def optimiser(kind, parameters, lr, betas, capturable, fused):
    """Adam with the config's betas, or RMSprop (WGAN with clipping wants no momentum). A fused Adam is one kernel a
    step and takes a grad scaler's scale and inf check as device tensors: the fp16 step needs no host sync."""
    if kind == "rmsprop":
        return torch.optim.RMSprop(parameters, lr, capturable=capturable)
    return torch.optim.Adam(parameters, lr, betas, capturable=capturable, fused=fused or None)


def fused_optimisers(kind, device) -> bool:
    """Whether the trainer's optimisers are fused: Adam on a GPU (the same update as torch's default, in one kernel
    instead of a few dozen; on a CPU the per-tensor Adam every benchmark ran stays)."""
    return kind == "adam" and device.type == "cuda"


class Trainer:
    """One run's G, D, EMA of G, optimisers and scalers on a device, and the step: n_critic D steps, one G step."""

    def __init__(self, cfg, images, labels, n_classes, device, dtype, use_graph, rank=0, world=1):
        self.cfg, self.device, self.dtype, self.use_graph = cfg, device, dtype, use_graph
        self.images, self.labels = images, labels                # uint8 N×C×H×W and labels, resident on the device
        self.loss = losses.get(cfg.loss, cfg.real_label)
        self.n_critic = cfg.n_critic or self.loss.n_critic
        self.conditional = models.family(cfg.model).conditional and n_classes > 1
        self.augmentation = augment.Augmentation(cfg.augment, device, cfg.ada_target, cfg.ada_kimg)
        self.memory_format = (torch.channels_last if cfg.channels_last and device.type == "cuda"
                              else torch.contiguous_format)
        torch.manual_seed(cfg.seed)   # the same initial weights on every rank (G_ema is copied before DDP syncs)
        G, D = models.build(cfg, tuple(images.shape[1:]), n_classes)
        torch.manual_seed(cfg.seed + rank)   # different batches and noise on every rank
        np.random.seed(cfg.seed + rank)
        random.seed(cfg.seed + rank)
        self.G = G.to(device, memory_format=self.memory_format)
        self.D = D.to(device, memory_format=self.memory_format)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False) if cfg.ema else None
        betas, self.fused = (cfg.beta1, cfg.beta2), fused_optimisers(self.loss.optimizer, device)
        self.opt_G = optimiser(self.loss.optimizer, self.G.parameters(), cfg.lr_g, betas, use_graph, self.fused)
        self.opt_D = optimiser(self.loss.optimizer, self.D.parameters(), cfg.lr_d, betas, use_graph, self.fused)
        self.set_precision(dtype)
        self.step_count = 0
        self.nan_at_step = 0                           # tests: make the losses NaN once at this step
        self.acc = torch.zeros(2, device=device)       # summed D and G losses since the last check
        self.ema_weight = torch.zeros((), device=device)
        self.anchors = torch.zeros(2, device=device)       # LeCam: moving averages of D's mean output, real and fake
        self.anchor_decay = torch.zeros((), device=device)
        self.world = world
        self.wrap(cfg.compile, use_graph)

    def wrap(self, compiled, graphed):
        """The modules a step runs (compiled or not, under DDP when world > 1) and the step (CUDA graph or not)."""
        self.compiled, self.use_graph = compiled, graphed
        Gc, self.Dc = (torch.compile(self.G), torch.compile(self.D)) if compiled else (self.G, self.D)
        self.G_train, self.D_train = Gc, self.Dc
        if self.world > 1:
            ids = [self.device] if self.device.type == "cuda" else None
            self.G_train, self.D_train = distributed(Gc, ids), distributed(self.Dc, ids)
        self.run_step = GraphedStep(self.one_step) if graphed else self.one_step
        self.set_optimiser_modes()

    def set_optimiser_modes(self):
        """Every group capturable under the CUDA graph and fused as the trainer fuses, with its step counters on the
        parameters' device where those modes read them there: a loaded state may come from another device or mode."""
        for opt in self.optimisers():
            for group in opt.param_groups:
                group["capturable"] = self.use_graph
                if "fused" in group:
                    group["fused"] = self.fused or None
                for p in group["params"]:
                    state = opt.state.get(p, {})
                    if (self.use_graph or self.fused) and torch.is_tensor(state.get("step")):
                        state["step"] = state["step"].to(p.device, torch.float32)

    def go_eager(self):
        """Fallback: no torch.compile, no CUDA graph."""
        self.cfg = dataclasses.replace(self.cfg, compile=False, cuda_graph=False)
        self.wrap(False, False)

    def set_precision(self, dtype):
        """Autocast to `dtype` (None: fp32), with fresh grad scalers enabled for fp16 only."""
        self.dtype = dtype
        self.scalers = {k: torch.amp.GradScaler(self.device.type, enabled=dtype is torch.float16) for k in "GD"}

    def leave_fp16(self):
        """Fallback after fp16 NaN/inf losses: bf16 where the GPU has it, else fp32; the config says which. A captured
        step is captured again (it held the old scalers and precision)."""
        bf16 = self.device.type == "cuda" and torch.cuda.is_bf16_supported()
        self.set_precision(torch.bfloat16 if bf16 else None)
        self.cfg = dataclasses.replace(self.cfg, precision="bf16" if bf16 else "fp32")
        if self.use_graph:
            self.run_step.reset()

    def set_batch_size(self, batch_size):
        """Fallback after an out-of-memory error: a smaller batch per process (a captured graph is captured again)."""
        self.cfg = dataclasses.replace(self.cfg, batch_size=batch_size)
        if self.use_graph:
            self.run_step.reset()

    def optimisers(self):
        """(G's, D's)."""
        return self.opt_G, self.opt_D

    def state(self) -> dict:
        """Models, EMA, optimisers, scalers, step and RNG (references to live tensors)."""
        return {"G": self.G.state_dict(), "D": self.D.state_dict(),
                "G_ema": self.G_ema.state_dict() if self.G_ema else None,
                "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
                "scaler": {k: s.state_dict() for k, s in self.scalers.items()}, "step": self.step_count,
                "rng": rng_state(), "regularisers": {"anchors": self.anchors, "ada": self.augmentation.state()}}

    def restore(self, saved) -> int:
        """Load models, EMA, optimisers and scalers from a checkpoint dict; returns its step."""
        self.G.load_state_dict(saved["G"])
        self.D.load_state_dict(saved["D"])
        if self.G_ema:
            self.G_ema.load_state_dict(saved["G_ema"] or saved["G"])
        for opt, key in ((self.opt_G, "opt_G"), (self.opt_D, "opt_D")):
            opt.load_state_dict(saved[key])
        self.set_optimiser_modes()   # the saved run may have used another device or mode
        for k, s in self.scalers.items():
            if s.is_enabled() and saved["scaler"][k]:   # a scaler saved disabled (or before a precision fallback)
                s.load_state_dict(saved["scaler"][k])
        if "regularisers" in saved:   # checkpoints from before LeCam and ADA start them afresh
            self.anchors.copy_(saved["regularisers"]["anchors"])
            self.augmentation.load(saved["regularisers"]["ada"])
        self.step_count = saved["step"]
        return self.step_count

    def rollback(self, good, rollbacks) -> int:
        """Back to `good` (a CPU state) with learning rates × 0.5^rollbacks; returns the step it went back to."""
        step = self.restore(to_cpu(good))     # a copy: optimisers may alias what they load
        for opt in self.optimisers():
            for group in opt.param_groups:
                group["lr"] *= 0.5 ** rollbacks
        if self.use_graph:
            self.run_step.reset()
        return step

    def autocast(self):
        """Mixed precision as chosen (bf16 or fp16), off for fp32."""
        return torch.autocast(self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None,
                              cache_enabled=not self.use_graph)

    def augmented(self, x):
        """x through the run's per-batch augmentation (adaptive with ADA)."""
        return self.augmentation(x)

    def real_batch(self):
        """A random batch of real images in [-1, 1] and their labels (None unless conditional)."""
        idx = torch.randint(len(self.images), (self.cfg.batch_size,), device=self.device)
        x = self.images[idx].float().div_(127.5).sub_(1).contiguous(memory_format=self.memory_format)
        return x, self.labels[idx] if self.conditional else None

    def optimiser_step(self, key, opt, loss):
        """Backward through the scaler, step, update the scale."""
        opt.zero_grad(set_to_none=True)
        self.scalers[key].scale(loss).backward()
        self.scalers[key].step(opt)
        self.scalers[key].update()

    def regularisation(self, real, fake, y, real_logits, fake_logits):
        """LeCam and balanced consistency terms of D's loss as configured (their anchors move after LeCam's)."""
        cfg, total = self.cfg, 0.0
        if cfg.lecam:
            total = cfg.lecam * losses.lecam(real_logits, fake_logits, self.anchors[0], self.anchors[1])
            means = torch.stack([real_logits.detach().mean(), fake_logits.detach().mean()])
            self.anchors.mul_(self.anchor_decay).add_(means * (1 - self.anchor_decay))
        if cfg.cr:
            again = self.D_train(self.augmented(real), y).float(), self.D_train(self.augmented(fake.detach()), y).float()
            total = total + cfg.cr * (losses.consistency(real_logits, again[0]) +
                                      losses.consistency(fake_logits, again[1]))
        return total

    def one_step(self):
        """n_critic D steps then one G step; no host syncs (CUDA-graph safe)."""
        cfg, batch = self.cfg, self.cfg.batch_size
        for i in range(self.n_critic):
            real, y = self.real_batch()
            z = torch.randn(batch, cfg.z_dim, device=self.device)
            with self.autocast():
                with torch.set_grad_enabled(i == self.n_critic - 1):
                    fake = self.G_train(z, y)
                real_aug, fake_aug = self.augmented(real), self.augmented(fake.detach())
                real_aug.requires_grad_(bool(cfg.r1))    # R1 and R2 differentiate D's outputs by its inputs
                fake_aug.requires_grad_(bool(cfg.r2))
                real_logits, fake_logits = self.D_train(real_aug, y).float(), self.D_train(fake_aug, y).float()
                loss_d = self.loss.d(real_logits, fake_logits) + self.regularisation(real, fake, y, real_logits,
                                                                                      fake_logits)
                for gamma, logits, inputs in ((cfg.r1, real_logits, real_aug), (cfg.r2, fake_logits, fake_aug)):
                    if gamma:
                        loss_d = loss_d + gamma / 2 * losses.zero_centred_penalty(logits, inputs)
                if self.loss.gradient_penalty:
                    scale = self.scalers["D"].scale(torch.ones((), device=self.device))   # on the device: no sync
                    loss_d = loss_d + cfg.gp_weight * losses.gradient_penalty(self.D_train, real_aug, fake_aug, y,
                                                                              scale)
            self.augmentation.observe(real_logits)
            self.optimiser_step("D", self.opt_D, loss_d)
            if self.loss.clip:
                with torch.no_grad():
                    for parameter in self.D.parameters():
                        parameter.clamp_(-cfg.clip, cfg.clip)
        self.D.requires_grad_(False)   # the G step reads D without DDP and without D gradients
        with self.autocast():
            real_logits = self.Dc(real_aug.detach(), y).float() if self.loss.g_needs_real else None
            loss_g = self.loss.g(real_logits, self.Dc(self.augmented(fake), y).float())
        self.optimiser_step("G", self.opt_G, loss_g)
        self.D.requires_grad_(True)
        if self.G_ema:
            ema_update(self.G_ema, self.G, self.ema_weight)
        self.acc.add_(torch.stack([loss_d.detach(), loss_g.detach()]))

    def step(self):
        """One training step (through the CUDA graph when captured)."""
        if self.G_ema:
            self.ema_weight.fill_(1 - min(self.cfg.ema, (1 + self.step_count) / (10 + self.step_count)))
        self.anchor_decay.fill_(self.cfg.lecam_decay if self.step_count >= self.cfg.lecam_start else 0.0)
        self.run_step()
        self.step_count += 1
        if self.step_count % augment.ADA_INTERVAL == 0:
            self.augmentation.adjust(self.cfg.batch_size * self.n_critic, self.world)
        if self.nan_at_step and self.step_count >= self.nan_at_step:
            self.acc.fill_(float("nan"))
            self.nan_at_step = 0

    def take_losses(self):
        """The summed D and G losses since the last call (a device tensor of 2), and reset them."""
        summed = self.acc.clone()
        self.acc.zero_()
        return summed
