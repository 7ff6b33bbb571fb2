"""`python -m kit kernel`: build one self-contained script per kernel, push it, follow it, fetch its output.

This module runs on the user's machine only; it is never inlined into a kernel. What a kernel runs is
kit.kernel.runtime and the kit modules it imports, written into the script one raw string per file.
"""
import ast
import csv
import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from kit.errors import UserError
from kit.kernel.runtime import COMPETITION, GPU_MODES, KERNEL_BUDGET, RUN_FOLDER

REPO = Path(__file__).resolve().parent.parent.parent
KERNELS_DIR = REPO / "kernels"
ENTRY_MODULES = ("kit.kernel.runtime",)   # with every kit module it imports, at any depth, and their packages
LEFT_OUT = ("kit.kernel.build", "kit.__main__")   # the push wrappers and the CLI
PLACEHOLDER_USER = "your-kaggle-username"
# name -> TrainConfig overrides; everything else keeps the defaults chosen by bench/quality
KERNELS = {
    "dcgan": {"model": "dcgan"},
    "cgan": {"model": "cgan"},
    "biggan": {"model": "biggan"},
}
SCORE_KERNEL = "score"   # scores an images.zip (--zip) with both leaderboards' networks; never shipped prebuilt
DEFAULT_KERNEL = "biggan"   # what `kernel build` builds when no name is given: the model bench/quality favours
                            # at its longest budget (docs/benchmarks.md, Quality)
DEFAULT_ACCELERATOR = "NvidiaTeslaT4"
# Two T4s train two separate runs by default, not one DDP run, until a GPU measures otherwise (docs/kaggle.md): a
# separate run is one process, so the CUDA graph takes its step, where DDP runs eagerly; DDP's gain, a doubled batch,
# is small for a GAN at batch 64; and submitting the better of two seeds is a known gain, as seeds spread widely
# (bench/results: photo-FID 94.5 and 65.3 for two seeds of one setting).
DEFAULT_GPUS = "runs"
CLI_FLOOR = "1.8.4"   # the first kaggle CLI whose push honours machine_shape (setup.cfg says where that was found)
QUOTA_CLI = "2.2.1"   # the first with `kaggle quota`
SESSION_LIMIT_S = 12 * 3600      # Kaggle stops a session at 12 h today (the competition's kernels at 9 h)
COMPETITION_LIMIT_S = 9 * 3600
KERNEL_OWNED = ("data", "out", "budget", "zip", "resume", "force")   # set by the kernel itself, not by --set
# a kaggle.com address's first part -> where kernel-metadata.json lists that source
SOURCE_KINDS = {"datasets": "dataset_sources", "code": "kernel_sources", "notebooks": "kernel_sources"}
# Kaggle's accelerator ids (kaggle-cli docs/kernels.md, Feb 2026) -> what a dogkit kernel does on them
ACCELERATORS = {
    "NvidiaTeslaT4": "GPU T4 x2 (sm_75, 16 GB each): fp16 with a grad scaler, one process per GPU",
    "NvidiaTeslaT4Highmem": "T4s with more host memory (sm_75): fp16 with a grad scaler, one process per GPU",
    "NvidiaL4": "L4 (sm_89, 24 GB): bf16, one process per GPU",
    "NvidiaL4X1": "one L4 (sm_89, 24 GB): bf16",
    "NvidiaTeslaA100": "A100 (sm_80): bf16, one process per GPU",
    "NvidiaH100": "H100 (sm_90): bf16, one process per GPU",
    "NvidiaRtxPro6000": "RTX PRO 6000 (sm_120): bf16, one process per GPU",
}
REFUSED = {
    "NvidiaTeslaP100": "Kaggle's image ships a torch built without Pascal (sm_60) kernels, so the P100 is allocated "
                       "and the first CUDA op fails with 'no kernel image is available' (Kaggle/kaggle-cli#1151)",
    **{tpu: "the kit trains on CUDA GPUs or the CPU, not on TPUs"
       for tpu in ("TpuV38", "Tpu1VmV38", "TpuV5E8", "TpuV6E8")},
}
SCRIPT_HEAD = '''"""dogkit Kaggle kernel {name!r}: made by `python -m kit kernel build {name}` from kit/; do not edit.

The kit's sources follow, one raw string per file. The script checks each against MANIFEST (SHA-256 of its
UTF-8 text), writes them to a temporary folder and runs kit.kernel.runtime from there.
"""
import hashlib
import os
import sys
import tempfile
import time

START = time.time()
KERNEL = {kernel}
MANIFEST = {{
{manifest}}}
SOURCES = {{}}
'''
SCRIPT_TAIL = '''

def install(sources, manifest):
    """Write the inlined kit/ into a fresh temporary folder, each file checked against the manifest; import it."""
    root = tempfile.mkdtemp(prefix="dogkit-src-")
    for name, digest in manifest.items():
        text = sources[name]
        if hashlib.sha256(text.encode("utf-8")).hexdigest() != digest:
            sys.exit(f"error: {name} does not match its SHA-256 in MANIFEST: this script was edited; rebuild it")
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    sys.path.insert(0, root)


if __name__ == "__main__":
    sys.dont_write_bytecode = True
    install(SOURCES, MANIFEST)
    from kit.kernel.runtime import main
    sys.exit(main(KERNEL, START, sys.argv[1:]))
'''


