"""A Kaggle-like sandbox: kernels/NAME/script.py alone, the competition's archives, no installed kit, CPU only."""
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import pytest
import torch

from kit import checkpoint
from kit.kernel import build, runtime
from kit.config import TrainConfig
from kit.package import check_zip

# Installed into every interpreter of the run (through PYTHONPATH, so spawned ranks get it too): it takes the
# editable install's finder off sys.meta_path, and records any file opened for writing (or any directory made,
# renamed or removed) outside the allowed folders, and any file read from the repository's kit/.
GUARD = '''
import os
import sys

ALLOWED = tuple(os.environ["SANDBOX_ALLOWED"].split(os.pathsep))
FORBIDDEN_READ = os.environ["SANDBOX_FORBIDDEN_READ"]
REPORT = os.environ["SANDBOX_REPORT"]
WRITES = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
PATH_EVENTS = {"os.mkdir": (0,), "os.rename": (0, 1), "os.replace": (0, 1), "os.remove": (0,), "os.rmdir": (0,),
               "os.symlink": (1,), "os.link": (1,), "os.truncate": (0,), "shutil.rmtree": (0,)}
sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
busy = []


def record(line):
    busy.append(1)
    with open(REPORT, "a") as f:
        f.write(f"{os.getpid()} {line}\\n")
    busy.pop()


def hook(event, args):
    if busy or (event != "open" and event not in PATH_EVENTS):
        return
    if event == "open":
        if isinstance(args[0], int) or args[0] is None:
            return
        path = os.path.abspath(os.fsdecode(args[0]))
        if args[2] & WRITES and not path.startswith(ALLOWED):
            record(f"write {path}")
        elif path.startswith(FORBIDDEN_READ):
            record(f"read {path}")
        return
    for i in PATH_EVENTS[event]:
        if not isinstance(args[i], int):
            path = os.path.abspath(os.fsdecode(args[i]))
            if not path.startswith(ALLOWED):
                record(f"{event} {path}")


sys.addaudithook(hook)
'''
STAGES = ("preflight", "prepare", "train", "zip", "check")
# The interpreter a kernel runs in: this one, or another torch's (e.g. a venv with the floor, torch 2.3.1).
KERNEL_PYTHON = os.environ.get("DOGKIT_SANDBOX_PYTHON", sys.executable)


def sandbox(root: Path, demo_dir: Path, name: str) -> dict:
    """A kernel's world under root: /kaggle/input/<competition>, /kaggle/working, /kaggle/src/script.py, TMPDIR."""
    kaggle = root / "kaggle"
    competition = kaggle / "input" / "generative-dog-images"
    competition.mkdir(parents=True)
    for archive in ("all-dogs.zip", "Annotation.zip"):
        shutil.copy(demo_dir / archive, competition / archive)
    places = {"kaggle": kaggle, "working": kaggle / "working", "src": kaggle / "src", "tmp": root / "tmp",
              "home": root / "home", "guard": root / "guard"}
    for folder in places.values():
        folder.mkdir(exist_ok=True)
    shutil.copy(build.KERNELS_DIR / name / "script.py", places["src"] / "script.py")
    (places["guard"] / "sitecustomize.py").write_text(GUARD)
    places["report"] = root / "guard-report.txt"
    return places


def run_kernel(places: dict, budget: str, train: dict, procs: int, extra_env=None, timeout=300):
    """Run the script in a fresh interpreter inside the sandbox; (completed process, guard report lines)."""
    site_packages = sysconfig.get_paths()["purelib"]
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(places["home"]), "TMPDIR": str(places["tmp"]),
           "PYTHONPATH": str(places["guard"]), "DOGKIT_KAGGLE_ROOT": str(places["kaggle"]),
           "DOGKIT_BUDGET": budget, "DOGKIT_TRAIN": json.dumps(train), "DOGKIT_PROCS": str(procs),
           "SANDBOX_ALLOWED": os.pathsep.join([str(places["kaggle"].parent) + os.sep, "/dev/"]),
           "SANDBOX_FORBIDDEN_READ": str(build.REPO / "kit") + os.sep, "SANDBOX_REPORT": str(places["report"]),
           "OMP_NUM_THREADS": "1", **(extra_env or {})}
    assert not Path(site_packages, "sitecustomize.py").exists()   # the guard is the only sitecustomize
    done = subprocess.run([KERNEL_PYTHON, str(places["src"] / "script.py")], cwd=places["working"], env=env,
                          capture_output=True, text=True, timeout=timeout)
    report = places["report"].read_text().splitlines() if places["report"].exists() else []
    return done, report


