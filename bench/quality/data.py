"""The digits as data sets: a Stanford-Dogs-shaped archive for `kit prepare`, an image folder for the baseline."""
import io
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from kit.files import atomic_path

SIZE = 64
N_HELD_OUT = 597          # digits kept out of the classifier's training (1,200 train it)


def digits(size=SIZE):
    """The 1,797 UCI digits as uint8 N×3×size×size (white ink on black, bilinear upscale) and their labels."""
    from sklearn.datasets import load_digits
    d = load_digits()
    x = torch.from_numpy(d.images / 16.0).float()[:, None]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    u8 = (x.clamp(0, 1) * 255).round().to(torch.uint8).repeat(1, 3, 1, 1).numpy()
    return u8, d.target.astype(np.int64)


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


def write_digit_sets(root):
    """Write root/archive/{all-dogs,Annotation}.zip and root/folder/<breed>/*.jpg; return the decoded real set."""
    from kit.data.synthetic import voc_xml
    root = Path(root)
    images, labels = digits()
    blobs = [jpeg_bytes(im) for im in images]
    breeds = [f"n{9000000 + k:08d}-digit_{k}" for k in range(10)]   # sorted by wnid = sorted by digit
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


def split(n, n_held_out=N_HELD_OUT, seed=0):
    """Fixed train / held-out index split of the digits."""
    order = np.random.default_rng(seed).permutation(n)
    return order[n_held_out:], order[:n_held_out]


def as_dataset(images):
    """uint8 images wrapped as a kit Dataset (what kit.metrics.score_images takes as `real`)."""
    from kit.data.cache import Dataset
    return Dataset(images=images, labels=np.zeros(len(images), np.int64), classes=["digit"], sources=[""] * len(images))