# ---------------------------------------------------------------- build

def module_file(name: str):
    """kit.x.y -> its source file under the repo, or None when it is not a kit module."""
    base = REPO.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def kit_imports(path: Path) -> set:
    """Every kit module that a source file imports (relative imports too), at any depth of its code."""
    package = path.relative_to(REPO).with_suffix("").parts[:-1]   # kit/models/dcgan.py and kit/models/__init__.py
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) + 1 - node.level] if node.level else ()
            module = ".".join(base + tuple((node.module or "").split(".") if node.module else ()))
            names.add(module)
            names.update(f"{module}.{a.name}" for a in node.names)
    return {n for n in names if n.split(".")[0] == "kit" and module_file(n)}


def inlined_modules() -> dict:
    """Relative path -> source of every kit module a kernel needs (entry modules, their imports, their packages)."""
    todo, seen = list(ENTRY_MODULES), set()
    while todo:
        name = todo.pop()
        if name in seen or name.startswith(LEFT_OUT):
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]   # parent packages
        todo += sorted(kit_imports(module_file(name)))
    files = sorted(module_file(n) for n in seen)
    return {f.relative_to(REPO).as_posix(): f.read_text(encoding="utf-8") for f in files}


def source_block(path: str, text: str) -> str:
    """`SOURCES[path] = r'''text'''`: the file's lines as they are, or a plain literal when no raw one fits."""
    for quote in ("'''", '"""'):
        literal = f"r{quote}{text}{quote}"
        if quote not in text and "\r" not in text and ast.literal_eval(literal) == text:
            return f"\nSOURCES[{path!r}] = {literal}\n"
    return f"\nSOURCES[{path!r}] = {text!r}\n"


def script(name: str, accelerator: str, settings: dict) -> str:
    """The text of kernels/NAME/script.py; `settings` are what the kernel's runtime reads besides its name."""
    sources = inlined_modules()
    kernel = {"name": name, "accelerator": accelerator, **settings}
    manifest = "".join(f"    {path!r}: {hashlib.sha256(text.encode('utf-8')).hexdigest()!r},\n"
                       for path, text in sources.items())
    blocks = "".join(source_block(path, text) for path, text in sources.items())
    return SCRIPT_HEAD.format(name=name, kernel=repr(kernel), manifest=manifest) + blocks + SCRIPT_TAIL


def check_accelerator(accelerator: str, force: bool) -> None:
    """Refuse, in one line, an accelerator a dogkit kernel cannot use (unless force)."""
    if force or accelerator in ACCELERATORS:
        return
    if accelerator in REFUSED:
        raise UserError(f"--accelerator {accelerator} is refused: {REFUSED[accelerator]}; use {DEFAULT_ACCELERATOR} "
                        f"(the default) or NvidiaL4, or pass --force to build it anyway")
    raise UserError(f"--accelerator {accelerator} is not one Kaggle lists ({', '.join(ACCELERATORS)}): check the "
                    f"spelling, or pass --force to build it anyway")


