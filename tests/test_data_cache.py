"""The prepared cache: round trip, skipped when unchanged, made again when a source changes, never clobbers others."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import jpeg, voc
from kit.data import cache
from kit.errors import UserError


def same(a, b):
    return (np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels) and a.classes == b.classes
            and a.sources == b.sources and a.fingerprint == b.fingerprint and a.report == b.report)


def test_round_trip(demo_cache, demo_dir):
    ds = cache.load(demo_cache)
    assert cache.is_cache(demo_cache) and ds.images.dtype == np.uint8 and ds.labels.dtype == np.int64
    assert same(ds, cache.load_or_prepare(demo_cache))
    assert ds.report["samples"] == len(ds) == len(ds.sources) == len(ds.labels)
    assert sum(ds.report["breeds"].values()) == len(ds) and list(ds.report["breeds"]) == ds.classes


def test_skipped_when_unchanged(demo_dir, tmp_path, capsys):
    out = tmp_path / "c.npz"
    first = cache.prepare(demo_dir, out, workers=1, progress=False)
    stamp = out.stat().st_mtime_ns
    again = cache.prepare(demo_dir, out, workers=1)
    assert "up to date" in capsys.readouterr().out and out.stat().st_mtime_ns == stamp and same(first, again)


def two_dog_sources(archives, box):
    return archives({"n02085620_1.jpg": jpeg((200, 30, 30), (300, 200), box, (30, 30, 220))},
                    {"n02085620-Chihuahua/n02085620_1": voc(box)})


def test_prepared_again_when_a_source_changes(archives, capsys):
    root = two_dog_sources(archives, (10, 10, 60, 60))
    first = cache.prepare(root, root / "c.npz", workers=1, progress=False)
    os.utime(root / "Annotation.zip", ns=(1, 1))               # same size, other mtime: the box is re-read
    root = two_dog_sources(archives, (200, 100, 290, 190))
    second = cache.prepare(root, root / "c.npz", workers=1)
    assert "changed" in capsys.readouterr().out
    assert second.fingerprint != first.fingerprint and not np.array_equal(second.images, first.images)
    assert same(second, cache.load(root / "c.npz"))


def test_other_options_or_files_are_not_overwritten_without_force(demo_dir, tmp_path):
    out = tmp_path / "c.npz"
    cache.prepare(demo_dir, out, workers=1, progress=False)
    with pytest.raises(UserError, match="other sources or options.*--force"):
        cache.prepare(demo_dir, out, crop="box", workers=1, progress=False)
    assert cache.prepare(demo_dir, out, crop="box", workers=1, force=True, progress=False).report["crop"] == "box"
    mine = tmp_path / "mine.npz"
    mine.write_text("my notes")
    with pytest.raises(UserError, match="already exists.*--force"):
        cache.prepare(demo_dir, mine, workers=1, progress=False)
    assert mine.read_text() == "my notes"


def test_default_location_and_load_or_prepare(demo_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("DOGKIT_CACHE", str(tmp_path / "store"))
    ds = cache.load_or_prepare(demo_dir, crop="whole", size=32)
    (path,) = (tmp_path / "store").iterdir()
    assert ds.fingerprint in path.name and ds.images.shape[1:] == (3, 32, 32)
    assert len(ds) == ds.report["images_read"] == 120                    # whole: one sample per image
    monkeypatch.setattr(cache, "crop_all", None)                         # a second call must not crop again
    assert same(cache.load_or_prepare(demo_dir, crop="whole", size=32), ds)


def test_process_pool_gives_the_same_cache(demo_dir, demo_cache, tmp_path):
    pooled = cache.prepare(demo_dir, tmp_path / "c.npz", workers=2, progress=False)
    ds = cache.load(demo_cache)
    assert np.array_equal(pooled.images, ds.images) and pooled.sources == ds.sources


@pytest.mark.parametrize("kwargs,message", [({"crop": "circle"}, "--crop circle"), ({"size": 4}, "--size 4"),
                                            ({"out": "x.cache"}, "must end in .npz")])
def test_bad_options(demo_dir, tmp_path, kwargs, message):
    with pytest.raises(UserError, match=message):
        cache.prepare(demo_dir, **{"out": tmp_path / "c.npz", **kwargs, "progress": False})


def test_a_cache_is_not_data(demo_cache, tmp_path):
    with pytest.raises(UserError, match="already a prepared cache"):
        cache.prepare(demo_cache, progress=False)
    (tmp_path / "broken.npz").write_bytes(b"PK junk")
    with pytest.raises(UserError, match="not a prepared cache"):
        cache.load_or_prepare(tmp_path / "broken.npz")


def test_report_never_replaces_other_files(tmp_path):
    cache.write_report({"images_read": 1}, tmp_path / "r.json")
    cache.write_report({"images_read": 2}, tmp_path / "r.json")         # an earlier report is replaced
    assert json.loads((tmp_path / "r.json").read_text()) == {"images_read": 2}
    (tmp_path / "notes.json").write_text("{}")
    with pytest.raises(UserError, match="--force"):
        cache.write_report({"images_read": 1}, tmp_path / "notes.json")


def test_command_line(demo_dir, tmp_path):
    run = subprocess.run([sys.executable, "-m", "kit", "prepare", "--data", str(demo_dir), "--out",
                          str(tmp_path / "c.npz"), "--report", str(tmp_path / "r.json"), "--size", "32"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["images_read"] == 120 and report["samples"] == 144 and report["skipped"] == []
    assert report["no_annotation"] == 0 and len(report["breeds"]) == 6
    assert "prepared 144 samples" in run.stdout and cache.load(tmp_path / "c.npz").images.shape == (144, 3, 32, 32)
