"""kit.kernel.build: shipped kernels match a rebuild, the script's readable form, accelerators, CLI wrappers."""
import ast
import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from kit.__main__ import main as kit_main
from kit.errors import UserError
from kit.kernel import build as kernels
from kit.kernel import runtime
from kit.kernel.preflight import PYTHON_FLOOR, TORCH_FLOOR

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
    assert shipped["machine_shape"] == "NvidiaTeslaT4" and "docker_image" not in shipped
    assert kernel_settings(SHIPPED / name / "script.py") == {
        "name": name, "accelerator": "NvidiaTeslaT4", "budget": "8h40m", "train": {"model": name}, "continue": "",
        "restart_if_different": False, "zip": "", "gpus": "runs"}


def kernel_settings(script: Path) -> dict:
    """The KERNEL dict a built script hands its runtime."""
    tree = ast.parse(script.read_text())
    return next(ast.literal_eval(node.value) for node in tree.body
                if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "KERNEL")


def test_build_flags_reach_the_metadata_and_the_kernel(tmp_path, capsys):
    assert kit_main(["kernel", "build", "cgan", "--dir", str(tmp_path), "--user", "alice", "--budget", "11h40m",
                     "--continue", "alice/dogkit-cgan", "--restart-if-different", "--weights", "alice/dogkit-weights",
                     "--internet", "--set", "ema=0.99", "--set", "spectral_norm=true", "--set", "batch_size=32",
                     "--gpus", "ddp"]) == 0
    assert "past the competition's 9-hour kernel limit" in capsys.readouterr().out
    metadata = json.loads((tmp_path / "cgan" / "kernel-metadata.json").read_text())
    assert metadata["kernel_sources"] == ["alice/dogkit-cgan"] and metadata["enable_internet"] is True
    assert metadata["dataset_sources"] == ["alice/dogkit-weights"] and "docker_image" not in metadata
    assert kernel_settings(tmp_path / "cgan" / "script.py") == {
        "name": "cgan", "accelerator": "NvidiaTeslaT4", "budget": "11h40m", "continue": "alice/dogkit-cgan",
        "restart_if_different": True, "zip": "", "gpus": "ddp",
        "train": {"batch_size": 32, "ema": 0.99, "model": "cgan", "spectral_norm": True}}
    assert kit_main(["kernel", "build", "score", "--dir", str(tmp_path), "--user", "alice", "--weights",
                     "alice/w", "--zip", "code/bob/dogkit-biggan"]) == 0
    metadata = json.loads((tmp_path / "score" / "kernel-metadata.json").read_text())
    assert metadata["kernel_sources"] == ["bob/dogkit-biggan"] and metadata["dataset_sources"] == ["alice/w"]
    assert metadata["competition_sources"] == ["generative-dog-images"] and metadata["id"] == "alice/dogkit-score"
    assert kernel_settings(tmp_path / "score" / "script.py")["zip"] == "bob/dogkit-biggan"
    kernels.build("score", out_dir=tmp_path, zip_source="https://www.kaggle.com/datasets/bob/dogs-zip")
    assert json.loads((tmp_path / "score" / "kernel-metadata.json").read_text())["dataset_sources"] == ["bob/dogs-zip"]


