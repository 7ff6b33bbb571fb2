"""The final zip's sampling setting chosen by the score that ranks: the grid around the run's setting, the threshold
rule, the zip drawn under the winner with the choice said, and the tuning's time inside the budget."""
import time

import numpy as np
import pytest

from kit import checkpoint, tune
from kit.config import TrainConfig, for_device
from kit.data import cache
from kit.metrics import evaluate
from kit.models import build
from kit.package import read_images
from kit.sample import generate
from kit.train import train
from test_selection import PooledPixels, evaluated, evaluations
from test_train import config, keep_torch_threads, metrics  # noqa: F401 - fixtures

pytestmark = pytest.mark.usefixtures("keep_torch_threads")


def scores(mifid, d, threshold=0.25, fid=100.0):
    """One leaderboard's scores as the Evaluator gives them."""
    return {"private": {"fid": fid, "d": d, "mifid": mifid, "threshold": threshold, "n": 32}}


def test_a_setting_under_the_threshold_never_beats_one_above():
    a, b, c = tune.Sampling(), tune.Sampling(truncation=0.5), tune.Sampling(ema=False)
    scored = [(a, scores(80.0, 0.30)), (b, scores(20.0, 0.20)), (c, scores(60.0, 0.26))]
    assert tune.choose(scored, "private")[0] == c           # b's MiFID is lower, but its d is under 0.25
    under = [(a, scores(500.0, 0.20)), (b, scores(400.0, 0.10))]
    assert tune.choose(under, "private")[0] == b             # all under: the lowest MiFID
    tie = [(a, scores(50.0, 0.3)), (b, scores(50.0, 0.3))]
    assert tune.choose(tie, "private")[0] == a               # a tie keeps the default
    at = [(a, scores(90.0, 0.3)), (b, scores(70.0, 0.25))]
    assert tune.choose(at, "private")[0] == b                # d at the threshold is not under it


def state_of(model, n_classes):
    """A checkpoint-like dict of a fresh model pair (EMA weights present)."""
    cfg = for_device(TrainConfig(model=model, g_width=4, d_width=4), "cpu")
    G, _ = build(cfg, (3, 32, 32), n_classes)
    return {"config": vars(cfg), "image_shape": (3, 32, 32), "classes": [str(k) for k in range(n_classes)],
            "G": G.state_dict(), "G_ema": G.state_dict(), "label_counts": [1] * n_classes}


@pytest.mark.parametrize("model, n_classes, expected", [
    ("dcgan", 0, ["truncation 1", "truncation 0.5", "standing statistics (4 batches)", "raw G"]),
    ("biggan", 3, ["truncation 1", "truncation 0.5", "no standing statistics", "raw G", "balanced breeds"]),
    ("r3gan", 3, ["truncation 1", "truncation 0.5", "raw G", "balanced breeds"]),   # no batch norm to re-collect
])
def test_the_grid_changes_one_part_at_a_time_where_it_can_matter(model, n_classes, expected):
    cfg = for_device(TrainConfig(model=model), "cpu")
    default = tune.Sampling(0.0, max(0, cfg.standing_stats), False)
    grid = tune.settings(state_of(model, n_classes), default)
    assert grid[0] == default and len(grid) == 1 + len(expected)
    for setting, words in zip(grid[1:], expected):
        assert words in setting.words() and sum(a != b for a, b in zip(vars(setting).values(),
                                                                        vars(default).values())) == 1


class Scripted(PooledPixels):
    """PooledPixels whose private MiFID and d come from a script, call by call, after `delay` seconds each."""

    def __init__(self, real, n, script, delay=0.0):
        super().__init__(real, n)
        self.script, self.delay, self.calls = iter(script), delay, 0

    def __call__(self, images):
        time.sleep(self.delay)
        self.calls += 1
        result = super().__call__(images)
        mifid, d = next(self.script)
        result["private"].update(mifid=mifid, d=d, threshold=0.01)
        return result


