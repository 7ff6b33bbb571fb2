"""What runs inside a Kaggle kernel: preflight, find the data, prepare it, train (one process per GPU), zip, check.

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
KERNEL_BUDGET = "8h40m"    # Kaggle stops a kernel at 9 h; the tail (10k images + zip) is inside this
CHECK_RESERVE_S = 10.0     # kept back from training for the final check of images.zip
JOIN_POLL_S = 2.0          # how often the parent looks at its training processes
DATA_NAMES = {"all-dogs.zip": "images", "all-dogs": "images", "annotation.zip": "annotations",
              "annotation": "annotations"}
HARDWARE_NOTE = ("GPU T4 x2 (NvidiaTeslaT4, sm_75): fp16 autocast with a grad scaler, two DDP processes; "
                 "L4 (NvidiaL4, sm_89): bf16, one process; the P100 (NvidiaTeslaP100, sm_60) is refused: "
                 "Kaggle's torch has no sm_60 kernels, so its first CUDA op fails")


class Log:
    """Lines for the kernel's log, each stamped with the seconds since the script started."""

    def __init__(self, start: float):
        self.start = start

    def __call__(self, line: str) -> None:
        print(f"[{time.time() - self.start:7.1f} s] {line}", flush=True)


def find_inputs(input_dir: Path, max_depth=4) -> dict:
    """{"images": path, "annotations": path} of the shallowest all-dogs(.zip) and Annotation(.zip) under input_dir."""
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


def parse_arguments(argv) -> argparse.Namespace:
    """The kernel's options: flags, or the DOGKIT_* variables a CI run sets."""
    parser = argparse.ArgumentParser(description="dogkit Kaggle kernel")
    parser.add_argument("--kaggle-root", default=os.environ.get("DOGKIT_KAGGLE_ROOT", "/kaggle"))
    parser.add_argument("--budget", default=os.environ.get("DOGKIT_BUDGET", KERNEL_BUDGET),
                        help="whole-kernel wall-clock limit, counted from the script's start")
    parser.add_argument("--train", default=os.environ.get("DOGKIT_TRAIN", "{}"),
                        help='JSON of TrainConfig fields overriding the kernel\'s, e.g. \'{"device": "cpu"}\'')
    parser.add_argument("--procs", default=os.environ.get("DOGKIT_PROCS", "0"),
                        help="training processes (0: one per usable GPU); on the CPU N > 1 runs DDP over gloo")
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
        return run(kernel, start, parse_arguments(argv))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2


def run(kernel: dict, start: float, args) -> int:
    """Preflight, prepare, train, zip, check; 0 when working/images.zip passes the check."""
    from kit.config import parse_duration
    log = Log(start)
    budget = parse_duration(args.budget)
    options = {**kernel["train"], **train_options(args.train)}
    log(f"dogkit kernel {kernel['name']}: Python {sys.version.split()[0]}, built for {kernel['accelerator']}, "
        f"budget {budget:.0f} s. {HARDWARE_NOTE}")
    facts = preflight.read_facts(options.get("device", "auto"), options.get("precision", "auto"),
                                 process_count(args.procs), kernel["name"])
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

    work = Path(tempfile.gettempdir())
    cache_path = prepare(Path(args.kaggle_root) / "input", work, log)
    cfg = run_config(options, decision, work, budget - (time.time() - start) - CHECK_RESERVE_S, log)
    last = Path(cfg.out) / "last.pt"
    failure = train_stage(cfg, decision.procs, start + budget - CHECK_RESERVE_S, log)
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
    early = f", but it holds step {step}'s images: training ended early (above)" if failure else ""
    log(f"check: {zip_path} {'REJECTED' if problems else 'passes'}{early}; the kernel took "
        f"{time.time() - start:.0f} s of its {budget:.0f} s budget")
    return 1 if problems else 0


def prepare(input_dir: Path, work: Path, log) -> Path:
    """Find the competition's archives and prepare them into TMPDIR/dogkit-cache.npz; returns the cache's path."""
    from kit.data.cache import prepare as prepare_cache
    t = time.time()
    inputs = find_inputs(input_dir)
    log(f"prepare: {', '.join(f'{kind} {path}' for kind, path in inputs.items())}")
    cache_path = work / "dogkit-cache.npz"
    dataset = prepare_cache(link_inputs(inputs, work / "dogkit-data"), out=cache_path, force=True)
    log(f"prepare: {len(dataset.labels)} crops of {len(dataset.classes)} breeds in {time.time() - t:.0f} s "
        f"-> {cache_path}")
    return cache_path


def run_config(options: dict, decision, work: Path, seconds: float, log):
    """The TrainConfig of this kernel, with its per-process batch and learning rates stated in the log."""
    from kit.config import TrainConfig, asdict, for_device, from_dict
    values = {**asdict(TrainConfig()), **options, "data": str(work / "dogkit-cache.npz"), "out": str(work / "run"),
              "budget": f"{seconds:.1f}", "zip": str(Path.cwd() / "images.zip"), "force": True}
    if decision.device == "cpu" and decision.procs > 1 and not values["threads"]:
        values["threads"] = max(1, (os.cpu_count() or 1) // decision.procs)   # the cores shared out, not oversubscribed
    cfg = from_dict(values)
    shown = for_device(cfg, decision.device)
    log(f"train: {cfg.model}, loss {shown.loss}, {decision.procs} process(es) on {decision.device}, batch "
        f"{shown.batch_size} per process ({shown.batch_size * decision.procs} images a step), lr G {shown.lr_g:g} "
        f"D {shown.lr_d:g} in every process (DDP averages the gradients), {seconds:.0f} s left for training and "
        f"the {cfg.n_images} final images")
    return cfg


def train_stage(cfg, procs: int, deadline: float, log) -> str:
    """Train; "" when it finished, else why it stopped. Ranks dead before a trained checkpoint: one process retries."""
    shutil.rmtree(cfg.out, ignore_errors=True)   # a checkpoint left from another run must not become the zip
    if procs == 1:
        return train_here(cfg)
    failure = train_ranks(cfg, procs, deadline)
    if not failure or checkpoint_step(Path(cfg.out) / "last.pt") > 0:
        return failure
    left = deadline - time.time()   # an old torch's DDP or an untested NCCL must not cost the whole run
    log(f"train: the {procs} processes ended before a trained checkpoint ({failure}); training again in 1 process "
        f"for the {left:.0f} s left")
    shutil.rmtree(cfg.out, ignore_errors=True)
    return train_here(dataclasses.replace(cfg, budget=f"{left:.1f}"))


def checkpoint_step(last: Path) -> int:
    """The step of the checkpoint `last`; 0 when there is none."""
    from kit import checkpoint
    return checkpoint.load(last)["step"] if last.is_file() else 0


def train_here(cfg) -> str:
    """Train in this process; "" when it finished, else why it stopped (the traceback goes to the log)."""
    from kit.train import train
    try:
        train(cfg)
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
    """One training process, with the variables torchrun would set (kit.train reads them)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world))
    from kit.train import train
    train(cfg)


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
        print(e, file=sys.stderr, flush=True)
        lines = [line for line in str(e).splitlines() if line.strip()]
        return " ".join(dict.fromkeys(lines[:1] + lines[-1:]))   # "process 1 terminated ..." and the error's end
    return ""


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