@pytest.mark.parametrize("argv, words", [
    (["cgan", "--set", "nosuch=1"], "'nosuch=1' is not FIELD=VALUE of a TrainConfig field"),
    (["cgan", "--set", "ema"], "'ema' is not FIELD=VALUE"),
    (["cgan", "--set", "ema=high"], "'ema=high': 'high' is not a float"),
    (["cgan", "--set", "spectral_norm=maybe"], "'maybe' is not a bool"),
    (["cgan", "--set", "budget=1h"], "is the kernel's own"),
    (["cgan", "--budget", "12h"], "does not fit a Kaggle session"),
    (["cgan", "--budget", "soon"], "duration 'soon' is not understood"),
    (["cgan", "--continue", "dogkit-cgan"], "'dogkit-cgan' is not OWNER/SLUG"),
    (["cgan", "--zip", "alice/z"], "--zip is for the kernel score"),
    (["score"], "kernel score needs --zip"),
    (["cgan", "--gpus", "both"], "--gpus both is not known: use runs or ddp"),
    (["score", "--zip", "a/b", "--continue", "a/c"], "trains nothing"),
])
def test_build_refuses_bad_flags_in_one_line(tmp_path, capsys, argv, words):
    assert kit_main(["kernel", "build", *argv, "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err, err
    assert list(tmp_path.iterdir()) == []


def test_build_drops_a_pinned_docker_image_and_says_so(tmp_path, capsys):
    folder = kernels.build("dcgan", out_dir=tmp_path, user="alice")
    pulled = {**json.loads((folder / "kernel-metadata.json").read_text()), "docker_image": "gcr.io/kaggle-gpu/x:v1"}
    (folder / "kernel-metadata.json").write_text(json.dumps(pulled))   # as `kaggle kernels pull -m` writes it
    kernels.build("dcgan", out_dir=tmp_path, user="alice")
    err = capsys.readouterr().err
    assert "pins docker_image 'gcr.io/kaggle-gpu/x:v1'" in err and "kaggle-cli#1197" in err and err.count("\n") == 1
    assert "docker_image" not in json.loads((folder / "kernel-metadata.json").read_text())


def test_inlined_modules_are_what_a_kernel_runs_and_never_the_push_wrappers():
    sources = kernels.inlined_modules()
    assert {"kit/__init__.py", "kit/train.py", "kit/sample.py", "kit/data/cache.py", "kit/kernel/__init__.py",
            "kit/kernel/runtime.py", "kit/kernel/preflight.py"} <= set(sources)
    assert "kit/kernel/build.py" not in sources and "kit/__main__.py" not in sources
    assert {"kit/weights.py", "kit/metrics/evaluate.py"} <= set(sources)   # evaluation and scoring in the kernel
    imported = set()
    for path, text in sources.items():
        assert text == (kernels.REPO / path).read_text()
        for node in ast.walk(ast.parse(text, path)):
            if isinstance(node, ast.Import):
                imported.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"kit"}
    in_kaggles_image = {"numpy", "torch", "torchvision", "PIL", "tqdm", "matplotlib", "albumentations", "cv2", "timm",
                        "safetensors"}
    assert third_party <= in_kaggles_image | {"pytorch_fid"}, third_party   # pytorch_fid: in the weights dataset


def test_the_script_holds_each_file_verbatim_with_its_hash():
    text = (SHIPPED / "dcgan" / "script.py").read_text()
    tree = ast.parse(text)
    manifest = next(ast.literal_eval(node.value) for node in tree.body
                    if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "MANIFEST")
    blocks = {ast.literal_eval(node.targets[0].slice): ast.literal_eval(node.value) for node in tree.body
              if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Subscript)}
    assert list(blocks) == list(manifest) == list(kernels.inlined_modules())
    for path, source in blocks.items():
        assert hashlib.sha256(source.encode()).hexdigest() == manifest[path]
        assert f"SOURCES[{path!r}] = r'''{source}'''\n" in text   # the file's lines, as in kit/, reviewable
    assert max(len(line) for line in text.splitlines()) < 200


@pytest.mark.parametrize("source", ["x = 1\n", "s = '''a'''\n", "s = '''a''' + \"\"\"b\"\"\"\n", "a\rb\n",
                                    "t = r'\\'\n"])
def test_every_source_survives_its_block(source):
    namespace = {"SOURCES": {}}
    exec(kernels.source_block("kit/x.py", source), namespace)
    assert namespace["SOURCES"]["kit/x.py"] == source


def test_an_edited_script_refuses_to_run(tmp_path):
    text = (SHIPPED / "dcgan" / "script.py").read_text()
    script = tmp_path / "script.py"
    script.write_text(text.replace("KERNEL_BUDGET = \"8h40m\"", "KERNEL_BUDGET = \"9h40m\"", 1))
    assert script.read_text() != text
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "TMPDIR": str(tmp_path)})
    assert done.returncode == 1 and "kit/kernel/runtime.py does not match its SHA-256" in done.stderr


