"""What runs inside a Kaggle kernel: preflight, find the data, prepare it, continue the earlier runs or start
them, train (one process per GPU: one DDP run, or separate runs of which the best is submitted), zip, check; or, in
the scoring kernel, score a zip with both leaderboards' networks.

The generated kernels/NAME/script.py writes the inlined kit/ to a temporary folder and calls `main`. Nothing here
talks to Kaggle's API: building and pushing live in kit.kernel.build, which never ships inside a kernel.
"""
import argparse
import dataclasses
import json
import os
import shutil
import socket
import sys
import tempfile
import time
import traceback
from pathlib import Path

from kit.errors import UserError
from kit.kernel import preflight

COMPETITION = "generative-dog-images"
KERNEL_BUDGET = "8h40m"    # the competition's kernels stopped at 9 h; the tail (10k images + zip) is inside this
RUN_FOLDER = "run"         # in /kaggle/working, so it survives the session: last.pt, best.pt, metrics, samples
CARRIED = ("last.pt", "best.pt", "metrics.jsonl")   # what a continued run takes from the earlier kernel's run
MAX_DEPTH = 4              # input/notebooks/OWNER/SLUG/run: how deep Kaggle mounts sources today, and their folders
SCORE_N = 10000            # images the scoring kernel scores: the leaderboards' count
USER_ERROR_EXIT = 2        # a training process that stopped on a UserError exits with this (its line is in the log)
STOPPED_ON_ERROR = "a training process stopped on bad input (its error line is above)"
CHECK_RESERVE_S = 10.0     # kept back from training for the final check of images.zip
EXIT_GRACE_S = 5.0         # training's budget ends this long before its processes are stopped: time to exit
JOIN_POLL_S = 2.0          # how often the parent looks at its training processes
DATA_NAMES = {"all-dogs.zip": "images", "all-dogs": "images", "annotation.zip": "annotations",
              "annotation": "annotations"}
HARDWARE_NOTE = ("GPU T4 x2 (NvidiaTeslaT4, sm_75): fp16 autocast with a grad scaler, two processes; "
                 "L4 (NvidiaL4, sm_89): bf16, one process; the P100 (NvidiaTeslaP100, sm_60) is refused: "
                 "Kaggle's torch has no sm_60 kernels, so its first CUDA op fails")
# what a kernel does with several GPUs (kit kernel build --gpus)
GPU_MODES = {"runs": "separate runs, one per GPU, each its own seed in one graphed process; the zip of the run "
                     "with the lowest estimated MiFID is submitted",
             "ddp": "one run, one DDP process per GPU averaging their gradients (eager: no CUDA graph)"}


class Log:
    """Lines for the kernel's log, each stamped with the seconds since the script started."""

    def __init__(self, start: float):
        self.start = start

    def __call__(self, line: str) -> None:
        print(f"[{time.time() - self.start:7.1f} s] {line}", flush=True)


def find_inputs(input_dir: Path, max_depth=MAX_DEPTH) -> dict:
    """{"images": path, "annotations": path} of the shallowest all-dogs(.zip) and Annotation(.zip) under input_dir,
    mounted as Kaggle does today (competitions/SLUG, datasets/OWNER/SLUG) or as it did (SLUG)."""
    found = {}
    for root, dirs, files in os.walk(input_dir):
        depth = len(Path(root).relative_to(input_dir).parts)
        for entry in sorted(dirs + files):
            kind = DATA_NAMES.get(entry.lower())
            if kind:
                candidate = (depth, entry.lower().endswith(".zip"), Path(root) / entry)
                found[kind] = min(found.get(kind, candidate), candidate)
        dirs[:] = sorted(d for d in dirs if d.lower() not in DATA_NAMES and depth < max_depth)
    if "images" not in found:
        raise UserError(f"no all-dogs.zip or all-dogs/ under {input_dir}: add the competition "
                        f"'{COMPETITION}' to the kernel's data (or set DOGKIT_KAGGLE_ROOT)")
    return {kind: innermost(path) for kind, (_, _, path) in found.items()}


