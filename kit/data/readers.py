"""Readers: every layout -> records (where each image and its annotation are, its breed) + what was skipped."""
import os
import re
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from kit.errors import UserError

LAYOUTS_HELP = ("--data expects a folder holding all-dogs.zip + Annotation.zip, all-dogs/ + Annotation/, "
                "Images/ + Annotation/ (Stanford Dogs), MNIST/raw or FashionMNIST/raw, or image files")
BREED_FOLDER = re.compile(r"(n\d{8})-(.+)")      # n02085620-Chihuahua
WNID_PREFIX = re.compile(r"(n\d{8})_")           # n02085620_199.jpg


@dataclass
class Layout:
    """Which layout `--data` holds and where its parts are."""
    kind: str                          # kaggle | stanford | folder | mnist
    images: Path                       # all-dogs.zip, all-dogs/, Images/, the image folder, or the MNIST root
    annotations: Optional[Path] = None  # Annotation.zip or Annotation/, when there is one
    dataset: str = ""                  # MNIST | FashionMNIST


@dataclass
class Record:
    """One image: where its bytes (or pixels) and its annotation are, and the breed its folder or name gives."""
    name: str                          # shown in reports and kept as the sample's source
    image: tuple                       # (zip path or "", member or file path)
    label: int                         # breed index; boxes may name their own breed
    annotation: Optional[tuple] = None  # (zip path or "", member or file path)
    pixels: Optional[np.ndarray] = None  # already decoded (MNIST)


@dataclass
class Source:
    """Everything read from one layout: class names (index = label), records, and what was skipped."""
    layout: Layout
    classes: list
    records: list
    channels: int = 3
    skipped: list = field(default_factory=list)    # {"file", "reason"}
    notes: list = field(default_factory=list)      # things the report should say

    def breed_index(self) -> dict:
        """Normalised breed name (as in <name> tags) -> label."""
        return {name_key(name): i for i, name in enumerate(self.classes)}


def name_key(name: str) -> str:
    """'Japanese_spaniel', 'japanese spaniel' and 'Japanese-spaniel' all give one key."""
    return re.sub(r"[\s_-]+", " ", name).strip().lower()


def readable(folder: str) -> str:
    """n02085782-Japanese_spaniel -> Japanese spaniel."""
    match = BREED_FOLDER.fullmatch(folder)
    return (match.group(2) if match else folder).replace("_", " ")


def locate(data) -> Layout:
    """Find out which layout `data` is (cheap: looks at names only)."""
    path = Path(data).expanduser()
    if not path.exists():
        raise UserError(f"{path} does not exist: {LAYOUTS_HELP}")
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise UserError(f"{path} is not a zip archive: download all-dogs.zip again, or pass its folder")
        return Layout("kaggle", path, annotations_beside(path.parent))
    if (path / "all-dogs.zip").is_file():
        return locate(path / "all-dogs.zip")
    if (path / "all-dogs").is_dir():
        return Layout("kaggle", path / "all-dogs", annotations_beside(path))
    if (path / "Images").is_dir():
        return Layout("stanford", path / "Images", annotations_beside(path))
    for name in ("MNIST", "FashionMNIST"):
        if (path / name / "raw").is_dir():
            return Layout("mnist", path, dataset=name)
        if path.name == name and (path / "raw").is_dir():
            return Layout("mnist", path.parent, dataset=name)
    return Layout("folder", path)


def annotations_beside(folder: Path) -> Optional[Path]:
    """Annotation.zip or Annotation/ in `folder`, if either is there."""
    for candidate in (folder / "Annotation.zip", folder / "Annotation"):
        if candidate.exists():
            return candidate
    return None


def source_files(layout: Layout) -> list:
    """(name, size, mtime_ns) of every file the layout reads: the input of the cache fingerprint."""
    roots = [layout.images] if layout.kind != "mnist" else [layout.images / layout.dataset / "raw"]
    roots += [layout.annotations] if layout.annotations else []
    files = []
    for root in roots:
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for p in paths:
            st = p.stat()
            files.append((str(p.relative_to(root.parent)), st.st_size, st.st_mtime_ns))
    return files


def list_files(root: Path) -> list:
    """(location, name) of every file in a zip or under a folder; names are relative to the folder's parent."""
    if root.is_file():
        with open_zip(root) as z:
            return [((str(root), m), m) for m in z.namelist() if not m.endswith("/")]
    return [(("", str(p)), str(p.relative_to(root.parent))) for p in sorted(root.rglob("*")) if p.is_file()]


def open_zip(path: Path) -> zipfile.ZipFile:
    """Open a zip; a broken one is a UserError naming it."""
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise UserError(f"{path} is not a readable zip archive ({e}): download it again") from None


def read(layout: Layout) -> Source:
    """List the layout's images and annotations and give every image its breed."""
    if layout.kind == "mnist":
        return read_mnist(layout)
    if layout.kind == "folder":
        return read_folder(layout)
    return read_dogs(layout)


