"""Package images into the competition's zip (10,000 PNG 64×64 RGB) and check any zip against the rules."""
import hashlib
import io
import os
import re
import struct
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from kit.errors import UserError
from kit.files import atomic_path, refuse_overwrite

N_IMAGES = 10000
SIZE = 64
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member timestamps: the same images give the same zip bytes


def _workers():
    """Threads for encoding and decoding: zlib and PIL's decoder release the GIL."""
    return min(8, os.cpu_count() or 1)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _encode_png(hwc: np.ndarray) -> bytes:
    """H×W×3 uint8 -> PNG bytes: 8-bit RGB, every row Sub-filtered, zlib level 1 (twice PIL's speed, smaller)."""
    h, w, _ = hwc.shape
    flat = hwc.reshape(h, w * 3)
    rows = np.empty((h, w * 3 + 1), np.uint8)
    rows[:, 0] = 1                                            # filter type 1: each byte minus the one 3 to its left
    rows[:, 1:4] = flat[:, :3]
    np.subtract(flat[:, 3:], flat[:, :-3], out=rows[:, 4:])   # uint8 wraps modulo 256, as PNG wants
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)     # bit depth 8, colour type 2 (RGB)
    return (PNG_MAGIC + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), 1))
            + _png_chunk(b"IEND", b""))


def _as_nhwc_rgb(images) -> np.ndarray:
    """N×C×H×W uint8 (numpy or torch, C 1 or 3) -> contiguous N×H×W×3 uint8."""
    if hasattr(images, "detach"):
        images = images.detach().cpu().numpy()
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"write_zip needs uint8 N×C×H×W images with C 1 or 3, got {images.dtype} {images.shape}")
    if images.shape[1] == 1:
        images = np.repeat(images, 3, axis=1)
    return np.ascontiguousarray(images.transpose(0, 2, 3, 1))


def write_zip(images, path, force=False, progress=True) -> Path:
    """Write images as 0.png..N-1.png, encoded in parallel, straight into an uncompressed zip, atomically."""
    path = Path(path)
    refuse_overwrite(path, force)
    hwc = _as_nhwc_rgb(images)
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        with ThreadPoolExecutor(_workers()) as pool:
            pngs = pool.map(_encode_png, hwc)
            for i, png in enumerate(tqdm(pngs, total=len(hwc), desc=f"zip {path.name}", unit="img",
                                         disable=not progress, leave=False)):
                info = zipfile.ZipInfo(f"{i}.png", date_time=ZIP_DATE)
                info.external_attr = 0o644 << 16
                zf.writestr(info, png)
    return path


def _natural_key(name: str):
    """Sort key that puts 2.png before 10.png."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _entries(path: Path):
    """(name, bytes) of every file in a zip or under a folder, plus layout problems as (kind, name)."""
    problems, entries = [], []
    if path.is_dir():
        for f in sorted((f for f in path.rglob("*") if f.is_file()), key=lambda f: _natural_key(str(f))):
            rel = f.relative_to(path).as_posix()
            if any(part.startswith(".") for part in f.relative_to(path).parts):
                problems.append(("hidden files skipped", rel))
                continue
            entries.append((rel, f.read_bytes()))
        return entries, problems
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path} is neither a zip file nor a folder of images")
    with zipfile.ZipFile(path) as zf:
        for info in sorted(zf.infolist(), key=lambda i: _natural_key(i.filename)):
            name = info.filename
            if info.is_dir():
                problems.append(("folders inside the zip (images must sit at its top level)", name))
            elif name.startswith("__MACOSX/") or Path(name).name.startswith("._"):
                problems.append(("macOS metadata files inside the zip", name))
            else:
                if "/" in name:
                    problems.append(("files inside a folder (images must sit at the zip's top level)", name))
                try:
                    entries.append((name, zf.read(info)))
                except Exception:
                    problems.append(("unreadable zip members (corrupt archive)", name))
    return entries, problems


def _decode(entry, lenient: bool):
    """(name, bytes) -> (H×W×3 uint8 array or None, problem kinds); lenient converts wrong size/mode/format."""
    name, data = entry
    kinds = []
    if not name.lower().endswith(".png"):
        kinds.append("files not named .png")
    try:
        im = Image.open(io.BytesIO(data))
        im.load()
    except Exception:
        return None, kinds + ["corrupt or unreadable images"]
    if not data.startswith(PNG_MAGIC):
        kinds.append(f"files that are {im.format or 'unknown'} data, not PNG")
    if im.size != (SIZE, SIZE):
        kinds.append(f"images of size {im.size[0]}×{im.size[1]}, not {SIZE}×{SIZE}")
    if im.mode != "RGB":
        kinds.append(f"images in mode {im.mode}, not RGB")
    content_bad = any(not k.startswith("files not named") for k in kinds)
    if content_bad and not lenient:
        return None, kinds
    im = im.convert("RGB")
    if im.size != (SIZE, SIZE):
        im = im.resize((SIZE, SIZE), Image.LANCZOS)
    return np.asarray(im), kinds


def _summarise(problems) -> list:
    """[(kind, name)] -> one line per kind with its count and the first few names."""
    by_kind = {}
    for kind, name in problems:
        by_kind.setdefault(kind, []).append(name)
    lines = []
    for kind, names in by_kind.items():
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        lines.append(f"{kind} ({len(names):,}): {shown}")
    return lines


def _read(path, lenient: bool):
    """Names, H×W×3 arrays and raw (kind, name) problems of every image in a zip or folder."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist: pass a zip file or a folder of images")
    entries, problems = _entries(path)
    names, arrays = [], []
    with ThreadPoolExecutor(_workers()) as pool:
        for (name, _), (array, kinds) in zip(entries, pool.map(lambda e: _decode(e, lenient), entries)):
            problems += [(k, name) for k in kinds]
            if array is not None:
                names.append(name)
                arrays.append(array)
    return names, arrays, problems, len(entries)


