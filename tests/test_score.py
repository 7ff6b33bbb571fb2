"""kit.metrics.score: real statistics cached by content, the scores, the report, the CLI and its bad-input errors."""
import argparse
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from kit.__main__ import run
from kit.data.cache import Dataset
from kit.errors import UserError
from kit.metrics import score
from test_fid import reference_distance, reference_fid


class PixelFeatures:
    """A cheap stand-in extractor (block means through a fixed random ReLU layer) that counts the images it sees."""
    name, dim = "pixel-test", 24

    def __init__(self, seed=0):
        self.weight = np.random.default_rng(seed).normal(size=(3 * 4 * 4, self.dim))
        self.fingerprint = f"pixel-test-{seed}"
        self.seen = 0

    def __call__(self, images):
        self.seen += len(images)
        n, c, h, w = images.shape
        blocks = np.asarray(images, np.float64).reshape(n, c, 4, h // 4, 4, w // 4).mean((3, 5)).reshape(n, -1)
        return np.maximum((blocks / 255 - 0.5) @ self.weight, 0).astype(np.float32)


def dataset(images):
    """A Dataset holding uint8 images."""
    return Dataset(images=images, labels=np.zeros(len(images), np.int64), classes=["dog"],
                   sources=[f"{i}.jpg" for i in range(len(images))])


def random_images(n, seed, size=16):
    """Smooth random uint8 images (so block features vary)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (n, 3, 4, 4)).astype(np.uint8)
    return np.ascontiguousarray(coarse.repeat(size // 4, 2).repeat(size // 4, 3))


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    """Every test gets its own $DOGKIT_CACHE."""
    monkeypatch.setenv("DOGKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_scores_match_reference_and_real_stats_are_cached(cache_in_tmp):
    real, gen = random_images(120, 1), random_images(80, 2)
    extractor = PixelFeatures()
    result = score.score_images(gen, dataset(real), extractor=extractor, threshold=0.1, device="cpu")
    g, r = extractor(gen).astype(np.float64), extractor(real).astype(np.float64)
    assert result["fid"] == pytest.approx(reference_fid(g, r), rel=1e-7)
    assert result["distance"] == pytest.approx(reference_distance(g, r), rel=1e-10)
    d_thr = result["distance"] if result["distance"] < 0.1 else 1.0
    assert result["distance_thresholded"] == d_thr
    assert result["mifid"] == pytest.approx(result["fid"] / (d_thr + 1e-15), rel=1e-12)
    assert (result["n_generated"], result["n_real"], result["extractor"]) == (80, 120, "pixel-test")
    assert len(list(cache_in_tmp.glob("real-*.npz"))) == 1

    extractor.seen = 0
    again = score.score_images(gen, dataset(real), extractor=extractor, device="cpu")
    assert extractor.seen == 80                      # real features came from the cache
    assert again["fid"] == pytest.approx(result["fid"], rel=1e-12) and again["distance"] == result["distance"]

    stats_file = next(cache_in_tmp.glob("real-*.npz"))
    stats_file.write_bytes(stats_file.read_bytes()[:1000])          # a broken cache file is computed again
    extractor.seen = 0
    assert score.score_images(gen, dataset(real), extractor=extractor, device="cpu")["fid"] == again["fid"]
    assert extractor.seen == 80 + 120 and np.load(stats_file)["features"].shape == (120, 24)

    changed = real.copy()
    changed[0, 0, 0, 0] ^= 1                         # one pixel differs: a new real set
    score.score_images(gen, dataset(changed), extractor=extractor, device="cpu")
    score.score_images(gen, dataset(real), extractor=PixelFeatures(seed=1), device="cpu")   # another extractor
    assert len(list(cache_in_tmp.glob("real-*.npz"))) == 3


def test_memorised_images_are_caught_and_shown_beside_their_neighbour(tmp_path):
    real = random_images(60, 3)
    gen = np.concatenate([real[[5, 17, 40]], random_images(37, 4)])      # three exact copies
    extractor = PixelFeatures()
    result = score.score_images(gen, dataset(real), extractor=extractor, threshold=0.9, device="cpu",
                                nearest_png=tmp_path / "nearest.png")
    assert result["distance"] < 0.9 and result["distance_thresholded"] == result["distance"]
    grid = np.asarray(Image.open(tmp_path / "nearest.png"))
    assert grid.shape == (2 + 8 * 18, 2 + 8 * 18, 3)           # 32 pairs, 8 tiles a row, 16 px + 2 px padding
    tiles = [grid[2:18, 2 + 18 * k:18 + 18 * k] for k in range(6)]
    for k in range(3):                                          # the copies come first, beside their originals
        np.testing.assert_array_equal(tiles[2 * k], tiles[2 * k + 1])
    assert sorted(tiles[2 * k].tobytes() for k in range(3)) == sorted(real[i].transpose(1, 2, 0).tobytes() for i in (5, 17, 40))


def test_zero_features_are_left_out_of_d_but_counted():
    class Blank(PixelFeatures):
        def __call__(self, images):
            out = super().__call__(images)
            out[images[:, 0, 0, 0] < 40] = 0        # darkish images give all-zero features
            return out
    gen, real = random_images(50, 5), random_images(50, 6)
    extractor = Blank()
    result = score.score_images(gen, dataset(real), extractor=extractor, device="cpu")
    g, r = extractor(gen).astype(np.float64), extractor(real).astype(np.float64)
    assert result["n_generated_zero_features"] == int((gen[:, 0, 0, 0] < 40).sum()) > 0
    assert result["n_real_zero_features"] == int((real[:, 0, 0, 0] < 40).sum()) > 0
    assert result["distance"] == pytest.approx(reference_distance(g, r), rel=1e-10)
    assert result["fid"] == pytest.approx(reference_fid(g, r), rel=1e-7)


def write_pngs(folder, images):
    """Each uint8 C×H×W image as folder/i.png."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image.transpose(1, 2, 0)).save(folder / f"{i}.png")
    return folder


def run_cli(capsys, *argv):
    """(exit status, stdout, stderr) of `python -m kit score ...` (its parser and kit.__main__.run)."""
    parser = argparse.ArgumentParser()
    score.add_arguments(parser)
    status = run(score.main, parser.parse_args([str(arg) for arg in argv]))
    out, err = capsys.readouterr()
    return status, out, err


def test_bad_generated_input_gives_one_line_errors_or_lenient_warnings(tmp_path, capsys):
    folder = write_pngs(tmp_path / "gen", random_images(6, 7, size=64))
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folder / "small.png")
    status, out, err = run_cli(capsys, folder, "--real", tmp_path, "--n", 6)
    assert status == 2 and err.startswith("error: ") and err.count("\n") == 1 and "--lenient" in err and not out

    images = score.load_generated(folder, 9, lenient=True, device="cpu")
    err = capsys.readouterr().err
    assert len(images) >= 6 and images.shape[1:] == (3, 64, 64)
    assert err.count("warning: ") >= 2 and "expected (--n)" in err

    empty = tmp_path / "empty"
    empty.mkdir()
    for argv in ([empty, "--lenient"], [tmp_path / "missing.zip"], [folder, "--threshold", "0"]):
        status, out, err = run_cli(capsys, *argv, "--real", tmp_path)
        assert status == 2 and err.startswith("error: ") and err.count("\n") == 1, (argv, err)


