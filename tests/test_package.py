"""kit.package and submit/make_zip.py: zips written, read back and checked against every rule."""
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from kit.errors import UserError
from kit.package import check_zip, read_images, write_zip

ROOT = Path(__file__).resolve().parent.parent
MAKE_ZIP = ROOT / "submit" / "make_zip.py"


def noise(n, seed=0, size=64, channels=3):
    """n distinct smooth-noise images, uint8 N×C×H×W."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(n, channels, 8, 8, generator=g) * 255
    return torch.nn.functional.interpolate(small, size=size, mode="bilinear").round().byte().numpy()


def png(array_hwc, mode=None, fmt="PNG"):
    """Encode one H×W(×C) uint8 array with PIL."""
    buf = io.BytesIO()
    Image.fromarray(array_hwc, mode).save(buf, fmt)
    return buf.getvalue()


def rezip(src, dst, drop=(), replace=None, add=None):
    """Copy zip src to dst, dropping, replacing or adding members (name -> bytes; None makes a folder)."""
    replace, add = replace or {}, add or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename not in drop:
                zout.writestr(info.filename, replace.get(info.filename, zin.read(info)))
        for name, data in add.items():
            zout.writestr(zipfile.ZipInfo(name) if data is None else name, b"" if data is None else data)
    return dst


@pytest.fixture(scope="module")
def small_zip(tmp_path_factory):
    """A valid zip of 20 images (checked with n_images=20) and the images in it."""
    images = noise(20)
    return write_zip(images, tmp_path_factory.mktemp("small") / "images.zip", progress=False), images


@pytest.fixture(scope="module")
def full_zip(tmp_path_factory):
    """A valid zip of 10,000 distinct images, as the competition wants."""
    return write_zip(noise(10000, seed=1), tmp_path_factory.mktemp("full") / "images.zip", progress=False)


def test_write_zip_round_trip(tmp_path, small_zip):
    path, images = small_zip
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        assert [i.filename for i in infos] == [f"{i}.png" for i in range(20)]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)
        for i in (0, 7, 19):
            data = zf.read(f"{i}.png")
            assert data.startswith(b"\x89PNG\r\n\x1a\n")
            im = Image.open(io.BytesIO(data))
            assert im.mode == "RGB" and im.size == (64, 64)
            np.testing.assert_array_equal(np.asarray(im), images[i].transpose(1, 2, 0))
    back, problems = read_images(path)
    assert problems == [] and back.shape == (20, 3, 64, 64) and back.dtype == np.uint8
    np.testing.assert_array_equal(back, images)
    again = write_zip(torch.from_numpy(images), tmp_path / "again.zip", progress=False)
    assert again.read_bytes() == path.read_bytes()  # torch input, same bytes: no timestamps inside


def test_write_zip_gray_becomes_rgb_and_refuses_overwrite(tmp_path):
    gray = noise(3, channels=1)
    path = write_zip(gray, tmp_path / "g.zip", progress=False)
    back, _ = read_images(path)
    np.testing.assert_array_equal(back, np.repeat(gray, 3, axis=1))
    with pytest.raises(UserError, match="--force"):
        write_zip(noise(3, seed=5), path, progress=False)
    write_zip(noise(3, seed=5), path, force=True, progress=False)
    np.testing.assert_array_equal(read_images(path)[0], noise(3, seed=5))
    assert [p.name for p in tmp_path.iterdir()] == ["g.zip"]  # no temporary files left beside it


def test_check_valid_small(small_zip):
    assert check_zip(small_zip[0], n_images=20) == []
    assert check_zip(small_zip[0])[0] == "images.zip holds 20 files; exactly 10,000 are needed"


def broken_cases(src, tmp):
    """name -> (broken zip path, text its problem line must contain)."""
    img = noise(1, seed=9)[0].transpose(1, 2, 0)
    rgba = np.concatenate([img, np.full((64, 64, 1), 255, np.uint8)], axis=2)
    good4 = zipfile.ZipFile(src).read("4.png")
    cases = {
        "count": (rezip(src, tmp / "count.zip", drop={"19.png"}), "holds 19 files"),
        "non_png_member": (rezip(src, tmp / "txt.zip", drop={"19.png"}, add={"notes.txt": b"hello"}),
                           "files not named .png (1): notes.txt"),
        "jpeg_named_png": (rezip(src, tmp / "jpeg.zip", replace={"3.png": png(img, fmt="JPEG")}),
                           "files that are JPEG data, not PNG (1): 3.png"),
        "size": (rezip(src, tmp / "size.zip", replace={"3.png": png(img[:32, :32].copy())}),
                 "images of size 32×32, not 64×64 (1): 3.png"),
        "rgba": (rezip(src, tmp / "rgba.zip", replace={"3.png": png(rgba)}), "images in mode RGBA, not RGB (1): 3.png"),
        "gray": (rezip(src, tmp / "gray.zip", replace={"3.png": png(img[:, :, 0].copy())}),
                 "images in mode L, not RGB (1): 3.png"),
        "folder": (rezip(src, tmp / "dir.zip", drop={"19.png"}, add={"extra/": None}), "folders inside the zip"),
        "file_in_folder": (rezip(src, tmp / "sub.zip", drop={"19.png"}, add={"imgs/19.png": png(img)}),
                           "files inside a folder (images must sit at the zip's top level) (1): imgs/19.png"),
        "macosx": (rezip(src, tmp / "mac.zip", drop={"19.png"}, add={"__MACOSX/._0.png": b"\0\5\26\7"}),
                   "macOS metadata files inside the zip (1): __MACOSX/._0.png"),
        "corrupt": (rezip(src, tmp / "corrupt.zip", replace={"3.png": good4[:200]}), "corrupt or unreadable images (1): 3.png"),
        "empty": (rezip(src, tmp / "empty.zip", drop={f"{i}.png" for i in range(20)}), "holds 0 files"),
    }
    (tmp / "not.zip").write_bytes(b"this is not a zip")
    cases["not_a_zip"] = (tmp / "not.zip", "not.zip is not a zip file")
    return cases


def test_check_finds_each_broken_zip(tmp_path, small_zip):
    for case, (path, expected) in broken_cases(small_zip[0], tmp_path).items():
        problems = check_zip(path, n_images=20)
        assert problems, case
        assert any(expected in line for line in problems), (case, problems)
    problems = check_zip(tmp_path / "dir.zip", n_images=20)
    assert len(problems) == 2 and "holds 20 files" not in " ".join(problems)  # a folder entry is not a file


def test_repeated_images_pass_the_check_with_a_warning_and_fail_only_when_strict(tmp_path, small_zip):
    """Kaggle accepts repeats (they only cost score): exit 0 with the count; --strict makes them fatal."""
    from kit.package import inspect_zip
    src = small_zip[0]
    good4 = zipfile.ZipFile(src).read("4.png")
    dup = rezip(src, tmp_path / "dup.zip", replace={"5.png": good4, "6.png": good4})
    problems, warnings = inspect_zip(dup, n_images=20)
    assert problems == [] and check_zip(dup, n_images=20) == []
    assert warnings == ["images identical to an earlier one (legal, but they only lower the score) (2): "
                        "5.png (= 4.png), 6.png (= 4.png)"]
    assert check_zip(dup, n_images=20, strict=True) == warnings
    broken = rezip(src, tmp_path / "dup_and_size.zip", replace={"5.png": good4, "3.png": png(noise(1)[0][:, :32, :32]
                                                                                              .transpose(1, 2, 0).copy())})
    assert any("32×32" in line for line in check_zip(broken, n_images=20))   # repeats never hide a real problem


def test_make_zip_check_warns_on_repeats_and_strict_rejects(tmp_path):
    """`make_zip --check` on 10,000 valid images with repeats: exit 0 and a loud warning naming how many repeat."""
    images = np.repeat(noise(100, seed=5), 100, axis=0)          # 10,000 images, each one 100 times
    out = write_zip(images, tmp_path / "images.zip", progress=False)
    loose = make_zip("--check", out, cwd=tmp_path)
    assert loose.returncode == 0, loose.stdout
    assert "WARNING: images identical to an earlier one" in loose.stdout and "(9,900)" in loose.stdout
    assert "OK, would be accepted" in loose.stdout and "problem:" not in loose.stdout
    strict = make_zip("--check", out, "--strict", cwd=tmp_path)
    assert strict.returncode == 1 and "problem: images identical to an earlier one" in strict.stdout


def test_read_images_strict_skips_lenient_converts(tmp_path):
    images = noise(4)
    folder = tmp_path / "mine"
    folder.mkdir()
    for i in range(2):
        (folder / f"{i}.png").write_bytes(png(images[i].transpose(1, 2, 0)))
    (folder / "2.png").write_bytes(png(np.full((100, 80), 7, np.uint8)))   # gray, wrong size
    (folder / "3.jpg").write_bytes(png(images[3].transpose(1, 2, 0), fmt="JPEG"))
    (folder / "notes.txt").write_text("hello")
    strict, problems = read_images(folder)
    assert len(strict) == 2 and any("notes.txt" in p for p in problems)
    lenient, notes = read_images(folder, lenient=True)
    assert lenient.shape == (4, 3, 64, 64)
    np.testing.assert_array_equal(lenient[:2], images[:2])
    assert (lenient[2] == 7).all()
    assert np.abs(lenient[3].astype(int) - images[3]).mean() < 8  # JPEG is lossy, but close
    assert any("corrupt or unreadable images (1): notes.txt" in n for n in notes)


def make_zip(*args, cwd):
    """Run submit/make_zip.py as a user would from a fresh clone: no install, no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, str(MAKE_ZIP), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_check_full_zip(tmp_path, full_zip):
    ok = make_zip("--check", full_zip, cwd=tmp_path)
    assert ok.returncode == 0 and "OK, would be accepted" in ok.stdout, ok.stdout + ok.stderr
    bad = make_zip("--check", rezip(full_zip, tmp_path / "rgba.zip", replace={"7.png": png(np.zeros((64, 64, 4), np.uint8))}),
                   cwd=tmp_path)
    assert bad.returncode == 1 and "problem: images in mode RGBA, not RGB (1): 7.png" in bad.stdout
    missing = make_zip("--check", tmp_path / "nope.zip", cwd=tmp_path)
    assert missing.returncode == 2 and missing.stderr.startswith("error: ") and "Traceback" not in missing.stderr


