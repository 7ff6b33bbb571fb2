"""Read images from a zip or a folder as uint8 arrays, with every problem found on the way (below packaging and scoring)."""
import io
import os
import re
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from kit.errors import UserError

SIZE = 64
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def workers():
    """Threads for encoding and decoding: zlib and PIL's decoder release the GIL."""
    return min(8, os.cpu_count() or 1)


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


def summarise(problems) -> list:
    """[(kind, name)] -> one line per kind with its count and the first few names."""
    by_kind = {}
    for kind, name in problems:
        by_kind.setdefault(kind, []).append(name)
    lines = []
    for kind, names in by_kind.items():
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        lines.append(f"{kind} ({len(names):,}): {shown}")
    return lines


def read_members(path, lenient: bool):
    """Names, H×W×3 arrays and raw (kind, name) problems of every image in a zip or folder."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist: pass a zip file or a folder of images")
    entries, problems = _entries(path)
    names, arrays = [], []
    with ThreadPoolExecutor(workers()) as pool:
        for (name, _), (array, kinds) in zip(entries, pool.map(lambda e: _decode(e, lenient), entries)):
            problems += [(k, name) for k in kinds]
            if array is not None:
                names.append(name)
                arrays.append(array)
    return names, arrays, problems, len(entries)


def read_images(path, lenient=False):
    """Images of a zip or folder -> (uint8 N×3×64×64, problems); strict skips bad images, lenient converts them."""
    _, arrays, problems, _ = read_members(path, lenient)
    images = np.stack(arrays).transpose(0, 3, 1, 2) if arrays else np.zeros((0, 3, SIZE, SIZE), np.uint8)
    return np.ascontiguousarray(images), summarise(problems)
