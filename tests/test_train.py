"""The trainer on the demo data (CPU, tiny widths): it learns, resumes exactly, keeps its budget, rolls back on NaN."""
import copy
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from kit import checkpoint
from kit.config import TrainConfig
from kit.data import cache
from kit.errors import UserError
from kit.package import check_zip, read_images
from kit.sample import generate
from kit.train import graph_allowed, pick_precision, train
from kit.trainer import ema_update


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """train(threads=1) sets a process-wide torch setting: give it back to the other tests."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def demo32(demo_cache, tmp_path_factory):
    """The demo cache shrunk to 32×32 (2×2 means): four times less work per step."""
    ds = cache.load(demo_cache)
    n, c, h, w = ds.images.shape
    small = ds.images.reshape(n, c, h // 2, 2, w // 2, 2).mean((3, 5)).round().astype(np.uint8)
    path = tmp_path_factory.mktemp("demo32") / "demo32.npz"
    cache.save(cache.Dataset(small, ds.labels, ds.classes, ds.sources, ds.fingerprint + "-32"), path)
    return path


@pytest.fixture(scope="module")
def grey32(demo32, tmp_path_factory):
    """One-channel 32×32 version of the demo (like MNIST)."""
    ds = cache.load(demo32)
    grey = ds.images.mean(1, keepdims=True).round().astype(np.uint8)
    path = tmp_path_factory.mktemp("grey32") / "grey32.npz"
    cache.save(cache.Dataset(grey, ds.labels, ds.classes, ds.sources, ds.fingerprint + "-grey"), path)
    return path


def config(out, data, **changes):
    """A tiny, quick TrainConfig."""
    base = dict(data=str(data), out=str(out), g_width=8, d_width=8, z_dim=32, batch_size=32, lr_g=5e-4, lr_d=5e-4,
                n_images=16, budget="10m", checkpoint_every="1h", sample_every="1h", log_every=10, threads=1)
    return TrainConfig(**{**base, **changes})


def histogram(images):
    """Per-channel 16-bin histograms of pixel values, each summing to 1."""
    images = np.asarray(images)
    return np.stack([np.histogram(images[:, c], bins=16, range=(0, 256))[0] / images[:, c].size
                     for c in range(images.shape[1])])


def metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


BIGGAN = dict(model="biggan", attn_g=16, attn_d=16)   # attention at 16×16 in both: a quarter of the work at 32


@pytest.mark.parametrize("changes,steps", [(dict(model="cgan"), 400), (BIGGAN, 150), (dict(model="r3gan"), 150)],
                         ids=["cgan", "biggan", "r3gan"])
def test_conditional_models_learn_colours_and_breeds(demo32, tmp_path, changes, steps):
    """Samples move towards the data's colour histogram, and samples asked for breed k take breed k's colour."""
    init = train(config(tmp_path / "init", demo32, max_steps=1, **changes))  # 0 would mean no limit
    last = train(config(tmp_path / "run", demo32, max_steps=steps, **changes))
    data = cache.load(demo32)
    target = histogram(data.images)
    before = np.abs(histogram(generate(init, 96)[0]) - target).sum()
    after = np.abs(histogram(generate(last, 96)[0]) - target).sum()
    assert after < 0.75 * before, (before, after)

    breed_colours = np.stack([data.images[data.labels == k].mean((0, 2, 3)) for k in range(len(data.classes))])
    nearest = [int(np.argmin(((breed_colours - generate(last, 32, labels=k)[0].numpy().mean((0, 2, 3))) ** 2).sum(1)))
               for k in range(len(data.classes))]
    assert sum(k == j for k, j in enumerate(nearest)) >= 5, nearest  # chance is 1 of 6

    rows = [r for r in metrics(tmp_path / "run") if "loss_d" in r]
    assert len(rows) == steps // 10 and all(np.isfinite([r["loss_d"], r["loss_g"]]).all() for r in rows)
    assert np.std([r["loss_d"] for r in rows]) > 0.01 and np.std([r["loss_g"] for r in rows]) > 0.01
    assert (tmp_path / "run" / "samples" / f"step_{steps:07d}.png").exists()
    assert (tmp_path / "run" / "losses.png").exists()


def test_resume_is_exact(demo32, tmp_path):
    """N + M steps in one go == N steps, then --resume for M more: same weights, EMA, optimisers, RNG."""
    changes = dict(augment="flip,translation,cutout", batch_size=16)
    whole = checkpoint.load(train(config(tmp_path / "whole", demo32, max_steps=9, **changes)))
    train(config(tmp_path / "split", demo32, max_steps=5, **changes))
    split = checkpoint.load(train(config(tmp_path / "split", demo32, max_steps=9, resume=True, **changes)))
    assert whole["step"] == split["step"] == 9
    for key in ("G", "D", "G_ema"):
        for name, tensor in whole[key].items():
            assert torch.equal(tensor, split[key][name]), (key, name)
    for key in ("opt_G", "opt_D"):
        for index, state in whole[key]["state"].items():
            for name, tensor in state.items():
                assert torch.equal(tensor, split[key]["state"][index][name]), (key, index, name)
    assert torch.equal(whole["rng"]["torch"], split["rng"]["torch"])
    events = [r.get("event") for r in metrics(tmp_path / "split")]
    assert events.count("start") == 2 and events.count("end") == 2


@pytest.mark.parametrize("changes,budget", [({}, 25.0), (dict(model="biggan"), 40.0)], ids=["dcgan", "biggan"])
def test_budget_stops_on_time_with_checkpoint_and_zip(demo_cache, tmp_path, changes, budget):
    """Training stops early enough that the checkpoint and a valid zip of n_images fit inside the budget (biggan's
    standing statistics, 4 batches of 256, are in its reserve)."""
    cfg = config(tmp_path / "run", demo_cache, budget=f"{budget}s", n_images=120, max_steps=0, **changes)
    t = time.monotonic()
    last = train(cfg)
    wall = time.monotonic() - t
    end = metrics(tmp_path / "run")[-1]
    assert end["event"] == "end" and wall <= budget, (wall, end)
    assert wall >= budget - end["tail_reserved_s"] - 5.0, (wall, end)  # it trained until the reserve, not much less
    assert checkpoint.load(last)["step"] == end["step"] > 0
    assert check_zip(tmp_path / "run" / "images.zip", n_images=120) == []
    images, problems = read_images(tmp_path / "run" / "images.zip")
    assert images.shape == (120, 3, 64, 64) and problems == []


def test_the_budget_counts_from_budget_from(demo32, tmp_path):
    """A kernel's start passed as budget_from: the seconds before training spent the budget too."""
    cfg = config(tmp_path / "run", demo32, budget="20s", budget_from=time.time() - 12, max_steps=0)
    t = time.monotonic()
    train(cfg)
    wall, end = time.monotonic() - t, metrics(tmp_path / "run")[-1]
    assert end["event"] == "end" and wall <= 8.0 and 12.0 <= end["wall_s"] <= 20.0, (wall, end)
    late = config(tmp_path / "late", demo32, budget="20s", budget_from=time.time() - 19)
    with pytest.raises(UserError, match="--budget 20s leaves no time to train"):
        train(late)