def read_images(path, lenient=False):
    """Images of a zip or folder -> (uint8 N×3×64×64, problems); strict skips bad images, lenient converts them."""
    _, arrays, problems, _ = _read(path, lenient)
    images = np.stack(arrays).transpose(0, 3, 1, 2) if arrays else np.zeros((0, 3, SIZE, SIZE), np.uint8)
    return np.ascontiguousarray(images), _summarise(problems)


def check_zip(path, n_images=N_IMAGES) -> list:
    """Every way the zip breaks the rules, one line each; an empty list means it would be accepted."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder: --check takes a zip file (pack a folder with --from-dir)")
    if path.is_file() and not zipfile.is_zipfile(path):
        return [f"{path} is not a zip file"]
    names, arrays, problems, n_files = _read(path, lenient=False)
    count = [] if n_files == n_images else [f"{path.name} holds {n_files:,} files; exactly {n_images:,} are needed"]
    first_seen = {}
    for name, array in zip(names, arrays):
        digest = hashlib.blake2b(array.tobytes(), digest_size=16).digest()
        if digest in first_seen:
            problems.append(("images identical to an earlier one", f"{name} (= {first_seen[digest]})"))
        else:
            first_seen[digest] = name
    return count + _summarise(problems)


def memorisation_guard(images, real, weights=None, device="auto", n=1000):
    """Estimate the memorisation distance d on n images and warn loudly below the MiFID threshold."""
    try:
        from kit.metrics.features import InceptionFeatures
        from kit.metrics.score import score_images
        extractor = InceptionFeatures(weights=weights, device=device)
    except (UserError, ImportError) as e:
        print(f"memorisation guard skipped: {e}")
        return None
    report = score_images(images[:n], real, extractor=extractor, device=device)
    d = report["distance"]
    if d < report.get("threshold", 0.1):
        bar = "!" * 72
        print(f"{bar}\nWARNING: memorisation distance d = {d:.4f} < 0.1 on {min(n, len(images)):,} images: these images "
              f"are too close to the training data and MiFID will multiply the FID by 1/d.\n{bar}")
    else:
        print(f"memorisation guard: d = {d:.4f} on {min(n, len(images)):,} images (penalty starts below 0.1)")
    return d


def add_arguments(parser):
    """Flags of `python -m kit zip` and submit/make_zip.py."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="last.pt of a run: generate the images from it")
    source.add_argument("--from-dir", metavar="DIR", help="pack a folder of images (converted to 64×64 RGB PNG)")
    source.add_argument("--check", metavar="ZIP", help="only check ZIP against the rules; exit 0 when it passes")
    parser.add_argument("--out", default="images.zip", help="zip to write (default images.zip)")
    parser.add_argument("--n", type=int, default=N_IMAGES, help="images to generate (default 10000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--truncation", type=float, default=0.0, help="truncated sampling; 0 is off")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--real", help="real data (cache or archive) for the memorisation guard")
    parser.add_argument("--inception-weights", help="FID Inception weights file (default: the torch hub cache)")
    parser.add_argument("--guard-n", type=int, default=1000, help="images the memorisation guard scores (default 1000)")
    parser.add_argument("--force", action="store_true", help="overwrite --out")


def main(args) -> int:
    """Generate or pack the images, write the zip, check it; exit 1 when the check finds problems."""
    if args.check:
        problems = check_zip(args.check)
        for line in problems:
            print(f"problem: {line}")
        print(f"{args.check}: {'REJECTED, ' + str(len(problems)) + ' kind(s) of problem' if problems else 'OK, would be accepted'}")
        return 1 if problems else 0
    refuse_overwrite(args.out, args.force)
    if args.checkpoint:
        from kit.sample import generate
        images, _ = generate(args.checkpoint, args.n, seed=args.seed, truncation=args.truncation, device=args.device)
    else:
        if not Path(args.from_dir).is_dir():
            raise UserError(f"--from-dir {args.from_dir} is not a folder: pass the folder holding your images")
        images, notes = read_images(args.from_dir, lenient=True)
        for line in notes:
            print(f"converted or skipped: {line}")
    if args.real:
        memorisation_guard(images, args.real, weights=args.inception_weights, device=args.device, n=args.guard_n)
    else:
        print("memorisation guard off: pass --real DATA to estimate d (MiFID's penalty starts below 0.1)")
    write_zip(images, args.out, force=args.force)
    problems = check_zip(args.out)
    for line in problems:
        print(f"problem: {line}")
    size_mb = Path(args.out).stat().st_size / 1e6
    print(f"wrote {args.out}: {len(images):,} images, {size_mb:.1f} MB, "
          f"{'REJECTED by the check' if problems else 'passes the check'}")
    return 1 if problems else 0
