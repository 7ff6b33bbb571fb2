"""A Kaggle-like sandbox: kernels/NAME/script.py alone, the competition's archives, no installed kit, CPU only."""
import functools
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
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from kit import checkpoint
from kit import weights as weights_module
from kit.__main__ import main as kit_main
from kit.kernel import build, runtime
from kit.config import TrainConfig
from kit.data import synthetic
from kit.errors import UserError
from kit.package import check_zip
from kit.train import train

# Installed into every interpreter of the run (through PYTHONPATH, so spawned ranks get it too): it takes the
# editable install's finder off sys.meta_path, hides the installed pytorch-fid (Kaggle's image has none; a weights
# dataset ships it as a wheel, which stays importable), and records any file opened for writing (or any directory
# made, renamed or removed) outside the allowed folders, and any file read from the repository's kit/.
GUARD = '''
import importlib.machinery
import os
import sys
import sysconfig

SITE_PACKAGES = sysconfig.get_paths()["purelib"]

ALLOWED = tuple(os.environ["SANDBOX_ALLOWED"].split(os.pathsep))
FORBIDDEN_READ = os.environ["SANDBOX_FORBIDDEN_READ"]
REPORT = os.environ["SANDBOX_REPORT"]
WRITES = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
PATH_EVENTS = {"os.mkdir": (0,), "os.rename": (0, 1), "os.replace": (0, 1), "os.remove": (0,), "os.rmdir": (0,),
               "os.symlink": (1,), "os.link": (1,), "os.truncate": (0,), "shutil.rmtree": (0,)}
sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
busy = []


class NoPytorchFid:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] != "pytorch_fid":
            return None
        elsewhere = [p for p in (path or sys.path) if not os.path.abspath(p).startswith(SITE_PACKAGES)]
        spec = importlib.machinery.PathFinder.find_spec(name, elsewhere)   # a weights dataset's wheel, say
        if spec is None:
            raise ModuleNotFoundError(f"No module named {name!r} (the sandbox hides it, as Kaggle's image lacks it)")
        return spec


sys.meta_path.insert(0, NoPytorchFid())


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
STAGES = ("preflight", "weights", "prepare", "continue", "train", "zip", "check", "score")
EVERY_RUN = ("preflight", "weights", "prepare", "train", "zip", "check")   # the stages each training kernel logs
COMPETITION_LAYOUTS = ("competitions/generative-dog-images", "datasets/alice/generative-dog-images",
                       "generative-dog-images")   # where Kaggle mounts the competition's data today, and did
TRAIN = {"device": "cpu", "g_width": 8, "d_width": 8, "batch_size": 16, "log_every": 2}
MAX_OUTPUT_FILES = 30   # a short run's working folder; Kaggle keeps at most 500
# The interpreter a kernel runs in: this one, or another torch's (e.g. a venv with the floor, torch 2.3.1).
KERNEL_PYTHON = os.environ.get("DOGKIT_SANDBOX_PYTHON", sys.executable)


def sandbox(root: Path, demo_dir: Path, name: str, layout=COMPETITION_LAYOUTS[0], script=None) -> dict:
    """A kernel's world under root: /kaggle/input/LAYOUT (the competition's data), /kaggle/working,
    /kaggle/src/script.py (kernels/NAME's, or `script`), TMPDIR."""
    kaggle = root / "kaggle"
    competition = kaggle / "input" / layout
    competition.mkdir(parents=True)
    for archive in ("all-dogs.zip", "Annotation.zip"):
        shutil.copy(demo_dir / archive, competition / archive)
    places = {"kaggle": kaggle, "working": kaggle / "working", "src": kaggle / "src", "tmp": root / "tmp",
              "home": root / "home", "guard": root / "guard"}
    for folder in places.values():
        folder.mkdir(exist_ok=True)
    shutil.copy(script or build.KERNELS_DIR / name / "script.py", places["src"] / "script.py")
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
        f"import sys\ntry:\n    import kit\nexcept ImportError:\n    print('no kit')\ntry:\n    import pytorch_fid\n"
        f"except ImportError:\n    print('no pytorch-fid')\nopen({str(outside)!r}, 'w')\n"
        f"sys.path.append({str(build.REPO)!r})\nimport kit.errors\n")
    done, report = run_kernel(places, "1m", {}, 0)
    assert done.returncode == 0 and done.stdout == "no kit\nno pytorch-fid\n", done.stderr
    assert report[0].endswith(f"write {outside}") and any(f"read {build.REPO / 'kit'}" in r for r in report[1:])


def working_files(places: dict) -> list:
    """Every file in the kernel's working folder, relative to it."""
    return sorted(p.relative_to(places["working"]).as_posix() for p in places["working"].rglob("*") if p.is_file())


def check_training_kernel(places: dict, done, report, procs: int, steps: int, runs=("run",),
                          weights="no weights: training and zipping without evaluation") -> dict:
    """What every training kernel must show: status 0, nothing outside the sandbox, each stage in the log, a valid
    zip and the run folders in working/ (far under Kaggle's 500 files), `steps` trained in each; its stage lines."""
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    assert report == [], report   # no write outside the sandbox, no read of the installed kit/
    files = working_files(places)
    kept = {f"{run}/{name}" for run in runs for name in ("last.pt", "metrics.jsonl", "losses.png")}
    assert {"images.zip"} | kept <= set(files), files
    assert all(f in ("images.zip", "score.json") or f.startswith("run/") for f in files) and \
        len(files) <= MAX_OUTPUT_FILES, files
    assert check_zip(places["working"] / "images.zip") == []
    stages = stage_lines(done.stdout)
    assert all(stages[stage] for stage in EVERY_RUN), {k: v for k, v in stages.items() if not v}
    assert f"{procs} process(es) (" in stages["preflight"][0]
    assert stages["weights"] == [weights]
    workers = len(os.sched_getaffinity(0))
    assert stages["prepare"][0].endswith(f", {workers} processes")
    assert not any("ended early" in line for line in stages["train"])
    assert stages["check"][-2].startswith(f"{places['working']} holds {len(files)} files (Kaggle keeps at most 500), "
                                          f"{', '.join(f'{run}/last.pt' for run in runs)} among them")
    assert stages["check"][-1].endswith("budget") and " passes;" in stages["check"][-1]
    assert all(checkpoint.load(places["working"] / run / "last.pt")["step"] == steps for run in runs)
    return stages


@pytest.fixture(scope="module")
def first_session(tmp_path_factory, demo_dir):
    """dcgan for 6 steps in 1 process, the competition mounted at competitions/SLUG: (sandbox places, run)."""
    places = sandbox(tmp_path_factory.mktemp("first"), demo_dir, "dcgan", COMPETITION_LAYOUTS[0])
    done, report = run_kernel(places, "6m", {**TRAIN, "max_steps": 6}, 1)
    return places, done, report


def test_a_kernel_ends_with_its_checkpoint_and_a_valid_zip_in_working(first_session):
    places, done, report = first_session
    stages = check_training_kernel(places, done, report, 1, 6)
    assert "batch 16 per process" in stages["train"][0] and not stages["continue"]
    start = json.loads((places["working"] / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert start["world_size"] == 1 and start["device"] == "cpu" and start["resumed"] is False
    sources = [p for p in places["tmp"].glob("dogkit-src-*/kit/kernel/runtime.py")]
    assert len(sources) == 1 and sources[0].read_text() == (build.REPO / "kit/kernel/runtime.py").read_text()


def mount_output(places: dict, earlier: dict, layout="notebooks/alice/dogkit-dcgan") -> Path:
    """The earlier kernel's working folder mounted as a kernel source under places' input folder."""
    folder = places["kaggle"] / "input" / layout
    shutil.copytree(earlier["working"], folder)
    return folder


def test_the_next_session_continues_the_run(first_session, tmp_path, demo_dir):
    """Session 2: the competition at the older SLUG depth, session 1's output at notebooks/OWNER/SLUG."""
    first, _, _ = first_session
    script = build.build("dcgan", "alice", tmp_path / "kernels", continue_from="alice/dogkit-dcgan") / "script.py"
    places = sandbox(tmp_path / "second", demo_dir, "dcgan", COMPETITION_LAYOUTS[2], script)
    mounted = mount_output(places, first)
    done, report = run_kernel(places, "6m", {**TRAIN, "max_steps": 10}, 1)
    stages = check_training_kernel(places, done, report, 1, 10)
    carried = ", ".join(name for name in runtime.CARRIED if (mounted / "run" / name).is_file())
    hours = checkpoint.load(mounted / "run" / "last.pt")["elapsed"] / 3600
    assert stages["continue"] == [f"resuming alice/dogkit-dcgan's run at step 6 ({hours:.2f} h trained before) from "
                                  f"{mounted / 'run'} ({carried}); this session's budget is its own"]
    rows = [json.loads(line) for line in (places["working"] / "run" / "metrics.jsonl").read_text().splitlines()]
    starts = [row for row in rows if row.get("event") == "start"]
    assert [(row["step"], row["resumed"]) for row in starts] == [(0, False), (6, True)]   # session 1's rows carried
    assert rows[-1]["event"] == "end" and rows[-1]["step"] == 10
    grid = tmp_path / "home" / "grid.png"   # what `kit kernel output` brings home samples as `kit sample` does
    assert kit_main(["sample", "--checkpoint", str(places["working"] / "run" / "last.pt"), "--n", "4", "--out",
                     str(grid), "--device", "cpu"]) == 0
    assert Image.open(grid).size[0] > 64


def test_the_resumed_state_is_the_saved_one(first_session, tmp_path):
    """The runtime's carry and kit.train's resume, stopped at once: the checkpoint it writes holds session 1's
    tensors exactly; a checkpoint of another model is refused in one line, or started afresh with consent."""
    first, _, _ = first_session
    input_dir = tmp_path / "input"
    mount_output({"kaggle": tmp_path}, first)
    saved = checkpoint.load(first["working"] / "run" / "last.pt")
    dataset = SimpleNamespace(images=np.zeros((1, *saved["image_shape"]), np.uint8), classes=saved["classes"])
    kernel = {"continue": "alice/dogkit-dcgan"}
    run_dir = tmp_path / "working" / "run"
    log = []
    carried = runtime.continue_stage(kernel, {"model": "dcgan"}, dataset, input_dir, run_dir, False, log.append)
    assert carried == [(run_dir, 6, 0)] and log[0].startswith("continue: resuming alice/dogkit-dcgan's run at step 6")
    cfg = TrainConfig(**{**TRAIN, "threads": 1}, data=str(first["tmp"] / "dogkit-cache.npz"), out=str(run_dir),
                      model="dcgan", max_steps=6, n_images=16, zip=str(tmp_path / "working" / "images.zip"),
                      resume=True, force=True)
    threads = torch.get_num_threads()
    try:
        train(cfg)
    finally:
        torch.set_num_threads(threads)
    resumed = checkpoint.load(run_dir / "last.pt")
    assert resumed["step"] == 6
    for part in ("G", "D", "G_ema", "opt_G", "opt_D", "scaler"):
        assert_same(resumed[part], saved[part], part)
    with pytest.raises(UserError, match=r"^continue: .*last.pt is model 'dcgan' where this kernel has 'cgan': "
                                        r"rebuild with --continue of a run of this model and data, or add "
                                        r"--restart-if-different"):
        runtime.continue_stage(kernel, {"model": "cgan"}, dataset, input_dir, tmp_path / "other", False, log.append)
    consent = {**kernel, "restart_if_different": True}
    assert runtime.continue_stage(consent, {"model": "cgan"}, dataset, input_dir, tmp_path / "other", False,
                                  log.append) == []
    assert log[-1].endswith("starting afresh, as built with --restart-if-different")
    assert not (tmp_path / "other").exists()


def assert_same(a, b, where):
    """Nested dicts/lists of tensors and values are equal, tensor by tensor."""
    if torch.is_tensor(a):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_the_scoring_kernel_scores_another_kernels_zip(first_session, tmp_path, monkeypatch, capsys,
                                                      inception_weights):
    """The kernel `score --zip code/alice/dogkit-dcgan`, in this process: 8 images of session 1's zip against a
    12-image competition (Inception on a CPU reads about 1 image/s), with random FID-Inception weights (public only:
    no NASNet weights here)."""
    small = synthetic.write_demo(tmp_path / "small", n_images=12, n_breeds=2, seed=1)["images"].parent
    places = sandbox(tmp_path / "sandbox", small, "dcgan", COMPETITION_LAYOUTS[1])
    mount_output(places, first_session[0])
    monkeypatch.setenv("DOGKIT_INCEPTION_WEIGHTS", str(inception_weights))
    monkeypatch.setenv("DOGKIT_SCORE_N", "8")
    kernel = {"name": "score", "zip": "alice/dogkit-dcgan"}
    assert run_in_process(places, monkeypatch, kernel, "1h", {"device": "cpu"}, 0) == 0
    stages = stage_lines(capsys.readouterr().out)
    result = json.loads((places["working"] / "score.json").read_text())
    public = result["public"]
    assert list(result) == ["public"] and public["n_generated"] == 8 and public["n_real"] == 12
    assert stages["score"][0].startswith(f"8 images of {places['kaggle'] / 'input' / 'notebooks'}")
    assert stages["score"][-1] == (f"public: FID {public['fid']:.3f}, d {public['distance']:.4f} (threshold 0.1), "
                                   f"MiFID {public['mifid']:.3f} -> {places['working'] / 'score.json'}")
    assert not stages["train"] and not (places["working"] / "images.zip").exists()


def test_a_kernel_with_the_weights_evaluates_selects_and_scores(tmp_path, inception_weights, nasnet_weights):
    """`kit weights pack` of random state dicts attached as a dataset at datasets/OWNER/SLUG (pytorch-fid comes from
    its wheel: the sandbox hides the installed one, as Kaggle's image lacks it), a 6-image competition (NASNet-A Large
    reads well under 1 image/s on this CPU): evaluations on 4 images at steps 0 and 4 with both networks, best.pt,
    the selected step in the log, and the zip's first 4 images scored into working/score.json (score_zip, whose
    numbers equal `kit score --leaderboard both --json`'s: tests/test_evaluate.py)."""
    small = synthetic.write_demo(tmp_path / "small", n_images=6, n_breeds=2, seed=2)["images"].parent
    places = sandbox(tmp_path / "sandbox", small, "dcgan", COMPETITION_LAYOUTS[0])
    weights = places["kaggle"] / "input" / "datasets" / "alice" / "dogkit-weights"
    assert kit_main(["weights", "pack", str(weights), "--inception", str(inception_weights), "--nasnet",
                     str(nasnet_weights)]) == 0
    train_options = {**TRAIN, "max_steps": 4, "eval_every": "1h", "eval_n": 4, "score_n": 4, "tune": False}
    done, report = run_kernel(places, "20m", train_options, 1, timeout=900)   # the tuning: in the two-run kernel
    log = done.stdout + done.stderr
    assert done.returncode == 0 and report == [], (log[-3000:], report)
    stages = stage_lines(done.stdout)
    assert stages["weights"] == [f"public ({weights / 'fid-inception.pth'}), private ({weights / 'nasnetalarge.pth'}): "
                                 f"training evaluates with them"]
    files = working_files(places)
    assert {"images.zip", "score.json", "run/last.pt", "run/best.pt", "run/metrics.jsonl"} <= set(files), files
    assert len(files) <= MAX_OUTPUT_FILES and check_zip(places["working"] / "images.zip") == []
    rows = [json.loads(line) for line in (places["working"] / "run" / "metrics.jsonl").read_text().splitlines()]
    evaluations = [row for row in rows if row.get("event") == "evaluation"]
    assert [row["step"] for row in evaluations] == [0, 4]
    assert all({"public", "private"} <= set(row) and row["private"]["n"] == 4 for row in evaluations)
    best = min(evaluations, key=lambda row: row["private"]["mifid"])
    assert rows[0]["select"] == "private" and rows[-1]["zip_step"] == best["step"]
    assert checkpoint.load(places["working"] / "run" / "best.pt")["step"] == best["step"]
    assert f"the zip comes from step {best['step']} (private MiFID {best['private']['mifid']:.2f}" in done.stdout
    score = json.loads((places["working"] / "score.json").read_text())
    assert sorted(score) == ["private", "public"] and score["private"]["n_generated"] == 4
    assert all(score[board]["threshold"] == {"public": 0.1, "private": 0.25}[board] for board in score)


@pytest.fixture(scope="module")
def separate_runs(tmp_path_factory, inception_weights, nasnet_weights):
    """dcgan as the kernels train on two GPUs (--gpus runs, their default), here two CPU processes (DOGKIT_PROCS=2):
    two runs of 4 steps on a 6-image competition with the public leaderboard's (random) Inception attached (a pack
    with NASNet taken out: it reads well under 1 image/s here), so each evaluates, selects and scores its zip;
    (sandbox places, run)."""
    root = tmp_path_factory.mktemp("separate")
    small = synthetic.write_demo(root / "small", n_images=6, n_breeds=2, seed=2)["images"].parent
    places = sandbox(root / "sandbox", small, "dcgan")
    weights = places["kaggle"] / "input" / "datasets" / "alice" / "dogkit-weights"
    assert kit_main(["weights", "pack", str(weights), "--inception", str(inception_weights), "--nasnet",
                     str(nasnet_weights)]) == 0
    manifest = json.loads((weights / weights_module.MANIFEST).read_text())
    manifest["files"] = [entry for entry in manifest["files"] if entry["kind"] != "nasnet"]
    (weights / weights_module.MANIFEST).write_text(json.dumps(manifest))
    (weights / "nasnetalarge.pth").unlink()
    train_options = {**TRAIN, "max_steps": 4, "eval_every": "1h", "eval_n": 4, "score_n": 4}
    done, report = run_kernel(places, "20m", train_options, 2, timeout=900)
    return places, done, report


def test_two_separate_runs_submit_the_zip_with_the_lower_score(separate_runs):
    places, done, report = separate_runs
    runs = ("run/seed0", "run/seed1")
    weights = places["kaggle"] / "input" / "datasets" / "alice" / "dogkit-weights" / "fid-inception.pth"
    stages = check_training_kernel(places, done, report, 2, 4, runs,
                                   f"public ({weights}): training evaluates with them")
    working = places["working"]
    assert "2 process(es) (separate runs)" in stages["preflight"][0]
    assert "2 separate runs on cpu, batch 16 each" in stages["train"][0]
    scores = {run: json.loads((working / run / "score.json").read_text())["public"] for run in runs}
    for run, score in scores.items():
        assert score["n_generated"] == 4
        line = next(line for line in stages["train"] if line.startswith(f"{run}: "))
        assert f", {score['mifid']:.2f} on 4 images of its zip (FID {score['fid']:.2f}" in line, line
    winner = min(runs, key=lambda run: scores[run]["mifid"])
    assert stages["train"][-1] == (f"the zip is {winner[4:]}'s: the lowest public MiFID by its zip's score of 2 runs "
                                   f"(seed0 {scores['run/seed0']['mifid']:.2f}, seed1 "
                                   f"{scores['run/seed1']['mifid']:.2f})")
    assert (working / "images.zip").read_bytes() == (working / winner / "images.zip").read_bytes()
    assert (working / "score.json").read_text() == (working / winner / "score.json").read_text()
    sampling = json.loads((working / "score.json").read_text())["sampling"]   # tuned on the public leaderboard
    assert sampling["settings"] == 5 and set(sampling["sampling"]) == {"truncation", "standing_stats", "class_balance",
                                                                        "ema"}
    assert all((working / run / "progress.png").is_file() for run in runs)   # each run's evaluations, charted
    states = [checkpoint.load(working / run / "last.pt") for run in runs]
    assert [state["config"]["seed"] for state in states] == [0, 1]
    assert not torch.equal(next(iter(states[0]["G"].values())), next(iter(states[1]["G"].values())))


def test_the_next_session_continues_both_runs(separate_runs, tmp_path, demo_dir):
    """Session 2 with no weights attached: both runs resume and train on; the choice is by seed order, and says so."""
    first, _, _ = separate_runs
    script = build.build("dcgan", "alice", tmp_path / "kernels", continue_from="alice/dogkit-dcgan") / "script.py"
    small = first["kaggle"] / "input" / COMPETITION_LAYOUTS[0]
    places = sandbox(tmp_path / "second", small, "dcgan", COMPETITION_LAYOUTS[2], script)
    mounted = mount_output(places, first)
    done, report = run_kernel(places, "20m", {**TRAIN, "max_steps": 8}, 2, timeout=900)
    runs = ("run/seed0", "run/seed1")
    stages = check_training_kernel(places, done, report, 2, 8, runs)
    assert [line.split(" from ")[1].split(" (")[0] for line in stages["continue"]] == \
        [str(mounted / run) for run in runs]
    for run in runs:
        rows = [json.loads(line) for line in (places["working"] / run / "metrics.jsonl").read_text().splitlines()]
        starts = [row for row in rows if row.get("event") == "start"]
        assert [(row["step"], row["resumed"]) for row in starts] == [(0, False), (4, True)]
    assert stages["train"][-1] == ("the zip is seed0's: chosen by seed order, not by score: the 2 runs were not all "
                                   "evaluated on one leaderboard (no weights at hand, or no time for them)")
    working = places["working"]
    assert (working / "images.zip").read_bytes() == (working / "run/seed0/images.zip").read_bytes()
    assert not (working / "score.json").exists()


def test_one_ddp_run_does_not_continue_separate_runs(separate_runs, tmp_path):
    first, _, _ = separate_runs
    input_dir = tmp_path / "input"
    mount_output({"kaggle": tmp_path}, first)
    saved = checkpoint.load(first["working"] / "run" / "seed0" / "last.pt")
    dataset = SimpleNamespace(images=np.zeros((1, *saved["image_shape"]), np.uint8), classes=saved["classes"])
    with pytest.raises(UserError, match=r"^continue: alice/dogkit-dcgan's output holds 2 separate runs \(seed0, "
                                        r"seed1\): rebuild with --gpus runs to continue them all$"):
        runtime.continue_stage({"continue": "alice/dogkit-dcgan"}, {"model": "dcgan"}, dataset, input_dir,
                               tmp_path / "run", False, print)


def finished(name, board="public", score=None, evaluation=None, done=True):
    """An outcome of one separate run, as runtime.outcome reads it."""
    return {"name": name, "zip": done, "board": board if evaluation is not None else "", "score": score,
            "evaluation": evaluation, "words": ""}


def test_the_winner_is_the_lowest_mifid_on_one_basis_else_the_first_seed():
    a, b = finished("seed0", score=90.0, evaluation=70.0), finished("seed1", score=80.0, evaluation=75.0)
    assert runtime.pick_winner([a, b]) == (b, "the lowest public MiFID by its zip's score of 2 runs (seed0 90.00, "
                                              "seed1 80.00)")
    unscored = finished("seed1", evaluation=75.0)   # its score was skipped: the evaluations decide, for both
    assert runtime.pick_winner([a, unscored])[0] is a
    failed = finished("seed0", score=10.0, evaluation=10.0, done=False)
    assert runtime.pick_winner([failed, b])[0] is b
    plain = [finished("seed0"), finished("seed1")]
    assert runtime.pick_winner(plain)[0] is plain[0] and "by seed order" in runtime.pick_winner(plain)[1]
    other_board = finished("seed1", board="private", score=1.0, evaluation=1.0)
    assert runtime.pick_winner([a, other_board])[0] is a
    assert runtime.pick_winner([failed]) == (None, "")


def test_biggan_kernel_with_the_data_as_a_dataset(tmp_path, demo_dir):
    """biggan in 1 process, the data at datasets/OWNER/SLUG; attention costs 60 s more in the 10,000 final images
    on a CPU, width 8 another 20 s."""
    places = sandbox(tmp_path, demo_dir, "biggan", COMPETITION_LAYOUTS[1])
    train = {**TRAIN, "max_steps": 6, "attn_g": 0, "attn_d": 0, "g_width": 4, "d_width": 4}
    done, report = run_kernel(places, "6m", train, 1)   # max_steps ends it; the budget only bounds the tail's guess
    check_training_kernel(places, done, report, 1, 6)


def test_the_kernel_stops_at_its_budget(tmp_path, demo_dir):
    """Two DDP processes (gloo; built with --gpus ddp), no max_steps: the budget alone ends training; the zip is
    written inside it."""
    script = build.build("cgan", "alice", tmp_path / "kernels", gpus="ddp") / "script.py"
    places = sandbox(tmp_path, demo_dir, "cgan", script=script)
    budget = 75   # 10,000 cgan images zipped by one thread take 20-60 s on 2 busy cores
    train = {"device": "cpu", "g_width": 8, "d_width": 8, "batch_size": 16, "threads": 1}
    start = time.monotonic()
    done, report = run_kernel(places, f"{budget}s", train, 2)
    wall = time.monotonic() - start
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert report == [], report
    assert check_zip(places["working"] / "images.zip") == []
    assert len(working_files(places)) <= MAX_OUTPUT_FILES
    stages = stage_lines(done.stdout)
    assert "2 process(es) (DDP over gloo)" in stages["preflight"][0] and len(stages["train"]) == 1
    assert wall < budget + 10, f"the kernel took {wall:.0f} s of a {budget} s budget"   # + interpreter start/exit
    rows = [json.loads(line) for line in (places["working"] / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["world_size"] == 2 and rows[-1]["event"] == "end" and rows[-1]["step"] > 0


def test_a_gpu_less_kernel_stops_before_preparing(tmp_path, demo_dir):
    """Pushed without a GPU and not asking for the CPU: one line that says so, exit 1, nothing prepared."""
    places = sandbox(tmp_path, demo_dir, "dcgan")
    done, report = run_kernel(places, "1m", {}, 0, extra_env={"CUDA_VISIBLE_DEVICES": ""}, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    stages = stage_lines(done.stdout)
    assert stages["preflight"][0].startswith("no GPU in this kernel") and '"device": "cpu"' in stages["preflight"][0]
    assert not stages["prepare"] and not stages["weights"]
    assert list(places["tmp"].iterdir()) == [p for p in places["tmp"].glob("dogkit-src-*")]
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
    from kit import train as train_module

    def crash(cfg):
        raise RuntimeError("CUDA error: operation not permitted when stream is capturing\nSearch for ...\n")

    monkeypatch.setattr(train_module, "train", crash)
    failure = runtime.train_here(TrainConfig())
    assert failure == "RuntimeError: CUDA error: operation not permitted when stream is capturing"
    assert "Traceback" in capsys.readouterr().err


def run_in_process(places: dict, monkeypatch, kernel: dict, budget: str, train_options: dict, procs: int):
    """runtime.run in this process, inside the sandbox's folders; (exit status, stage lines, stderr)."""
    monkeypatch.chdir(places["working"])
    monkeypatch.setattr(tempfile, "tempdir", str(places["tmp"]))
    args = runtime.parse_arguments(["--kaggle-root", str(places["kaggle"]), "--budget", budget, "--procs", str(procs),
                                    "--train", json.dumps({**train_options, "threads": 1})])
    threads = torch.get_num_threads()
    try:
        status = runtime.run({"name": "dcgan", "accelerator": "NvidiaTeslaT4", "train": {}, **kernel}, time.time(),
                             args)
    finally:
        torch.set_num_threads(threads)
    return status


def test_bad_input_inside_training_is_one_line_not_a_traceback(tmp_path, demo_dir, monkeypatch, capsys):
    """A budget too small for the end's images: kit.train's UserError is the train line, and no traceback."""
    places = sandbox(tmp_path, demo_dir, "dcgan")
    assert run_in_process(places, monkeypatch, {}, "15s", TRAIN, 1) == 1
    captured = capsys.readouterr()
    stages = stage_lines(captured.out)
    assert re.fullmatch(r"ended early: --budget [\d.]+ leaves no time to train: writing 10000 images needs about "
                        r"\d+ s; raise --budget or lower --n-images", stages["train"][-1]), stages["train"]
    assert stages["zip"] == ["no checkpoint was written, so there is nothing to sample from (exit status 1)"]
    assert "Traceback" not in captured.err + captured.out


def bad_input_rank(rank, world, port, cfg):
    """A rank whose training stops on bad input at once (a data path that holds nothing)."""
    runtime.run_rank(rank, world, port, cfg)


def test_bad_input_in_a_training_process_is_one_line_and_no_retry(tmp_path, capfd):
    cfg = TrainConfig(data="", out=str(tmp_path / "run"), device="cpu", threads=1)
    assert runtime.train_stage(cfg, 2, time.time() + 120, 0, print) == runtime.STOPPED_ON_ERROR
    captured = capfd.readouterr()
    assert "error: process 0: no --data given: pass a cache made by `kit prepare`" in captured.err
    assert "Traceback" not in captured.err and "fallback" not in captured.out   # bad input: no retry in 1 process


def nccl_fails_rank(rank, world, port, cfg):
    """A rank that cannot start, as when NCCL cannot initialise on the kernel's GPUs."""
    raise RuntimeError("NCCL error in: ProcessGroupNCCL.cpp:1970, unhandled system error (run with NCCL_DEBUG=INFO)")


def test_processes_that_cannot_start_are_replaced_by_one(tmp_path, demo_dir, monkeypatch, capsys):
    """The injected start failure: both ranks die before a step, one process trains instead, the zip is valid."""
    places = sandbox(tmp_path, demo_dir, "dcgan")
    monkeypatch.setattr(runtime, "train_ranks", functools.partial(runtime.train_ranks, target=nccl_fails_rank))
    assert run_in_process(places, monkeypatch, {}, "3m", {**TRAIN, "max_steps": 3}, 2) == 0
    stages = stage_lines(capsys.readouterr().out)
    fallback = [line for line in stages["train"] if line.startswith("fallback:")]
    assert len(fallback) == 1 and re.fullmatch(r"fallback: the 2 processes ended before training \(-- Process \d "
                                               r"terminated with the following error: .*unhandled system error .*\); "
                                               r"training again in 1 process for the \d+ s left", fallback[0]), fallback
    assert not any("ended early" in line for line in stages["train"]) and " passes;" in stages["check"][-1]
    assert checkpoint.load(places["working"] / "run" / "last.pt")["step"] == 3
    assert check_zip(places["working"] / "images.zip") == []