def check_budget(budget: str) -> str:
    """The kernel's --budget, refused in one line when a Kaggle session could not hold it."""
    from kit.config import parse_duration
    if parse_duration(budget) >= SESSION_LIMIT_S:
        raise UserError(f"--budget {budget} does not fit a Kaggle session (12 h, the final images included): "
                        f"use at most 11h40m")
    return budget


def source_entry(text: str, flag: str, default_kind: str) -> tuple:
    """("dataset_sources" or "kernel_sources", "OWNER/SLUG") from OWNER/SLUG, datasets/OWNER/SLUG or code/OWNER/SLUG
    (kaggle.com's addresses); a bare OWNER/SLUG is a `default_kind` ("datasets" or "code")."""
    match = re.fullmatch(r"(?:https://www\.kaggle\.com/)?(?:(datasets|code|notebooks)/)?([\w.-]+/[\w.-]+)/?", text)
    if not match:
        raise UserError(f"{flag} {text!r} is not OWNER/SLUG: write it like alice/dogkit-biggan, or "
                        f"datasets/OWNER/SLUG / code/OWNER/SLUG as in its kaggle.com address")
    return SOURCE_KINDS[match.group(1) or default_kind], match.group(2)


def train_settings(pairs) -> dict:
    """--set FIELD=VALUE pairs as TrainConfig values of each field's type, checked in one line each."""
    from kit.config import TrainConfig
    defaults = dataclasses.asdict(TrainConfig())
    settings = {}
    for pair in pairs:
        field, _, text = pair.partition("=")
        if field not in defaults or not _:
            raise UserError(f"--set {pair!r} is not FIELD=VALUE of a TrainConfig field (python -m kit train --help "
                            f"lists them, as --field-name)")
        if field in KERNEL_OWNED:
            raise UserError(f"--set {field}=... is the kernel's own ({', '.join(KERNEL_OWNED)}): use --budget for "
                            f"the budget")
        kind = type(defaults[field])
        try:
            value = {"true": True, "false": False}[text.lower()] if kind is bool else kind(text)
        except (KeyError, ValueError):
            raise UserError(f"--set {pair!r}: {text!r} is not a {kind.__name__}") from None
        settings[field] = value
    return settings


def docker_image_note(metadata: dict, path: Path) -> str:
    """A warning when kernel metadata pins a docker_image (which overrides the accelerator's image), else ""."""
    if not metadata.get("docker_image"):
        return ""
    return (f"warning: {path} pins docker_image {metadata['docker_image']!r} (as `kaggle kernels pull -m` writes): "
            f"it overrides the image of the machine asked for (Kaggle/kaggle-cli#1197); dogkit never writes it")


