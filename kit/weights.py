"""The leaderboard networks' weights for a Kaggle kernel. `python -m kit weights pack DIR` writes a Kaggle dataset
folder (pytorch-fid's FID Inception file, timm's nasnetalarge file, pytorch-fid itself as a wheel, a SHA-256
manifest, dataset-metadata.json) and can upload it; inside a kernel export_found finds that dataset under the input
folder, checks every file and points the kit at it."""
import base64
import hashlib
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from kit.errors import UserError
from kit.files import atomic_path, file_hash, refuse_overwrite

MANIFEST = "dogkit-weights.json"
METADATA = "dataset-metadata.json"
DEFAULT_ID = "your-kaggle-username/dogkit-weights"
TITLE = "dogkit leaderboard weights"            # kaggle datasets create: 6 to 50 characters
LICENSE = "apache-2.0"   # the TF FID Inception and TF-slim NASNet weights and pytorch-fid are all Apache-2.0
# dataset id as kaggle-cli checks it (owner/slug, the slug 6 to 50 characters); Kaggle's slugs are lowercase words
DATASET_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*/[a-z0-9][a-z0-9-]{4,48}[a-z0-9]")
NETWORKS = {"inception": ("public", "DOGKIT_INCEPTION_WEIGHTS"), "nasnet": ("private", "DOGKIT_NASNET_WEIGHTS")}
WHEEL = "pytorch-fid-wheel"
REPACK = "run `python -m kit weights pack DIR --upload OWNER/SLUG --force` again and attach the new version"


def sha256(path) -> str:
    """Hex SHA-256 of a file."""
    return file_hash(path, hashlib.sha256())


# ---------------------------------------------------------------- pack (the user's machine)

def checked_networks(inception=None, nasnet=None) -> dict:
    """{kind: weights file} found as `kit score` finds them (downloading where there is internet), each loaded
    into its network; a missing, corrupt or wrong file is one line naming it."""
    from kit.metrics.features import (InceptionFeatures, NASNetFeatures, find_inception_weights,
                                      find_nasnet_weights)
    found = {"inception": find_inception_weights(inception), "nasnet": find_nasnet_weights(nasnet, download=True)}
    InceptionFeatures(found["inception"], device="cpu")
    NASNetFeatures(found["nasnet"], device="cpu")
    return found


def record_hash(data: bytes) -> str:
    """A wheel RECORD's hash field: sha256= and the urlsafe base64 digest without padding."""
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def write_pytorch_fid_wheel(folder: Path) -> Path:
    """The installed pytorch-fid (its modules, metadata and licence) as a pure-Python wheel in `folder`: importable
    from sys.path as it is, installable with pip --no-index."""
    from importlib import metadata
    try:
        dist = metadata.distribution("pytorch-fid")
    except metadata.PackageNotFoundError:
        raise UserError("pytorch-fid is not installed: pip install pytorch-fid (its FID Inception code ships in "
                        "the weights dataset for kernels whose image lacks it)") from None
    info = f"pytorch_fid-{dist.version}.dist-info"
    members = {}
    for file in dist.files or ():
        name = file.as_posix()
        installer_files = ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")   # written by pip, not shipped
        if (name.startswith("pytorch_fid/") and name.endswith(".py")) or (
                name.startswith(f"{info}/") and file.name not in installer_files):
            members[name] = file.locate().read_bytes()
    if not any(file.split("/")[-1].upper().startswith(("LICENSE", "LICENCE")) for file in members):
        raise UserError(f"the installed pytorch-fid {dist.version} has no licence file: reinstall it with "
                        "pip install --force-reinstall pytorch-fid")
    record = "".join(f"{name},{record_hash(data)},{len(data)}\n" for name, data in members.items())
    members[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    path = folder / f"pytorch_fid-{dist.version}-py3-none-any.whl"
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            for name, data in members.items():
                z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return path


def check_dataset_id(dataset_id: str) -> str:
    """OWNER/SLUG as the kaggle CLI accepts it, or one line saying what it must look like."""
    if not DATASET_ID.fullmatch(dataset_id):
        raise UserError(f"--upload {dataset_id!r} is not a Kaggle dataset id: OWNER/SLUG, the slug 6 to 50 lowercase "
                        "letters, digits and hyphens (e.g. alice/dogkit-weights)")
    return dataset_id


def pack(folder, inception=None, nasnet=None, upload="", force=False) -> Path:
    """Write the weights dataset into `folder` (refusing to overwrite without force) and, given OWNER/SLUG in
    `upload`, create or version it on Kaggle; returns the folder."""
    dataset_id = check_dataset_id(upload) if upload else DEFAULT_ID
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} is a file: pass a folder to write the weights dataset into")
    for name in (MANIFEST, METADATA):                   # before the slow part: an earlier pack is there
        refuse_overwrite(folder / name, force)
    networks = checked_networks(inception, nasnet)
    names = {"inception": "fid-inception" + networks["inception"].suffix,
             "nasnet": "nasnetalarge" + networks["nasnet"].suffix}
    for name in names.values():
        refuse_overwrite(folder / name, force)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for kind, source in networks.items():
        with atomic_path(folder / names[kind]) as tmp:
            shutil.copyfile(source, tmp)
        files.append((names[kind], kind))
    files.append((write_pytorch_fid_wheel(folder).name, WHEEL))
    manifest = {"dogkit_weights": 1, "files": [{"name": name, "kind": kind, "sha256": sha256(folder / name),
                                                "size": (folder / name).stat().st_size} for name, kind in files]}
    metadata = {"title": TITLE, "id": dataset_id, "licenses": [{"name": LICENSE}],
                "description": "pytorch-fid's FID Inception (public leaderboard) and timm's nasnetalarge (private "
                               "leaderboard) weights with pytorch-fid as a wheel, for dogkit's kernels; "
                               f"{MANIFEST} holds each file's SHA-256."}
    for name, content in ((MANIFEST, manifest), (METADATA, metadata)):
        with atomic_path(folder / name) as tmp:
            tmp.write_text(json.dumps(content, indent=2) + "\n")
    if upload:
        upload_dataset(folder, dataset_id)
    return folder