def find_in_source(input_dir: Path, source: str, name: str, max_depth=MAX_DEPTH + 1) -> Path:
    """The shallowest file `name` under the folder Kaggle mounted the source OWNER/SLUG at (any depth it uses)."""
    slug = source.split("/")[-1]
    found = []
    for root, dirs, files in os.walk(input_dir):
        depth = len(Path(root).relative_to(input_dir).parts)
        if name in files and slug in Path(root).relative_to(input_dir).parts:
            found.append((depth, str(Path(root) / name)))
        dirs[:] = sorted(dirs) if depth < max_depth else []
    if not found:
        raise UserError(f"no {name} from {source} under {input_dir}: attach that kernel's output (or dataset) to this "
                        f"kernel, and check that it wrote {name}")
    return Path(min(found)[1])


def innermost(path: Path) -> Path:
    """all-dogs/all-dogs -> the inner folder (Kaggle's dataset folders wrap the real ones)."""
    while path.is_dir():
        inner = [p for p in path.iterdir() if p.name.lower() == path.name.lower()]
        if len(inner) != 1:
            break
        path = inner[0]
    return path


def link_inputs(inputs: dict, folder: Path) -> Path:
    """A folder of symlinks named as kit.data's readers expect: all-dogs(.zip) beside Annotation(.zip)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for kind, path in inputs.items():
        name = {"images": "all-dogs", "annotations": "Annotation"}[kind] + (".zip" if path.is_file() else "")
        (folder / name).symlink_to(path.resolve())
    return folder


def parse_arguments(argv, budget=KERNEL_BUDGET) -> argparse.Namespace:
    """The kernel's options: flags, or the DOGKIT_* variables a CI run sets; `budget` is the one it was built with."""
    parser = argparse.ArgumentParser(description="dogkit Kaggle kernel")
    parser.add_argument("--kaggle-root", default=os.environ.get("DOGKIT_KAGGLE_ROOT", "/kaggle"))
    parser.add_argument("--budget", default=os.environ.get("DOGKIT_BUDGET", budget),
                        help="whole-kernel wall-clock limit, counted from the script's start")
    parser.add_argument("--train", default=os.environ.get("DOGKIT_TRAIN", "{}"),
                        help='JSON of TrainConfig fields overriding the kernel\'s, e.g. \'{"device": "cpu"}\'')
    parser.add_argument("--procs", default=os.environ.get("DOGKIT_PROCS", "0"),
                        help="training processes (0: one per usable GPU); on the CPU N > 1 runs DDP over gloo")
    parser.add_argument("--score-n", type=int, default=int(os.environ.get("DOGKIT_SCORE_N", SCORE_N)),
                        help="scoring kernel: images of the zip to score, 0.png upward (the leaderboards: 10000)")
    return parser.parse_args(argv)


def train_options(text: str) -> dict:
    """The --train / DOGKIT_TRAIN JSON object, checked against TrainConfig's fields."""
    from kit.config import TrainConfig, asdict
    try:
        options = json.loads(text)
    except ValueError:
        options = None
    if not isinstance(options, dict):
        raise UserError(f"--train / DOGKIT_TRAIN {text!r} is not a JSON object: "
                        f"write it like '{{\"device\": \"cpu\"}}'")
    unknown = set(options) - set(asdict(TrainConfig()))
    if unknown:
        raise UserError(f"--train / DOGKIT_TRAIN names unknown TrainConfig fields {sorted(unknown)}")
    return options


def process_count(text: str) -> int:
    """--procs / DOGKIT_PROCS as a count (0: decided by preflight)."""
    if not text.isdigit():
        raise UserError(f"--procs / DOGKIT_PROCS {text!r} is not a whole number of processes")
    return int(text)


def main(kernel: dict, start: float, argv=()) -> int:
    """The kernel's job, from the script's start time; bad input is one `error:` line and exit status 2."""
    try:
        return run(kernel, start, parse_arguments(argv, kernel.get("budget", KERNEL_BUDGET)))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2


