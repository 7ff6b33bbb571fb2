"""Demo archives shaped like the competition's: all-dogs.zip + Annotation.zip with drawn "dogs"."""
import colorsys
import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

# the first breeds of Stanford Dogs (sorted by wnid); more breeds get made-up wnids that sort after them
REAL_BREEDS = ["n02085620-Chihuahua", "n02085782-Japanese_spaniel", "n02085936-Maltese_dog", "n02086079-Pekinese",
               "n02086240-Shih-Tzu", "n02086646-Blenheim_spaniel", "n02086910-papillon", "n02087046-toy_terrier",
               "n02087394-Rhodesian_ridgeback", "n02088094-Afghan_hound", "n02088238-basset", "n02088364-beagle"]
SHAPES = ["ellipse", "rectangle", "triangle", "diamond", "cross", "hexagon"]


def breed_folders(n_breeds: int) -> list:
    """Annotation folder names (wnid-name) of `n_breeds` breeds, in label order."""
    return [REAL_BREEDS[k] if k < len(REAL_BREEDS) else f"n0{2100000 + k}-breed_{k}" for k in range(n_breeds)]


def breed_colour(k: int, n_breeds: int) -> tuple:
    """A saturated colour of its own for breed k (hues spread round the circle)."""
    hue = (k / min(n_breeds, 12) + 0.37 * (k // 12)) % 1.0
    return tuple(int(255 * c) for c in colorsys.hsv_to_rgb(hue, 0.95, 0.95 if k % 24 < 12 else 0.6))


def draw_dog(draw: ImageDraw.ImageDraw, box: tuple, k: int, n_breeds: int) -> None:
    """A solid shape filling `box` whose colour and outline both depend on breed k; its centre is always inside."""
    x0, y0, x1, y1 = box
    xm, ym, w, h = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
    colour = breed_colour(k, n_breeds)
    shape = SHAPES[k % len(SHAPES)]
    if shape == "ellipse":
        draw.ellipse(box, fill=colour)
    elif shape == "rectangle":
        draw.rectangle(box, fill=colour)
    elif shape == "cross":
        draw.rectangle((x0, y0 + h / 3, x1, y1 - h / 3), fill=colour)
        draw.rectangle((x0 + w / 3, y0, x1 - w / 3, y1), fill=colour)
    else:
        points = {"triangle": [(xm, y0), (x1, y1), (x0, y1)],
                  "diamond": [(xm, y0), (x1, ym), (xm, y1), (x0, ym)],
                  "hexagon": [(x0 + w / 4, y0), (x1 - w / 4, y0), (x1, ym), (x1 - w / 4, y1), (x0 + w / 4, y1),
                              (x0, ym)]}[shape]
        draw.polygon(points, fill=colour)
    eye = max(2, w // 12)                                  # a dark "eye" off centre, so the centre stays solid
    draw.ellipse((xm + w / 5 - eye, y0 + h / 4 - eye, xm + w / 5 + eye, y0 + h / 4 + eye), fill=(20, 20, 20))


def background(rng: np.random.Generator, width: int, height: int, grain: float) -> Image.Image:
    """A muted, smoothly varying background (low saturation, so it never looks like a breed colour)."""
    base = rng.uniform(70, 190) + rng.normal(0, 12, 3)
    coarse = base + rng.normal(0, 25, (max(2, height // 48), max(2, width // 48), 1)) \
        + rng.normal(0, 6, (max(2, height // 48), max(2, width // 48), 3))
    img = Image.fromarray(coarse.clip(0, 255).astype(np.uint8)).resize((width, height), Image.BICUBIC)
    if grain:
        pixels = np.asarray(img, dtype=np.float32) + rng.normal(0, grain, (height, width, 1)).astype(np.float32)
        img = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    return img


def voc_xml(folder: str, image_id: str, width: int, height: int, boxes: list) -> str:
    """A VOC annotation like Stanford Dogs' (one <object> per box)."""
    name = folder.split("-", 1)[1]
    objects = "".join(
        f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>"
        f"<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        for x0, y0, x1, y1, _ in boxes)
    return (f"<annotation><folder>{folder[1:9]}</folder><filename>{image_id}</filename>"
            f"<source><database>ImageNet database</database></source>"
            f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"
            f"<segment>0</segment>{objects}</annotation>")


def write_demo(root, n_images=240, n_breeds=6, seed=0, sizes=(200, 500), grain=0.0, quality=90) -> dict:
    """Write root/all-dogs.zip and root/Annotation.zip; every 5th image holds two dogs of its breed."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    folders = breed_folders(n_breeds)
    all_boxes = {}
    with zipfile.ZipFile(root / "all-dogs.zip", "w", zipfile.ZIP_STORED) as images, \
            zipfile.ZipFile(root / "Annotation.zip", "w", zipfile.ZIP_DEFLATED) as annotations:
        for i in range(n_images):
            k = i % n_breeds
            width, height = (int(v) for v in rng.integers(sizes[0], sizes[1] + 1, 2))
            img = background(rng, width, height, grain)
            draw = ImageDraw.Draw(img)
            parts = 2 if i % 5 == 4 else 1
            boxes = []
            for p in range(parts):
                left, right = width * p // parts, width * (p + 1) // parts
                side = int(min(right - left, height) * rng.uniform(0.45, 0.85))
                w, h = int(side * rng.uniform(0.75, 1.0)), int(side * rng.uniform(0.75, 1.0))
                x0, y0 = int(rng.integers(left, right - w + 1)), int(rng.integers(0, height - h + 1))
                boxes.append((x0, y0, x0 + w, y0 + h, k))
                draw_dog(draw, (x0, y0, x0 + w - 1, y0 + h - 1), k, n_breeds)
            image_id = f"{folders[k].split('-')[0]}_{i}"
            buffer = io.BytesIO()
            img.save(buffer, "JPEG", quality=quality)
            images.writestr(f"all-dogs/{image_id}.jpg", buffer.getvalue())
            annotations.writestr(f"Annotation/{folders[k]}/{image_id}", voc_xml(folders[k], image_id, width, height,
                                                                               boxes))
            all_boxes[f"{image_id}.jpg"] = boxes
    return {"images": root / "all-dogs.zip", "annotations": root / "Annotation.zip", "boxes": all_boxes,
            "breeds": [f.split("-", 1)[1].replace("_", " ") for f in folders]}
