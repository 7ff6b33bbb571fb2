"""Evaluation during training and the checkpoint it selects: a later checkpoint that memorises is not selected, the
zip comes from the best checkpoint when it is not the last, and a resumed run keeps the history and the best.

The leaderboard here is a stand-in network (4×4 means of centred pixels, 48-d) run through the kit's own FID, d and
MiFID code, so the selection logic is tested without the Inception or NASNet weights (their tests are elsewhere)."""
import math

import numpy as np
import pytest
import torch
from PIL import Image

from kit import checkpoint
from kit.data import cache
from kit.metrics import evaluate, fid as F
from kit.package import read_images
from kit.sample import generate
from kit.train import train
from test_train import config, keep_torch_threads, metrics  # noqa: F401 - fixtures

pytestmark = pytest.mark.usefixtures("keep_torch_threads")
THRESHOLD = 0.01   # the early generators' d (about 0.05) is clear of it; a copy's 0 is not


def pooled(images):
    """48-d features: 4×4 means of the images' centred pixels."""
    x = torch.as_tensor(np.asarray(images)).double().div(127.5).sub(1)
    return torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)


class PooledPixels:
    """An Evaluator with one leaderboard, "private", on pooled pixels."""

    def __init__(self, real_images, n):
        self.n, self.share, self.real = n, n, pooled(real_images)
        self.leaderboards, self.skipped = ("private",), {}

    def __call__(self, images):
        gen = pooled(images)
        fid = F.frechet_distance(*F.statistics(gen), *F.statistics(self.real))
        d = F.memorisation_distance(F.nearest_real(gen, self.real)[0])
        d_thr = F.thresholded(d, THRESHOLD)
        return {"private": {"fid": fid, "d": d, "d_thr": d_thr, "mifid": F.mifid(fid, d_thr), "threshold": THRESHOLD,
                            "margin": d - THRESHOLD, "n": len(images), "seconds": 0.0}}


@pytest.fixture
def pooled_leaderboard(demo_cache, monkeypatch):
    """Every Evaluator a run opens is PooledPixels against the training images; the training images."""
    real = cache.load(demo_cache).images
    monkeypatch.setattr(evaluate, "Evaluator", lambda real_path, device, n, rank=0, world=1: PooledPixels(real, n))
    return real


def evaluated(out, **changes):
    """A run's config that evaluates at every check, 32 images each time, its zip drawn under the run's own sampling
    (the tuning's tests are in tests/test_tune.py)."""
    return {"eval_every": "0.001s", "eval_n": 32, "real": str(out), "tune": False, **changes}


def evaluations(out):
    return [r for r in metrics(out) if r.get("event") == "evaluation"]


def test_a_later_checkpoint_that_memorises_is_not_selected(demo_cache, tmp_path, monkeypatch, pooled_leaderboard):
    """From step 4 the generator returns training images: d is 0 there, so its MiFID is FID / 1e-15 and an earlier
    step wins, and the zip is written from that step's checkpoint (best.pt), not the last."""
    from kit import jobs

    def memorising_from_step_4(state, n, **options):
        if state["step"] >= 4:
            return torch.from_numpy(pooled_leaderboard[:n]), None
        return generate(state, n, **options)

    monkeypatch.setattr(jobs, "generate", memorising_from_step_4)
    out = tmp_path / "run"
    last = train(config(out, demo_cache, max_steps=6, **evaluated(out)))
    rows = evaluations(out)
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4, 5, 6]
    assert all(r["private"]["d"] == 0 and r["private"]["mifid"] > 1e12 for r in rows[4:])
    assert all(0 < r["private"]["mifid"] < 1e12 for r in rows[:4])
    best = min(rows[:4], key=lambda r: r["private"]["mifid"])
    end = metrics(out)[-1]
    assert end["zip_step"] == best["step"] == checkpoint.load(out / "best.pt")["step"] < 4
    assert end["selected"]["mifid"] == best["private"]["mifid"] and end["last"]["step"] == 6
    zipped, _ = read_images(out / "images.zip")
    from_best, _ = generate(checkpoint.load(out / "best.pt"), 16, seed=0)
    from_last, _ = generate(checkpoint.load(last), 16, seed=0)
    assert np.array_equal(zipped, from_best.numpy()) and not np.array_equal(zipped, from_last.numpy())