def test_accelerators(tmp_path, capsys):
    assert kit_main(["kernel", "build", "dcgan", "--dir", str(tmp_path), "--accelerator", "NvidiaL4"]) == 0
    assert json.loads((tmp_path / "dcgan" / "kernel-metadata.json").read_text())["machine_shape"] == "NvidiaL4"
    assert "'accelerator': 'NvidiaL4'" in (tmp_path / "dcgan" / "script.py").read_text()
    assert "NvidiaL4: L4 (sm_89, 24 GB): bf16" in capsys.readouterr().out
    for refused, why in (("NvidiaTeslaP100", "without Pascal (sm_60) kernels"), ("TpuV6E8", "not on TPUs"),
                         ("NvidiaTeslaK80", "not one Kaggle lists")):
        assert kit_main(["kernel", "build", "cgan", "--dir", str(tmp_path), "--accelerator", refused]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and why in err and "--force" in err and "NvidiaTeslaT4" in err
        assert not (tmp_path / "cgan").exists()
    assert kit_main(["kernel", "build", "cgan", "--dir", str(tmp_path), "--accelerator", "NvidiaTeslaP100",
                     "--force"]) == 0
    assert json.loads((tmp_path / "cgan" / "kernel-metadata.json").read_text())["machine_shape"] == "NvidiaTeslaP100"
    assert "forced" in capsys.readouterr().out
    with pytest.raises(UserError, match="no kernel named"):
        kernels.build("nosuch", out_dir=tmp_path)


@pytest.mark.parametrize("layout", ["competitions/generative-dog-images", "datasets/alice/stanford-dogs",
                                    "generative-dog-images"])
def test_find_inputs_at_every_depth_kaggle_mounts_them(tmp_path, layout):
    mounted = tmp_path / "input" / layout
    mounted.mkdir(parents=True)
    for name in ("all-dogs.zip", "Annotation.zip"):
        (mounted / name).write_bytes(b"")
    (tmp_path / "input" / "notebooks" / "alice" / "dogkit-biggan").mkdir(parents=True)   # another source beside it
    assert runtime.find_inputs(tmp_path / "input") == {"images": mounted / "all-dogs.zip",
                                                       "annotations": mounted / "Annotation.zip"}


def test_find_inputs_in_extracted_folders(tmp_path):
    old = tmp_path / "old" / "input"
    (old / "all-dogs" / "all-dogs").mkdir(parents=True)
    (old / "annotation" / "Annotation" / "n02085620-Chihuahua").mkdir(parents=True)
    assert runtime.find_inputs(old) == {"images": old / "all-dogs" / "all-dogs",
                                        "annotations": old / "annotation" / "Annotation"}
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="generative-dog-images"):
        runtime.find_inputs(tmp_path / "empty")


@pytest.mark.parametrize("layout", ["notebooks/alice/dogkit-cgan", "dogkit-cgan"])
def test_find_in_source_takes_the_named_source_at_either_depth(tmp_path, layout):
    inputs = tmp_path / "input"
    for folder in (inputs / layout / "run", inputs / "notebooks" / "bob" / "dogkit-dcgan" / "run"):
        folder.mkdir(parents=True)
        (folder / "last.pt").write_bytes(b"")
    assert runtime.find_in_source(inputs, "alice/dogkit-cgan", "last.pt") == inputs / layout / "run" / "last.pt"
    with pytest.raises(UserError, match="no last.pt from carol/dogkit-biggan under .*attach that kernel's output"):
        runtime.find_in_source(inputs, "carol/dogkit-biggan", "last.pt")


def test_the_weights_line_names_each_leaderboard_found(tmp_path, monkeypatch):
    from kit import weights
    found = {"public": tmp_path / "fid-inception.pth", "private": tmp_path / "nasnetalarge.pth"}
    monkeypatch.setattr(weights, "export_found", lambda input_dir: found if input_dir == tmp_path else {})
    lines = []
    assert runtime.weights_stage(tmp_path, lines.append) == found
    assert lines == [f"weights: public ({found['public']}), private ({found['private']}): training evaluates with them"]


