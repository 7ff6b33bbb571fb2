"""bench/quality's harness: the real sets (digits, photo crops), the classifier's features, and the FID they give."""
import dataclasses
import functools
import sys
import warnings
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from quality import baseline, classifier, data  # noqa: E402

DIGITS = data.SETS["digits"]
PHOTOS = data.SETS["photos"]
SMALL_PHOTOS = dataclasses.replace(PHOTOS, make=functools.partial(data.photo_crops, per_class=10), n_held_out=60)


@pytest.fixture(autouse=True)
def stats_cache(tmp_path, monkeypatch):
    """kit.metrics caches real statistics: keep them in a tmp dir."""
    monkeypatch.setenv("DOGKIT_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The digit archive, folder and decoded real set, written once into a tmp dir."""
    root = tmp_path_factory.mktemp("digits")
    real, labels = data.write_set(data.SETS["digits"], root)
    return root, real, labels


@pytest.fixture(scope="module")
def extractor(digits):
    """A digit classifier trained briefly (4 epochs) on the classifier split."""
    _, real, labels = digits
    train, _ = data.split(len(real), DIGITS.n_held_out)
    return classifier.ClassifierFeatures(classifier.train_classifier(real[train], labels[train], 10, epochs=4))


def numpy_fid(a, b):
    """Frechet distance of two feature sets with numpy and scipy.linalg.sqrtm, independent of kit.metrics."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():   # dead ReLU units make the covariances singular; sqrtm still converges
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def numpy_d(gen, real):
    """MiFID's d with numpy: the mean over generated rows of the least 1 - |cos| to a real row (zero rows left out)."""
    gen, real = gen[gen.sum(1) != 0], real[real.sum(1) != 0]
    cos = (gen / np.linalg.norm(gen, axis=1, keepdims=True)) @ (real / np.linalg.norm(real, axis=1, keepdims=True)).T
    return float((1 - np.abs(cos)).min(1).mean())


def test_digit_sets_are_a_stanford_dogs_archive_and_a_folder(digits):
    root, real, labels = digits
    assert real.shape == (1797, 3, 64, 64) and real.dtype == np.uint8
    assert np.bincount(labels).tolist() == np.bincount(data.digits()[1]).tolist()
    assert np.abs(real.astype(int) - data.digits()[0]).max() <= 8    # JPEG at quality 95 keeps the pixels
    with zipfile.ZipFile(root / "archive" / "all-dogs.zip") as z:
        images = [n for n in z.namelist() if n.endswith(".jpg")]
    with zipfile.ZipFile(root / "archive" / "Annotation.zip") as z:
        notes = [n for n in z.namelist() if not n.endswith("/")]
        box = ET.fromstring(z.read(notes[0])).find("object/bndbox")
    assert len(images) == len(notes) == 1797
    assert [int(box.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")] == [0, 0, 64, 64]
    folders = sorted(p.name for p in (root / "folder").iterdir())
    assert len(folders) == 10 and sum(len(list((root / "folder" / f).glob("*.jpg"))) for f in folders) == 1797


def test_kit_prepare_reads_the_archive_back_pixel_for_pixel(digits, tmp_path):
    from kit.data.cache import prepare
    root, real, labels = digits
    dataset = prepare(root / "archive", out=tmp_path / "digits.npz", crop="square", size=64, progress=False)
    assert np.array_equal(dataset.images, real) and np.array_equal(dataset.labels, labels)
    assert dataset.classes == [f"digit {k}" for k in range(10)]


def test_classifier_reads_held_out_digits(digits, extractor):
    _, real, labels = digits
    _, held = data.split(len(real), DIGITS.n_held_out)
    assert (extractor.classify(real[held]) == labels[held]).mean() > 0.9
    features = extractor(real[:7])
    assert features.shape == (7, extractor.dim) and features.dtype == np.float32
    assert extractor.name and len(extractor.fingerprint) == 16


def test_kit_fid_with_the_digit_extractor_matches_numpy(digits, extractor):
    _, real, _ = digits
    _, held = data.split(len(real), DIGITS.n_held_out)
    rest = np.setdiff1d(np.arange(len(real)), held)
    noisy = np.clip(real[held].astype(int) + np.random.default_rng(1).integers(-60, 60, real[held].shape), 0, 255)
    noisy = noisy.astype(np.uint8)
    result = classifier.evaluate(noisy, real[rest], extractor)
    assert result["fid"] == pytest.approx(numpy_fid(extractor(noisy), extractor(real[rest])), rel=1e-4)


def test_real_against_held_out_real_is_near_zero_noise_is_far(digits, extractor):
    _, real, _ = digits
    _, held = data.split(len(real), DIGITS.n_held_out)
    rest = np.setdiff1d(np.arange(len(real)), held)
    noise = np.random.default_rng(0).integers(0, 256, real[held].shape, dtype=np.uint8)
    same = classifier.evaluate(real[held], real[rest], extractor)
    far = classifier.evaluate(noise, real[rest], extractor)
    copies = classifier.evaluate(real[rest], real[rest], extractor)
    assert same["fid"] < 0.05 * far["fid"]
    assert 0 < same["d"] < 0.05 and copies["d"] == pytest.approx(0, abs=1e-9) and abs(copies["fid"]) < 1e-3
    assert same["bits"] > 3.2


def test_class_bits():
    assert classifier.class_bits(np.arange(1000) % 10, 10) == pytest.approx(np.log2(10))
    assert classifier.class_bits(np.arange(1350) % 27, 27) == pytest.approx(np.log2(27))
    assert classifier.class_bits(np.full(50, 3), 10) == 0
    assert classifier.class_bits(np.array([0, 1] * 20), 10) == pytest.approx(1.0)


def test_baseline_trains_and_samples(digits):
    root, _, _ = digits
    info, snapshots = baseline.train_baseline(root / "folder", 0.0, "cpu", [])
    assert info["steps"] == 1 and info["images_seen"] == 64 and len(snapshots) == 1
    images = baseline.baseline_samples(snapshots[-1][2], 70, "cpu")
    assert images.shape == (70, 3, 64, 64) and images.dtype == torch.uint8 and images.float().std() > 0


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A small photo-crop set (10 crops a class) written once: root, decoded real crops, labels."""
    root = tmp_path_factory.mktemp("photos")
    real, labels = data.write_set(SMALL_PHOTOS, root)
    return root, real, labels


def test_photo_crops_are_deterministic_with_the_classes_they_say(photos):
    root, real, labels = photos
    crops, crop_labels = data.photo_crops(per_class=10)
    again, again_labels = data.photo_crops(per_class=10)
    assert crops.dtype == np.uint8 and crops.shape == (270, 3, 64, 64) and len(PHOTOS.breeds) == 27
    assert np.array_equal(crops, again) and np.array_equal(crop_labels, again_labels)      # byte for byte
    assert np.array_equal(labels, np.repeat(np.arange(27), 10)) and np.array_equal(labels, crop_labels)
    assert len(np.unique(crops.reshape(270, -1), axis=0)) == 270                            # no crop twice
    assert not np.array_equal(data.photo_crops(per_class=10, seed=1)[0], crops)
    assert np.abs(real.astype(int) - crops).max() <= 40 and np.abs(real.astype(int) - crops).mean() < 2   # JPEG q95
    assert [b.split("-", 1)[1] for b in PHOTOS.breeds[::9]] == [f"{p}_top_left" for p in data.photographs()]
    means = real.reshape(27, 10, 3, -1).mean((1, 3))          # classes differ: china is bright, flower dark green
    assert means[:9].mean() > means[9:18].mean() + 30 and means[9:18, 1].mean() > means[9:18, 2].mean()


def test_photo_held_out_split_and_archive(photos, tmp_path):
    from kit.data.cache import prepare
    root, real, labels = photos
    train, held = data.split(4050, PHOTOS.n_held_out)
    assert len(held) == 600 and len(train) == 3450 and len(np.union1d(train, held)) == 4050
    assert np.bincount(np.repeat(np.arange(27), 150)[held], minlength=27).min() >= 10   # every class held out
    dataset = prepare(root / "archive", out=tmp_path / "photos.npz", crop="square", size=64, progress=False)
    assert np.array_equal(dataset.images, real) and np.array_equal(dataset.labels, labels)
    assert dataset.classes[:2] == ["china top left", "china top centre"] and len(dataset.classes) == 27
    assert sum(len(list(f.glob("*.jpg"))) for f in (root / "folder").iterdir()) == 270


def test_photo_classifier_plugs_into_kit_fid(photos):
    _, real, labels = photos
    train, held = data.split(len(real), SMALL_PHOTOS.n_held_out)
    net = classifier.train_classifier(real[train], labels[train], 27, epochs=2)
    extractor = classifier.ClassifierFeatures(net, "photos-cnn")
    assert extractor.n_classes == 27 and extractor(real[:3]).shape == (3, 64)
    assert set(extractor.classify(real)) <= set(range(27))
    distorted = classifier.distortions(real[held])
    assert len(distorted) == 4 and all(d.shape == real[held].shape and d.dtype == np.uint8 for d in distorted.values())
    assert all(not np.array_equal(d, real[held]) for d in distorted.values())
    for images in (real[held], distorted["with Gaussian noise (sigma 30)"]):
        result = classifier.evaluate(images, real[train], extractor)
        gen, ref = extractor(images).astype(np.float64), extractor(real[train]).astype(np.float64)
        assert result["fid"] == pytest.approx(numpy_fid(gen, ref), rel=1e-4)
        assert result["d"] == pytest.approx(numpy_d(gen, ref), rel=1e-6)
        assert 0 <= result["bits"] <= np.log2(27) + 1e-9
    assert classifier.evaluate(real[train], real[train], extractor)["d"] == pytest.approx(0, abs=1e-9)


def record(config, budget, steps, fid, curve, **scores):
    """A quality.jsonl record as bench/quality's runner writes it (only the fields the report reads)."""
    session = {"id": "2026-01-01 00:00 UTC", "machine": "test machine", "commit": "abc1234", "accuracy": 0.98,
               "references": {"ref: held-out real vs the rest": {"fid": 37.0, "bits": 3.32, "rarest": 0.09, "d": 0.02}}}
    return {"session": session, "config": config, "budget_s": budget, "steps": steps, "images_seen": 64 * steps,
            "seconds": budget, "fid": fid, "bits": 3.3, "rarest": 0.08, "d": 0.03, "load": [1.0, 2.0], "flags": "",
            "n_eval": 100, "curve": curve, "seed": 0, "tail": 0 if config == "baseline" else 64, **scores}


def test_report_compares_at_equal_steps_from_snapshots_and_checks_the_bar(tmp_path):
    from quality import report
    records = [record("baseline", 120, 100, 6000.0, [(60, 50, 6100.0), (120, 100, 6000.0)]),
               record("kit-cgan", 120, 1000, 60.0, [(12, 90, 900.0), (24, 210, 300.0), (120, 1000, 60.0)],
                      cgan_acc=0.95),
               record("kit-cgan", 300, 2500, 40.0, [(30, 240, 280.0), (300, 2500, 40.0)], cgan_acc=0.85),
               record("baseline", 300, 250, 5000.0, [(300, 250, 5000.0)])]
    lines = report.equal_steps(report.newest(records), "digit-FID")
    assert lines[-2:] == ["| 100 | 6000.0 (100) | 900.0 (90) |", "| 250 | 5000.0 (250) | 280.0 (240) |"]
    checks = report.checks(report.newest(records), records[0]["session"]["references"], DIGITS)
    assert len(checks) == 2 and "0.010 of the baseline's (met" in checks[0] and "95.0% (met" in checks[0]
    assert "85.0% (NOT met" in checks[1] and "d 0.0300 against held-out real digits' 0.0200 (above)" in checks[1]
    photo_check = report.checks(report.newest(records), records[0]["session"]["references"], PHOTOS)[0]
    assert ("photo-FID 0.010 of the baseline's (met: at most 0.1); rarest class 8.0% (all drawn); "
            "asked-for class 95.0%; d") in photo_check
    report.write_table(records + [record("kit-cgan", 120, 1100, 55.0, [(120, 1100, 55.0)], cgan_acc=0.9)],
                       tmp_path / "q.md", DIGITS)
    table = (tmp_path / "q.md").read_text()
    assert "| kit-cgan | 2 min | 64 | 0 | 1100 |" in table and "| 1000 |" not in table   # the newest run
    assert "kit-cgan / baseline = 0.009" in table and "| digit-FID |" in table


def test_report_averages_seeds_and_keeps_tails_apart(tmp_path):
    from quality import report
    biggan = [record("biggan-plain", 300, 400, fid, [(150, 200, fid * 2), (300, 400, fid)], seed=seed, tail=tail)
              for fid, seed, tail in ((100.0, 0, 64), (120.0, 1, 64), (300.0, 0, 10000))]
    lecam = [record("biggan-lecam", 300, 380, fid, [(150, 190, fid * 2), (300, 380, fid)], seed=seed, tail=64, d=d)
             for fid, seed, d in ((80.0, 0, 0.03), (86.0, 1, 0.06))]
    base = [record("baseline", 300, 250, 2000.0, [(300, 250, 2000.0)], tail=0)]
    rows = report.newest(biggan + lecam + base)
    over = "\n".join(report.seed_means(rows, "photo-FID"))
    assert "| biggan-plain | 5 min | 64 | 2 | 110.0 (100.0, 120.0) | 0.0300 |" in over
    assert "| biggan-plain | 5 min | 10000 | 1 | 300.0 (300.0) |" in over
    assert "| biggan-lecam | 5 min | 64 | 2 | 83.0 (80.0, 86.0) | 0.0450 | 3.30 | 0.755 | 1.500 |" in over
    ratios = report.ratios(rows, "photo-FID")
    assert "At 5 min, tail 64, photo-FID ratios (means over seeds): biggan-plain / baseline = 0.055.  " in ratios
    assert "At 5 min, tail 10000, photo-FID ratios (means over seeds): biggan-plain / baseline = 0.150.  " in ratios
    steps = report.equal_steps(rows, "photo-FID")
    assert steps[-2:] == ["| 250 | 2000.0 (250) | 166.0 (190/190) | 220.0 (200/200) |",   # where the baseline stopped
                          "| 380 | 2000.0 (250) | 83.0 (380/380) | 110.0 (400/400) |"]   # the slowest biggan


def test_report_keeps_only_the_runs_scored_by_the_newest_classifier(tmp_path):
    from quality import report
    old = [record("kit-biggan", 300, 400, fid, [(300, 400, fid)], seed=seed) for fid, seed in ((90.0, 0), (95.0, 1))]
    new = record("kit-biggan", 300, 410, 140.0, [(300, 410, 140.0)])
    new["session"] = {**new["session"], "id": "2026-02-01 00:00 UTC", "accuracy": 0.9, "classifier": "5ebc2c6ef75afa21"}
    again = {**new, "seed": 1, "fid": 150.0}
    assert report.scored_alike([]) == ([], 0)
    assert report.scored_alike(old) == (old, 0)                   # one classifier (known by its accuracy): all kept
    kept, left_out = report.scored_alike(old + [new, again])
    assert kept == [new, again] and left_out == 2
    report.write_table(kept, tmp_path / "q.md", PHOTOS, left_out)
    table = (tmp_path / "q.md").read_text()
    assert "2 earlier runs, scored by other classifiers, are left out" in table
    assert "| kit-biggan | 5 min | 64 | 2 | 145.0 (140.0, 150.0) |" in table and "| 90.0 |" not in table
