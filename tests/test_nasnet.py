"""The private leaderboard's NASNet-A Large: the real weight-loading path with random weights, and the score against
an independent reference (timm's network, TF1 resize written as numpy, FID and d in numpy)."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from kit.__main__ import main as kit_main
from kit.errors import UserError
from kit.metrics import features
from test_fid import reference_distance


@pytest.fixture(scope="module")
def nasnet(nasnet_weights):
    """(weights file of a randomly initialised timm nasnetalarge, the same network in eval mode)."""
    import timm
    net = timm.create_model("nasnetalarge", pretrained=False)
    net.load_state_dict(torch.load(nasnet_weights, weights_only=True))
    return nasnet_weights, net.eval()


def numpy_resize(image: np.ndarray, size: int) -> np.ndarray:
    """H×W×C float64 -> size×size×C with TF1 legacy bilinear (src = dst·in/out, clamp, no half-pixel centres)."""
    h, w = image.shape[:2]
    ys, xs = np.arange(size) * h / size, np.arange(size) * w / size
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy, wx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    top = image[y0][:, x0] + (image[y0][:, x1] - image[y0][:, x0]) * wx
    bottom = image[y1][:, x0] + (image[y1][:, x1] - image[y1][:, x0]) * wx
    return top + (bottom - top) * wy


def reference_features(net, images):
    """timm's own forward on the organisers' input: TF1 resize to 331, [-1, 1], mean of forward_features."""
    x = np.stack([numpy_resize(image.astype(np.float64), 331) for image in images]) / 255 * 2 - 1
    with torch.no_grad():
        out = net.forward_features(torch.from_numpy(x).permute(0, 3, 1, 2).float()).mean((2, 3))
    return out.double().numpy()


def reference_fid(f1, f2):
    """FID in float64; tr sqrt(S1 S2) from the singular values of X1c X2c^T (exact for few samples)."""
    x1, x2 = f1 - f1.mean(0), f2 - f2.mean(0)
    s1, s2 = len(f1) - 1, len(f2) - 1
    tr_covmean = np.linalg.svd(x1 @ x2.T, compute_uv=False).sum() / np.sqrt(s1 * s2)
    diff = f1.mean(0) - f2.mean(0)
    return float(diff @ diff + (x1 ** 2).sum() / s1 + (x2 ** 2).sum() / s2 - 2 * tr_covmean)


def write_pngs(folder, images):
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i}.png")
    return folder


def test_weights_load_through_the_real_path_and_match_timm(nasnet):
    path, net = nasnet
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    extractor = features.NASNetFeatures(path, device="cpu")
    got = extractor(images.transpose(0, 3, 1, 2))
    assert got.shape == (2, 4032) and extractor.dim == 4032 and extractor.name == "nasnet-final-mean"
    expected = reference_features(net, images)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4 * np.abs(expected).max())


def test_missing_or_mismatched_nasnet_weights_are_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("DOGKIT_NASNET_WEIGHTS", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(UserError, match="--nasnet-weights FILE or set DOGKIT_NASNET_WEIGHTS") as e:
        features.find_nasnet_weights()
    assert "\n" not in str(e.value) and "Kaggle kernel" in str(e.value)
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv0.conv.weight": torch.zeros(1)}, wrong)
    with pytest.raises(UserError, match="wrong.pth does not match timm's nasnetalarge") as e:
        features.NASNetFeatures(wrong, device="cpu")
    assert "\n" not in str(e.value)
    cached = tmp_path / "hf" / "hub" / "models--timm--nasnetalarge.tf_in1k" / "snapshots" / "abc" / "model.safetensors"

    def offline():
        raise OSError("no internet")
    monkeypatch.setattr(features, "download_nasnet_weights", offline)
    with pytest.raises(UserError, match="OSError while downloading") as e:
        features.find_nasnet_weights(download=True)
    assert "\n" not in str(e.value)

    def timm_download():                                      # what timm does with internet: fill its cache
        cached.parent.mkdir(parents=True)
        cached.write_bytes(b"")
    monkeypatch.setattr(features, "download_nasnet_weights", timm_download)
    assert features.find_nasnet_weights(download=True) == cached     # downloaded, then found in the cache
    assert features.find_nasnet_weights() == cached          # timm's Hugging Face cache is searched


def test_private_score_cli_matches_the_independent_reference(nasnet, tmp_path, capsys, monkeypatch,
                                                               inception_weights):
    path, net = nasnet
    monkeypatch.setenv("DOGKIT_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(2)
    generated = rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    real = rng.integers(0, 256, (4, 80, 72, 3), dtype=np.uint8)      # real images keep their own size
    real[0] = np.repeat(np.repeat(generated[0], 2, 0)[:80], 2, 1)[:, :72]   # one real image close to a generated one
    gen_dir, real_dir = write_pngs(tmp_path / "gen", generated), write_pngs(tmp_path / "real", real)
    args = ["score", str(gen_dir), "--real", str(real_dir), "--nasnet-weights", str(path), "--n", "3",
            "--device", "cpu", "--json"]
    assert kit_main(args + ["--leaderboard", "private"]) == 0
    got = json.loads(capsys.readouterr().out)
    g, r = reference_features(net, generated), reference_features(net, real)
    assert got["threshold"] == 0.25 and got["n_real"] == 4 and got["extractor"] == "nasnet-final-mean"
    assert got["fid"] == pytest.approx(reference_fid(g, r), rel=1e-3)
    assert got["distance"] == pytest.approx(reference_distance(g, r), rel=1e-3, abs=1e-6)
    d = reference_distance(g, r)
    assert got["mifid"] == pytest.approx(reference_fid(g, r) / ((d if d < 0.25 else 1) + 1e-15), rel=1e-3)

    assert kit_main(args + ["--leaderboard", "both", "--inception-weights", str(inception_weights)]) == 0
    both = json.loads(capsys.readouterr().out)
    assert set(both) == {"public", "private"} and both["public"]["threshold"] == 0.1
    assert both["private"]["fid"] == pytest.approx(got["fid"], rel=1e-9)   # real NASNet statistics came from cache
    assert kit_main(args[:-1] + ["--leaderboard", "both", "--inception-weights", str(inception_weights)]) == 0
    table = capsys.readouterr().out
    assert "public" in table and "private" in table and "margin d - thr, private:" in table


def test_guard_warns_on_both_leaderboards(nasnet, tmp_path, capsys, monkeypatch, inception_weights):
    """make_zip --real on the real images themselves: d = 0 below 0.1 (public) and 0.25 (private), both shouted."""
    monkeypatch.setenv("DOGKIT_CACHE", str(tmp_path / "cache"))
    real = write_pngs(tmp_path / "real", np.random.default_rng(3).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8))
    status = kit_main(["zip", "--from-dir", str(real), "--real", str(real), "--device", "cpu", "--out",
                       str(tmp_path / "a.zip"), "--inception-weights", str(inception_weights),
                       "--nasnet-weights", str(nasnet[0])])
    out = capsys.readouterr().out
    assert status == 1                                   # 3 images: the zip itself is rejected, the guard still ran
    assert "d = 0.0000 < 0.1 on 3 images (public leaderboard)" in out
    assert "d = 0.0000 < 0.25 on 3 images (private leaderboard)" in out
