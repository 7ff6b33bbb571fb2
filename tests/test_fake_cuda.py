"""Device bugs caught on a CPU-only torch: a tensor made on the host (a `torch.randn` without `device=`, labels left
on the CPU) that meets a CUDA tensor is the commonest GPU-only crash, and a CPU test never sees it.

Two ways to see it here:
- fake CUDA (`FakeTensorMode`): tensors made with `device="cuda"` are fake CUDA tensors (shape, dtype, device, no
  values); real CPU tensors join as fake CPU ones, and any op mixing the two raises as CUDA would. Every model's G and
  D forward, each loss, the augmentation, sampling with standing statistics and class balance, the tail probe's
  generation, the EMA update and both feature extractors' forward run that way.
  What it cannot reach: backward (autograd's engine asks the CUDA driver for a device context), autocast (torch turns
  it off without CUDA: fp16/bf16 on the CPU is tests/test_precision.py's) and anything that reads a value (`.item()`,
  `.numpy()`: the metric, the zip).
- the meta device: no values either, and a CPU tensor meeting a meta one raises; backward runs there, so a whole
  training step (both backward passes, the optimisers, the gradient penalty, clipping, EMA) runs on it, in fp32 (no
  grad scaler, no CUDA graph). It is laxer than CUDA in one place found: a CPU tensor indexed by a meta index does
  not raise (the trainer's labels left on the host pass here; under fake CUDA they raise).
"""
import contextlib

import pytest
import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorDeviceMismatchError, FakeTensorMode, unset_fake_temporarily
from torch.nn.modules.batchnorm import _BatchNorm

import kit.sample
import kit.train
from kit import losses, models
from kit.config import TrainConfig, asdict, for_device
from kit.data import augment
from kit.metrics import features
from kit.trainer import Trainer, ema_update

CUDA = torch.device("cuda")
META = torch.device("meta")
SHAPE = (3, 64, 64)
BREEDS = 6
EVERY_AUGMENTATION = ",".join(augment.POLICIES)


def gpu_config(model: str) -> TrainConfig:
    """The model's config as a GPU run fills it (widths, attention at 32×32, loss), only narrower: without values a
    fake forward costs the same at any width, but building the real weights does not."""
    return for_device(TrainConfig(model=model, g_width=8, d_width=8), "cuda")


@pytest.fixture
def fake_cuda(monkeypatch):
    """A FakeTensorMode to enter around what runs on the fake GPU. Models are built outside it (a fake forward costs
    the same at any width, a fake weight initialisation costs seconds); around it:
    - `Module.to("cuda")` puts an empty fake tensor in place of every parameter and buffer (torch's own `to` swaps
      fake tensors and fails on the weak references the mode keeps);
    - the kit's device rule takes "cuda" as given (patching torch.cuda.is_available would send fake tensors to the
      real driver), and `kit.sample` builds its generator outside the mode;
    - batch norm's cumulative average (momentum None, as standing statistics use it) divides by num_batches_tracked
      read on the host, which a fake tensor cannot answer: it runs with momentum 0.1, nothing else changed."""
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    to, build, batch_norm = nn.Module.to, kit.sample.build, _BatchNorm.forward

    def to_fake_device(module, *args, **kwargs):
        device = torch._C._nn._parse_to(*args, **kwargs)[0]
        if device is None or device.type != "cuda":
            return to(module, *args, **kwargs)
        with mode:
            for part in module.modules():
                for tensors in (part._parameters, part._buffers):
                    for name, t in tensors.items():
                        if t is not None:
                            moved = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device=device)
                            is_parameter = isinstance(t, nn.Parameter)
                            tensors[name] = nn.Parameter(moved, t.requires_grad) if is_parameter else moved
        return module

    def build_outside(*args, **kwargs):
        with unset_fake_temporarily():
            return build(*args, **kwargs)

    def batch_norm_without_host_reads(norm, x):
        cumulative = norm.momentum is None
        norm.momentum = 0.1 if cumulative else norm.momentum
        try:
            return batch_norm(norm, x)
        finally:
            norm.momentum = None if cumulative else norm.momentum

    monkeypatch.setattr(nn.Module, "to", to_fake_device)
    monkeypatch.setattr(kit.sample, "build", build_outside)
    monkeypatch.setattr(_BatchNorm, "forward", batch_norm_without_host_reads)
    for module in (kit.sample, features):
        monkeypatch.setattr(module, "resolve_device", torch.device)
    return mode


