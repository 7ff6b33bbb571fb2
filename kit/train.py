"""Train a GAN on a prepared cache within a hard wall-clock budget; checkpoints, samples, metrics, final zip."""
import copy
import json
import math
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from kit import checkpoint, losses, models
from kit.config import (TrainConfig, add_arguments as add_config_arguments, asdict, for_device, from_args, from_dict,
                        parse_duration)
from kit.data import augment, cache
from kit.device import resolve_device
from kit.errors import UserError
from kit.files import refuse_overwrite
from kit.package import write_zip
from kit.plot import save_grid, save_line_chart
from kit.sample import generate, to_uint8

# Fields a resumed run takes from the command line; every other field comes from the checkpoint.
RUN_FIELDS = ("data", "out", "budget", "device", "threads", "compile", "cuda_graph", "checkpoint_every", "sample_every",
              "log_every", "n_images", "zip", "truncation", "resume", "max_steps", "force")
CHECK_EVERY_CUDA = 25   # steps between host syncs on a GPU (NaN check, budget, logging); every step on CPU
MAX_ROLLBACKS = 5       # NaN rollbacks in a row before giving up
TAIL_SAFETY = 1.5       # the measured time of generating + zipping is multiplied by this ...
TAIL_MARGIN_S = 10.0    # ... and this is added
TAIL_PROBE = 256        # images generated and zipped at the start to time the tail
GRID_BREEDS = 10        # rows of the CGAN sample grid (breeds spread over the classes)


def pick_precision(name, device):
    """The autocast dtype (None is fp32): auto is bf16 on GPUs that have it, fp16 on older GPUs, fp32 on CPU."""
    if name == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.get_device_capability(device) >= (8, 0) else torch.float16  # T4, P100: fp16
    table = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if name not in table:
        raise UserError(f"--precision {name} is not known: use auto, fp32, bf16 or fp16")
    if table[name] is torch.float16 and device.type != "cuda":
        raise UserError("--precision fp16 needs a GPU: use --precision fp32 (or auto) on CPU")
    return table[name]


def setup_distributed(device_name):
    """(rank, world size, device); under torchrun one process per GPU (gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device_name)
    if world == 1:
        return 0, 1, device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return torch.distributed.get_rank(), world, device


def open_data(cfg, rank, world):
    """The training Dataset; under DDP rank 0 prepares it first so the others only read the cache."""
    if not cfg.data:
        raise UserError("no --data given: pass a cache made by `kit prepare`, or a folder/archive to prepare")
    if world > 1 and rank > 0:
        torch.distributed.barrier()   # wait until rank 0 has prepared the cache
    dataset = cache.load_or_prepare(cfg.data, crop=cfg.crop)
    if world > 1 and rank == 0:
        torch.distributed.barrier()
    if len(dataset) == 0:
        raise UserError(f"{cfg.data} holds no images: check the path, or prepare it again with `kit prepare`")
    return dataset


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


@torch.no_grad()
def ema_update(ema, model, weight):
    """ema ← ema + weight·(model - ema) for parameters and floating-point buffers; other buffers are copied."""
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), weight)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.lerp_(b, weight) if e.is_floating_point() else e.copy_(b)


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


def measure_tail(state, n_images, out, device):
    """Seconds the end of a run needs (generate + zip n_images, measured on a small probe, with a safety factor)."""
    k = max(1, min(n_images, TAIL_PROBE))
    t = time.monotonic()
    images, _ = generate(state, k, device=device)
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        write_zip(images, Path(tmp) / "probe.zip", force=True, progress=False)
    return (time.monotonic() - t) / k * n_images * TAIL_SAFETY + TAIL_MARGIN_S


def fixed_noise(cfg, n_classes, seed):
    """The sample grid's noise and labels (one row per breed for a conditional model) and its row length."""
    generator = torch.Generator().manual_seed(seed)
    if cfg.model != "cgan":
        return torch.randn(64, cfg.z_dim, generator=generator), None, 8
    breeds = np.unique(np.linspace(0, n_classes - 1, min(n_classes, GRID_BREEDS)).round().astype(np.int64))
    z = torch.randn(8 * len(breeds), cfg.z_dim, generator=generator)
    return z, torch.from_numpy(breeds).repeat_interleave(8), 8


