"""The real sets (UCI digits, natural-photo crops): a Stanford-Dogs-shaped archive for `kit prepare`, an image folder
for the baseline, and a held-out part kept out of the classifier's training."""
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from kit.files import atomic_path

SIZE = 64
PHOTO_GRID = (3, 3)                 # regions of each photograph (rows, columns): a class is one photo's region
PHOTO_SCALES = (64, 96, 144, 208)   # crop sides in the photograph's pixels, each resized to SIZE
PHOTO_CROPS_PER_CLASS = 150       # 27 classes: 4,050 crops (Stanford Dogs: about 170 a breed)
# write_set and load_classifier reuse what --out holds: after changing these, delete its photos* and photo_classifier.pt


def digits(size=SIZE):
    """The 1,797 UCI digits as uint8 N×3×size×size (white ink on black, bilinear upscale) and their labels."""
    from sklearn.datasets import load_digits
    d = load_digits()
    x = torch.from_numpy(d.images / 16.0).float()[:, None]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    u8 = (x.clamp(0, 1) * 255).round().to(torch.uint8).repeat(1, 3, 1, 1).numpy()
    return u8, d.target.astype(np.int64)


def photographs():
    """{name: PIL RGB image} of the real photographs the installed packages ship (scikit-learn's, matplotlib's)."""
    import matplotlib.cbook
    from PIL import Image
    from sklearn.datasets import load_sample_images
    sklearn_photos = load_sample_images()
    photos = {Path(f).stem: Image.fromarray(im) for f, im in zip(sklearn_photos.filenames, sklearn_photos.images)}
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        photos["grace_hopper"] = Image.open(f).convert("RGB")
    return dict(sorted(photos.items()))


def region_names():
    """'top_left', ... for PHOTO_GRID, row by row."""
    rows = {1: ["all"], 2: ["top", "bottom"], 3: ["top", "middle", "bottom"]}[PHOTO_GRID[0]]
    columns = {1: ["all"], 2: ["left", "right"], 3: ["left", "centre", "right"]}[PHOTO_GRID[1]]
    return [f"{r}_{c}" for r in rows for c in columns]


def photo_crops(size=SIZE, per_class=PHOTO_CROPS_PER_CLASS, seed=0):
    """Random square crops of the photographs as uint8 N×3×size×size and their classes (photo × region).

    Class k is region k % R of photo k // R (R regions, PHOTO_GRID row by row): each crop's centre lies in its region,
    its side is one of PHOTO_SCALES (kept inside the photo), it is resized with Lanczos and mirrored half the time.
    """
    from PIL import Image
    rng = np.random.default_rng(seed)
    rows, columns = PHOTO_GRID
    images, labels = [], []
    for p, photo in enumerate(photographs().values()):
        width, height = photo.size
        for r in range(rows * columns):
            cell_y, cell_x = divmod(r, columns)
            for _ in range(per_class):
                side = int(rng.choice(PHOTO_SCALES))
                x = centre(rng, cell_x * width / columns, (cell_x + 1) * width / columns, side, width)
                y = centre(rng, cell_y * height / rows, (cell_y + 1) * height / rows, side, height)
                crop = photo.crop((x - side // 2, y - side // 2, x - side // 2 + side, y - side // 2 + side))
                crop = crop.resize((size, size), Image.LANCZOS)
                if rng.random() < 0.5:
                    crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
                images.append(np.asarray(crop).transpose(2, 0, 1))
                labels.append(p * rows * columns + r)
    return np.stack(images), np.array(labels, np.int64)


def centre(rng, low, high, side, extent):
    """A random integer centre in [low, high) whose crop of `side` stays inside [0, extent)."""
    low, high = max(low, side / 2), min(high, extent - side / 2)
    return int(rng.uniform(low, high)) if high > low else int(low)


@dataclass(frozen=True)
class QualitySet:
    """One real set of the benchmark: how it is made, its classes as breed folders, and what a sample is called."""
    name: str                     # --set name; the data folder and cache are named after it
    make: Callable                # () -> (uint8 N×3×SIZE×SIZE, int64 labels)
    breeds: tuple                 # breed folder name of each class, sorted by wnid = by label
    n_held_out: int               # images kept out of the classifier's training
    noun: str                     # "digit" or "photo": names the classifier file, the FID column and the references
    stem: str                     # bench/results/STEM.jsonl, STEM.md, STEM_fid_vs_*.png, STEM_samples_*.png
    fid_bar: float                # the bar: a conditional model's FID at most this share of the baseline's
    asked_bar: Optional[float]    # ... and the asked-for class at least this often (None: reported, no bar)


SETS = {
    "digits": QualitySet("digits", digits, tuple(f"n{9000000 + k:08d}-digit_{k}" for k in range(10)), 597, "digit",
                         "quality", 0.5, 0.9),                      # issue 13's bar
    "photos": QualitySet("photos", photo_crops,
                         tuple(f"n{9100000 + p * len(region_names()) + r:08d}-{photo}_{region}"
                               for p, photo in enumerate(("china", "flower", "grace_hopper"))
                               for r, region in enumerate(region_names())),
                         600, "photo", "quality_photos", 0.1, None),  # issue 21's
}


def jpeg_bytes(image_u8):
    """One 3×H×W uint8 image as JPEG bytes (quality 95, no chroma subsampling)."""
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image_u8.transpose(1, 2, 0))).save(buf, "JPEG", quality=95, subsampling=0)
    return buf.getvalue()


def decode(blobs):
    """JPEG bytes -> uint8 N×3×H×W: the pixels every trainer and the reference statistics see."""
    from PIL import Image
    return np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")).transpose(2, 0, 1) for b in blobs])


def write_set(qset, root):
    """Write root/archive/{all-dogs,Annotation}.zip and root/folder/<breed>/*.jpg; return the decoded real set."""
    from kit.data.synthetic import voc_xml
    root = Path(root)
    images, labels = qset.make()
    blobs = [jpeg_bytes(im) for im in images]
    breeds = qset.breeds
    names = [f"{breeds[k].split('-')[0]}_{i}" for i, k in enumerate(labels)]
    if not (root / "archive" / "Annotation.zip").exists():
        (root / "archive").mkdir(parents=True, exist_ok=True)
        for breed in breeds:
            (root / "folder" / breed).mkdir(parents=True, exist_ok=True)
        for name, k, blob in zip(names, labels, blobs):
            (root / "folder" / breeds[k] / f"{name}.jpg").write_bytes(blob)
        with zipfile.ZipFile(root / "archive" / "all-dogs.zip", "w") as z:
            for name, blob in zip(names, blobs):
                z.writestr(f"all-dogs/{name}.jpg", blob)
        with atomic_path(root / "archive" / "Annotation.zip") as tmp, zipfile.ZipFile(tmp, "w") as z:
            for name, k in zip(names, labels):
                z.writestr(f"Annotation/{breeds[k]}/{name}", voc_xml(breeds[k], name, SIZE, SIZE, [(0, 0, SIZE, SIZE, k)]))
    return decode(blobs), labels


def split(n, n_held_out, seed=0):
    """Fixed train / held-out index split of a set of n images."""
    order = np.random.default_rng(seed).permutation(n)
    return order[n_held_out:], order[:n_held_out]


def as_dataset(images):
    """uint8 images wrapped as a kit Dataset (what kit.metrics.score_images takes as `real`)."""
    from kit.data.cache import Dataset
    return Dataset(images=images, labels=np.zeros(len(images), np.int64), classes=["real"], sources=[""] * len(images))