def run(kernel: dict, start: float, args) -> int:
    """Preflight, then the kernel's job: train (or continue) and zip, or score; 0 when it ends as it should."""
    from kit.config import parse_duration
    log = Log(start)
    budget = parse_duration(args.budget)
    options = {**kernel["train"], **train_options(args.train)}
    log(f"dogkit kernel {kernel['name']}: Python {sys.version.split()[0]}, built for {kernel['accelerator']}, "
        f"budget {budget:.0f} s. {HARDWARE_NOTE}")
    separate = kernel.get("gpus", "ddp") == "runs"
    facts = preflight.read_facts(options.get("device", "auto"), options.get("precision", "auto"),
                                 process_count(args.procs), kernel["name"], separate)
    decision = preflight.decide(facts)
    log(decision.message)
    if decision.go and decision.device == "cuda" and os.environ.get(preflight.FAKE_FACTS_ENV):
        log(f"preflight: facts from ${preflight.FAKE_FACTS_ENV}: stopping after the decision")
        return 0
    if decision.go and decision.device == "cuda":
        failure = preflight.probe(decision.gpus, kernel["name"])
        if failure:
            decision = preflight.Decision(False, "cuda", 0, failure)
            log(failure)
    if not decision.go:
        log("preflight: stopped before preparing anything (exit status 1)")
        return 1

    input_dir, work, working = Path(args.kaggle_root) / "input", Path(tempfile.gettempdir()), Path.cwd()
    if kernel.get("zip"):
        return score_stage(kernel["zip"], input_dir, work, working, decision.device, args.score_n, log)
    weights_stage(input_dir, log)
    dataset = prepare(input_dir, work, log)
    run_dir = working / RUN_FOLDER
    shutil.rmtree(run_dir, ignore_errors=True)   # a checkpoint left from another run must not become the zip
    carried = continue_stage(kernel, options, dataset, input_dir, run_dir, separate, log) if kernel.get("continue") \
        else []
    runs = carried or new_runs(run_dir, decision.procs if separate else 1, options)   # (folder, step, seed) each
    folders = [folder for folder, _, _ in runs]
    procs = len(runs) if separate else decision.procs
    deadline = start + budget - CHECK_RESERVE_S
    cfg = run_config(options, decision.device, procs, separate, work, run_dir, bool(carried), start,
                     deadline - EXIT_GRACE_S, log)
    if len(runs) > 1:
        failure, last = train_separately(cfg, runs, decision.gpus, deadline, log)
    else:
        failure, last = train_stage(cfg, procs, deadline, runs[0][1], log), run_dir / "last.pt"
    zip_path = Path(cfg.zip)
    if failure:
        log(f"train: ended early: {failure}")
        if not last.is_file():
            log("zip: no checkpoint was written, so there is nothing to sample from (exit status 1)")
            return 1
        step = zip_from_checkpoint(last, cfg, decision.device)
        log(f"zip: wrote {cfg.n_images} images to {zip_path} from {last} (step {step}) after the failure above")
    else:
        log(f"zip: training wrote {zip_path} ({zip_path.stat().st_size / 2**20:.1f} MiB)")
    from kit.package import check_zip
    problems = check_zip(zip_path)
    for line in problems:
        log(f"check: problem: {line}")
    files = sum(len(names) for _, _, names in os.walk(working))
    kept = ", ".join(str((folder / "last.pt").relative_to(working)) for folder in folders)
    log(f"check: {working} holds {files} files (Kaggle keeps at most 500), {kept} among them for the next session "
        f"(kit kernel build {kernel['name']} --continue OWNER/SLUG)")
    early = f", but it holds step {step}'s images: training ended early (above)" if failure else ""
    log(f"check: {zip_path} {'REJECTED' if problems else 'passes'}{early}; the kernel took "
        f"{time.time() - start:.0f} s of its {budget:.0f} s budget")
    return 1 if problems else 0