def read_dogs(layout: Layout) -> Source:
    """all-dogs (zip or folder) or Stanford Images/, joined with Annotation/<wnid-breed>/<image id> by image id."""
    skipped, notes, annotations, breeds = [], [], {}, {}
    if layout.annotations is None:
        notes.append(f"no Annotation.zip or Annotation/ beside {layout.images}: every image is cropped as a centre "
                     "square and its breed comes from its file name")
    else:
        for location, name in list_files(layout.annotations):
            folder = Path(name).parent.name
            if not BREED_FOLDER.fullmatch(folder):
                skipped.append({"file": name, "reason": "annotation not in a breed folder (like n02085620-Chihuahua)"})
                continue
            breeds[folder.split("-")[0]] = readable(folder)
            annotations[Path(name).name.removesuffix(".xml")] = (location, folder.split("-")[0])
    images = []
    for location, name in list_files(layout.images):
        path = Path(name)
        folder = BREED_FOLDER.fullmatch(path.parent.name) if layout.kind == "stanford" else None
        prefix = WNID_PREFIX.match(path.name)
        if folder:
            breeds.setdefault(folder.group(1), readable(folder.group(0)))
        if path.stem in annotations:
            wnid = annotations[path.stem][1]
        else:
            wnid = folder.group(1) if folder else prefix.group(1) if prefix else "unknown"
        breeds.setdefault(wnid, wnid)
        images.append((location, name, path.stem, wnid))
    used = {image_id for _, _, image_id, _ in images}
    skipped += [{"file": location[1], "reason": "annotation without an image"}
                for image_id, (location, _) in annotations.items() if image_id not in used]
    order = sorted(breeds)
    index = {wnid: i for i, wnid in enumerate(order)}
    records = [Record(name, location, index[wnid], annotations[image_id][0] if image_id in annotations else None)
               for location, name, image_id, wnid in images]
    return Source(layout, [breeds[w] for w in order], records, skipped=skipped, notes=notes)


def read_folder(layout: Layout) -> Source:
    """A plain folder: one class per subfolder, or one class when the images lie flat."""
    files = [(loc, name) for loc, name in list_files(layout.images)
             if not any(part.startswith(".") for part in Path(name).parts[1:])]
    keys = [Path(name).parts[1] if len(Path(name).parts) > 2 else layout.images.name for _, name in files]
    classes = sorted(set(keys))
    index = {key: i for i, key in enumerate(classes)}
    return Source(layout, classes, [Record(name, loc, index[key]) for (loc, name), key in zip(files, keys)])


def read_mnist(layout: Layout) -> Source:
    """MNIST or FashionMNIST from the local raw files (train and test), through torchvision."""
    import torchvision
    dataset_class = getattr(torchvision.datasets, layout.dataset)
    try:
        splits = [dataset_class(str(layout.images), train=train, download=False) for train in (True, False)]
    except Exception as e:
        raise UserError(f"{layout.images / layout.dataset / 'raw'} does not hold readable {layout.dataset} files "
                        f"({str(e).splitlines()[0]}): it needs the four *-ubyte files, uncompressed") from None
    records = []
    for split, ds in zip(("train", "test"), splits):
        pixels, labels = ds.data.numpy(), ds.targets.numpy()
        records += [Record(f"{layout.dataset}/{split}/{i}", ("", ""), int(labels[i]), pixels=pixels[i])
                    for i in range(len(pixels))]
    return Source(layout, list(splits[0].classes), records, channels=1)


_open_archives = {}


def read_bytes(location: tuple) -> bytes:
    """The bytes at (zip path or "", member or file path); each process keeps its own open zips."""
    archive, member = location
    if not archive:
        return Path(member).read_bytes()
    key = (os.getpid(), archive)
    if key not in _open_archives:
        _open_archives[key] = zipfile.ZipFile(archive)
    return _open_archives[key].read(member)


def close_archives() -> None:
    """Close the zips this process opened."""
    for key in [k for k in _open_archives if k[0] == os.getpid()]:
        _open_archives.pop(key).close()


def parse_voc(data: bytes) -> tuple:
    """VOC XML -> ([(xmin, ymin, xmax, ymax, name)], problems); raises ValueError when it is not XML."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise ValueError(f"malformed XML ({e})") from None
    boxes, problems = [], []
    for i, obj in enumerate(root.iter("object")):
        try:
            box = obj.find("bndbox")
            coords = [float(box.find(tag).text) for tag in ("xmin", "ymin", "xmax", "ymax")]
        except (AttributeError, TypeError, ValueError):
            problems.append(f"object {i + 1} has no readable <bndbox>")
            continue
        boxes.append((*coords, (obj.findtext("name") or "").strip()))
    if not boxes and not problems:
        problems.append("no <object> in the annotation")
    return boxes, problems