def test_the_zip_comes_from_the_best_checkpoint_when_it_is_not_the_last(demo_cache, tmp_path, monkeypatch, capsys):
    """MiFIDs 50, 40, 30, 45, 60 at steps 0-4: step 2's checkpoint is best.pt and the zip's source."""
    scores = iter([50.0, 40.0, 30.0, 45.0, 60.0])

    class Scripted(PooledPixels):
        def __call__(self, images):
            result = super().__call__(images)
            result["private"]["mifid"] = next(scores)
            return result

    real = cache.load(demo_cache).images
    monkeypatch.setattr(evaluate, "Evaluator", lambda *args, **kwargs: Scripted(real, 32))
    out = tmp_path / "run"
    train(config(out, demo_cache, max_steps=4, **evaluated(out)))
    best = checkpoint.load(out / "best.pt")
    assert best["step"] == 2 and best["best"]["mifid"] == 30.0 and metrics(out)[-1]["zip_step"] == 2
    assert "the zip comes from step 2 (private MiFID 30.00, the lowest of 5 evaluations); the last evaluated step, " \
           "4, had private MiFID 60.00" in capsys.readouterr().out
    zipped, _ = read_images(out / "images.zip")
    assert np.array_equal(zipped, generate(best, 16, seed=0)[0].numpy())
    chart = Image.open(out / "progress.png")   # redrawn at every evaluation: the last one has all five and step 2
    assert chart.size == (800, 900) and chart.mode == "RGB"


def test_resume_keeps_the_evaluation_history_and_the_best(demo_cache, tmp_path, pooled_leaderboard):
    """6 steps in one go == 3 steps, then --resume to 6: the same evaluation rows (but their timing) and best."""
    whole = checkpoint.load(train(config(tmp_path / "whole", demo_cache, max_steps=6, **evaluated(tmp_path))))
    train(config(tmp_path / "split", demo_cache, max_steps=3, **evaluated(tmp_path)))
    split = checkpoint.load(train(config(tmp_path / "split", demo_cache, max_steps=6, resume=True, **evaluated(tmp_path))))

    def untimed(rows):
        return [{k: v for k, v in r.items() if k not in ("seconds", "elapsed")} for r in rows]

    assert [r["step"] for r in split["evaluations"]] == list(range(7))
    assert untimed(split["evaluations"]) == untimed(whole["evaluations"])
    assert split["best"] == whole["best"] and math.isfinite(whole["best"]["mifid"])


def test_no_weights_means_no_evaluation_and_the_last_checkpoint(demo_cache, tmp_path, monkeypatch, capsys):
    class NoWeights(PooledPixels):
        def __init__(self, *args):
            self.n, self.share, self.leaderboards = 32, 32, ()
            self.skipped = {"public": "no FID Inception weights", "private": "no NASNet-A Large weights"}

    monkeypatch.setattr(evaluate, "Evaluator", lambda *args, **kwargs: NoWeights())
    out = tmp_path / "run"
    train(config(out, demo_cache, max_steps=2, **evaluated(out)))
    assert "no leaderboard weights at hand, so no evaluation (public: no FID Inception" in capsys.readouterr().out
    assert evaluations(out) == [] and not (out / "best.pt").exists() and not (out / "progress.png").exists()
    assert metrics(out)[0]["select"] == "last" and metrics(out)[-1]["zip_step"] == 2


def test_a_nan_rollback_never_leaves_a_rolled_back_state_selected(demo_cache, tmp_path, monkeypatch,
                                                                 pooled_leaderboard):
    """NaN losses after step 3, evaluations at every check: the rollback goes back to the last evaluated state, every
    evaluated state stays one the run really kept, and best.pt holds the very weights of its evaluated step."""
    from kit import train as train_module

    class NaNAtThree(train_module.Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.nan_at_step = 3

    monkeypatch.setattr(train_module, "Trainer", NaNAtThree)
    out = tmp_path / "run"
    train(config(out, demo_cache, max_steps=5, **evaluated(out)))
    [rollback] = [r for r in metrics(out) if r.get("event") == "rollback"]
    steps = [r["step"] for r in evaluations(out)]
    assert rollback["step"] == 2 and steps == [0, 1, 2, 3, 4, 5]   # step 3 was evaluated once: after the rollback
    best = checkpoint.load(out / "best.pt")
    last_of_that_step = [r for r in evaluations(out) if r["step"] == best["step"]]
    assert len(last_of_that_step) == 1 and best["best"]["mifid"] == last_of_that_step[0]["private"]["mifid"]
    assert all(math.isfinite(r["private"]["mifid"]) for r in evaluations(out))
