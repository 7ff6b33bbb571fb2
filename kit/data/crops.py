"""Crops: one record -> size×size uint8 crops (square around each box, the tight box, or the whole image)."""
import io
import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, UnidentifiedImageError

from kit.data.readers import name_key, parse_voc, read_bytes

CROPS = ("square", "box", "whole")
VERSION = 1          # bump when the crops change, so prepared caches are made again


@dataclass
class Crops:
    """The crops of some records, stacked, with what was read and skipped."""
    images: np.ndarray                 # uint8 N×C×size×size
    labels: list
    sources: list
    skipped: list = field(default_factory=list)     # {"file", "reason"}
    images_read: int = 0
    no_annotation: int = 0             # images cropped without a usable box (centre square)


def usable_boxes(boxes: list, width: int, height: int) -> tuple:
    """Clamp boxes to the image; those of zero area or wholly outside become problems."""
    good, problems = [], []
    for i, (x0, y0, x1, y1, name) in enumerate(boxes):
        if x1 <= x0 or y1 <= y0:
            problems.append(f"box {i + 1} ({x0:g},{y0:g},{x1:g},{y1:g}) has zero area")
            continue
        clamped = (max(x0, 0), max(y0, 0), min(x1, width), min(y1, height))
        if clamped[2] <= clamped[0] or clamped[3] <= clamped[1]:
            problems.append(f"box {i + 1} ({x0:g},{y0:g},{x1:g},{y1:g}) lies outside the {width}x{height} image")
            continue
        good.append((*clamped, name))
    return good, problems


def square_around(box: tuple, width: int, height: int) -> tuple:
    """The square centred on `box` (its short side grown), shifted and shrunk to fit in the image."""
    x0, y0, x1, y1 = box[:4]
    side = min(max(x1 - x0, y1 - y0), width, height)
    left = min(max((x0 + x1 - side) / 2, 0), width - side)
    top = min(max((y0 + y1 - side) / 2, 0), height - side)
    return left, top, left + side, top + side


def regions(boxes: list, width: int, height: int, crop: str) -> list:
    """The image regions to cut: one per box, or one for the whole image / its centre square."""
    if crop == "whole":
        return [(0, 0, width, height)]
    if not boxes:
        return [square_around((0, 0, width, height), width, height)]
    return [box[:4] if crop == "box" else square_around(box, width, height) for box in boxes]


def open_image(record) -> Image.Image:
    """The record's image, opened lazily (nothing decoded yet); a file that is no image raises ValueError."""
    if record.pixels is not None:
        return Image.fromarray(record.pixels)
    data = read_bytes(record.image)
    if not data:
        raise ValueError("empty file (0 bytes)")
    try:
        return Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ValueError("not an image, or a corrupt one") from None


def decoded(img: Image.Image, mode: str) -> Image.Image:
    """Decode and convert to RGB (transparency over white) or L."""
    img.load()
    if mode == "RGB" and (img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info):
        img = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", img.size, (255, 255, 255, 255)), img)
    return img if img.mode == mode else img.convert(mode)


def crop_record(record, crop: str, size: int, mode: str, breeds: dict) -> tuple:
    """-> (crops C×size×size, labels, problems {"file","reason"}, read ok, used a box)."""
    problems, boxes = [], []
    if record.annotation:
        try:
            boxes, notes = parse_voc(read_bytes(record.annotation))
        except Exception as e:
            notes = [str(e) if isinstance(e, ValueError) else f"unreadable annotation ({type(e).__name__}: {e})"]
        problems += [{"file": record.annotation[1], "reason": note} for note in notes]
    try:
        img = open_image(record)
        width, height = img.size
        boxes, notes = usable_boxes(boxes, width, height)
        problems += [{"file": record.annotation[1], "reason": note} for note in notes]
        areas = regions(boxes, width, height, crop)
        smallest = min(min(x1 - x0, y1 - y0) for x0, y0, x1, y1 in areas)
        img.draft("RGB", (math.ceil(width * size / smallest), math.ceil(height * size / smallest)))  # JPEG: DCT scaling
        img = decoded(img, mode)
    except Exception as e:
        reason = str(e) if isinstance(e, ValueError) else f"unreadable image ({type(e).__name__}: {e})"
        return [], [], problems + [{"file": record.name, "reason": reason.splitlines()[0]}], False, False
    sx, sy = img.width / width, img.height / height
    crops = [np.asarray(img.resize((size, size), Image.LANCZOS, box=(x0 * sx, y0 * sy, x1 * sx, y1 * sy),
                                   reducing_gap=3.0)) for x0, y0, x1, y1 in areas]
    crops = [c[None] if c.ndim == 2 else c.transpose(2, 0, 1) for c in crops]
    labels = [breeds.get(name_key(box[4]), record.label) for box in boxes] or [record.label]
    return crops, labels[:len(crops)], problems, True, bool(boxes)


def crop_records(records: list, crop: str, size: int, channels: int, breeds: dict) -> Crops:
    """Crop a chunk of records (what one worker process does)."""
    out = Crops(np.zeros((0, channels, size, size), np.uint8), [], [])
    images = []
    for record in records:
        crops, labels, problems, ok, boxed = crop_record(record, crop, size, "L" if channels == 1 else "RGB", breeds)
        images += crops
        out.labels += labels
        out.sources += [record.name] * len(crops)
        out.skipped += problems
        out.images_read += ok
        out.no_annotation += ok and not boxed
    if images:
        out.images = np.stack(images)
    return out