def test_a_checkpoint_of_another_model_or_data_is_told_apart():
    dataset = SimpleNamespace(images=np.zeros((5, 3, 64, 64), np.uint8), classes=["a", "b"])
    state = {"config": {"model": "cgan", "g_width": 8, "ema": 0.999, "batch_size": 16, "max_steps": 6},
             "image_shape": (3, 64, 64), "classes": ["a", "b"]}
    same = {"model": "cgan", "g_width": 8, "batch_size": 0, "max_steps": 12, "device": "cpu"}   # unset, run fields
    assert runtime.checkpoint_differences(state, same, dataset) == []
    assert runtime.checkpoint_differences(state, {"model": "biggan", "g_width": 16}, dataset) == [
        "model 'cgan' where this kernel has 'biggan'", "g_width 8 where this kernel has 16"]
    assert runtime.checkpoint_differences(state, {}, dataset) == ["model 'cgan' where this kernel has 'dcgan'"]
    other = SimpleNamespace(images=np.zeros((5, 3, 32, 32), np.uint8), classes=["a", "b", "c"])
    assert runtime.checkpoint_differences(state, {"model": "cgan"}, other) == [
        "trained on other data (2 breeds of (3, 64, 64) where this kernel has 3 of (3, 32, 32))"]


PUSH_HELP = "usage: kaggle kernels push [-h] [-p FOLDER] [-t TIMEOUT] [--accelerator ACC]"


QUOTA_CSV = "resource,used,remaining,total,refreshAt\nGPU,3.50h,26.50h,30.00h,2026-12-05T00:00:00+00:00\n"
NO_QUOTA = "usage: kaggle [-h] [-v] {competitions,datasets,kernels,models,files,config} ...\nkaggle: error: " \
           "argument command: invalid choice: 'quota'"


def fake_kaggle(folder: Path, record: Path, push_help=PUSH_HELP, broken=False, quota=QUOTA_CSV, output=None) -> Path:
    """A `kaggle` executable that appends its argv (one JSON list per line) to `record`, prints `push_help` for
    --help and `quota` for `quota -v` (None: an older CLI's error), and writes `output` ({name: text}) into -p."""
    folder.mkdir()
    exe = folder / "kaggle"
    exe.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                   f"open({str(record)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
                   f"if {broken!r}: sys.exit(\"ModuleNotFoundError: No module named 'six'\")\n"
                   f"if sys.argv[-1] == '--help': print({push_help!r})\n"
                   f"if sys.argv[1] == 'quota':\n"
                   f"    sys.exit({NO_QUOTA!r}) if {quota!r} is None else print({quota!r}, end='')\n"
                   f"if sys.argv[1:3] == ['kernels', 'output']:\n"
                   f"    for name, text in ({output or {}!r}).items():\n"
                   f"        path = os.path.join(sys.argv[-1], name)\n"
                   f"        os.makedirs(os.path.dirname(path), exist_ok=True)\n"
                   f"        open(path, 'w').write(text)\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return folder


def recorded(record: Path) -> list:
    """The argv lists the fake kaggle was called with."""
    return [json.loads(line) for line in record.read_text().splitlines()]


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
    score = '{"public": {"mifid": 52.1}}'
    bin_dir = fake_kaggle(tmp_path / "bin", record, output={"score.json": score, "run/seed0/last.pt": "x",
                                                            "run/seed1/last.pt": "y"})
    monkeypatch.setenv("PATH", str(bin_dir) + os.pathsep + os.environ["PATH"])
    (no_credentials / ".kaggle").mkdir(parents=True)
    (no_credentials / ".kaggle" / "kaggle.json").write_text(json.dumps({"username": "alice", "key": "k"}))
    built = tmp_path / "kernels"
    assert kit_main(["kernel", "build", "dcgan", "--dir", str(built)]) == 0   # user taken from kaggle.json
    assert json.loads((built / "dcgan" / "kernel-metadata.json").read_text())["id"] == "alice/dogkit-dcgan"
    capsys.readouterr()
    for action in ("push", "status", "output"):
        assert kit_main(["kernel", action, "dcgan", "--dir", str(built), "--out", str(tmp_path / "got")]) == 0
    assert recorded(record) == [["kernels", "push", "--help"],
                     ["kernels", "push", "-p", str(built / "dcgan"), "--accelerator", "NvidiaTeslaT4"],
                     ["quota", "-v"],
                     ["kernels", "status", "alice/dogkit-dcgan"],
                     ["kernels", "output", "alice/dogkit-dcgan", "-p", str(tmp_path / "got")]]
    out = capsys.readouterr().out
    assert "GPU quota: 26.50h left of 30.00h this week (used 3.50h, refreshed at 2026-12-05T00:00:00+00:00)" in out
    assert f"{tmp_path / 'got' / 'score.json'}:\n{score}\n" in out
    got = tmp_path / "got" / "run"
    assert all(f"kit sample --checkpoint {got / run / 'last.pt'}" in out for run in ("seed0", "seed1"))
    assert "continue them on Kaggle with kit kernel build NAME --continue alice/dogkit-dcgan" in out
    kit_main(["kernel", "build", "dcgan", "--dir", str(built), "--user", "bob"])
    capsys.readouterr()
    assert kit_main(["kernel", "push", "dcgan", "--dir", str(built)]) == 2
    assert "built for Kaggle user 'bob', but your credentials are 'alice'" in capsys.readouterr().err
    assert len(record.read_text().splitlines()) == 5
    assert kit_main(["kernel", "push", "nosuch", "--dir", str(built)]) == 2