@pytest.mark.parametrize("changes", [{}, BIGGAN], ids=["dcgan", "biggan"])
def test_nan_rolls_back_to_the_last_good_state_with_lower_lrs(demo32, tmp_path, capsys, monkeypatch, changes):
    from kit import train as train_module

    class NaNAtSix(train_module.Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.nan_at_step = 6          # the losses go NaN once, after step 6
    monkeypatch.setattr(train_module, "Trainer", NaNAtSix)
    last = train(config(tmp_path / "run", demo32, max_steps=10, checkpoint_every="0s", **changes))
    rollback = [r for r in metrics(tmp_path / "run") if r.get("event") == "rollback"]
    assert len(rollback) == 1 and rollback[0]["bad_step"] == 6 and rollback[0]["step"] == 5
    assert "rolled back to step 5" in capsys.readouterr().out
    state = checkpoint.load(last)
    assert state["step"] == 10
    assert state["opt_G"]["param_groups"][0]["lr"] == pytest.approx(2.5e-4)
    assert state["opt_D"]["param_groups"][0]["lr"] == pytest.approx(2.5e-4)


@pytest.mark.parametrize("changes", [dict(loss="bce"), dict(loss="lsgan"), dict(loss="ralsgan", spectral_norm=True),
                                     dict(loss="wgan-gp", n_critic=2), dict(model="mlp", loss="hinge"),
                                     dict(loss="wgan", n_critic=2), dict(loss="bce", real_label=0.8),
                                     dict(loss="rpgan", r1=1.0, r2=1.0)])
def test_every_loss_and_model_trains(changes, demo32, grey32, tmp_path):
    data = grey32 if changes.get("model") == "mlp" else demo32
    last = train(config(tmp_path / "run", data, max_steps=6, log_every=3, **changes))
    rows = [r for r in metrics(tmp_path / "run") if "loss_d" in r]
    assert len(rows) == 2 and all(np.isfinite([r["loss_d"], r["loss_g"]]).all() for r in rows)
    images, _ = generate(last, 5)
    assert images.shape == ((5, 1, 32, 32) if data == grey32 else (5, 3, 32, 32))


def test_a_checkpoint_from_before_the_new_fields_resumes(demo32, tmp_path):
    """Fields a run saved before they existed take their defaults; model-dependent ones the model's."""
    last = train(config(tmp_path / "run", demo32, max_steps=2))
    state = checkpoint.load(last)
    for name in ("real_label", "clip", "standing_stats", "class_balance", "beta1", "beta2"):
        del state["config"][name]
    checkpoint.save(last, state)
    resumed = checkpoint.load(train(config(tmp_path / "run", demo32, max_steps=3, resume=True)))
    assert resumed["step"] == 3
    assert {k: resumed["config"][k] for k in ("real_label", "clip", "standing_stats", "class_balance", "beta1",
                                              "beta2", "loss")} == dict(real_label=1.0, clip=0.01, standing_stats=0,
                                                                        class_balance=False, beta1=0.5, beta2=0.999,
                                                                        loss="bce")


def test_run_folder_rules(demo32, tmp_path):
    with pytest.raises(UserError, match="--resume"):
        train(config(tmp_path / "run", demo32, resume=True))
    train(config(tmp_path / "run", demo32, max_steps=1))
    with pytest.raises(UserError, match="--resume to continue"):
        train(config(tmp_path / "run", demo32, max_steps=1))
    assert checkpoint.load(train(config(tmp_path / "run", demo32, max_steps=2, force=True)))["step"] == 2
    (tmp_path / "mine.zip").write_bytes(b"user's file")
    with pytest.raises(UserError, match="--force"):
        train(config(tmp_path / "other", demo32, max_steps=1, zip=str(tmp_path / "mine.zip")))
    with pytest.raises(UserError, match="--model cgan needs"):
        train(config(tmp_path / "one", _single_class(demo32, tmp_path), model="cgan", max_steps=1))
    for weights in (dict(lecam=-0.3), dict(cr=-10.0)):   # -1 is --lecam's "the model's"; no other negative is
        with pytest.raises(UserError, match="must be at least 0"):
            train(config(tmp_path / "negative", demo32, max_steps=1, **weights))


def _single_class(path, tmp_path):
    ds = cache.load(path)
    one = tmp_path / "one.npz"
    cache.save(cache.Dataset(ds.images, np.zeros_like(ds.labels), ["dog"], ds.sources, "one"), one)
    return one


def test_precision_choice_on_cpu():
    cpu = torch.device("cpu")
    assert pick_precision("auto", cpu) is None and pick_precision("bf16", cpu) is torch.bfloat16
    assert pick_precision("fp16", cpu) is torch.float16          # the T4 path, tested on the CPU
    with pytest.raises(UserError, match="--precision"):
        pick_precision("half", cpu)


def test_the_cuda_graph_is_the_default_wherever_it_can_be():
    """On by default (4.2× eager for biggan on an H200), in fp16 too with Adam (fused on a GPU: its grad scaler stays
    on the device); off for fp16 with RMSprop (wgan: the scaler reads its inf check on the host), several processes,
    torch.compile, a CPU, or when turned off."""
    cuda, cfg, wgan = torch.device("cuda"), TrainConfig(loss="hinge"), TrainConfig(loss="wgan")
    assert graph_allowed(cfg, cuda, torch.bfloat16, 1) and graph_allowed(cfg, cuda, None, 1)
    assert graph_allowed(cfg, cuda, torch.float16, 1) and graph_allowed(TrainConfig(loss="wgan-gp"), cuda, torch.float16, 1)
    assert not graph_allowed(wgan, cuda, torch.float16, 1) and graph_allowed(wgan, cuda, torch.bfloat16, 1)
    assert not graph_allowed(cfg, cuda, torch.bfloat16, 2) and not graph_allowed(cfg, cuda, torch.float16, 2)
    assert not graph_allowed(cfg, torch.device("cpu"), None, 1)
    for off in (TrainConfig(loss="hinge", compile=True), TrainConfig(loss="hinge", cuda_graph=False)):
        assert not graph_allowed(off, cuda, torch.bfloat16, 1)


def test_ema_update_by_hand():
    model, ema = torch.nn.BatchNorm1d(2), torch.nn.BatchNorm1d(2)
    with torch.no_grad():
        model.weight.fill_(3.0)
        model.running_mean.fill_(2.0)
        model.num_batches_tracked.fill_(7)
    ema_update(ema, model, torch.tensor(0.25))
    torch.testing.assert_close(ema.weight, torch.full((2,), 1 + 0.25 * (3 - 1)))  # BatchNorm weights start at 1
    torch.testing.assert_close(ema.running_mean, torch.full((2,), 0.5))
    assert ema.num_batches_tracked.item() == 7


def test_ema_of_unchanged_spectral_norm_weights_is_the_model_itself():
    """Spectral norm's u and v move at every training forward while the weights stay put: the EMA copies them
    instead of averaging them (an average of unit vectors is shorter than 1, sigma = uᵀWv came out too small and
    the EMA layer's output too large)."""
    from torch.nn.utils.parametrizations import spectral_norm
    torch.manual_seed(0)
    model = spectral_norm(torch.nn.Linear(6, 5))
    norm = model.parametrizations.weight[0]
    with torch.no_grad():                         # start u and v far from converged, so that iterations turn them
        for vector in (norm._u, norm._v):
            vector.copy_(torch.nn.functional.normalize(torch.randn_like(vector), dim=0))
    ema = copy.deepcopy(model)
    x = torch.randn(4, 6)
    for _ in range(5):
        model(x)                                  # training mode: one power iteration, u and v rotate
        ema_update(ema, model, torch.tensor(0.5))
    model.eval()
    ema.eval()
    torch.testing.assert_close(ema(x), model(x))
    assert torch.linalg.vector_norm(ema.parametrizations.weight[0]._u) == pytest.approx(1, abs=1e-6)


def test_ema_update_never_reads_its_weight_on_the_host():
    """A CUDA graph replays the weight tensor: on meta tensors (which cannot be read) the update still runs, where
    `_foreach_lerp_` with a 0-d tensor weight turns it into a number first."""
    model, ema = torch.nn.Linear(3, 2, device="meta"), torch.nn.Linear(3, 2, device="meta")
    ema_update(ema, model, torch.zeros((), device="meta"))
    with pytest.raises(RuntimeError, match="meta"):
        torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), torch.zeros((), device="meta"))


def test_a_killed_run_keeps_its_last_checkpoint_and_resumes(demo32, tmp_path):
    """SIGKILL in the middle of training: last.pt is whole (atomic writes) and --resume carries on from it."""
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "kit", "train", "--data", str(demo32), "--out", str(out), "--g-width", "8",
            "--d-width", "8", "--z-dim", "32", "--batch-size", "16", "--checkpoint-every", "0.5s", "--threads", "1"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               cwd=Path(__file__).resolve().parents[1])
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if (out / "last.pt").exists() and checkpoint.load(out / "last.pt")["step"] > 0:
                break
            time.sleep(0.2)
    finally:
        process.kill()
        process.wait()
    step = checkpoint.load(out / "last.pt")["step"]
    assert step > 0
    resumed = train(config(out, demo32, batch_size=16, max_steps=step + 3, resume=True))
    assert checkpoint.load(resumed)["step"] == step + 3
