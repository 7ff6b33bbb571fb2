"""kit.weights: `kit weights pack` on random state dicts writes a Kaggle dataset folder; export_found finds it where
Kaggle mounts datasets, checks every file's SHA-256 and points the kit at it; bad files are one line."""
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from kit import weights
from kit.__main__ import main as kit_main
from kit.errors import UserError

# kaggle-cli 2.2.5's dataset_create_new (kaggle/api/kaggle_api_extended.py) refuses metadata whose title or slug is
# not 6 to 50 characters or that has not exactly one licence; its docs (docs/datasets_metadata.md) list the names
KAGGLE_LICENCES = {"CC0-1.0", "CC-BY-SA-3.0", "CC-BY-SA-4.0", "CC-BY-NC-SA-4.0", "GPL-2.0", "ODbL-1.0", "DbCL-1.0",
                   "copyright-authors", "other", "unknown", "CC-BY-4.0", "CC-BY-NC-4.0", "PDDL", "CC-BY-3.0",
                   "LGPL-3.0", "AGPL-3.0", "apache-2.0", "GPL-3.0"}
WEIGHT_ENV = ("DOGKIT_INCEPTION_WEIGHTS", "DOGKIT_NASNET_WEIGHTS")


def fake_kaggle(folder: Path, exists: bool) -> Path:
    """A `kaggle` command that logs its arguments; `datasets status` answers whether the dataset exists."""
    folder.mkdir(exist_ok=True)
    exe = folder / "kaggle"
    exe.write_text(f"#!/bin/sh\necho \"$@\" >> {folder / 'calls.log'}\n"
                   f"if [ \"$2\" = status ]; then exit {0 if exists else 1}; fi\nexit 0\n")
    exe.chmod(0o755)
    return folder / "calls.log"


@pytest.fixture(scope="module")
def packed(tmp_path_factory, inception_weights, nasnet_weights):
    """`kit weights pack` with --upload, into input/datasets/OWNER/SLUG as Kaggle mounts an attached dataset."""
    root = tmp_path_factory.mktemp("kaggle")
    folder = root / "input" / "datasets" / "alice" / "dogkit-weights"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", f"{root / 'bin'}{os.pathsep}{os.environ['PATH']}")
        log = fake_kaggle(root / "bin", exists=False)
        status = kit_main(["weights", "pack", str(folder), "--inception", str(inception_weights),
                           "--nasnet", str(nasnet_weights), "--upload", "alice/dogkit-weights"])
    assert status == 0
    return root, folder, log.read_text().splitlines()


@pytest.fixture(autouse=True)
def weights_env_restored(monkeypatch):
    """export_found sets the weights variables: each test's are undone after it."""
    for name in WEIGHT_ENV:
        monkeypatch.delenv(name, raising=False)


def test_pack_writes_a_dataset_the_kaggle_cli_accepts(packed, inception_weights, nasnet_weights):
    root, folder, calls = packed
    metadata = json.loads((folder / "dataset-metadata.json").read_text())
    owner, slug = metadata["id"].split("/")
    assert (owner, slug) == ("alice", "dogkit-weights") and 6 <= len(slug) <= 50 and 6 <= len(metadata["title"]) <= 50
    assert len(metadata["licenses"]) == 1 and metadata["licenses"][0]["name"] in KAGGLE_LICENCES
    assert calls == ["datasets status alice/dogkit-weights", f"datasets create -p {folder}"]

    manifest = json.loads((folder / "dogkit-weights.json").read_text())
    kinds = {entry["kind"]: entry for entry in manifest["files"]}
    assert set(kinds) == {"inception", "nasnet", "pytorch-fid-wheel"}
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [entry["name"] for entry in manifest["files"]] + ["dataset-metadata.json", "dogkit-weights.json"])
    assert not any(p.is_dir() for p in folder.iterdir())       # kaggle-cli skips folders unless --dir-mode
    for entry, source in ((kinds["inception"], inception_weights), (kinds["nasnet"], nasnet_weights)):
        data = (folder / entry["name"]).read_bytes()
        assert data == source.read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["size"] == len(data)
    with zipfile.ZipFile(folder / kinds["pytorch-fid-wheel"]["name"]) as wheel:
        names = wheel.namelist()
        assert "pytorch_fid/inception.py" in names and any("LICENSE" in n for n in names)
        assert "Apache License" in wheel.read(next(n for n in names if "LICENSE" in n)).decode()