@pytest.mark.parametrize("broken", [False, True])
def test_push_with_a_cli_that_has_no_accelerator_flag_or_does_not_start(no_credentials, tmp_path, monkeypatch, capsys,
                                                                        broken):
    record = tmp_path / "argv.jsonl"
    bin_dir = fake_kaggle(tmp_path / "bin", record, push_help="usage: kaggle kernels push [-p FOLDER]", broken=broken,
                          quota=None)
    monkeypatch.setenv("PATH", str(bin_dir) + os.pathsep + os.environ["PATH"])
    monkeypatch.setenv("KAGGLE_USERNAME", "alice")
    monkeypatch.setenv("KAGGLE_KEY", "k")
    built = tmp_path / "kernels"
    kernels.build("dcgan", out_dir=built)
    capsys.readouterr()
    if broken:
        assert kit_main(["kernel", "push", "dcgan", "--dir", str(built)]) == 2
        err = capsys.readouterr().err
        assert err == "error: the kaggle CLI does not start (ModuleNotFoundError: No module named 'six'): " \
                      "pip install six\n"
        assert recorded(record) == [["kernels", "push", "--help"]]
        return
    assert kit_main(["kernel", "push", "dcgan", "--dir", str(built)]) == 0
    assert recorded(record)[-2:] == [["kernels", "push", "-p", str(built / "dcgan")], ["quota", "-v"]]
    out = capsys.readouterr().out
    assert "this kaggle CLI is older than 1.8.4: it has no --accelerator and ignores machine_shape" in out
    assert out.endswith("note: GPU quota not shown: this kaggle CLI cannot tell it (`kaggle quota` is in kaggle "
                        "2.2.1+)\n")


# ---------------------------------------------------------------- the oldest torch and Python kernel code runs on

API_AT_FLOOR = Path(__file__).with_name("kernel_api_at_floor.txt")
ROOTS = ("torch", "torchvision")
# Absent from torch 2.3.1 (checked there); kernel code that reaches for them raises the floor
NEWER_THAN_FLOOR = ("torch.backends.fp32_precision", "torch.backends.cuda.matmul.fp32_precision",
                    "torch.backends.cudnn.fp32_precision", "torch.nn.RMSNorm", "torch.nn.functional.rms_norm",
                    "torch.serialization.add_safe_globals", "torch.nn.Buffer", "torch.accelerator",
                    "torch.compiler.set_stance", "torch.nn.attention.flex_attention")
NEWER_THAN_PYTHON_FLOOR = {"pairwise": "3.10", "bit_count": "3.10", "stdlib_module_names": "3.10", "kw_only": "3.10",
                           "tomllib": "3.11", "StrEnum": "3.11", "file_digest": "3.11", "cbrt": "3.11", "UTC": "3.11",
                           "chdir": "3.11", "batched": "3.12", "override": "3.12"}