def weights_stage(input_dir: Path, log, use="training evaluates with them",
                  without="no weights: training and zipping without evaluation") -> dict:
    """The leaderboard networks' weights found under input_dir (kit.weights checks and exports them), in one line."""
    from kit.weights import export_found
    found = export_found(input_dir)
    names = [f"{board} ({path})" for board, path in found.items() if path]
    log(f"weights: {', '.join(names)}: {use}" if names else f"weights: {without}")
    return found


def prepare(input_dir: Path, work: Path, log):
    """Find the competition's archives and prepare them into TMPDIR/dogkit-cache.npz on every core; the Dataset."""
    from kit.data.cache import prepare as prepare_cache
    t = time.time()
    inputs = find_inputs(input_dir)
    workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    log(f"prepare: {', '.join(f'{kind} {path}' for kind, path in inputs.items())}, {workers} processes")
    cache_path = work / "dogkit-cache.npz"
    dataset = prepare_cache(link_inputs(inputs, work / "dogkit-data"), out=cache_path, workers=workers, force=True)
    log(f"prepare: {len(dataset.labels)} crops of {len(dataset.classes)} breeds in {time.time() - t:.0f} s "
        f"-> {cache_path}")
    return dataset


def continue_stage(kernel: dict, options: dict, dataset, input_dir: Path, run_dir: Path, separate: bool,
                   log) -> list:
    """Carry the earlier kernel's runs (last.pt, best.pt, metrics.jsonl of each) into run_dir, or run_dir/NAME for
    each of separate runs; [(folder, step it resumes at, seed)], or [] when they are of another model or other data
    and the build consented to a fresh start (else a one-line refusal)."""
    from kit import checkpoint
    source = kernel["continue"]
    found = earlier_runs(input_dir, source)
    if len(found) > 1 and not separate:
        raise UserError(f"continue: {source}'s output holds {len(found)} separate runs "
                        f"({', '.join(folder.name for folder in found)}): rebuild with --gpus runs to continue them "
                        f"all")
    states = [checkpoint.load(folder / "last.pt") for folder in found]
    for folder, state in zip(found, states):
        differences = checkpoint_differences(state, options, dataset)
        if differences:
            why = f"{folder / 'last.pt'} is {', '.join(differences)}"
            if not kernel.get("restart_if_different"):
                raise UserError(f"continue: {why}: rebuild with --continue of a run of this model and data, or add "
                                f"--restart-if-different to start afresh")
            log(f"continue: {why}: starting afresh, as built with --restart-if-different")
            return []
    carried = []
    for folder, state in zip(found, states):
        into = run_dir / folder.name if len(found) > 1 else run_dir
        into.mkdir(parents=True)
        names = [name for name in CARRIED if (folder / name).is_file()]
        for name in names:
            shutil.copyfile(folder / name, into / name)
        log(f"continue: resuming {source}'s run at step {state['step']} ({state.get('elapsed', 0) / 3600:.2f} h "
            f"trained before) from {folder} ({', '.join(names)}); this session's budget is its own")
        carried.append((into, state["step"], state["config"]["seed"]))
    return carried


def earlier_runs(input_dir: Path, source: str) -> list:
    """The run folders of an earlier kernel's output: the one holding its shallowest last.pt, or, when that is one
    of separate runs (run/NAME/last.pt), every run/NAME/ beside it that holds a last.pt."""
    last = find_in_source(input_dir, source, "last.pt")
    runs = last.parent.parent
    if last.parent.name != RUN_FOLDER and runs.name == RUN_FOLDER:
        return sorted(path.parent for path in runs.glob("*/last.pt"))
    return [last.parent]


def new_runs(run_dir: Path, count: int, options: dict) -> list:
    """[(folder, 0, seed)] of new runs: run_dir for one, run_dir/seedN for each of separate runs, their seeds counted
    up from the kernel's."""
    from kit.config import TrainConfig
    seed = options.get("seed", TrainConfig().seed)
    return [(run_dir, 0, seed)] if count == 1 else [(run_dir / f"seed{seed + i}", 0, seed + i) for i in range(count)]