def test_the_zip_is_drawn_under_the_winning_setting_and_the_run_says_so(demo_cache, tmp_path, monkeypatch, capsys):
    """Evaluations at steps 0 and 20 (the best: 40), then dcgan's four other settings: truncation 1 (30, but d under
    the threshold), truncation 0.5 (45), standing statistics (50), raw G (35: the winner; at step 20 the EMA G is
    still near its start, the raw G is not)."""
    real = cache.load(demo_cache).images
    script = [(60.0, 0.05), (40.0, 0.05), (30.0, 0.005), (45.0, 0.05), (50.0, 0.05), (35.0, 0.05)]
    monkeypatch.setattr(evaluate, "Evaluator", lambda *args, **kwargs: Scripted(real, 32, script))
    out = tmp_path / "run"
    train(config(out, demo_cache, max_steps=20, **evaluated(out, eval_every="1h", tune=True)))
    end = metrics(out)[-1]
    assert [r["step"] for r in evaluations(out)] == [0, 20] and end["zip_step"] == 20
    assert end["sampling"] == {"truncation": 0.0, "standing_stats": 0, "class_balance": False, "ema": False}
    assert end["sampling_mifid"] == 35.0 and end["default_mifid"] == 40.0 and end["settings"] == 5
    tuning = next(r for r in metrics(out) if r.get("event") == "tuning")
    assert [s["private"]["mifid"] for s in tuning["settings"]] == [40.0, 30.0, 45.0, 50.0, 35.0]
    printed = capsys.readouterr().out
    assert ("sampling: the zip is drawn with no truncation, no standing statistics, raw G, breeds by frequency: "
            "private MiFID 35.00, the default's 40.00") in printed
    assert "truncation 1, no standing statistics, EMA G, breeds by frequency: private MiFID 30.00 (FID" in printed
    zipped, _ = read_images(out / "images.zip")
    best = checkpoint.load(out / "best.pt")
    assert np.array_equal(zipped, generate(best, 16, seed=0, ema=False)[0].numpy())
    assert not np.array_equal(zipped, generate(best, 16, seed=0)[0].numpy())


def test_the_tuning_fits_the_budget_or_is_left_out(demo_cache, tmp_path, monkeypatch, capsys):
    """Each evaluation takes 1 s: the four settings' evaluations are in the tail's reserve and the run ends inside a
    20 s budget. At 3 s each they cannot fit beside training in 20 s: the zip keeps the run's setting, said once."""
    real = cache.load(demo_cache).images
    plenty = [(50.0, 0.05)] * 50
    monkeypatch.setattr(evaluate, "Evaluator", lambda *args, **kwargs: Scripted(real, 32, plenty, delay=1.0))
    out = tmp_path / "fits"
    train(config(out, demo_cache, budget="20s", **evaluated(out, eval_every="1h", tune=True)))
    end = metrics(out)[-1]
    assert end["settings"] == 5 and end["wall_s"] <= 20.0, end
    monkeypatch.setattr(evaluate, "Evaluator", lambda *args, **kwargs: Scripted(real, 32, plenty, delay=3.0))
    out = tmp_path / "tight"
    train(config(out, demo_cache, budget="20s", **evaluated(out, eval_every="1h", tune=True)))
    end = metrics(out)[-1]
    assert "sampling" not in end and end["wall_s"] <= 20.0, end
    assert "sampling not tuned: its evaluations need more time than the budget holds" in capsys.readouterr().out


def test_make_zip_tune_draws_the_zip_under_the_winner(demo_cache, tmp_path, monkeypatch, capsys):
    """`kit zip --checkpoint --real --tune`: the grid scored by the (stand-in) Evaluator, the winner drawn."""
    from kit.__main__ import main as kit_main
    from kit.metrics import guard
    real = cache.load(demo_cache).images
    last = train(config(tmp_path / "run", demo_cache, max_steps=20))
    script = [(40.0, 0.05), (30.0, 0.005), (45.0, 0.05), (50.0, 0.05), (35.0, 0.05)]   # raw G wins
    monkeypatch.setattr(evaluate, "Evaluator", lambda *args, **kwargs: Scripted(real, 32, script))
    monkeypatch.setattr(guard, "memorisation_guard", lambda *args, **kwargs: {})
    zip_path = tmp_path / "images.zip"
    assert kit_main(["zip", "--checkpoint", str(last), "--out", str(zip_path), "--n", "16", "--real", str(demo_cache),
                     "--tune", "--eval-n", "32", "--device", "cpu"]) == 1   # 16 images: the count check says no
    printed = capsys.readouterr().out
    assert ("sampling: the zip is drawn with no truncation, no standing statistics, raw G, breeds by frequency: "
            "private MiFID 35.00, the default's 40.00 (5 settings, 32 images each)") in printed
    zipped, _ = read_images(zip_path)
    assert np.array_equal(zipped, generate(checkpoint.load(last), 16, seed=0, ema=False)[0].numpy())
    assert kit_main(["zip", "--checkpoint", str(last), "--out", str(tmp_path / "b.zip"), "--tune"]) == 2
    assert "--tune needs --checkpoint (the run to sample) and --real DATA" in capsys.readouterr().err