def test_cli_from_dir_and_overwrite(tmp_path, small_zip):
    """A user's folder: PNGs pass through pixel-exact, RGBA is converted, only the count is then wrong."""
    folder = tmp_path / "generated"
    with zipfile.ZipFile(small_zip[0]) as zf:
        zf.extractall(folder)
    rgba = noise(3, seed=4)
    for i, image in enumerate(rgba):
        alpha = np.full((64, 64, 1), 255, np.uint8)
        Image.fromarray(np.concatenate([image.transpose(1, 2, 0), alpha], 2)).save(folder / f"{20 + i}.png")
    out = tmp_path / "images.zip"
    first = make_zip("--from-dir", folder, "--out", out, cwd=tmp_path)
    assert first.returncode == 1 and "converted or skipped: images in mode RGBA, not RGB (3)" in first.stdout
    assert "problem: images.zip holds 23 files; exactly 10,000 are needed" in first.stdout
    assert first.stdout.count("problem:") == 1 and "REJECTED" in first.stdout
    np.testing.assert_array_equal(read_images(out)[0], np.concatenate([small_zip[1], rgba]))
    before = out.read_bytes()
    again = make_zip("--from-dir", folder, "--out", out, cwd=tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr and out.read_bytes() == before
    (folder / "22.png").unlink()
    forced = make_zip("--from-dir", folder, "--out", out, "--force", cwd=tmp_path)
    assert forced.returncode == 1 and "holds 22 files" in forced.stdout and out.read_bytes() != before
    missing = make_zip("--from-dir", tmp_path / "nope", "--out", tmp_path / "n.zip", cwd=tmp_path)
    assert missing.returncode == 2 and "is not a folder" in missing.stderr


def test_memorisation_guard_warns_on_copies_and_says_when_skipped(tmp_path, monkeypatch, capsys, inception_weights):
    """Packing the real images themselves gives d = 0: the guard must shout; without weights it says it skipped."""
    from kit.__main__ import main as kit_main
    monkeypatch.setenv("DOGKIT_CACHE", str(tmp_path / "cache"))
    weights = inception_weights
    real = tmp_path / "real"
    real.mkdir()
    for i, image in enumerate(noise(3, seed=3)):
        Image.fromarray(image.transpose(1, 2, 0)).save(real / f"{i}.png")
    args = ["zip", "--from-dir", str(real), "--real", str(real), "--device", "cpu", "--out"]
    assert kit_main(args + [str(tmp_path / "a.zip"), "--inception-weights", str(weights)]) == 1  # 3 images: rejected
    out = capsys.readouterr().out
    assert "WARNING: memorisation distance d = " in out and "0.0000 < 0.1 on 3 images" in out
    assert kit_main(args + [str(tmp_path / "b.zip"), "--inception-weights", str(tmp_path / "nope.pth")]) == 1
    out = capsys.readouterr().out
    assert "memorisation guard skipped: Inception weights" in out and "WARNING" not in out
    assert (tmp_path / "b.zip").is_file()   # the zip is still written


def test_zip_from_checkpoint(tmp_path, capsys):
    """`kit zip --checkpoint`: 10,000 images from a (small, untrained) generator, same as kit.sample.generate gives."""
    from kit import checkpoint, models
    from kit.__main__ import main as kit_main
    from kit.config import TrainConfig, asdict
    from kit.sample import generate
    cfg = TrainConfig(model="mlp", g_width=4, d_width=4)
    G, _ = models.build(cfg, (3, 64, 64), 0)
    state = {"config": asdict(cfg), "G": G.state_dict(), "G_ema": None, "step": 0, "image_shape": (3, 64, 64),
             "classes": ["dog"], "label_counts": [1]}
    checkpoint.save(tmp_path / "last.pt", state)
    out = tmp_path / "images.zip"
    assert kit_main(["zip", "--checkpoint", str(tmp_path / "last.pt"), "--out", str(out), "--seed", "3",
                     "--device", "cpu"]) == 0, capsys.readouterr()
    assert "10,000 images" in capsys.readouterr().out and check_zip(out) == []
    with zipfile.ZipFile(out) as zf:
        first = np.asarray(Image.open(io.BytesIO(zf.read("0.png"))))
        last = np.asarray(Image.open(io.BytesIO(zf.read("9999.png"))))
    expected, _ = generate(tmp_path / "last.pt", 10000, seed=3, device="cpu")
    np.testing.assert_array_equal(first, expected[0].permute(1, 2, 0).numpy())
    np.testing.assert_array_equal(last, expected[-1].permute(1, 2, 0).numpy())
    assert kit_main(["zip", "--checkpoint", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "x.zip")]) == 2
    assert "nope.pt does not exist" in capsys.readouterr().err
