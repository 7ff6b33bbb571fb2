"""fp16 with a grad scaler (the T4 path) on the CPU, and the progress lines a kernel's log gets."""
import io

import numpy as np
import pytest
import torch

from kit import checkpoint
from kit.config import for_device
from kit.data import cache
from kit.progress import Progress
from kit.train import train
from kit.trainer import Trainer
from test_train import config, metrics


@pytest.fixture(scope="module")
def demo_small(demo_cache, tmp_path_factory):
    """The demo at 32×32."""
    ds = cache.load(demo_cache)
    n, c, h, w = ds.images.shape
    small = ds.images.reshape(n, c, h // 2, 2, w // 2, 2).mean((3, 5)).round().astype(np.uint8)
    path = tmp_path_factory.mktemp("fp16") / "demo32.npz"
    cache.save(cache.Dataset(small, ds.labels, ds.classes, ds.sources, ds.fingerprint + "-32"), path)
    return path


def test_fp16_on_cpu_trains_and_the_losses_move(demo_small, tmp_path, capsys):
    last = train(config(tmp_path / "run", demo_small, precision="fp16", max_steps=30, log_every=10, lr_d=4e-4))
    first = capsys.readouterr().out.splitlines()[0]     # one start line: device, precision, processes, batch, lrs
    assert first == ("training dcgan (bce) on cpu, float16, 1 process(es); batch 32 per process (32 in all); "
                     "lr G 0.0005 D 0.0004; 1 D step(s) per G step")
    rows = [r for r in metrics(tmp_path / "run") if "loss_d" in r]
    start = metrics(tmp_path / "run")[0]
    assert start["precision"] == "float16" and len(rows) == 3
    assert all(np.isfinite([r["loss_d"], r["loss_g"]]).all() for r in rows)
    assert rows[0]["loss_d"] != rows[-1]["loss_d"] and rows[0]["loss_g"] != rows[-1]["loss_g"]
    state = checkpoint.load(last)
    assert state["scaler"]["D"]["scale"] > 0 and state["config"]["precision"] == "fp16"


def test_an_overflow_skips_the_step_and_lowers_the_scale(demo_small):
    ds = cache.load(demo_small)
    cfg = for_device(config("unused", demo_small, precision="fp16"), "cpu")
    trainer = Trainer(cfg, torch.from_numpy(ds.images), torch.from_numpy(ds.labels), len(ds.classes),
                      torch.device("cpu"), torch.float16, use_graph=False)
    before = [p.detach().clone() for p in trainer.D.parameters()]
    scale = trainer.scalers["D"].get_scale()
    with trainer.autocast():
        loss = trainer.D(trainer.real_batch()[0]).float().mean() * float("inf")
    trainer.optimiser_step("D", trainer.opt_D, loss)
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.D.parameters()))    # the step was skipped
    assert trainer.scalers["D"].get_scale() == scale / 2
    with trainer.autocast():
        loss = trainer.D(trainer.real_batch()[0]).float().mean()
    trainer.optimiser_step("D", trainer.opt_D, loss)
    assert not all(torch.equal(a, b) for a, b in zip(before, trainer.D.parameters()))   # a finite one is taken


def test_fp16_resume_restores_the_scaler_exactly(demo_small, tmp_path):
    changes = dict(precision="fp16", augment="none")
    whole = checkpoint.load(train(config(tmp_path / "whole", demo_small, max_steps=8, **changes)))
    train(config(tmp_path / "split", demo_small, max_steps=4, **changes))
    split = checkpoint.load(train(config(tmp_path / "split", demo_small, max_steps=8, resume=True, **changes)))
    assert whole["scaler"] == split["scaler"]
    for name, tensor in whole["G"].items():
        assert torch.equal(tensor, split["G"][name]), name


