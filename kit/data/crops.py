"""Crops: one record -> size×size uint8 crops (square around each box, the tight box, or the whole image), plus
random box-safe variants (zoom, shift, a few degrees of rotation) made with albumentations, and box filters."""
import functools
import io
import math
import zlib
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, UnidentifiedImageError

from kit.data.readers import name_key, parse_voc, read_bytes

CROPS = ("square", "box", "whole")
VERSION = 1          # bump when the crops change, so prepared caches are made again
VARIANTS_VERSION = 3  # bump when the random variants change (caches of one crop per box stay valid)
ROTATE_DEGREES = 5   # variants turn by at most this much either way
ZOOM_OUT = 1.3       # a variant's square side is up to this many times the (turned) box's long side
MARGIN = 0.03        # and leaves at least this share of that long side free around the box


@dataclass(frozen=True)
class Options:
    """How to cut: the crop kind and size, K crops per box (the first as `crop` makes it, the rest random), the seed
    of the random ones, and the box filters (0 is off): shorter side under min_box px, long/short above max_aspect."""
    crop: str = "square"
    size: int = 64
    variants: int = 1
    seed: int = 0
    min_box: int = 0
    max_aspect: float = 0.0

    def changes(self) -> dict:
        """The options that differ from the defaults and change the crops (what a cache fingerprint must add)."""
        changed = {k: v for k, v in vars(self).items() if k not in ("crop", "size") and v != getattr(Options, k)}
        if self.variants == 1:
            changed.pop("seed", None)         # one crop per box is never random
            return changed
        return {**changed, "variants_version": VARIANTS_VERSION}


@dataclass
class Crops:
    """The crops of some records, stacked, with what was read and skipped."""
    images: np.ndarray                 # uint8 N×C×size×size
    labels: list
    sources: list
    skipped: list = field(default_factory=list)     # {"file", "reason"}
    images_read: int = 0
    no_annotation: int = 0             # images cropped without a usable box (centre square)
    filtered: dict = field(default_factory=dict)    # boxes dropped by --min-box / --max-aspect, by flag


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


def box_filter(boxes: list, options: Options) -> tuple:
    """(kept boxes, [(flag, reason)] of those dropped) by --min-box and --max-aspect."""
    kept, dropped = [], []
    for i, box in enumerate(boxes):
        w, h = box[2] - box[0], box[3] - box[1]
        if options.min_box and min(w, h) < options.min_box:
            dropped.append(("min_box", f"box {i + 1} is {w:g}x{h:g} px, under --min-box {options.min_box}"))
        elif options.max_aspect and max(w / h, h / w) > options.max_aspect:
            dropped.append(("max_aspect", f"box {i + 1} has aspect {max(w / h, h / w):.2f}, over --max-aspect "
                                          f"{options.max_aspect:g}"))
        else:
            kept.append(box)
    return kept, dropped


def random_square(box: tuple, width: int, height: int, rng) -> tuple:
    """A random square holding the whole box and a MARGIN around it (side up to ZOOM_OUT times that), in the image."""
    x0, y0, x1, y1 = box[:4]
    pad = MARGIN * max(x1 - x0, y1 - y0)
    x0, y0, x1, y1 = max(x0 - pad, 0), max(y0 - pad, 0), min(x1 + pad, width), min(y1 + pad, height)
    long_side = max(x1 - x0, y1 - y0)
    side = min(width, height, long_side * rng.uniform(1.0, ZOOM_OUT))
    if side < long_side:                      # the box is wider than the image is tall (or the reverse)
        return square_around(box, width, height)
    left = rng.uniform(max(0, x1 - side), min(x0, width - side))
    top = rng.uniform(max(0, y1 - side), min(y0, height - side))
    return left, top, left + side, top + side


def pixel_square(square: tuple, width: int, height: int) -> tuple:
    """A float square as whole pixels that still hold it (left and top down, side up), kept in the image."""
    left, top = math.floor(square[0]), math.floor(square[1])
    side = min(math.ceil(max(square[2] - left, square[3] - top)), width, height)
    left, top = min(left, width - side), min(top, height - side)
    return left, top, left + side, top + side


