"""prepare --variants K (random box-safe crops by albumentations), --seed, --min-box and --max-aspect."""
import numpy as np
import pytest

from conftest import jpeg, voc
from kit.__main__ import main as kit_main
from kit.data import cache, crops
from kit.errors import UserError

RED, BLUE = (200, 30, 30), (30, 30, 220)
SIZE = (400, 300)


def blue_fraction(crop):
    """Share of a 3×H×W crop's pixels that are the box's blue."""
    r, g, b = crop.astype(int)
    return float(((b > 150) & (r < 100)).mean())


@pytest.fixture
def two_dogs(archives):
    """One image, a wide and a tall blue box on red (two dogs, far enough apart that no variant shows both)."""
    boxes = [(20, 40, 140, 100), (300, 60, 350, 220)]
    from PIL import Image, ImageDraw
    import io
    img = Image.new("RGB", SIZE, RED)
    draw = ImageDraw.Draw(img)
    for box in boxes:
        draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=BLUE)
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=95)
    return archives({"n02085620_1.jpg": buffer.getvalue()},
                    {"n02085620-Chihuahua/n02085620_1": voc(*boxes, size=SIZE)}), boxes


def test_variants_are_deterministic_with_a_seed_and_keep_the_first_crop(two_dogs, tmp_path):
    root, boxes = two_dogs
    one = cache.prepare(root, tmp_path / "one.npz", workers=1, progress=False)
    four = cache.prepare(root, tmp_path / "four.npz", workers=1, progress=False, variants=4, seed=7)
    again = cache.prepare(root, tmp_path / "again.npz", workers=1, progress=False, variants=4, seed=7, force=True)
    other = cache.prepare(root, tmp_path / "other.npz", workers=1, progress=False, variants=4, seed=8)
    assert len(one) == 2 and len(four) == 8                                   # K crops per dog box
    assert np.array_equal(four.images[:2], one.images)                        # variant 0 is today's crop
    assert (tmp_path / "four.npz").read_bytes() == (tmp_path / "again.npz").read_bytes()   # same seed, same bytes
    assert not np.array_equal(four.images[2:], other.images[2:])              # another seed, other crops
    name = one.sources[0]
    assert four.sources[:2] == one.sources and four.sources[2:] == [f"{name}#box{b}v{k}" for b in (1, 2)
                                                                     for k in (1, 2, 3)]
    assert four.fingerprint != one.fingerprint and four.report["options"] == {"variants": 4, "seed": 7,
                                                                           "variants_version": crops.VARIANTS_VERSION}
    assert list(four.labels) == [0] * 8


def turn_of(mask):
    """Angle in degrees (within ±45) of a rectangle's sides against the axes, from the mask's second moments."""
    ys, xs = np.nonzero(mask)
    dx, dy = xs - xs.mean(), ys - ys.mean()
    angle = np.degrees(0.5 * np.arctan2(2 * (dx * dy).mean(), (dx * dx).mean() - (dy * dy).mean()))
    return (angle + 45) % 90 - 45


def test_every_variant_holds_the_whole_box_and_turns_only_a_little(two_dogs, tmp_path):
    root, boxes = two_dogs
    data = cache.prepare(root, tmp_path / "v.npz", workers=1, progress=False, variants=9, seed=1)
    turns = []
    for i, crop in enumerate(data.images[2:]):
        b = boxes[i // 8]
        w, h = b[2] - b[0], b[3] - b[1]
        blue = (crop[2].astype(int) > 150) & (crop[0].astype(int) < 100)
        # the whole box is inside: no blue on the crop's edge, and it fills what a square of its long side (at
        # least) to ZOOM_OUT times its turned, padded long side (at most) would show
        assert not (blue[0].any() or blue[-1].any() or blue[:, 0].any() or blue[:, -1].any()), i
        side_max = crops.ZOOM_OUT * (1 + 2 * crops.MARGIN) * (max(w, h) + 0.1 * min(w, h))
        assert w * h / side_max ** 2 * 0.9 < blue.mean() < w * h / max(w, h) ** 2, (i, blue.mean())
        turns.append(turn_of(blue))
    assert max(abs(t) for t in turns) <= crops.ROTATE_DEGREES + 1 and max(abs(t) for t in turns) > 1, turns


def test_min_box_and_max_aspect_at_the_boundary_are_counted(archives, tmp_path):
    boxes = [(10, 10, 74, 110), (100, 10, 163, 200), (150, 220, 390, 290)]   # 64 wide; 63 wide; aspect 3.43
    root = archives({"n02085620_1.jpg": jpeg(RED, SIZE, boxes[0], BLUE)},
                    {"n02085620-Chihuahua/n02085620_1": voc(*boxes, size=SIZE)})
    data = cache.prepare(root, tmp_path / "f.npz", workers=1, progress=False, min_box=64, max_aspect=3.0)
    assert len(data) == 1                                                     # exactly 64 px is kept
    assert data.report["boxes_dropped"] == {"min_box": 1, "max_aspect": 1}
    reasons = [s["reason"] for s in data.report["skipped"]]
    assert any("under --min-box 64" in r for r in reasons) and any("over --max-aspect 3" in r for r in reasons)
    kept = cache.prepare(root, tmp_path / "g.npz", workers=1, progress=False, min_box=63, max_aspect=3.8)
    assert len(kept) == 3 and kept.report["boxes_dropped"] == {}


@pytest.mark.parametrize("flags,message", [(["--variants", "0"], "--variants 0 must be at least 1"),
                                           (["--min-box", "-1"], "--min-box -1 must be 0"),
                                           (["--max-aspect", "0.5"], "--max-aspect 0.5 must be 0")])
def test_bad_values_are_one_line(two_dogs, tmp_path, capsys, flags, message):
    root, _ = two_dogs
    assert kit_main(["prepare", "--data", str(root), "--out", str(tmp_path / "x.npz")] + flags) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    with pytest.raises(UserError):
        cache.prepare(root, tmp_path / "y.npz", progress=False, **{"variants": 0})


def test_variants_do_not_depend_on_the_worker_that_cut_them(demo_dir, tmp_path):
    one = cache.prepare(demo_dir, tmp_path / "w1.npz", workers=1, progress=False, variants=2, seed=3)
    two = cache.prepare(demo_dir, tmp_path / "w2.npz", workers=2, progress=False, variants=2, seed=3)
    assert len(one) > 200 and (tmp_path / "w1.npz").read_bytes() == (tmp_path / "w2.npz").read_bytes()