def checkpoint_differences(state: dict, options: dict, dataset) -> list:
    """How a checkpoint differs from the kernel's model and data (empty when this kernel can resume it)."""
    from kit.config import UNSET, TrainConfig
    from kit.train import RUN_FIELDS
    saved = state["config"]
    asked = {"model": TrainConfig().model, **options}
    differences = [f"{key} {saved.get(key)!r} where this kernel has {value!r}" for key, value in asked.items()
                   if key not in RUN_FIELDS and value != UNSET.get(key, 0) and saved.get(key) != value]
    shape = tuple(dataset.images.shape[1:])
    if tuple(state["image_shape"]) != shape or list(state["classes"]) != list(dataset.classes):
        differences.append(f"trained on other data ({len(state['classes'])} breeds of {tuple(state['image_shape'])} "
                           f"where this kernel has {len(dataset.classes)} of {shape})")
    return differences


def score_stage(source: str, input_dir: Path, work: Path, working: Path, device: str, n: int, log) -> int:
    """The scoring kernel: the zip from `source` scored against the competition's images; one line per leaderboard."""
    from kit.metrics.evaluate import score_zip
    zip_path = find_in_source(input_dir, source, "images.zip")
    real = link_inputs(find_inputs(input_dir), work / "dogkit-data")
    weights_stage(input_dir, log, "scoring with them", "no weights dataset attached: scoring with what the kernel can "
                                                       "find or download")
    log(f"score: {n} images of {zip_path} against {real} on {device}")
    results = score_zip(zip_path, real, n=n, device=device, report=working)
    for board, result in results.items():
        log(f"score: {board}: FID {result['fid']:.3f}, d {result['distance']:.4f} (threshold "
            f"{result['threshold']:g}), MiFID {result['mifid']:.3f} -> {working / 'score.json'}")
    return 0