@functools.lru_cache(maxsize=None)
def pipelines(size: int) -> tuple:
    """(turn by a few degrees carrying a pascal_voc box along, resize to size×size), built once per process."""
    import albumentations as A
    import cv2
    turn = A.Compose([A.Affine(rotate=(-ROTATE_DEGREES, ROTATE_DEGREES), border_mode=cv2.BORDER_REFLECT_101, p=1.0)],
                     bbox_params=A.BboxParams(format="pascal_voc", label_fields=[]))
    return turn, A.Resize(size, size, interpolation=cv2.INTER_AREA)


def variant(pixels: np.ndarray, box: tuple, size: int, seed: int) -> np.ndarray:
    """One random box-safe crop of H×W(×C) pixels: turned by a few degrees (albumentations carries the box along),
    then a random square around the turned box, size×size."""
    turn, resize = pipelines(size)
    turn.set_random_seed(seed)
    turned = turn(image=pixels, bboxes=[box[:4]])     # the box becomes the bounding box of its turned corners
    height, width = pixels.shape[:2]
    square = random_square(turned["bboxes"][0], width, height, np.random.default_rng(seed))
    left, top, right, bottom = pixel_square(square, width, height)
    return resize(image=np.ascontiguousarray(turned["image"][top:bottom, left:right]))["image"]


def variant_seed(options: Options, name: str, box_index: int, k: int) -> int:
    """A seed of its own for each record, box and variant: the same whatever worker cuts it."""
    return zlib.crc32(f"{options.seed}|{name}|{box_index}|{k}".encode())


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


def crop_record(record, options: Options, mode: str, breeds: dict) -> tuple:
    """(crops C×size×size, labels, sources, problems {"file", "reason"}, read ok, had a box, dropped boxes' flags)."""
    problems, boxes, dropped = [], [], []
    size = options.size
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
        had_boxes = bool(boxes)
        boxes, dropped = box_filter(boxes, options) if options.crop != "whole" else (boxes, [])
        problems += [{"file": record.annotation[1], "reason": reason} for _, reason in dropped]
        if had_boxes and not boxes:
            return [], [], [], problems, True, True, [flag for flag, _ in dropped]
        areas = regions(boxes, width, height, options.crop)
        smallest = min(min(x1 - x0, y1 - y0) for x0, y0, x1, y1 in areas)
        img.draft("RGB", (math.ceil(width * size / smallest), math.ceil(height * size / smallest)))  # JPEG: DCT scaling
        img = decoded(img, mode)
    except Exception as e:
        reason = str(e) if isinstance(e, ValueError) else f"unreadable image ({type(e).__name__}: {e})"
        return [], [], [], problems + [{"file": record.name, "reason": reason.splitlines()[0]}], False, False, []
    sx, sy = img.width / width, img.height / height
    crops = [np.asarray(img.resize((size, size), Image.LANCZOS, box=(x0 * sx, y0 * sy, x1 * sx, y1 * sy),
                                   reducing_gap=3.0)) for x0, y0, x1, y1 in areas]
    labels = ([breeds.get(name_key(box[4]), record.label) for box in boxes] or [record.label])[:len(crops)]
    sources = [record.name] * len(crops)
    if options.variants > 1 and options.crop != "whole":
        pixels = np.asarray(img)
        for i, (x0, y0, x1, y1) in enumerate(box[:4] for box in boxes or [(0, 0, width, height)]):
            for k in range(1, options.variants):
                crops.append(variant(pixels, (x0 * sx, y0 * sy, x1 * sx, y1 * sy), size,
                                     variant_seed(options, record.name, i, k)))
                labels.append(labels[i])
                sources.append(f"{record.name}#box{i + 1}v{k}")
    crops = [c[None] if c.ndim == 2 else c.transpose(2, 0, 1) for c in crops]
    return crops, labels, sources, problems, True, bool(boxes), [flag for flag, _ in dropped]


def crop_records(records: list, options: Options, channels: int, breeds: dict) -> Crops:
    """Crop a chunk of records (what one worker process does)."""
    out = Crops(np.zeros((0, channels, options.size, options.size), np.uint8), [], [])
    images = []
    for record in records:
        crops, labels, sources, problems, ok, boxed, dropped = crop_record(record, options,
                                                                           "L" if channels == 1 else "RGB", breeds)
        images += crops
        out.labels += labels
        out.sources += sources
        out.skipped += problems
        out.images_read += ok
        out.no_annotation += ok and not boxed
        for flag in dropped:
            out.filtered[flag] = out.filtered.get(flag, 0) + 1
    if images:
        out.images = np.stack(images)
    return out