def dotted(node):
    """a.b.c for an attribute chain that starts at a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return ".".join([node.id] + parts[::-1]) if isinstance(node, ast.Name) else None


def torch_api_uses(sources: dict) -> dict:
    """Every torch.* / torchvision.* name the sources use, import aliases resolved -> the first file using it."""
    uses = {}
    for path, text in sources.items():
        tree = ast.parse(text, path)
        aliases = {root: root for root in ROOTS}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                aliases.update({a.asname: a.name for a in node.names if a.asname and a.name.startswith(ROOTS)})
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module.startswith(ROOTS):
                for a in node.names:
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
                    uses.setdefault(f"{node.module}.{a.name}", path)
        for node in ast.walk(tree):
            name = dotted(node) if isinstance(node, ast.Attribute) else None
            root, _, rest = (name or "").partition(".")
            if root in aliases:
                uses.setdefault(f"{aliases[root]}.{rest}", path)
    return uses


def test_the_api_scan_resolves_aliases():
    source = ("import torch\nimport torch.multiprocessing as mp\nfrom torch import nn\n"
              "from torch.nn import functional as F\n"
              "x = F.relu(nn.Linear(1, 1)(torch.zeros(1)).sum())\nmp.spawn\nsomething.torch.cuda\n")
    assert set(torch_api_uses({"m.py": source})) == {"torch.nn", "torch.nn.functional", "torch.nn.functional.relu",
                                                     "torch.nn.Linear", "torch.zeros", "torch.multiprocessing.spawn"}


def test_kernel_code_uses_only_torch_apis_checked_at_the_floor():
    """Each torch/torchvision name kernel code uses was looked up in torch 2.3.1 and torchvision 0.18.1.

    tests/kernel_api_at_floor.txt lists them; a name not there fails this test until it is checked in that
    torch (or the floor, kit.kernel.preflight.TORCH_FLOOR, setup.cfg and docs/kaggle.md, is raised).
    """
    checked = {line.split()[0] for line in API_AT_FLOOR.read_text().splitlines() if line and line[0] != "#"}
    uses = torch_api_uses(kernels.inlined_modules())
    newer = {api: path for api, path in uses.items() if api.startswith(NEWER_THAN_FLOOR)}
    assert not newer, f"kernel code uses APIs newer than torch {TORCH_FLOOR}: {newer}"
    unchecked = {api: path for api, path in uses.items() if api not in checked}
    assert not unchecked, (f"kernel code uses {unchecked}, not yet looked up in torch {TORCH_FLOOR}: check they exist "
                           f"there and add them to {API_AT_FLOOR.name}, or raise the floor")
    assert not set(NEWER_THAN_FLOOR) & checked


def test_kernel_code_is_python_3_9():
    """The inlined sources parse as Python 3.9, evaluate no `X | Y` annotation and call no newer stdlib name (a
    name the kit defines itself, as kit.metrics.features.file_digest, is not the stdlib's)."""
    sources = kernels.inlined_modules()
    own = {node.name for text in sources.values() for node in ast.walk(ast.parse(text))
           if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    for path, text in sources.items():
        tree = ast.parse(text, path, feature_version=PYTHON_FLOOR)
        future = any(isinstance(n, ast.ImportFrom) and n.module == "__future__" for n in tree.body)
        for node in ast.walk(tree):
            annotation = getattr(node, "annotation", None) or getattr(node, "returns", None)
            if annotation is not None and not future:
                union = any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr) for n in ast.walk(annotation))
                assert not union, f"{path}:{node.lineno}: an `X | Y` annotation needs Python 3.10"
            words = {getattr(node, "attr", None), getattr(node, "id", None), getattr(node, "arg", None)}
            if isinstance(node, ast.Import):
                words |= {a.name.split(".")[0] for a in node.names}
            newer = words & set(NEWER_THAN_PYTHON_FLOOR) - own
            assert not newer, f"{path}:{node.lineno}: {newer} needs Python {NEWER_THAN_PYTHON_FLOOR[newer.pop()]}"


def test_relative_imports_are_followed(tmp_path, monkeypatch):
    package = tmp_path / "kit" / "models"
    package.mkdir(parents=True)
    (tmp_path / "kit" / "__init__.py").write_text("")
    (tmp_path / "kit" / "errors.py").write_text("")
    (package / "__init__.py").write_text("from .dcgan import G\nfrom . import biggan\n")
    (package / "dcgan.py").write_text("from ..errors import UserError\n")
    (package / "biggan.py").write_text("")
    monkeypatch.setattr(kernels, "REPO", tmp_path)
    assert kernels.kit_imports(package / "__init__.py") == {"kit.models", "kit.models.dcgan", "kit.models.biggan"}
    assert kernels.kit_imports(package / "dcgan.py") == {"kit.errors"}
