"""Shared fixtures: small demo archives and their prepared cache, made once per test session."""
import io
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from kit.data import cache, synthetic


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """write_demo's answer for 120 images of 6 breeds (archives, boxes, breed names)."""
    return synthetic.write_demo(tmp_path_factory.mktemp("demo"), n_images=120, n_breeds=6, seed=0)


@pytest.fixture(scope="session")
def demo_dir(demo):
    """Folder holding the demo all-dogs.zip and Annotation.zip."""
    return demo["images"].parent


@pytest.fixture(scope="session")
def inception_weights(tmp_path_factory):
    """A random FID-Inception state dict saved as a file, loaded by the same code as the real weights."""
    from kit.metrics.features import random_inception_state_dict
    path = tmp_path_factory.mktemp("weights") / "random_fid_inception.pth"
    torch.save(random_inception_state_dict(), path)
    return path


@pytest.fixture(scope="session")
def nasnet_weights(tmp_path_factory):
    """A randomly initialised timm nasnetalarge state dict (seed 0) saved as a file (356 MB)."""
    import timm
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("nasnet") / "random_nasnetalarge.pth"
    torch.save(timm.create_model("nasnetalarge", pretrained=False).state_dict(), path)
    return path


@pytest.fixture(scope="session")
def demo_cache(demo_dir, tmp_path_factory):
    """The demo prepared with crop="square" into a .npz cache."""
    out = tmp_path_factory.mktemp("demo_cache") / "demo.npz"
    cache.prepare(demo_dir, out, crop="square", workers=1, progress=False)
    return out


def jpeg(colour=(200, 30, 30), size=(300, 200), box=None, box_colour=(30, 30, 220), mode="RGB", fmt="JPEG"):
    """Bytes of an image of `colour` with a solid `box_colour` rectangle at box=(x0, y0, x1, y1)."""
    img = Image.new("RGB", size, colour)
    if box:
        img.paste(box_colour, box)
    buffer = io.BytesIO()
    img.convert(mode).save(buffer, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def voc(*boxes, name="Chihuahua", size=(300, 200)):
    """VOC XML text with one <object> per (x0, y0, x1, y1)."""
    objects = "".join(f"<object><name>{name}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
                      f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>" for b in boxes)
    return f"<annotation><size><width>{size[0]}</width><height>{size[1]}</height></size>{objects}</annotation>"


@pytest.fixture
def archives(tmp_path):
    """write(images={name: bytes}, annotations={"n02085620-Chihuahua/id": xml}) -> folder with the two zips."""
    def write(images, annotations=None):
        with zipfile.ZipFile(tmp_path / "all-dogs.zip", "w") as z:
            for name, data in images.items():
                z.writestr(f"all-dogs/{name}", data)
        if annotations is not None:
            with zipfile.ZipFile(tmp_path / "Annotation.zip", "w") as z:
                for name, text in annotations.items():
                    z.writestr(f"Annotation/{name}", text)
        return tmp_path
    return write


def mean_colour(crop: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
    """Mean RGB of a region of a C×H×W crop."""
    return crop[:, rows, cols].reshape(crop.shape[0], -1).mean(axis=1)