def run_config(options: dict, device: str, procs: int, separate: bool, work: Path, run_dir: Path, resume: bool,
               start: float, end: float, log):
    """The TrainConfig of this kernel (of each run, when separate), its budget from the kernel's `start` to `end`
    (wall-clock times), with its per-process batch and learning rates stated in the log."""
    from kit.config import TrainConfig, asdict, for_device, from_dict
    values = {**asdict(TrainConfig()), **options, "data": str(work / "dogkit-cache.npz"), "out": str(run_dir),
              "budget": f"{end - start:.1f}", "budget_from": start, "zip": str(run_dir.parent / "images.zip"),
              "resume": resume, "force": True}
    if device == "cpu" and procs > 1 and not values["threads"]:
        values["threads"] = max(1, (os.cpu_count() or 1) // procs)   # the cores shared out, not oversubscribed
    cfg = from_dict(values)
    shown = for_device(cfg, device)
    how = (f"{procs} separate runs on {device}, batch {shown.batch_size} each" if separate and procs > 1 else
           f"{procs} process(es) on {device}, batch {shown.batch_size} per process ({shown.batch_size * procs} images "
           f"a step)")
    rates = "in every run" if separate else "in every process (DDP averages the gradients)"
    log(f"train: {cfg.model}, loss {shown.loss}, {how}, lr G {shown.lr_g:g} D {shown.lr_d:g} {rates}, "
        f"{end - time.time():.0f} s left for training and the {cfg.n_images} final images")
    return cfg


def train_stage(cfg, procs: int, deadline: float, start_step: int, log) -> str:
    """Train; "" when it finished, else why it stopped. Ranks dead before training past start_step: one process
    retries (from the carried checkpoint when continuing)."""
    if procs == 1:
        return train_here(cfg)
    failure = train_ranks(cfg, procs, deadline)
    if not failure or failure == STOPPED_ON_ERROR or checkpoint_step(Path(cfg.out) / "last.pt") > start_step:
        return failure
    left = deadline - EXIT_GRACE_S - time.time()                        # an old torch's DDP or an untested NCCL
    if left < 1:                                                          # must not cost the whole run
        return f"{failure}; no time was left to train again in 1 process"
    log(f"train: fallback: the {procs} processes ended before training ({failure}); training again in 1 process "
        f"for the {left:.0f} s left")
    if not cfg.resume:
        shutil.rmtree(cfg.out, ignore_errors=True)
    return train_here(cfg)


def checkpoint_step(last: Path) -> int:
    """The step of the checkpoint `last`; 0 when there is none."""
    from kit import checkpoint
    return checkpoint.load(last)["step"] if last.is_file() else 0


def train_here(cfg) -> str:
    """Train in this process; "" when it finished, else why it stopped (bad input in one line; any other error's
    traceback goes to the log)."""
    from kit.train import train
    try:
        train(cfg)
    except UserError as e:
        return str(e)
    except Exception as e:   # noqa: BLE001 - whatever stopped it, the last checkpoint still becomes the zip
        traceback.print_exc()
        return f"{type(e).__name__}: {first_line(e)}"
    return ""


def first_line(error) -> str:
    """The first line of an exception's message (CUDA errors run to five)."""
    return (str(error).strip().splitlines() or [""])[0]


def free_port() -> int:
    """A TCP port nobody listens on, for the processes' rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_rank(rank: int, world: int, port: int, cfg) -> None:
    """One training process, with the variables torchrun would set (kit.train reads them); bad input is one line."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world))
    from kit.train import train
    try:
        train(cfg)
    except UserError as e:
        print(f"error: process {rank}: {e}", file=sys.stderr, flush=True)
        sys.exit(USER_ERROR_EXIT)


def train_ranks(cfg, procs: int, deadline: float, target=run_rank) -> str:
    """Train with `procs` spawned processes; "" when all finished, else why the run ended (one dead rank ends it)."""
    import torch.multiprocessing as mp
    context = mp.start_processes(target, args=(procs, free_port(), cfg), nprocs=procs, join=False,
                                 start_method="spawn")
    try:
        while not context.join(timeout=JOIN_POLL_S):
            if time.time() > deadline:
                for process in context.processes:
                    process.kill()
                    process.join()
                return "the training processes ran past the budget and were stopped"
    except Exception as e:   # noqa: BLE001 - ProcessRaisedException / ProcessExitedException: the others are stopped
        if getattr(e, "exit_code", None) == USER_ERROR_EXIT:
            return STOPPED_ON_ERROR
        print(e, file=sys.stderr, flush=True)
        lines = [line for line in str(e).splitlines() if line.strip()]
        return " ".join(dict.fromkeys(lines[:1] + lines[-1:]))   # "process 1 terminated ..." and the error's end
    return ""


def train_separately(cfg, runs: list, gpus: tuple, deadline: float, log) -> tuple:
    """Train each (folder, step, seed) of `runs` alone in a process (on GPU i of `gpus`, or the CPU); copy the
    winner's images.zip (and score.json) beside the run folder; ("" or why no run wrote a zip, the last.pt to zip
    from when none did)."""
    import multiprocessing
    context = multiprocessing.get_context("spawn")
    configs = [dataclasses.replace(cfg, out=str(folder), zip=str(folder / "images.zip"), seed=seed)
               for folder, _, seed in runs]
    started = []
    for i, run in enumerate(configs):
        receive, send = context.Pipe(duplex=False)
        gpu = str(gpus[i % len(gpus)]) if gpus else ""
        process = context.Process(target=train_alone, args=(run, gpu, send))
        process.start()
        started.append((process, receive))
    while any(process.is_alive() for process, _ in started) and time.time() < deadline:
        time.sleep(JOIN_POLL_S)
    failures = [ended(process, receive) for process, receive in started]
    outcomes = [outcome(run, failure) for run, failure in zip(configs, failures)]
    for run, found in zip(configs, outcomes):
        log(f"train: {Path(run.out).relative_to(Path(cfg.out).parent)}: {found['words']}")
    winner, basis = pick_winner(outcomes)
    if winner is None:
        lasts = [Path(run.out) / "last.pt" for run in configs]
        last = max(lasts, key=checkpoint_step)
        return "; ".join(f"{Path(run.out).name}: {failure}" for run, failure in zip(configs, failures)), last
    chosen = configs[outcomes.index(winner)]
    log(f"train: the zip is {winner['name']}'s: {basis}")
    shutil.copyfile(chosen.zip, cfg.zip)
    score = Path(chosen.out) / "score.json"
    if score.is_file():
        shutil.copyfile(score, Path(cfg.zip).parent / "score.json")
    return "", Path(chosen.out) / "last.pt"


def train_alone(cfg, gpu: str, send) -> None:
    """One of separate runs, in a process of its own that sees only its GPU; sends "" or why it stopped."""
    if gpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu   # before CUDA starts in this process: its GPU is cuda:0
    send.send(train_here(cfg))


def ended(process, receive) -> str:
    """How a separate run's process ended: "" when it finished, else why (stopped at the deadline if still alive)."""
    if process.is_alive():
        process.kill()
        process.join()
        return "it ran past the budget and was stopped"
    process.join()
    if receive.poll():
        return receive.recv()
    return f"its process died with exit status {process.exitcode}"


def outcome(run, failure: str) -> dict:
    """What one of separate runs left: whether its zip was written, its estimated MiFID on the selected leaderboard
    (from the zip's score.json, else from the selected checkpoint's evaluation) and the words for the log."""
    out = Path(run.out)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()] \
        if (out / "metrics.jsonl").is_file() else []
    end = rows[-1] if rows and rows[-1].get("event") == "end" and not failure else None
    found = {"name": out.name, "zip": end is not None and Path(run.zip).is_file(), "board": "", "score": None,
             "evaluation": None, "words": f"seed {run.seed}: " + (f"ended early: {failure}" if failure else
                                                                    "wrote no zip")}
    if not found["zip"]:
        return found
    found["words"] = f"seed {run.seed}, {end['step']} steps, zip from step {end['zip_step']}"
    selected = end.get("selected")
    if not selected:
        found["words"] += ", not evaluated (no leaderboard weights, or no time for them)"
        return found
    board = found["board"] = selected["leaderboard"]
    found["evaluation"] = selected["mifid"]
    found["words"] += f"; {board} MiFID {selected['mifid']:.2f} at that step's evaluation"
    score = out / "score.json"
    if score.is_file():
        result = json.loads(score.read_text())[board]
        found["score"] = result["mifid"]
        found["words"] += (f", {result['mifid']:.2f} on {result['n_generated']} images of its zip (FID "
                           f"{result['fid']:.2f}, d {result['distance']:.4f})")
    return found