def kaggle_json() -> Path:
    """Where the kaggle CLI reads its credentials."""
    return Path(os.environ.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle") / "kaggle.json"


def kaggle_username() -> str:
    """The Kaggle username from kaggle.json or $KAGGLE_USERNAME, or "" when there is none."""
    try:
        return json.loads(kaggle_json().read_text()).get("username", "")
    except (OSError, ValueError):
        return os.environ.get("KAGGLE_USERNAME", "")


def build(name: str, user: str = "", out_dir=KERNELS_DIR, accelerator=DEFAULT_ACCELERATOR, force=False,
          budget=KERNEL_BUDGET, continue_from="", restart_if_different=False, weights="", internet=False,
          zip_source="", settings=(), gpus=DEFAULT_GPUS) -> Path:
    """Write out_dir/NAME/script.py (the kit inlined) and kernel-metadata.json; the same inputs give the same bytes.

    continue_from: an earlier kernel (OWNER/SLUG) whose run this one resumes; weights: the dataset `kit weights pack`
    made; zip_source: the dataset or kernel output the scoring kernel scores; settings: --set FIELD=VALUE pairs;
    gpus: what several GPUs train (GPU_MODES).
    """
    scoring = name == SCORE_KERNEL
    if name not in KERNELS and not scoring:
        raise UserError(f"no kernel named {name!r}: choose one of {', '.join(KERNELS)} or {SCORE_KERNEL}")
    if scoring != bool(zip_source):
        raise UserError(f"kernel {SCORE_KERNEL} needs --zip OWNER/SLUG (the images.zip to score)" if scoring else
                        f"--zip is for the kernel {SCORE_KERNEL}, which scores a zip; {name} trains")
    if scoring and (continue_from or settings):
        raise UserError(f"kernel {SCORE_KERNEL} trains nothing: leave out --continue and --set")
    check_accelerator(accelerator, force)
    if gpus not in GPU_MODES:
        raise UserError(f"--gpus {gpus} is not known: use {' or '.join(GPU_MODES)}")
    sources, refs = {"dataset_sources": [], "kernel_sources": []}, {}
    for flag, text, kind in (("--weights", weights, "datasets"), ("--continue", continue_from, "code"),
                             ("--zip", zip_source, "datasets")):
        if text:
            where, refs[flag] = source_entry(text, flag, kind)
            sources[where].append(refs[flag])
    train = {} if scoring else {**KERNELS[name], **train_settings(settings)}
    runtime_settings = {"budget": check_budget(budget), "train": dict(sorted(train.items())),
                        "continue": refs.get("--continue", ""), "restart_if_different": bool(restart_if_different),
                        "zip": refs.get("--zip", ""), "gpus": gpus}
    user = user or kaggle_username() or PLACEHOLDER_USER
    folder = Path(out_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    metadata_path = folder / "kernel-metadata.json"
    if metadata_path.is_file():
        note = docker_image_note(json.loads(metadata_path.read_text()), metadata_path)
        if note:
            print(f"{note}: dropped", file=sys.stderr)
    metadata = {"id": f"{user}/dogkit-{name}", "title": f"dogkit-{name}", "code_file": "script.py",
                "language": "python", "kernel_type": "script", "is_private": True, "enable_gpu": True,
                "machine_shape": accelerator, "enable_internet": bool(internet),
                "competition_sources": [COMPETITION], **sources, "model_sources": []}
    (folder / "script.py").write_text(script(name, accelerator, runtime_settings), encoding="utf-8")
    metadata_path.write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return folder


# ---------------------------------------------------------------- push / status / output

def kaggle_command() -> str:
    """The kaggle CLI, after checking it and its credentials exist."""
    exe = shutil.which("kaggle") or shutil.which("kaggle", path=str(Path(sys.executable).parent))
    if not exe:
        raise UserError("the kaggle command is not installed: pip install kaggle")
    has_env = os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY")
    if not has_env and not kaggle_json().is_file():
        raise UserError(f"no Kaggle credentials: put kaggle.json (kaggle.com > Settings > API > Create New Token) "
                        f"in {kaggle_json().parent}/, or set KAGGLE_USERNAME and KAGGLE_KEY")
    return exe


def built(name: str, kernels_dir=KERNELS_DIR) -> dict:
    """The metadata of kernels/NAME, which must have been built."""
    path = Path(kernels_dir) / name / "kernel-metadata.json"
    if not path.is_file():
        raise UserError(f"{path} does not exist: run `python -m kit kernel build {name}` first")
    return json.loads(path.read_text())


def push_takes_accelerator(exe: str) -> bool:
    """Whether this kaggle CLI's `kernels push` has --accelerator (older ones only read machine_shape, or nothing)."""
    helped = subprocess.run([exe, "kernels", "push", "--help"], capture_output=True, text=True, timeout=120)
    if helped.returncode != 0:
        last = (helped.stderr.strip().splitlines() or ["no output"])[-1]
        missing = re.search(r"No module named '([\w.]+)'", last)   # kaggle 2.2 imports six without requiring it
        fix = f"pip install {missing.group(1).split('.')[0]}" if missing else "reinstall it with pip install -U kaggle"
        raise UserError(f"the kaggle CLI does not start ({last}): {fix}")
    return "--accelerator" in helped.stdout


def push(name: str, kernels_dir=KERNELS_DIR) -> int:
    """kaggle kernels push -p kernels/NAME [--accelerator ID], when the owner is the user whose credentials we have;
    then the GPU quota left, where the CLI can tell."""
    exe = kaggle_command()
    metadata = built(name, kernels_dir)
    owner, user = metadata["id"].split("/")[0], kaggle_username()
    if user and owner != user:
        raise UserError(f"kernels/{name} is built for Kaggle user {owner!r}, but your credentials are {user!r}: "
                        f"run `python -m kit kernel build {name}` (or pass --user {user})")
    note = docker_image_note(metadata, Path(kernels_dir) / name / "kernel-metadata.json")
    if note:
        print(f"{note}: rebuild with `python -m kit kernel build {name}`", file=sys.stderr)
    command = [exe, "kernels", "push", "-p", str(Path(kernels_dir) / name)]
    accelerator = metadata.get("machine_shape")
    if accelerator and push_takes_accelerator(exe):
        command += ["--accelerator", accelerator]
    elif accelerator:
        print(f"note: this kaggle CLI is older than {CLI_FLOOR}: it has no --accelerator and ignores machine_shape "
              f"{accelerator}, so Kaggle gives its default GPU (a P100, which the kernel's preflight refuses): "
              f"pip install -U 'kaggle>={CLI_FLOOR}' (Python 3.11+)")
    rc = subprocess.run(command).returncode
    print(gpu_quota(exe))
    return rc


def gpu_quota(exe: str) -> str:
    """One line: the weekly GPU hours left (`kaggle quota`, kaggle 2.2.1+), or a note that this CLI cannot tell."""
    done = subprocess.run([exe, "quota", "-v"], capture_output=True, text=True, timeout=120)
    rows = {row.get("resource"): row for row in csv.DictReader(done.stdout.splitlines())} if done.returncode == 0 else {}
    gpu = rows.get("GPU")
    if not gpu or not {"used", "remaining", "total"} <= set(gpu):
        return f"note: GPU quota not shown: this kaggle CLI cannot tell it (`kaggle quota` is in kaggle {QUOTA_CLI}+)"
    refresh = f", refreshed at {gpu['refreshAt']}" if gpu.get("refreshAt") else ""
    return f"GPU quota: {gpu['remaining']} left of {gpu['total']} this week (used {gpu['used']}{refresh})"


def status(name: str, kernels_dir=KERNELS_DIR) -> int:
    """kaggle kernels status USER/dogkit-NAME."""
    exe = kaggle_command()
    return subprocess.run([exe, "kernels", "status", built(name, kernels_dir)["id"]]).returncode


def output(name: str, out, kernels_dir=KERNELS_DIR) -> int:
    """kaggle kernels output USER/dogkit-NAME -p OUT, then check the images.zip it brought and print score.json."""
    exe = kaggle_command()
    rc = subprocess.run([exe, "kernels", "output", built(name, kernels_dir)["id"], "-p", str(out)]).returncode
    zip_path, score = Path(out) / "images.zip", Path(out) / "score.json"
    if rc == 0 and score.is_file():
        print(f"{score}:\n{score.read_text().rstrip()}")
    lasts = sorted((Path(out) / RUN_FOLDER).glob("**/last.pt")) if rc == 0 else []   # run/ or run/seedN/ each
    if lasts:
        print("\n".join(f"{last}: a run's checkpoint (kit sample --checkpoint {last})" for last in lasts))
        print(f"continue {'them' if len(lasts) > 1 else 'it'} on Kaggle with kit kernel build NAME --continue "
              f"{built(name, kernels_dir)['id']}")
    if rc == 0 and zip_path.is_file():
        from kit.package import check_zip
        problems = check_zip(zip_path)
        print("\n".join(f"problem: {p}" for p in problems) or f"{zip_path} passes the check")
        rc = 1 if problems else 0
    return rc


# ---------------------------------------------------------------- CLI

def add_arguments(parser):
    """Flags of `python -m kit kernel`."""
    parser.add_argument("action", choices=["build", "push", "status", "output"])
    parser.add_argument("name", nargs="?", default=DEFAULT_KERNEL,
                        help=f"kernel name: {', '.join(KERNELS)} (default {DEFAULT_KERNEL}), or {SCORE_KERNEL} "
                             f"(with --zip)")
    parser.add_argument("--user", default="", help="Kaggle username for the kernel id (default: from kaggle.json)")
    parser.add_argument("--dir", default=str(KERNELS_DIR), help="kernels folder (default: the repo's kernels/)")
    parser.add_argument("--out", default="", help="where `output` puts the kernel's files (default kaggle-output/NAME)")
    parser.add_argument("--accelerator", default=DEFAULT_ACCELERATOR,
                        help=f"Kaggle machine for `build` (default {DEFAULT_ACCELERATOR}: two T4s); "
                             f"{', '.join(a for a in ACCELERATORS if a != DEFAULT_ACCELERATOR)}")
    parser.add_argument("--gpus", default=DEFAULT_GPUS, metavar="|".join(GPU_MODES),
                        help=f"what a machine with several GPUs trains (default {DEFAULT_GPUS}): "
                             + "; ".join(f"{mode}: {words}" for mode, words in GPU_MODES.items()))
    parser.add_argument("--force", action="store_true", help="build for an accelerator the kit refuses (P100, TPU)")
    parser.add_argument("--budget", default=KERNEL_BUDGET,
                        help=f"the kernel's wall-clock budget, final images included (default {KERNEL_BUDGET}: the "
                             f"competition's 9-hour kernels; up to 11h40m for today's 12-hour sessions)")
    parser.add_argument("--continue", dest="continue_from", default="", metavar="OWNER/SLUG",
                        help="resume the runs of that earlier kernel (its output's run/last.pt, or each "
                             "run/NAME/last.pt of separate runs), listed as a kernel source")
    parser.add_argument("--restart-if-different", action="store_true",
                        help="with --continue: start afresh when that checkpoint is of another model or other data "
                             "(default: the kernel stops with one line)")
    parser.add_argument("--weights", default="", metavar="OWNER/SLUG",
                        help="the leaderboard networks' weights dataset (`kit weights pack DIR --upload OWNER/SLUG`)")
    parser.add_argument("--internet", action="store_true", help="enable the kernel's internet (weights download)")
    parser.add_argument("--zip", dest="zip_source", default="", metavar="OWNER/SLUG",
                        help=f"kernel {SCORE_KERNEL}: the dataset holding images.zip (code/OWNER/SLUG: a kernel's "
                             f"output)")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="FIELD=VALUE",
                        help="a TrainConfig field for the kernel's run, repeatable (e.g. --set eval_n=2000); "
                             "DOGKIT_TRAIN still overrides it at run time")


def main(args) -> int:
    """Run one kernel action."""
    if args.action == "build":
        folder = build(args.name, args.user, args.dir, args.accelerator, args.force, args.budget, args.continue_from,
                       args.restart_if_different, args.weights, args.internet, args.zip_source, args.settings,
                       args.gpus)
        words = ACCELERATORS.get(args.accelerator, "forced: the kernel's preflight will say whether it can run")
        print(f"built {folder}: script.py and kernel-metadata.json (id {built(args.name, args.dir)['id']}, "
              f"{args.accelerator}: {words}; several GPUs train {GPU_MODES[args.gpus]})")
        from kit.config import parse_duration
        if parse_duration(args.budget) > COMPETITION_LIMIT_S:
            print(f"note: --budget {args.budget} is past the competition's 9-hour kernel limit: a training session "
                  f"(continue it with --continue), not a submission kernel")
        return 0
    if args.action == "push":
        return push(args.name, args.dir)
    if args.action == "status":
        return status(args.name, args.dir)
    return output(args.name, args.out or Path("kaggle-output") / args.name, args.dir)