def test_a_log_file_gets_one_progress_line_per_interval_and_no_bar():
    stream = io.StringIO()                               # not a terminal: a kernel's log
    progress = Progress(total=100, initial=0, stream=stream, interval=0.0)
    progress.update(10, d=1.25, g=0.5, img_s=321.0, left=3725)
    progress.update(10)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines == ["step 10/100  loss D 1.2500  G 0.5000  321 images/s  budget left 1:02:05",
                     "step 20/100  loss D 1.2500  G 0.5000  321 images/s  budget left 1:02:05"]
    quiet = io.StringIO()
    slow = Progress(total=None, initial=0, stream=quiet, interval=3600.0)
    for _ in range(50):
        slow.update(1, d=1.0, g=1.0, img_s=1.0, left=1)
    assert quiet.getvalue() == "" and "\r" not in stream.getvalue()   # at most one line an interval, never a redraw


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_r1_and_r2_are_in_ds_loss_and_its_step(demo_small, monkeypatch, precision):
    """The same first step with and without --r1 --r2: D's loss differs by exactly γ/2 times each penalty, the
    penalties are positive, and D's weights move differently (under fp16 too, the gradient taken at the loss scale)."""
    from kit import losses
    ds = cache.load(demo_small)
    penalties, results = [], {}
    penalty = losses.zero_centred_penalty

    def recorded(*args):
        value = penalty(*args)
        penalties.append(value.detach())
        return value
    monkeypatch.setattr(losses, "zero_centred_penalty", recorded)
    for gamma in (0.0, 4.0):
        cfg = for_device(config("unused", demo_small, loss="rpgan", precision=precision, r1=gamma, r2=gamma / 2),
                         "cpu")
        trainer = Trainer(cfg, torch.from_numpy(ds.images), torch.from_numpy(ds.labels), len(ds.classes),
                          torch.device("cpu"), torch.float16 if precision == "fp16" else None, use_graph=False)
        trainer.step()
        results[gamma] = trainer.take_losses()[0].item(), [p.detach().clone() for p in trainer.D.parameters()]
    assert len(penalties) == 2 and all(p.item() > 0 for p in penalties)
    expected = 4.0 / 2 * penalties[0].item() + 2.0 / 2 * penalties[1].item()
    assert results[4.0][0] - results[0.0][0] == pytest.approx(expected, rel=1e-3 if precision == "fp16" else 1e-5)
    assert not all(torch.equal(a, b) for a, b in zip(results[0.0][1], results[4.0][1]))


class HostReads(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts the operations that read a tensor's value on the host (.item(), bool(), a Python number)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += func.overloadpacket.__name__ in ("_local_scalar_dense", "is_nonzero", "equal")
        return func(*args, **(kwargs or {}))


def test_the_fused_fp16_step_equals_the_eager_scaled_one_and_reads_nothing_on_the_host(demo_small, monkeypatch):
    """What the CUDA graph captures in fp16 (fused Adam taking the scaler's scale and inf check as device tensors, the
    gradient penalty's scale a device tensor), run on the CPU after today's eager scaled step from the same seed: the
    same weights after steps with an overflow among them (skipped by both, both scales halved), and not one host
    read in a fused step, where the eager one reads (wgan-gp: its penalty's scale, Adam's step counters)."""
    import kit.trainer as trainer_module
    ds = cache.load(demo_small)
    cfg = for_device(config("unused", demo_small, precision="fp16", loss="wgan-gp", n_critic=1), "cpu")
    trainers, reads = {}, {}
    for fused in (False, True):     # one after the other: each run draws its batches from the seed it set
        monkeypatch.setattr(trainer_module, "fused_optimisers", lambda kind, device, fused=fused: fused)
        trainer = trainers[fused] = Trainer(cfg, torch.from_numpy(ds.images), torch.from_numpy(ds.labels),
                                            len(ds.classes), torch.device("cpu"), torch.float16, use_graph=False)
        assert bool(trainer.opt_D.param_groups[0]["fused"]) == fused
        for step in range(5):
            if step == 2:    # an overflow in D's step: skipped, the scale halved
                scale = trainer.scalers["D"].get_scale()
                before = [p.detach().clone() for p in trainer.D.parameters()]
                with trainer.autocast():
                    loss = trainer.D(trainer.real_batch()[0]).float().mean() * float("inf")
                trainer.optimiser_step("D", trainer.opt_D, loss)
                assert all(torch.equal(a, b) for a, b in zip(before, trainer.D.parameters()))
                assert trainer.scalers["D"].get_scale() == scale / 2
            with HostReads() as host:
                trainer.step()
            reads[fused] = host.count
    assert reads[True] == 0 and reads[False] > 0, reads
    for name in ("G", "D"):
        for (key, eager), fused in zip(getattr(trainers[False], name).state_dict().items(),
                                       getattr(trainers[True], name).state_dict().values()):
            torch.testing.assert_close(fused, eager, rtol=1e-4, atol=1e-5, msg=f"{name}.{key}")
    for key in "GD":
        assert trainers[True].scalers[key].get_scale() == trainers[False].scalers[key].get_scale()
