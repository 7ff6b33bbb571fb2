"""Crops land where the boxes are: a known solid patch is found at the expected place, label and colour."""
import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from conftest import jpeg, mean_colour, voc
from kit.data import cache, crops, synthetic
from kit.data.readers import Record

RED, BLUE = (200, 30, 30), (30, 30, 220)


def close(colour, expected, tol=25):
    return np.abs(np.asarray(colour, float) - expected).max() < tol


@pytest.mark.parametrize("box,side,left,top", [
    ((100, 120, 260, 200), 160, 100, 80),      # wide box: grown vertically around its centre
    ((0, 10, 60, 290), 280, 0, 10),            # tall box at the left edge: shifted inside
    ((350, -20, 400, 330), 300, 100, 0),       # taller than the image: capped at its short side, kept inside
])
def test_square_around(box, side, left, top):
    assert crops.square_around(box, 400, 300) == (left, top, left + side, top + side)


def prepare_one(archives, box, crop, size=(400, 300)):
    root = archives({"n02085620_1.jpg": jpeg(RED, size, box, BLUE)},
                    {"n02085620-Chihuahua/n02085620_1": voc(box, size=size)})
    return cache.prepare(root, root / "c.npz", crop=crop, workers=1, progress=False)


def test_square_crop_of_a_wide_box(archives):
    crop = prepare_one(archives, (100, 120, 260, 200), "square").images[0]
    # the square is (100, 80)-(260, 240): blue rows 16..48 of 64, red above and below
    assert close(mean_colour(crop, slice(20, 44), slice(4, 60)), BLUE)
    assert close(mean_colour(crop, slice(2, 12), slice(4, 60)), RED)
    assert close(mean_colour(crop, slice(52, 62), slice(4, 60)), RED)


def test_square_crop_at_the_image_edge(archives):
    crop = prepare_one(archives, (0, 10, 60, 290), "square").images[0]
    # the square is (0, 10)-(280, 290): blue columns 0..13.7 of 64, red to their right
    assert close(mean_colour(crop, slice(4, 60), slice(0, 12)), BLUE)
    assert close(mean_colour(crop, slice(4, 60), slice(17, 64)), RED)


def test_box_crop_is_the_tight_box(archives):
    crop = prepare_one(archives, (100, 120, 260, 200), "box").images[0]
    assert close(mean_colour(crop, slice(2, 62), slice(2, 62)), BLUE)


def test_whole_crop_is_the_whole_image(archives):
    crop = prepare_one(archives, (100, 120, 260, 200), "whole").images[0]
    # 400x300 squeezed to 64x64: the box is columns 16..41.6, rows 25.6..42.7
    assert close(mean_colour(crop, slice(28, 40), slice(19, 39)), BLUE)
    assert close(mean_colour(crop, slice(0, 20), slice(0, 64)), RED)
    assert close(mean_colour(crop, slice(0, 64), slice(46, 64)), RED)


@pytest.fixture(scope="module")
def demo_images(demo):
    """{file name: decoded full-size PIL image} of the demo archive."""
    with zipfile.ZipFile(demo["images"]) as z:
        return {m.rsplit("/", 1)[-1]: Image.open(io.BytesIO(z.read(m))).convert("RGB") for m in z.namelist()}


def test_draft_decoding_matches_a_full_decode(demo, demo_images):
    """The JPEG draft (reduced-scale) path gives the crop that a full-size decode and resize gives."""
    name = "n02085620_0.jpg"
    x0, y0, x1, y1, _ = demo["boxes"][name][0]
    region = crops.square_around((x0, y0, x1, y1), *demo_images[name].size)
    reference = np.asarray(demo_images[name].resize((64, 64), Image.LANCZOS, box=region)).transpose(2, 0, 1)
    record = Record(name, (str(demo["images"]), f"all-dogs/{name}"), 0,
                    (str(demo["annotations"]), "Annotation/n02085620-Chihuahua/n02085620_0"))
    ours, labels, _, problems, ok, boxed, _ = crops.crop_record(record, crops.Options("square", 64), "RGB",
                                                                {"chihuahua": 0})
    assert ok and boxed and not problems and labels == [0] and ours[0].shape == (3, 64, 64)
    assert np.abs(ours[0].astype(float) - reference).mean() < 4


@pytest.mark.parametrize("crop", ["square", "box"])
def test_demo_crops_show_their_breed_colour_at_the_box_centre(demo_dir, demo, demo_images, crop, tmp_path):
    ds = cache.prepare(demo_dir, tmp_path / "c.npz", crop=crop, workers=1, progress=False)
    seen = {}
    for img, label, source in zip(ds.images, ds.labels, ds.sources):
        name = source.rsplit("/", 1)[-1]
        seen[name] = seen.get(name, -1) + 1                    # this is the image's seen[name]-th box
        x0, y0, x1, y1, breed = demo["boxes"][name][seen[name]]
        assert label == breed
        left, top, right, bottom = (x0, y0, x1, y1) if crop == "box" else \
            crops.square_around((x0, y0, x1, y1), *demo_images[name].size)
        cx, cy = int(((x0 + x1) / 2 - left) * 64 / (right - left)), int(((y0 + y1) / 2 - top) * 64 / (bottom - top))
        centre = mean_colour(img, slice(cy - 1, cy + 2), slice(cx - 1, cx + 2))
        assert close(centre, synthetic.breed_colour(breed, len(demo["breeds"])), 40), (source, centre)
    assert sorted(seen) == sorted(demo["boxes"])