def stage_lines(log: str) -> dict:
    """{stage: [its log lines]} for the runtime's stamped lines."""
    found = {stage: [] for stage in STAGES}
    for match in re.finditer(r"^\[ *[\d.]+ s\] (\w+): (.*)$", log, re.M):
        if match.group(1) in found:
            found[match.group(1)].append(match.group(2))
    return found


def test_the_guard_sees_the_installed_kit_and_writes_outside(tmp_path, demo_dir):
    """The sandbox's guard can fail: a script that writes outside and imports the repository's kit is caught."""
    places = sandbox(tmp_path / "sandbox", demo_dir, "dcgan")
    outside = tmp_path / "outside.txt"
    (places["src"] / "script.py").write_text(
        f"import sys\ntry:\n    import kit\nexcept ImportError:\n    print('no kit')\nopen({str(outside)!r}, 'w')\n"
        f"sys.path.append({str(build.REPO)!r})\nimport kit.errors\n")
    done, report = run_kernel(places, "1m", {}, 0)
    assert done.returncode == 0 and done.stdout == "no kit\n", done.stderr
    assert report[0].endswith(f"write {outside}") and any(f"read {build.REPO / 'kit'}" in r for r in report[1:])


@pytest.mark.parametrize("name, procs, options", [
    ("dcgan", 1, {}),   # 2 processes: test_the_kernel_stops_at_its_budget
    # attention costs 60 s more in the 10,000 final images on a CPU, width 8 another 20 s
    ("biggan", 1, {"attn_g": 0, "attn_d": 0, "g_width": 4, "d_width": 4}),
])
def test_kernel_ends_with_a_valid_zip_in_the_sandbox(tmp_path, demo_dir, name, procs, options):
    places = sandbox(tmp_path, demo_dir, name)
    train = {"device": "cpu", "g_width": 8, "d_width": 8, "batch_size": 16, "max_steps": 6, "log_every": 2,
             **options}
    done, report = run_kernel(places, "3m", train, procs)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    assert report == [], report   # no write outside the sandbox, no read of the installed kit/
    assert [p.name for p in places["working"].iterdir()] == ["images.zip"]
    assert check_zip(places["working"] / "images.zip") == []
    stages = stage_lines(done.stdout)
    assert all(stages.values()), {k: v for k, v in stages.items() if not v}
    assert f"{procs} process(es) (no DDP)" in stages["preflight"][0]
    assert "batch 16 per process" in stages["train"][0] and not any("ended early" in line for line in stages["train"])
    assert stages["check"][-1].endswith("budget") and " passes;" in stages["check"][-1]
    run = places["tmp"] / "run"
    assert checkpoint.load(run / "last.pt")["step"] == 6
    start = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert start["world_size"] == procs and start["device"] == "cpu"
    sources = [p for p in places["tmp"].glob("dogkit-src-*/kit/kernel/runtime.py")]
    assert len(sources) == 1 and sources[0].read_text() == (build.REPO / "kit/kernel/runtime.py").read_text()


