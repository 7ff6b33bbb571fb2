"""Bad user data: unreadable files skipped with a reason, odd formats made RGB, whole-command failures one line."""
import io
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

from conftest import jpeg, mean_colour, voc
from kit.data import cache
from kit.errors import UserError

RED, BLUE = (200, 30, 30), (30, 30, 220)
CHI = "n02085620-Chihuahua/"


def png(img):
    buffer = io.BytesIO()
    img.save(buffer, "PNG")
    return buffer.getvalue()


def rgba_half_transparent():
    img = Image.new("RGBA", (200, 200), RED + (255,))
    img.paste((0, 0, 0, 0), (0, 0, 200, 100))                  # top half transparent (black underneath)
    return png(img)


GOOD = jpeg(RED, (300, 200), (100, 50, 200, 150), BLUE)
IMAGES = {
    "n02085620_1.jpg": GOOD,
    "n02085620_2.jpg": GOOD[:len(GOOD) // 2],                                  # truncated
    "n02085620_3.jpg": GOOD[:300] + bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8)),
    "n02085620_4.jpg": b"",                                                    # zero bytes
    "n02085620_5.jpg": jpeg(RED, mode="CMYK"),
    "n02085620_6.jpg": jpeg((90, 90, 90), mode="L"),
    "n02085620_7.jpg": png(Image.new("RGB", (200, 150), BLUE).convert("P", palette=Image.ADAPTIVE)),
    "n02085620_8.jpg": rgba_half_transparent(),
    "n02085620_9.jpg": png(Image.new("RGB", (150, 200), BLUE)),               # a PNG named .jpg
    "notes.txt": b"not a picture",
    "n02085620_11.jpg": GOOD, "n02085620_12.jpg": GOOD, "n02085620_13.jpg": GOOD, "n02085620_14.jpg": GOOD,
    "n02085620_15.jpg": GOOD,                                                  # no XML
}
ANNOTATIONS = {
    CHI + "n02085620_1": voc((100, 50, 200, 150)),
    CHI + "n02085620_11": "<annotation><object><name>Chihuahua</name><bndbox><xmin>1",      # malformed XML
    CHI + "n02085620_12": "<annotation><size><width>300</width></size></annotation>",      # no <object>
    CHI + "n02085620_13": voc((400, 300, 500, 380), (100, 50, 200, 150)),                  # one outside, one good
    CHI + "n02085620_14": voc((120, 60, 120, 140)),                                         # zero area
}


@pytest.fixture
def bad(archives):
    root = archives(IMAGES, ANNOTATIONS)
    return cache.prepare(root, root / "c.npz", workers=1, progress=False)


def reasons(ds):
    return {s["file"].rsplit("/", 1)[-1]: s["reason"] for s in ds.report["skipped"]}


def sample(ds, name):
    return ds.images[[i for i, s in enumerate(ds.sources) if s.endswith("/" + name)]]


def test_unreadable_files_are_skipped_with_their_reason(bad):
    why = reasons(bad)
    assert "truncated" in why["n02085620_2.jpg"]
    assert "not an image" in why["n02085620_3.jpg"] and "not an image" in why["notes.txt"]
    assert "empty file" in why["n02085620_4.jpg"]
    for name in ("n02085620_2.jpg", "n02085620_3.jpg", "n02085620_4.jpg", "notes.txt"):
        assert len(sample(bad, name)) == 0


def test_bad_annotations_are_reported_and_the_image_kept(bad):
    why = reasons(bad)
    assert "malformed XML" in why["n02085620_11"]
    assert "no <object>" in why["n02085620_12"]
    assert "outside the 300x200 image" in why["n02085620_13"]
    assert "zero area" in why["n02085620_14"]
    assert len(bad.report["skipped"]) == 8
    for name in ("n02085620_11.jpg", "n02085620_12.jpg", "n02085620_14.jpg", "n02085620_15.jpg"):
        (crop,) = sample(bad, name)                            # centre square (100, 0)-(300, 200): box in the middle
        assert np.abs(mean_colour(crop, slice(24, 40), slice(24, 40)) - BLUE).max() < 25
        assert np.abs(mean_colour(crop, slice(2, 10), slice(2, 20)) - RED).max() < 25
    (crop,) = sample(bad, "n02085620_13.jpg")                  # the good box of 13 is used
    assert np.abs(mean_colour(crop, slice(4, 60), slice(4, 60)) - BLUE).max() < 25


