"""kit.kernels: shipped kernels match a rebuild, the script runs end to end on a fake /kaggle, CLI wrappers."""
import ast
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kit import kernels
from kit.__main__ import main as kit_main
from kit.errors import UserError
from kit.package import check_zip

SHIPPED = kernels.KERNELS_DIR


@pytest.mark.parametrize("name", sorted(kernels.KERNELS))
def test_rebuild_gives_the_shipped_bytes(tmp_path, name):
    shipped = json.loads((SHIPPED / name / "kernel-metadata.json").read_text())
    folder = kernels.build(name, user=shipped["id"].split("/")[0], out_dir=tmp_path)
    for file in ("script.py", "kernel-metadata.json"):
        assert (folder / file).read_bytes() == (SHIPPED / name / file).read_bytes(), \
            f"kernels/{name}/{file} drifted from kit/: run `python -m kit kernel build {name}`"
    assert shipped["competition_sources"] == ["generative-dog-images"] and shipped["enable_gpu"] is True
    assert shipped["enable_internet"] is False and shipped["kernel_type"] == "script"
    assert shipped["id"].endswith(f"/dogkit-{name}") and shipped["code_file"] == "script.py"


def test_inlined_modules_are_what_training_needs():
    sources = kernels.inlined_modules()
    assert {"kit/__init__.py", "kit/train.py", "kit/package.py", "kit/data/cache.py", "kit/kernels.py"} <= set(sources)
    assert not any(path.startswith("kit/metrics") for path in sources)
    imported = set()
    for path, text in sources.items():
        assert text == (kernels.REPO / path).read_text()
        for node in ast.walk(ast.parse(text, path)):
            if isinstance(node, ast.Import):
                imported.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"kit"}
    assert third_party <= {"numpy", "torch", "torchvision", "PIL", "tqdm"}, third_party   # all on Kaggle's image


def test_find_inputs_in_either_kaggle_layout(tmp_path):
    new = tmp_path / "new" / "input" / "generative-dog-images"
    new.mkdir(parents=True)
    for name in ("all-dogs.zip", "Annotation.zip"):
        (new / name).write_bytes(b"")
    assert kernels.find_inputs(tmp_path / "new" / "input") == {"images": new / "all-dogs.zip",
                                                                "annotations": new / "Annotation.zip"}
    old = tmp_path / "old" / "input"
    (old / "all-dogs" / "all-dogs").mkdir(parents=True)
    (old / "annotation" / "Annotation" / "n02085620-Chihuahua").mkdir(parents=True)
    assert kernels.find_inputs(old) == {"images": old / "all-dogs" / "all-dogs",
                                        "annotations": old / "annotation" / "Annotation"}
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="generative-dog-images"):
        kernels.find_inputs(tmp_path / "empty")


def test_kernel_script_runs_on_a_fake_kaggle(tmp_path, demo_dir):
    """The built dcgan script, alone in a folder, on the demo archives laid out as /kaggle/input; CPU, 60 s budget."""
    kaggle = tmp_path / "kaggle"
    competition = kaggle / "input" / "generative-dog-images"
    competition.mkdir(parents=True)
    for name in ("all-dogs.zip", "Annotation.zip"):
        os.symlink(demo_dir / name, competition / name)
    working, tmp = kaggle / "working", tmp_path / "tmp"
    working.mkdir()
    tmp.mkdir()
    script = tmp_path / "src" / "script.py"   # the script alone: no repo beside it, no PYTHONPATH
    script.parent.mkdir()
    script.write_bytes((SHIPPED / "dcgan" / "script.py").read_bytes())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    budget = 60
    env.update(DOGKIT_KAGGLE_ROOT=str(kaggle), DOGKIT_BUDGET=f"{budget}s", TMPDIR=str(tmp),
               DOGKIT_TRAIN=json.dumps({"g_width": 16, "d_width": 16, "batch_size": 32, "threads": 1}))
    start = time.monotonic()
    done = subprocess.run([sys.executable, str(script)], cwd=working, env=env, capture_output=True, text=True,
                          timeout=budget + 60)
    wall = time.monotonic() - start
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert wall < budget + 2, f"the kernel took {wall:.0f} s of a {budget} s budget"   # + Python's start and exit
    assert [p.name for p in working.iterdir()] == ["images.zip"]
    assert check_zip(working / "images.zip") == []
    assert (tmp / "run" / "last.pt").is_file()   # checkpoints went to TMPDIR/run, not the working folder
    rows = [json.loads(line) for line in (tmp / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["event"] == "end" and rows[-1]["step"] > 0
    checked = subprocess.run([sys.executable, str(kernels.REPO / "submit" / "make_zip.py"), "--check",
                              str(working / "images.zip")], capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout


def fake_kaggle(folder: Path, record: Path) -> Path:
    """A `kaggle` executable that appends its argv (one JSON list per line) to `record`."""
    folder.mkdir()
    exe = folder / "kaggle"
    exe.write_text(f"#!{sys.executable}\nimport json, sys\n"
                   f"open({str(record)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return folder


@pytest.fixture
def no_credentials(tmp_path, monkeypatch):
    """A home without ~/.kaggle and no KAGGLE_* variables."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "home"


@pytest.mark.parametrize("action", ["push", "status", "output"])
def test_kaggle_actions_without_credentials(no_credentials, tmp_path, monkeypatch, capsys, action):
    monkeypatch.setenv("PATH", str(fake_kaggle(tmp_path / "bin", tmp_path / "argv.jsonl")))
    assert kit_main(["kernel", action, "dcgan"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no Kaggle credentials") and err.count("\n") == 1 and "KAGGLE_KEY" in err
    assert not (tmp_path / "argv.jsonl").exists()
    monkeypatch.setattr(kernels.shutil, "which", lambda *a, **k: None)
    assert kit_main(["kernel", action, "dcgan"]) == 2
    assert "pip install kaggle" in capsys.readouterr().err


def test_kaggle_actions_run_the_cli(no_credentials, tmp_path, monkeypatch, capsys):
    record = tmp_path / "argv.jsonl"
    monkeypatch.setenv("PATH", str(fake_kaggle(tmp_path / "bin", record)) + os.pathsep + os.environ["PATH"])
    (no_credentials / ".kaggle").mkdir(parents=True)
    (no_credentials / ".kaggle" / "kaggle.json").write_text(json.dumps({"username": "alice", "key": "k"}))
    built = tmp_path / "kernels"
    assert kit_main(["kernel", "build", "dcgan", "--dir", str(built)]) == 0   # user taken from kaggle.json
    assert json.loads((built / "dcgan" / "kernel-metadata.json").read_text())["id"] == "alice/dogkit-dcgan"
    for action in ("push", "status", "output"):
        assert kit_main(["kernel", action, "dcgan", "--dir", str(built), "--out", str(tmp_path / "got")]) == 0
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    assert calls == [["kernels", "push", "-p", str(built / "dcgan")], ["kernels", "status", "alice/dogkit-dcgan"],
                     ["kernels", "output", "alice/dogkit-dcgan", "-p", str(tmp_path / "got")]]
    kit_main(["kernel", "build", "dcgan", "--dir", str(built), "--user", "bob"])
    capsys.readouterr()
    assert kit_main(["kernel", "push", "dcgan", "--dir", str(built)]) == 2
    assert "built for Kaggle user 'bob', but your credentials are 'alice'" in capsys.readouterr().err
    assert len(record.read_text().splitlines()) == 3
    assert kit_main(["kernel", "push", "nosuch", "--dir", str(built)]) == 2