def pick_winner(outcomes: list) -> tuple:
    """(the outcome whose zip is submitted, the words that say why), or (None, "") when no run wrote a zip: the lowest
    MiFID on the selected leaderboard, from the zips' scores when every zip has one, else from the selected
    evaluations; by seed order when the runs were not all scored on one leaderboard."""
    done = [found for found in outcomes if found["zip"]]
    if not done:
        return None, ""
    boards = {found["board"] for found in done}
    for key, what in (("score", "its zip's score"), ("evaluation", "its selected checkpoint's evaluation")):
        if boards != {""} and len(boards) == 1 and all(found[key] is not None for found in done):
            winner = min(done, key=lambda found: found[key])
            figures = ", ".join(f"{found['name']} {found[key]:.2f}" for found in done)
            return winner, f"the lowest {boards.pop()} MiFID by {what} of {len(done)} runs ({figures})"
    return done[0], (f"chosen by seed order, not by score: the {len(done)} runs were not all evaluated on one "
                     f"leaderboard (no weights at hand, or no time for them)")


def zip_from_checkpoint(last: Path, cfg, device: str) -> int:
    """Write cfg.n_images images from the checkpoint `last` to cfg.zip, sampling as training's end does."""
    from kit import checkpoint
    from kit.package import write_zip
    from kit.sample import generate, sampling_options
    state = checkpoint.load(last)
    images, _ = generate(state, cfg.n_images, seed=cfg.seed, truncation=cfg.truncation, device=device,
                         **sampling_options(state))
    write_zip(images, cfg.zip, force=True)
    return state["step"]
