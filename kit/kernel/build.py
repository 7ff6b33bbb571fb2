"""`python -m kit kernel`: build one self-contained script per kernel, push it, follow it, fetch its images.zip.

This module runs on the user's machine only; it is never inlined into a kernel. What a kernel runs is
kit.kernel.runtime and the kit modules it imports, written into the script one raw string per file.
"""
import ast
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from kit.errors import UserError
from kit.kernel.runtime import COMPETITION

REPO = Path(__file__).resolve().parent.parent.parent
KERNELS_DIR = REPO / "kernels"
ENTRY_MODULES = ("kit.kernel.runtime",)   # with every kit module it imports, at any depth, and their packages
LEFT_OUT = ("kit.metrics", "kit.kernel.build", "kit.__main__")   # scoring (pytorch-fid, weights) and the CLI
PLACEHOLDER_USER = "your-kaggle-username"
# name -> TrainConfig overrides; everything else keeps the defaults chosen by bench/quality
KERNELS = {
    "dcgan": {"model": "dcgan"},
    "cgan": {"model": "cgan"},
    "biggan": {"model": "biggan"},
}
DEFAULT_KERNEL = "biggan"   # what `kernel build` builds when no name is given: the model bench/quality favours
                            # at its longest budget (README, Quality)
DEFAULT_ACCELERATOR = "NvidiaTeslaT4"
# Kaggle's accelerator ids (kaggle-cli docs/kernels.md, Feb 2026) -> what a dogkit kernel does on them
ACCELERATORS = {
    "NvidiaTeslaT4": "GPU T4 x2 (sm_75, 16 GB each): fp16 with a grad scaler, two DDP processes",
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


def script(name: str, accelerator: str) -> str:
    """The text of kernels/NAME/script.py."""
    sources = inlined_modules()
    kernel = {"name": name, "accelerator": accelerator, "train": dict(sorted(KERNELS[name].items()))}
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


def kaggle_json() -> Path:
    """Where the kaggle CLI reads its credentials."""
    return Path(os.environ.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle") / "kaggle.json"


def kaggle_username() -> str:
    """The Kaggle username from kaggle.json or $KAGGLE_USERNAME, or "" when there is none."""
    try:
        return json.loads(kaggle_json().read_text()).get("username", "")
    except (OSError, ValueError):
        return os.environ.get("KAGGLE_USERNAME", "")


def build(name: str, user: str = "", out_dir=KERNELS_DIR, accelerator=DEFAULT_ACCELERATOR, force=False) -> Path:
    """Write out_dir/NAME/script.py (the kit inlined) and kernel-metadata.json; the same inputs give the same bytes."""
    if name not in KERNELS:
        raise UserError(f"no kernel named {name!r}: choose one of {', '.join(KERNELS)}")
    check_accelerator(accelerator, force)
    user = user or kaggle_username() or PLACEHOLDER_USER
    folder = Path(out_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    metadata = {"id": f"{user}/dogkit-{name}", "title": f"dogkit-{name}", "code_file": "script.py",
                "language": "python", "kernel_type": "script", "is_private": True, "enable_gpu": True,
                "machine_shape": accelerator, "enable_internet": False, "competition_sources": [COMPETITION],
                "dataset_sources": [], "kernel_sources": [], "model_sources": []}
    (folder / "script.py").write_text(script(name, accelerator), encoding="utf-8")
    (folder / "kernel-metadata.json").write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n",
                                                 encoding="utf-8")
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
    """kaggle kernels push -p kernels/NAME [--accelerator ID], when the owner is the user whose credentials we have."""
    exe = kaggle_command()
    metadata = built(name, kernels_dir)
    owner, user = metadata["id"].split("/")[0], kaggle_username()
    if user and owner != user:
        raise UserError(f"kernels/{name} is built for Kaggle user {owner!r}, but your credentials are {user!r}: "
                        f"run `python -m kit kernel build {name}` (or pass --user {user})")
    command = [exe, "kernels", "push", "-p", str(Path(kernels_dir) / name)]
    accelerator = metadata.get("machine_shape")
    if accelerator and push_takes_accelerator(exe):
        command += ["--accelerator", accelerator]
    elif accelerator:
        print(f"note: this kaggle CLI has no --accelerator; it reads machine_shape {accelerator} from the metadata "
              f"only if it is recent, and very old ones give the default GPU (a P100, refused by the kernel's "
              f"preflight): pip install -U kaggle")
    return subprocess.run(command).returncode


def status(name: str, kernels_dir=KERNELS_DIR) -> int:
    """kaggle kernels status USER/dogkit-NAME."""
    exe = kaggle_command()
    return subprocess.run([exe, "kernels", "status", built(name, kernels_dir)["id"]]).returncode


def output(name: str, out, kernels_dir=KERNELS_DIR) -> int:
    """kaggle kernels output USER/dogkit-NAME -p OUT, then check the images.zip it brought."""
    exe = kaggle_command()
    rc = subprocess.run([exe, "kernels", "output", built(name, kernels_dir)["id"], "-p", str(out)]).returncode
    zip_path = Path(out) / "images.zip"
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
                        help=f"kernel name: {', '.join(KERNELS)} (default {DEFAULT_KERNEL})")
    parser.add_argument("--user", default="", help="Kaggle username for the kernel id (default: from kaggle.json)")
    parser.add_argument("--dir", default=str(KERNELS_DIR), help="kernels folder (default: the repo's kernels/)")
    parser.add_argument("--out", default="", help="where `output` puts the kernel's files (default kaggle-output/NAME)")
    parser.add_argument("--accelerator", default=DEFAULT_ACCELERATOR,
                        help=f"Kaggle machine for `build` (default {DEFAULT_ACCELERATOR}: two T4s); "
                             f"{', '.join(a for a in ACCELERATORS if a != DEFAULT_ACCELERATOR)}")
    parser.add_argument("--force", action="store_true", help="build for an accelerator the kit refuses (P100, TPU)")


def main(args) -> int:
    """Run one kernel action."""
    if args.action == "build":
        folder = build(args.name, args.user, args.dir, args.accelerator, args.force)
        words = ACCELERATORS.get(args.accelerator, "forced: the kernel's preflight will say whether it can run")
        print(f"built {folder}: script.py and kernel-metadata.json (id {built(args.name, args.dir)['id']}, "
              f"{args.accelerator}: {words})")
        return 0
    if args.action == "push":
        return push(args.name, args.dir)
    if args.action == "status":
        return status(args.name, args.dir)
    return output(args.name, args.out or Path("kaggle-output") / args.name, args.dir)
