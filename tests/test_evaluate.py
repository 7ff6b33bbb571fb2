"""kit.metrics.evaluate: the Evaluator against independent references (numpy FID and d on the network's features),
memorised copies, two DDP ranks sharing the work, and score_zip against `kit score --leaderboard both --json`."""
import json
import socket
import zipfile

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from PIL import Image

from kit.__main__ import main as kit_main
from kit.errors import UserError
from kit.metrics import evaluate, features
from kit.package import write_zip
from kit.metrics.ranks import share
from test_fid import reference_distance
from test_nasnet import reference_fid
from test_score import PixelFeatures, dataset, random_images, write_pngs

ROW = {"fid", "d", "d_thr", "mifid", "threshold", "margin", "n", "seconds"}


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    """Every test gets its own $DOGKIT_CACHE."""
    monkeypatch.setenv("DOGKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def no_nasnet(tmp_path, monkeypatch):
    """No NASNet weights anywhere (variable, Hugging Face cache, torch hub)."""
    monkeypatch.delenv("DOGKIT_NASNET_WEIGHTS", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))


def without_time(result: dict) -> dict:
    """{leaderboard: scores} without the seconds each took."""
    return {name: {k: v for k, v in scores.items() if k != "seconds"} for name, scores in result.items()}


def test_evaluator_matches_the_reference_and_catches_copies(tmp_path, monkeypatch, no_nasnet, inception_weights):
    monkeypatch.setenv("DOGKIT_INCEPTION_WEIGHTS", str(inception_weights))
    real = random_images(6, 11, size=64)
    real_dir = write_pngs(tmp_path / "real", real)
    evaluator = evaluate.Evaluator(real_dir, "cpu", n=4)
    assert evaluator.leaderboards == ("public",) and evaluator.share == 4
    assert set(evaluator.skipped) == {"private"} and "NASNet" in evaluator.skipped["private"]
    assert "\n" not in evaluator.skipped["private"]

    generated = random_images(4, 12, size=64)
    got = evaluator(torch.from_numpy(generated))["public"]
    network = features.InceptionFeatures(inception_weights, device="cpu")   # 64-px real images: the same resizes
    g, r = network(generated).astype(np.float64), network(real).astype(np.float64)
    assert set(got) == ROW and got["n"] == 4 and got["threshold"] == 0.1
    assert got["fid"] == pytest.approx(reference_fid(g, r), rel=1e-4)
    assert got["d"] == pytest.approx(reference_distance(g, r), rel=1e-4)
    assert got["margin"] == pytest.approx(got["d"] - 0.1, abs=1e-12)
    assert got["d_thr"] == (got["d"] if got["d"] < 0.1 else 1.0)
    assert got["mifid"] == pytest.approx(got["fid"] / (got["d_thr"] + 1e-15))

    copies = evaluator(torch.from_numpy(real[:4]))["public"]                 # four training images, unchanged
    assert copies["d"] == 0.0 and copies["d_thr"] == 0.0 and copies["margin"] == -0.1
    assert copies["fid"] > 0 and copies["mifid"] == copies["fid"] / 1e-15 > 1e12
    with pytest.raises(UserError, match="at least 2"):
        evaluate.Evaluator(real_dir, "cpu", n=1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_worker(rank, port, real, other_real, generated, out):
    """One of two gloo ranks: evaluate its share of the generated images, the real features shared out
    (share_real=True) and then computed by rank 0 alone (the default); record the answers and the work done."""
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    record = {}
    for shared, real_images in ((True, real), (False, other_real)):
        extractor = PixelFeatures()
        evaluator = evaluate.Evaluator(real_images, "cpu", n=len(generated), rank=rank, world=2, share_real=shared,
                                       extractors={"pixels": extractor}, thresholds={"pixels": 0.5})
        real_seen = extractor.seen
        result = evaluator(torch.from_numpy(share(generated, rank, 2)))
        record[str(shared)] = {"result": result, "real_seen": real_seen, "generated_seen": extractor.seen - real_seen}
    (out / f"rank{rank}.json").write_text(json.dumps(record))
    torch.distributed.destroy_process_group()


def test_ddp_ranks_share_the_work_and_return_the_same_numbers(tmp_path, cache_in_tmp):
    real, other_real, generated = dataset(random_images(31, 13)), dataset(random_images(20, 18)), random_images(9, 14)
    mp.spawn(rank_worker, args=(free_port(), real, other_real, generated, tmp_path), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    shared, alone_0 = [r["True"] for r in ranks], [r["False"] for r in ranks]
    assert [r["real_seen"] for r in shared] == [16, 15] and [r["real_seen"] for r in alone_0] == [20, 0]
    assert [r["generated_seen"] for r in shared + alone_0] == [5, 4, 5, 4]
    assert shared[0]["result"] == shared[1]["result"] and shared[0]["result"]["pixels"]["n"] == 9
    assert alone_0[0]["result"] == alone_0[1]["result"]
    assert len(list(cache_in_tmp.glob("real-*.npz"))) == 2                  # each real set written once, by rank 0

    evaluator = evaluate.Evaluator(real, "cpu", n=9, extractors={"pixels": PixelFeatures()}, thresholds={"pixels": 0.5})
    single = evaluator(torch.from_numpy(generated))["pixels"]
    assert {k: v for k, v in single.items() if k != "seconds"} == pytest.approx(
        {k: v for k, v in shared[0]["result"]["pixels"].items() if k != "seconds"}, rel=1e-12)
    g, r = PixelFeatures()(generated).astype(np.float64), PixelFeatures()(real.images).astype(np.float64)
    assert single["fid"] == pytest.approx(reference_fid(g, r), rel=1e-7)
    assert single["d"] == pytest.approx(reference_distance(g, r), rel=1e-10) and single["threshold"] == 0.5
    assert single["d_thr"] == single["d"] < 0.5 and single["mifid"] == pytest.approx(single["fid"] / single["d"])


def test_first_images_are_the_zips_first_members_in_numeric_order(tmp_path):
    images = random_images(12, 15, size=64)
    path = write_zip(images, tmp_path / "images.zip")                        # 0.png … 11.png
    np.testing.assert_array_equal(evaluate.first_images(path, 11), images[:11])
    with pytest.raises(UserError, match="holds 12 images, fewer than the 13"):
        evaluate.first_images(path, 13)
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("12.png", b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(UserError, match="12.png") as e:
        evaluate.first_images(path, 3)
    assert "\n" not in str(e.value)


def test_score_zip_equals_kit_score_both(tmp_path, capsys, monkeypatch, inception_weights, nasnet_weights):
    monkeypatch.setenv("DOGKIT_INCEPTION_WEIGHTS", str(inception_weights))
    monkeypatch.setenv("DOGKIT_NASNET_WEIGHTS", str(nasnet_weights))
    monkeypatch.setattr(features.NASNetFeatures, "sizes", (64,))   # 27× cheaper than 331 px; test_nasnet checks 331
    real_dir = write_pngs(tmp_path / "real", random_images(2, 16, size=64))   # the fewest FID takes: NASNet is slow
    zip_path = write_zip(random_images(2, 17, size=64), tmp_path / "images.zip")
    report = tmp_path / "report"
    result = evaluate.score_zip(zip_path, real_dir, n=2, device="cpu", report=report)
    assert list(result) == ["public", "private"]
    assert kit_main(["score", str(zip_path), "--real", str(real_dir), "--leaderboard", "both", "--json",
                     "--n", "2", "--device", "cpu"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert without_time(printed) == without_time(result)                   # equal, not close: one code path
    assert json.loads((report / "score.json").read_text()) == result
    assert all(Image.open(report / f"nearest-{name}.png").size == (2 + 4 * 66, 2 + 66) for name in result)   # 2 pairs
    with pytest.raises(UserError, match="score.json already exists"):
        evaluate.score_zip(zip_path, real_dir, n=2, device="cpu", report=report)