def read_metrics(path):
    """The loss lines of metrics.jsonl as {name: (steps, values)}."""
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "loss_d" in r]
    return {name: ([r["step"] for r in rows], [r[key] for r in rows])
            for name, key in (("D", "loss_d"), ("G", "loss_g"))}


def train(cfg: TrainConfig, nan_at_step: int = 0) -> Path:
    """Train until cfg.max_steps or the budget's end, then checkpoint and zip cfg.n_images; returns OUT/last.pt.

    nan_at_step > 0 makes the loss at that step NaN once (to test the rollback).
    """
    start = time.monotonic()
    budget, ckpt_every, sample_every = (parse_duration(v) for v in (cfg.budget, cfg.checkpoint_every, cfg.sample_every))
    out = Path(cfg.out)
    last = out / "last.pt"
    rank, world, device = setup_distributed(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    main = rank == 0

    # --- the run folder: a new run, or the continuation of the one in OUT ---
    resumed = None
    if cfg.resume:
        if not last.exists():
            raise UserError(f"--resume given but {last} does not exist: leave out --resume to start a new run")
        resumed = checkpoint.load(last)
        cfg = from_dict({**resumed["config"], **{k: getattr(cfg, k) for k in RUN_FIELDS}})
    elif last.exists() and not cfg.force:
        raise UserError(f"{last} exists: pass --resume to continue that run, or --force to start a new one over it")
    cfg = for_device(cfg, device.type)   # the checkpoint stores the concrete widths and learning rates
    zip_path = Path(cfg.zip) if cfg.zip else out / "images.zip"
    if cfg.zip and not cfg.resume:
        refuse_overwrite(zip_path, cfg.force)
    d_loss_fn, g_loss_fn = losses.get(cfg.loss)
    augmentations = augment.parse(cfg.augment)
    if cfg.batch_size < 1 or cfg.n_critic < 1:
        raise UserError(f"--batch-size {cfg.batch_size} and --n-critic {cfg.n_critic} must be at least 1")
    dtype = pick_precision(cfg.precision, device)
    use_graph = cfg.cuda_graph and device.type == "cuda" and dtype is not torch.float16 and world == 1
    if cfg.cuda_graph and not use_graph and main:
        tqdm.write("cuda_graph is off: it needs one CUDA GPU and bf16 or fp32 precision")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True

    # --- data on the device, models, optimisers ---
    dataset = open_data(cfg, rank, world)
    images = torch.from_numpy(dataset.images).to(device)   # uint8 N×C×H×W, resident
    labels = torch.from_numpy(dataset.labels).to(device)
    classes = list(dataset.classes)
    label_counts = np.bincount(dataset.labels, minlength=len(classes)).tolist()
    image_shape = tuple(images.shape[1:])
    conditional = cfg.model == "cgan"
    if conditional and len(classes) < 2:
        raise UserError(f"--model cgan needs breed labels, but {cfg.data} has {len(classes)} class: use --model dcgan")
    torch.manual_seed(cfg.seed)   # the same initial weights on every rank (G_ema is copied before DDP syncs)
    G, D = models.build(cfg, image_shape, len(classes))
    torch.manual_seed(cfg.seed + rank)   # different batches and noise on every rank
    np.random.seed(cfg.seed + rank)
    random.seed(cfg.seed + rank)
    memory_format = torch.channels_last if cfg.channels_last and device.type == "cuda" else torch.contiguous_format
    G, D = G.to(device, memory_format=memory_format), D.to(device, memory_format=memory_format)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False) if cfg.ema else None
    opt_G = torch.optim.Adam(G.parameters(), cfg.lr_g, (cfg.beta1, cfg.beta2), capturable=use_graph)
    opt_D = torch.optim.Adam(D.parameters(), cfg.lr_d, (cfg.beta1, cfg.beta2), capturable=use_graph)
    scalers = {k: torch.amp.GradScaler(device.type, enabled=dtype is torch.float16) for k in "GD"}
    step, elapsed_before = 0, 0.0

    def state():
        """The checkpoint dict of the run as it is now (references to live tensors)."""
        return {"config": asdict(cfg), "G": G.state_dict(), "D": D.state_dict(),
                "G_ema": G_ema.state_dict() if G_ema else None,
                "opt_G": opt_G.state_dict(), "opt_D": opt_D.state_dict(),
                "scaler": {k: s.state_dict() for k, s in scalers.items()}, "step": step, "rng": rng_state(),
                "classes": classes, "label_counts": label_counts, "elapsed": elapsed_before + time.monotonic() - start,
                "image_shape": image_shape}

    def restore(saved):
        """Load models, EMA, optimisers and scalers from a checkpoint dict; returns its step."""
        G.load_state_dict(saved["G"])
        D.load_state_dict(saved["D"])
        if G_ema:
            G_ema.load_state_dict(saved["G_ema"] or saved["G"])
        for opt, key in ((opt_G, "opt_G"), (opt_D, "opt_D")):
            opt.load_state_dict(saved[key])
            for group in opt.param_groups:
                group["capturable"] = use_graph   # the saved run may have used another device or mode
        for k, s in scalers.items():
            s.load_state_dict(saved["scaler"][k])
        return saved["step"]

    if resumed:
        if tuple(resumed["image_shape"]) != image_shape or list(resumed["classes"]) != classes:
            raise UserError(f"{last} was trained on other data (images {tuple(resumed['image_shape'])}, "
                            f"{len(resumed['classes'])} classes): pass the same --data, or start a new --out")
        step, elapsed_before = restore(resumed), resumed["elapsed"]
        if world == 1:
            set_rng_state(resumed["rng"])
        else:  # one saved RNG state cannot serve every rank: reseed each from the step
            torch.manual_seed(cfg.seed + rank + 1000003 * step)
    Gc, Dc = (torch.compile(G), torch.compile(D)) if cfg.compile else (G, D)
    G_train, D_train = Gc, Dc
    if world > 1:
        ids = [device] if device.type == "cuda" else None
        G_train = torch.nn.parallel.DistributedDataParallel(Gc, device_ids=ids)
        D_train = torch.nn.parallel.DistributedDataParallel(Dc, device_ids=ids)

    # --- one training step: n_critic D steps then one G step, no host syncs (CUDA-graph safe) ---
    def aug(x):
        for fn in augmentations:
            x = fn(x)
        return x

    acc = torch.zeros(2, device=device)           # summed D and G losses since the last check
    ema_weight = torch.zeros((), device=device)   # 1 - EMA decay of this step, set before each step
    batch = cfg.batch_size

    def autocast():
        return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None,
                              cache_enabled=not use_graph)

    def real_batch():
        idx = torch.randint(len(images), (batch,), device=device)
        x = images[idx].float().div_(127.5).sub_(1).contiguous(memory_format=memory_format)
        return x, labels[idx] if conditional else None

    def one_step():
        for i in range(cfg.n_critic):
            real, y = real_batch()
            z = torch.randn(batch, cfg.z_dim, device=device)
            with autocast():
                with torch.set_grad_enabled(i == cfg.n_critic - 1):
                    fake = G_train(z, y)
                real_aug, fake_aug = aug(real), aug(fake.detach())
                loss_d = d_loss_fn(D_train(real_aug, y).float(), D_train(fake_aug, y).float())
                if cfg.loss == "wgan-gp":
                    scale = scalers["D"].get_scale() if scalers["D"].is_enabled() else 1.0
                    loss_d = loss_d + cfg.gp_weight * losses.gradient_penalty(D_train, real_aug, fake_aug, y, scale)
            opt_D.zero_grad(set_to_none=True)
            scalers["D"].scale(loss_d).backward()
            scalers["D"].step(opt_D)
            scalers["D"].update()
        D.requires_grad_(False)   # the G step reads D without DDP and without D gradients
        with autocast():
            real_logits = Dc(real_aug, y).float() if cfg.loss in losses.G_NEEDS_REAL else None
            loss_g = g_loss_fn(real_logits, Dc(aug(fake), y).float())
        opt_G.zero_grad(set_to_none=True)
        scalers["G"].scale(loss_g).backward()
        scalers["G"].step(opt_G)
        scalers["G"].update()
        D.requires_grad_(True)
        if G_ema:
            ema_update(G_ema, G, ema_weight)
        acc.add_(torch.stack([loss_d.detach(), loss_g.detach()]))

    run_step = GraphedStep(one_step) if use_graph else one_step

    # --- the budget: measure what the end needs (images, zip, a checkpoint) before writing anything ---
    out.mkdir(parents=True, exist_ok=True)
    good = to_cpu(state())   # the last state known to be finite: rollback target
    tail = measure_tail(good, cfg.n_images, out, device) if main else 0.0
    if main and time.monotonic() + tail >= start + budget:
        raise UserError(f"--budget {cfg.budget} leaves no time to train: writing {cfg.n_images} images needs "
                        f"about {tail:.0f} s; raise --budget or lower --n-images")
    t = time.monotonic()
    if main:
        checkpoint.save(last, good)
        metrics_path = out / "metrics.jsonl"
        metrics = open(metrics_path, "a" if resumed else "w")
    tail += 2 * (time.monotonic() - t)   # the final checkpoint, twice over
    deadline = start + budget - tail

    def log(row):
        if main:
            metrics.write(json.dumps(row) + "\n")
            metrics.flush()

    z_fixed, y_fixed, nrow = fixed_noise(cfg, len(classes), cfg.seed)
    samples_dir = out / "samples"

    def save_samples():
        sampler = G_ema or G
        was_training = sampler.training
        sampler.eval()
        with torch.no_grad():
            grid = to_uint8(sampler(z_fixed.to(device), None if y_fixed is None else y_fixed.to(device)))
        sampler.train(was_training)
        save_grid(grid, samples_dir / f"step_{step:07d}.png", nrow)

    log({"event": "start", "step": step, "resumed": bool(resumed), "world_size": world, "device": str(device),
         "precision": str(dtype or "fp32"), "cuda_graph": use_graph, "tail_reserved_s": round(tail, 1)})
    check_every = 1 if device.type == "cpu" else CHECK_EVERY_CUDA
    bar = tqdm(total=cfg.max_steps or None, initial=step, unit="step", disable=not main, dynamic_ncols=True)
    last_ckpt = last_sample = last_check = time.monotonic()
    step_seconds, since_check, rollbacks = 0.0, 0, 0
    window = {"n": 0, "d": 0.0, "g": 0.0, "t": time.monotonic(), "step": step}
    try:
        while True:
            # --- a check (one host sync): NaN rollback, logging, budget, checkpoint, samples ---
            if since_check >= check_every or since_check == 0:
                now = time.monotonic()
                if since_check:
                    step_seconds = (now - last_check) / since_check
                if nan_at_step and step >= nan_at_step:
                    acc.fill_(float("nan"))
                    nan_at_step = 0
                stop = step >= cfg.max_steps > 0 or now + step_seconds * (check_every + 1) >= deadline
                save_now = now - last_ckpt >= ckpt_every
                flags = torch.cat([acc, torch.tensor([float(stop), float(save_now)], device=device)])
                if world > 1:
                    torch.distributed.broadcast(flags[2:], 0)   # rank 0's clock decides for everyone
                    torch.distributed.all_reduce(flags[:2])
                d_sum, g_sum, stop, save_now = flags.tolist()
                acc.zero_()
                if not (math.isfinite(d_sum) and math.isfinite(g_sum)):
                    rollbacks += 1
                    if rollbacks > MAX_ROLLBACKS:
                        raise UserError(f"training diverged: {MAX_ROLLBACKS} rollbacks in a row after NaN/inf losses; "
                                        "lower --lr-g/--lr-d or try another --loss")
                    bad_step, step = step, restore(to_cpu(good))  # a copy: optimisers may alias what they load
                    for opt in (opt_G, opt_D):
                        for group in opt.param_groups:
                            group["lr"] *= 0.5 ** rollbacks
                    if use_graph:
                        run_step.reset()
                    message = (f"NaN/inf loss near step {bad_step}: rolled back to step {step}, "
                               f"learning rates ×{0.5 ** rollbacks:g} (now G {opt_G.param_groups[0]['lr']:.2e}, "
                               f"D {opt_D.param_groups[0]['lr']:.2e})")
                    if main:
                        tqdm.write(message)
                    log({"event": "rollback", "step": step, "bad_step": bad_step, "message": message})
                    bar.reset(total=cfg.max_steps or None)
                    bar.update(step)
                    window.update(n=0, d=0.0, g=0.0, t=time.monotonic(), step=step)
                    since_check, last_check = 0, time.monotonic()
                    continue
                window["d"] += d_sum
                window["g"] += g_sum
                window["n"] += since_check
                bar.update(since_check)
                since_check, last_check = 0, now
                if window["n"] and (step - window["step"] >= cfg.log_every or stop):
                    seconds = now - window["t"]
                    row = {"step": step, "elapsed": round(elapsed_before + now - start, 2),
                           "loss_d": window["d"] / window["n"], "loss_g": window["g"] / window["n"],
                           "images_per_s": round(window["n"] * cfg.n_critic * batch * world / max(seconds, 1e-9), 1),
                           "lr_g": opt_G.param_groups[0]["lr"], "lr_d": opt_D.param_groups[0]["lr"]}
                    log(row)
                    bar.set_postfix(d=f"{row['loss_d']:.3f}", g=f"{row['loss_g']:.3f}",
                                    img_s=f"{row['images_per_s']:.0f}",
                                    left=time.strftime("%H:%M:%S", time.gmtime(max(0.0, deadline - now))))
                    window.update(n=0, d=0.0, g=0.0, t=now, step=step)
                if save_now or stop:
                    good, rollbacks = to_cpu(state()), 0
                    if main:
                        checkpoint.save(last, good)
                    last_ckpt = time.monotonic()
                if main and (now - last_sample >= sample_every or stop):
                    save_samples()
                    last_sample = now
                if stop:
                    break
            if G_ema:
                ema_weight.fill_(1 - min(cfg.ema, (1 + step) / (10 + step)))
            run_step()
            step += 1
            since_check += 1
    except torch.cuda.OutOfMemoryError:
        raise UserError(f"--batch-size {batch} does not fit in the GPU's memory: pass a smaller --batch-size "
                        "(or --no-compile / --no-cuda-graph)") from None
    finally:
        bar.close()

    # --- the end: loss curve, images, zip (all inside the budget) ---
    if main:
        t = time.monotonic()
        save_line_chart(read_metrics(metrics_path), out / "losses.png", "step", "loss", f"{cfg.model} {cfg.loss}")
        images_out, _ = generate(good, cfg.n_images, seed=cfg.seed, truncation=cfg.truncation, device=device)
        write_zip(images_out, zip_path, force=True)
        log({"event": "end", "step": step, "tail_s": round(time.monotonic() - t, 2), "tail_reserved_s": round(tail, 1),
             "wall_s": round(time.monotonic() - start, 2), "budget_s": budget, "zip": str(zip_path)})
        metrics.close()
        tqdm.write(f"{step} steps; wrote {last} and {cfg.n_images} images to {zip_path} "
                   f"({time.monotonic() - start:.0f} s of the {budget:.0f} s budget)")
    if world > 1:
        torch.distributed.destroy_process_group()
    return last


def add_arguments(parser):
    """Flags of `kit train`: one per TrainConfig field."""
    add_config_arguments(parser)


def main(args):
    """Run `kit train`."""
    train(from_args(args))