def test_export_found_sets_the_weights_and_ships_pytorch_fid(packed):
    root, folder, _ = packed
    assert weights.export_found(root / "empty-nowhere") == {"public": None, "private": None}
    entries = json.loads((folder / "dogkit-weights.json").read_text())["files"]
    manifest = {entry["kind"]: folder / entry["name"] for entry in entries}
    found = weights.export_found(root / "input")
    assert found == {"public": manifest["inception"], "private": manifest["nasnet"]}
    assert os.environ["DOGKIT_INCEPTION_WEIGHTS"] == str(manifest["inception"])
    assert os.environ["DOGKIT_NASNET_WEIGHTS"] == str(manifest["nasnet"])

    older = root / "older-input" / "dogkit-weights"            # Kaggle's older mount: input/SLUG/
    older.parent.mkdir()
    folder.rename(older)
    try:
        assert weights.export_found(root / "older-input")["private"] == older / manifest["nasnet"].name
        # an interpreter without site-packages cannot import pytorch-fid: export_found puts the wheel first on sys.path
        repo = Path(weights.__file__).parent.parent
        code = (f"import sys; sys.path.insert(0, {str(repo)!r}); from kit.weights import export_found; "
                f"export_found({str(root / 'older-input')!r}); import pytorch_fid; print(pytorch_fid.__file__)")
        out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == str(older / manifest["pytorch-fid-wheel"].name / "pytorch_fid" / "__init__.py")
    finally:
        older.rename(folder)


def test_a_tampered_file_fails_its_sha256_in_one_line(packed, tmp_path):
    root, folder, _ = packed
    copy = tmp_path / "input" / "dogkit-weights"
    copy.mkdir(parents=True)
    for path in folder.iterdir():
        (copy / path.name).symlink_to(path)
    inception = json.loads((folder / "dogkit-weights.json").read_text())["files"][0]["name"]
    (copy / inception).unlink()
    tampered = bytearray((folder / inception).read_bytes())
    tampered[len(tampered) // 2] ^= 1
    (copy / inception).write_bytes(bytes(tampered))
    with pytest.raises(UserError, match=f"{copy / inception} does not match its SHA-256") as e:
        weights.export_found(tmp_path / "input")
    assert "\n" not in str(e.value) and "--force" in str(e.value)
    (copy / inception).unlink()
    with pytest.raises(UserError, match="listed in .* but missing"):
        weights.export_found(tmp_path / "input")
    (copy / "dogkit-weights.json").unlink()
    (copy / "dogkit-weights.json").write_text("{not json")
    with pytest.raises(UserError, match="is not a dogkit weights manifest"):
        weights.export_found(tmp_path / "input")


def test_corrupt_wrong_or_present_files_are_refused_in_one_line(packed, tmp_path, capsys, inception_weights,
                                                                 nasnet_weights):
    _, folder, _ = packed
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(inception_weights.read_bytes()[:100_000])       # a truncated download
    cases = [(["--inception", corrupt, "--nasnet", nasnet_weights], f"{corrupt} is not a weights file"),
             (["--inception", inception_weights, "--nasnet", inception_weights],
              f"{inception_weights} does not match timm's nasnetalarge"),
             (["--inception", inception_weights, "--upload", "alice"], "is not a Kaggle dataset id")]
    for flags, message in cases:
        assert kit_main(["weights", "pack", str(tmp_path / "out"), *map(str, flags)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "out").exists()                          # nothing written when refused
    assert kit_main(["weights", "pack", str(folder), "--inception", str(inception_weights)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "dogkit-weights.json already exists" in err and "--force" in err


def test_upload_versions_a_dataset_that_exists(packed, tmp_path, monkeypatch):
    _, folder, _ = packed
    log = fake_kaggle(tmp_path / "bin", exists=True)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    weights.upload_dataset(folder, "alice/dogkit-weights")
    assert log.read_text().splitlines() == ["datasets status alice/dogkit-weights",
                                            f"datasets version -p {folder} -m dogkit weights"]
    (tmp_path / "bin" / "kaggle").write_text("#!/bin/sh\nexit 1\n")
    with pytest.raises(UserError, match=r"`datasets create -p .*` failed .* alice/dogkit-weights is yours"):
        weights.upload_dataset(folder, "alice/dogkit-weights")