def on_cuda(*tensors):
    """Whether every tensor claims the CUDA device."""
    return all(t.device.type == "cuda" for t in tensors)


def flip_made_on_the_host(x):
    """augment.flip with its mask made without device=: the bug this file is here to catch."""
    mask = torch.rand(x.shape[0], 1, 1, 1) < 0.5
    return torch.where(mask, x.flip(3), x)


def test_a_tensor_left_on_the_host_raises_under_fake_cuda(fake_cuda):
    _, D = models.build(gpu_config("cgan"), SHAPE, BREEDS)
    D.to(CUDA)
    with fake_cuda:
        x = torch.randn(4, *SHAPE, device=CUDA)
        assert on_cuda(augment.flip(x), D(x, torch.zeros(4, dtype=torch.long, device=CUDA)))
        with pytest.raises(FakeTensorDeviceMismatchError, match="two devices"):
            flip_made_on_the_host(x)
        with pytest.raises(FakeTensorDeviceMismatchError, match="two devices"):
            D(x, torch.zeros(4, dtype=torch.long))   # breed labels left on the CPU


@pytest.mark.parametrize("model", models.MODELS)
def test_each_model_augmentation_and_loss_on_fake_cuda(fake_cuda, model):
    cfg = gpu_config(model)
    G, D = models.build(cfg, SHAPE, BREEDS)
    G.to(CUDA, memory_format=torch.channels_last)
    D.to(CUDA, memory_format=torch.channels_last)
    conditional = models.family(model).conditional
    with fake_cuda:
        z = torch.randn(8, cfg.z_dim, device=CUDA)
        y = torch.randint(BREEDS, (8,), device=CUDA) if conditional else None
        fake = G(z, y)
        real = torch.randint(0, 256, (8, *SHAPE), dtype=torch.uint8, device=CUDA).float().div_(127.5).sub_(1)
        every = augment.Augmentation(EVERY_AUGMENTATION, CUDA)
        real_logits, fake_logits = D(every(real), y), D(every(fake), y)
        assert fake.shape == (8, *SHAPE) and real_logits.shape == (8,) and on_cuda(fake, real_logits, fake_logits)
        for loss in [*losses.LOSSES.values(), losses.get("bce", real_label=0.8)]:
            assert on_cuda(loss.d(real_logits, fake_logits), loss.g(real_logits, fake_logits)), loss.name


def sampling_checkpoint(model):
    """A checkpoint dict as `kit train` writes it for `model` at its GPU settings (random CPU weights)."""
    cfg = gpu_config(model)
    G, D = models.build(cfg, SHAPE, BREEDS)
    return cfg, {"config": asdict(cfg), "G": G.state_dict(), "G_ema": G.state_dict(), "image_shape": SHAPE,
                 "classes": [f"breed{i}" for i in range(BREEDS)], "label_counts": [5, 1, 0, 3, 2, 4]}


@pytest.mark.parametrize("model, class_balance", [("biggan", True), ("cgan", False)])
def test_sampling_and_the_tail_probe_on_fake_cuda(fake_cuda, tmp_path, monkeypatch, model, class_balance):
    """Standing statistics (biggan's default), balanced or frequency-drawn breeds, and the tail probe as a run's start
    makes it. Truncation stays off: its redraw loop asks a CPU tensor for a value, which no fake tensor has."""
    cfg, state = sampling_checkpoint(model)
    zipped = []
    monkeypatch.setattr(kit.train, "write_zip", lambda images, *args, **kwargs: zipped.append(images))
    with fake_cuda:
        images, labels = kit.sample.generate(state, 8, seed=1, device="cuda", standing_stats=1,
                                             class_balance=class_balance)
        kit.train.measure_tail(state, cfg, CUDA)
    assert images.shape == (8, *SHAPE) and images.dtype == torch.uint8 and images.device.type == "cpu"
    assert labels.shape == (8,)
    assert [len(z) for z in zipped] == list(kit.train.TAIL_PROBES)
    assert all(z.shape[1:] == SHAPE and z.device.type == "cpu" for z in zipped)