def upload_dataset(folder: Path, dataset_id: str) -> None:
    """kaggle datasets create -p folder, or kaggle datasets version when dataset_id exists already."""
    exe = shutil.which("kaggle") or shutil.which("kaggle", path=str(Path(sys.executable).parent))
    if not exe:
        raise UserError("the kaggle command is not installed: pip install kaggle, then pass --upload again")
    exists = subprocess.run([exe, "datasets", "status", dataset_id], capture_output=True).returncode == 0
    command = ([exe, "datasets", "version", "-p", str(folder), "-m", "dogkit weights"] if exists
               else [exe, "datasets", "create", "-p", str(folder)])
    if subprocess.run(command).returncode != 0:
        raise UserError(f"`{' '.join(command[1:])}` failed (its message is above): check your Kaggle credentials "
                        f"(~/.kaggle/kaggle.json) and that {dataset_id} is yours")


# ---------------------------------------------------------------- export_found (inside a kernel)

def manifest_entries(manifest: Path) -> list:
    """The file entries of a dogkit weights manifest; an unreadable one is one line naming it."""
    try:
        entries = json.loads(manifest.read_text())["files"]
        return [(str(e["name"]), str(e["kind"]), str(e["sha256"]), int(e["size"])) for e in entries]
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{manifest} is not a dogkit weights manifest: {REPACK}") from None


def export_found(input_dir) -> dict:
    """Find a dogkit weights dataset anywhere under input_dir, check each file against its SHA-256, set
    DOGKIT_INCEPTION_WEIGHTS / DOGKIT_NASNET_WEIGHTS, put the shipped pytorch-fid on sys.path when it cannot be
    imported; {"public": Path or None, "private": Path or None} (all None when there is no dataset)."""
    found = {leaderboard: None for leaderboard, _ in NETWORKS.values()}
    manifests = sorted(Path(input_dir).rglob(MANIFEST)) if Path(input_dir).is_dir() else []
    if not manifests:
        return found
    for name, kind, digest, size in manifest_entries(manifests[0]):
        path = manifests[0].parent / name
        if not path.is_file():
            raise UserError(f"{path} is listed in {manifests[0]} but missing: {REPACK}")
        if path.stat().st_size != size or sha256(path) != digest:
            raise UserError(f"{path} does not match its SHA-256 in {manifests[0].name}: the file is corrupt or was "
                            f"replaced; {REPACK}")
        if kind in NETWORKS:
            leaderboard, variable = NETWORKS[kind]
            os.environ[variable] = str(path)
            found[leaderboard] = path
        elif kind == WHEEL and not importable("pytorch_fid"):
            sys.path.insert(0, str(path))
    return found


def importable(module: str) -> bool:
    """Whether `import module` works here."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------- CLI

def add_arguments(parser):
    """Flags of `python -m kit weights pack`."""
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    packer = actions.add_parser("pack", help="write (and upload) the Kaggle dataset that kernels score with",
                                description="Gather both leaderboards' weights, check they load, write a Kaggle "
                                            "dataset folder; attach it to a kernel to score inside it.")
    packer.add_argument("folder", metavar="DIR", help="the dataset folder to write")
    packer.add_argument("--inception", metavar="FILE",
                        help="pytorch-fid's FID Inception weights (default: $DOGKIT_INCEPTION_WEIGHTS, the torch hub "
                             "cache, or a download)")
    packer.add_argument("--nasnet", metavar="FILE",
                        help="timm's nasnetalarge weights (default: $DOGKIT_NASNET_WEIGHTS, then timm's caches)")
    packer.add_argument("--upload", metavar="OWNER/SLUG", default="",
                        help="create the Kaggle dataset OWNER/SLUG from DIR (or a new version when it exists)")
    packer.add_argument("--force", action="store_true", help="overwrite the files of an earlier pack in DIR")


def main(args) -> int:
    """Pack the weights, then say what was written and how a kernel uses it."""
    folder = pack(args.folder, args.inception, args.nasnet, args.upload, args.force)
    for entry in json.loads((folder / MANIFEST).read_text())["files"]:
        print(f"{folder / entry['name']}  {entry['size']:,} bytes  sha256 {entry['sha256'][:16]}…  ({entry['kind']})")
    dataset_id = json.loads((folder / METADATA).read_text())["id"]
    if not args.upload:
        print(f"upload it with --upload OWNER/SLUG, or set the id in {folder / METADATA} and run "
              f"kaggle datasets create -p {folder}")
    print(f"then build a kernel with it: python -m kit kernel build NAME --weights {dataset_id}")
    return 0