def test_the_kernel_stops_at_its_budget(tmp_path, demo_dir):
    """Two DDP processes (gloo), no max_steps: the budget alone ends training; the zip is written inside it."""
    places = sandbox(tmp_path, demo_dir, "cgan")
    budget = 50
    train = {"device": "cpu", "g_width": 8, "d_width": 8, "batch_size": 16, "threads": 1}
    start = time.monotonic()
    done, report = run_kernel(places, f"{budget}s", train, 2)
    wall = time.monotonic() - start
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert report == [], report
    assert [p.name for p in places["working"].iterdir()] == ["images.zip"]
    assert check_zip(places["working"] / "images.zip") == []
    stages = stage_lines(done.stdout)
    assert "2 process(es) (DDP over gloo)" in stages["preflight"][0] and len(stages["train"]) == 1
    assert wall < budget + 10, f"the kernel took {wall:.0f} s of a {budget} s budget"   # + interpreter start/exit
    rows = [json.loads(line) for line in (places["tmp"] / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["world_size"] == 2 and rows[-1]["event"] == "end" and rows[-1]["step"] > 0


def test_a_gpu_less_kernel_stops_before_preparing(tmp_path, demo_dir):
    """Pushed without a GPU and not asking for the CPU: one line that says so, exit 1, nothing prepared."""
    places = sandbox(tmp_path, demo_dir, "dcgan")
    done, report = run_kernel(places, "1m", {}, 0, extra_env={"CUDA_VISIBLE_DEVICES": ""}, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    stages = stage_lines(done.stdout)
    assert stages["preflight"][0].startswith("no GPU in this kernel") and '"device": "cpu"' in stages["preflight"][0]
    assert not stages["prepare"] and list(places["tmp"].iterdir()) == [p for p in places["tmp"].glob("dogkit-src-*")]
    assert list(places["working"].iterdir()) == [] and report == []


def dying_rank(rank, world, port, cfg):
    """Rank 0 trains; rank 1 trains too, until rank 0's first checkpoint exists, then dies without a word."""
    if rank == 1:
        last = Path(cfg.out) / "last.pt"

        def die():
            while not last.exists():
                time.sleep(0.05)
            time.sleep(1.0)
            os._exit(3)

        threading.Thread(target=die, daemon=True).start()
    runtime.run_rank(rank, world, port, cfg)


def test_a_dead_rank_ends_the_run_and_the_last_checkpoint_still_zips(tmp_path, demo_cache):
    cfg = TrainConfig(data=str(demo_cache), out=str(tmp_path / "run"), model="dcgan", g_width=4, d_width=4,
                      z_dim=16, batch_size=8, n_images=12, budget="10m", device="cpu", threads=1,
                      zip=str(tmp_path / "images.zip"), force=True)
    failure = runtime.train_ranks(cfg, 2, time.time() + 600, target=dying_rank)
    assert "process 1 terminated with exit code 3" in failure
    last = Path(cfg.out) / "last.pt"
    step = runtime.zip_from_checkpoint(last, cfg, "cpu")
    assert step == checkpoint.load(last)["step"]
    with zipfile.ZipFile(cfg.zip) as archive:
        assert len([n for n in archive.namelist() if n.endswith(".png")]) == 12


def test_the_budget_stops_hung_ranks(tmp_path, demo_cache):
    cfg = TrainConfig(data=str(demo_cache), out=str(tmp_path / "run"), device="cpu")
    start = time.time()
    assert runtime.train_ranks(cfg, 2, start + 3, target=sleeping_rank).startswith("the training processes ran past")
    assert time.time() - start < 60


def sleeping_rank(rank, world, port, cfg):
    """A rank that hangs (as one waiting forever on a collective would)."""
    time.sleep(600)



def test_a_failed_run_in_one_process_is_one_line(monkeypatch, capsys):
    from kit import train

    def crash(cfg):
        raise RuntimeError("CUDA error: operation not permitted when stream is capturing\nSearch for ...\n")

    monkeypatch.setattr(train, "train", crash)
    failure = runtime.train_here(TrainConfig())
    assert failure == "RuntimeError: CUDA error: operation not permitted when stream is capturing"
    assert "Traceback" in capsys.readouterr().err


def test_processes_that_die_before_training_are_replaced_by_one(tmp_path, demo_dir, monkeypatch, capsys):
    """As an old torch's DDP or a broken NCCL would: the ranks die at once, and one process trains instead."""
    places = sandbox(tmp_path, demo_dir, "dcgan")
    monkeypatch.chdir(places["working"])
    monkeypatch.setattr(tempfile, "tempdir", str(places["tmp"]))
    monkeypatch.setattr(runtime, "train_ranks", lambda cfg, procs, deadline: "process 1 terminated with exit code 3")
    train = {"device": "cpu", "g_width": 8, "d_width": 8, "batch_size": 16, "max_steps": 3, "threads": 1}
    args = runtime.parse_arguments(["--kaggle-root", str(places["kaggle"]), "--budget", "3m", "--procs", "2",
                                    "--train", json.dumps(train)])
    threads = torch.get_num_threads()
    try:
        assert runtime.run({"name": "dcgan", "accelerator": "NvidiaTeslaT4", "train": {}}, time.time(), args) == 0
    finally:
        torch.set_num_threads(threads)
    stages = stage_lines(capsys.readouterr().out)
    assert stages["train"][1].startswith("the 2 processes ended before a trained checkpoint (process 1 terminated")
    assert not any("ended early" in line for line in stages["train"]) and " passes;" in stages["check"][-1]
    assert checkpoint.load(places["tmp"] / "run" / "last.pt")["step"] == 3