def test_the_ema_update_on_fake_cuda(fake_cuda):
    G, _ = models.build(gpu_config("biggan"), SHAPE, BREEDS)   # spectral norm's vectors are copied, the rest averaged
    G_ema, _ = models.build(gpu_config("biggan"), SHAPE, BREEDS)
    G.to(CUDA)
    G_ema.to(CUDA)
    with fake_cuda:
        ema_update(G_ema, G, torch.zeros((), device=CUDA))
    assert on_cuda(*G_ema.parameters(), *G_ema.buffers())


def test_both_feature_extractors_forward_on_fake_cuda(fake_cuda, tmp_path, monkeypatch):
    """Built on the meta device and never loaded (a weights file of random values costs seconds, and no value is read
    under fake CUDA); a uint8 batch goes through the organisers' resize and the network as __call__ sends it."""
    weights = tmp_path / "weights.pth"
    weights.write_bytes(b"not read")
    monkeypatch.setattr(features, "load_into", lambda build, *args: build().eval())
    images = torch.randint(0, 256, (2, *SHAPE), dtype=torch.uint8)
    for extractor in (features.InceptionFeatures, features.NASNetFeatures):
        with torch.device(META):
            network = extractor(weights=weights, device="cuda")
        with fake_cuda:
            out = network.network(network.network_input(images.to(network.device)))
        assert out.flatten(1).shape == (2, network.dim) and on_cuda(out), extractor.__name__


def meta_trainer(cfg):
    """A Trainer whose data, models, optimisers, scalers and EMA live on the meta device, in fp32 (torch.autocast
    refuses the meta device type even when off, so the trainer's autocast is the no-op it is in fp32)."""
    images = torch.empty(32, *SHAPE, dtype=torch.uint8, device=META)
    trainer = Trainer(cfg, images, torch.zeros(32, dtype=torch.long, device=META), BREEDS, META, None, False)
    trainer.autocast = contextlib.nullcontext
    return trainer


@pytest.mark.parametrize("model, loss, regularisers", [
    ("biggan", "hinge", {}),  # spectral norm everywhere, attention, projection D, standing-statistics batch norm
    ("cgan", "wgan-gp", {}),  # the gradient penalty's autograd.grad, conditional
    ("mlp", "wgan", {}),      # weight clipping after the D step, RMSprop
    ("dcgan", "ralsgan", {}),  # G's term reads D(real)
    ("dcgan", "hinge", {"lecam": 0.3, "cr": 10.0, "ada_target": 0.6}),   # LeCam's anchors, bCR's passes, ADA's p
    ("biggan", "rpgan", {"r1": 1.0, "r2": 1.0}),   # R1 and R2: D's input gradients, through spectral norm
    ("r3gan", "rpgan", {"r1": 1.0, "r2": 1.0}),    # R3GAN's pair: the basis, grouped convolutions, the embedding
])
def test_a_training_step_with_backward_on_the_meta_device(model, loss, regularisers):
    cfg = for_device(TrainConfig(model=model, loss=loss, g_width=4, d_width=4, batch_size=4, n_critic=1,
                                 augment=EVERY_AUGMENTATION, **regularisers), "cpu")
    trainer = meta_trainer(cfg)
    for _ in range(4 if regularisers else 1):   # ADA adjusts its probability at the 4th step
        trainer.step()
    assert trainer.take_losses().device == META
    assert trainer.anchors.device == trainer.augmentation.p.device == META
    assert all(p.grad is not None and p.grad.device == META for p in trainer.G.parameters())
    assert all(p.device == META for p in trainer.G_ema.parameters())


def test_a_tensor_left_on_the_host_raises_on_the_meta_device():
    trainer = meta_trainer(for_device(TrainConfig(model="dcgan", g_width=4, d_width=4, batch_size=4), "cpu"))
    trainer.augmentation.ops = [flip_made_on_the_host]
    with pytest.raises(RuntimeError, match="not on the expected device"):
        trainer.step()