def test_zip_with_wrong_count_is_refused_unless_lenient(tmp_path, capsys):
    from kit.package import write_zip
    path = write_zip(random_images(5, 8, size=64), tmp_path / "images.zip")
    status, _, err = run_cli(capsys, path, "--real", tmp_path)
    assert status == 2 and "10,000 expected" in err and "--lenient" in err
    assert len(score.load_generated(path, 10000, lenient=True, device="cpu")) == 5
    assert "10,000 expected" in capsys.readouterr().err
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("5.jpg", b"\xff\xd8 not a png")
    status, _, err = run_cli(capsys, path, "--real", tmp_path, "--n", 5)
    assert status == 2 and err.count("\n") == 1 and "5.jpg" in err


def test_cli_end_to_end_from_zip_and_competition_archive(tmp_path, capsys, inception_weights, cache_in_tmp):
    """4 generated + 6 real images through the real Inception loading path; the second run reuses the real stats."""
    from kit.data.synthetic import write_demo
    from kit.package import write_zip
    demo = write_demo(tmp_path / "demo", n_images=6, n_breeds=2, seed=0)
    zip_path = write_zip(random_images(4, 9, size=64), tmp_path / "images.zip")
    status, out, err = run_cli(capsys, zip_path, "--real", demo["images"], "--inception-weights", inception_weights,
                               "--json", "--n", 4, "--device", "cpu")
    assert status == 0, err
    result = json.loads(out)
    assert (result["n_generated"], result["n_real"]) == (4, 6)
    assert np.isfinite(result["fid"]) and result["fid"] > 0 and 0 <= result["distance"] <= 1
    assert result["mifid"] == pytest.approx(result["fid"] / (result["distance_thresholded"] + 1e-15))
    stats = list(cache_in_tmp.glob("real-inception-pool3-*.npz"))
    assert len(stats) == 1
    with np.load(stats[0]) as z:
        assert z["features"].shape == (6, 2048) and z["sigma"].shape == (2048, 2048)

    report = tmp_path / "report"
    status, out, err = run_cli(capsys, zip_path, "--real", demo["images"], "--inception-weights", inception_weights,
                               "--n", 4, "--device", "cpu", "--report", report)
    assert status == 0, err
    assert f"{result['fid']:.4f}" in out and "MiFID" in out and "real images" in out
    assert Image.open(report / "nearest-public.png").size == (2 + 8 * 66, 2 + 1 * 66)   # 4 pairs: one row of 8 tiles
    written = json.loads((report / "score.json").read_text())         # what --json printed, the time aside
    assert {k: v for k, v in written.items() if k != "seconds"} == {k: v for k, v in result.items() if k != "seconds"}
    (report / "score.json").unlink()
    (report / "nearest-public.png").write_bytes(b"the user's")
    status, out, err = run_cli(capsys, zip_path, "--real", demo["images"], "--inception-weights", inception_weights,
                               "--n", 4, "--device", "cpu", "--report", report)
    assert status == 2 and "nearest-public.png already exists" in err and "--force" in err and err.count("\n") == 1
    assert (report / "nearest-public.png").read_bytes() == b"the user's"


def test_checkpoint_is_sampled_in_memory(tmp_path, capsys):
    from kit import checkpoint
    from kit.config import TrainConfig, asdict
    from kit.models import build
    cfg = TrainConfig(model="mlp", z_dim=8, g_width=16, d_width=16)
    G, _ = build(cfg, (3, 32, 32))
    checkpoint.save(tmp_path / "last.pt", {"config": asdict(cfg), "G": G.state_dict(), "step": 0,
                                           "image_shape": (3, 32, 32)})
    images = score.load_generated(tmp_path / "last.pt", 5, lenient=False, device="cpu")
    assert images.shape == (5, 3, 32, 32) and images.dtype == np.uint8 and images.std() > 0
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    status, _, err = run_cli(capsys, tmp_path / "notes.txt", "--real", tmp_path)
    assert status == 2 and err.startswith("error: ") and err.count("\n") == 1