def test_counts(bad):
    assert bad.report["images_read"] == 11
    assert bad.report["no_annotation"] == 9                    # all but images 1 and 13 lack a usable box
    assert bad.report["samples"] == len(bad) == 11


@pytest.mark.parametrize("name,colour", [("n02085620_5.jpg", RED), ("n02085620_6.jpg", (90, 90, 90)),
                                         ("n02085620_7.jpg", BLUE), ("n02085620_9.jpg", BLUE)])
def test_odd_formats_become_rgb(bad, name, colour):
    (crop,) = sample(bad, name)
    assert crop.shape == (3, 64, 64)
    assert np.abs(mean_colour(crop, slice(0, 64), slice(0, 64)) - colour).max() < 12


def test_transparency_is_laid_over_white(bad):
    (crop,) = sample(bad, "n02085620_8.jpg")
    assert mean_colour(crop, slice(0, 28), slice(0, 64)).min() > 245
    assert np.abs(mean_colour(crop, slice(36, 64), slice(0, 64)) - RED).max() < 6


def test_missing_annotation_altogether(archives):
    root = archives({"n02085620_1.jpg": GOOD, "n02085782_2.jpg": GOOD, "n02085782_3.jpg": GOOD})
    ds = cache.prepare(root, root / "c.npz", workers=1, progress=False)
    assert ds.report["no_annotation"] == 3 and "no Annotation.zip" in ds.report["notes"][0]
    assert ds.classes == ["n02085620", "n02085782"] and ds.labels.tolist() == [0, 1, 1]


def test_nothing_usable_is_a_user_error(archives):
    root = archives({"a.jpg": b"", "b.jpg": b"text"}, {})
    with pytest.raises(UserError, match="no usable images.*2 files skipped"):
        cache.prepare(root, root / "c.npz", workers=1, progress=False)


def whole_command_cases(tmp):
    """{case: --data PATH} for inputs where the whole command must fail."""
    cases = {"missing": tmp / "nowhere"}
    (tmp / "notzip").mkdir()
    (tmp / "notzip" / "all-dogs.zip").write_bytes(b"this is not a zip")
    cases["not a zip"] = tmp / "notzip"
    (tmp / "empty").mkdir()
    zipfile.ZipFile(tmp / "empty" / "all-dogs.zip", "w").close()
    cases["empty archive"] = tmp / "empty" / "all-dogs.zip"
    (tmp / "unusable").mkdir()
    with zipfile.ZipFile(tmp / "unusable" / "all-dogs.zip", "w") as z:
        z.writestr("all-dogs/n02085620_1.jpg", GOOD[:100])
        z.writestr("all-dogs/readme.txt", "hello")
    cases["nothing usable"] = tmp / "unusable"
    (tmp / "badann").mkdir()
    (tmp / "badann" / "all-dogs.zip").write_bytes((tmp / "unusable" / "all-dogs.zip").read_bytes())
    (tmp / "badann" / "Annotation.zip").write_bytes(b"PK\x03\x04 broken")
    cases["annotation not a zip"] = tmp / "badann"
    return cases


@pytest.fixture(scope="module")
def command_results(tmp_path_factory):
    """Run `python -m kit prepare` on every whole-command case at once (each start imports torch)."""
    tmp = tmp_path_factory.mktemp("cases")
    runs = {case: subprocess.Popen([sys.executable, "-m", "kit", "prepare", "--data", str(path),
                                    "--out", str(tmp / "out.npz")], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
            for case, path in whole_command_cases(tmp).items()}
    return {case: (p.wait(timeout=120), p.stderr.read()) for case, p in runs.items()}


@pytest.mark.parametrize("case,message", [("missing", "does not exist"), ("not a zip", "is not a zip archive"),
                                          ("empty archive", "no usable images"),
                                          ("nothing usable", "no usable images"),
                                          ("annotation not a zip", "Annotation.zip is not a readable zip")])
def test_whole_command_failures_are_one_line(command_results, case, message):
    status, err = command_results[case]
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err
    assert "Traceback" not in err
