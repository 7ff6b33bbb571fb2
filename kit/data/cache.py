"""Prepare training crops once into a cache file (uint8 N×C×H×W + labels) and load it fast."""
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kit.errors import UserError
from kit.files import atomic_path

CACHE_VERSION = 1


@dataclass
class Dataset:
    """The prepared cache: what training, scoring and the benchmarks read."""
    images: np.ndarray                 # uint8 N×C×H×W
    labels: np.ndarray                 # int64 N, index into classes
    classes: list                      # class (breed) names, index = label
    sources: list                      # source file of each sample
    fingerprint: str = ""              # hash of the source files and the prepare options
    report: dict = field(default_factory=dict)

    def __len__(self):
        return len(self.images)


def save(dataset: Dataset, path) -> None:
    """Write the cache atomically as an uncompressed .npz (loads in a fraction of a second)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, version=np.int64(CACHE_VERSION), images=dataset.images,
                     labels=dataset.labels.astype(np.int64),
                     classes=np.array(dataset.classes, dtype=str), sources=np.array(dataset.sources, dtype=str),
                     fingerprint=np.array(dataset.fingerprint), report=np.array(json.dumps(dataset.report)))


def is_cache(path) -> bool:
    """True when `path` is a file written by `save`."""
    path = Path(path)
    if not path.is_file() or path.suffix != ".npz":
        return False
    try:
        with np.load(path, allow_pickle=False) as z:
            return "version" in z.files and "images" in z.files
    except Exception:
        return False


def load(path) -> Dataset:
    """Read a cache written by `save`; a bad file gives a one-line UserError."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["version"]) != CACHE_VERSION:
                raise UserError(f"{path} is a cache of another kit version: run `python -m kit prepare` again")
            return Dataset(images=z["images"], labels=z["labels"], classes=z["classes"].tolist(),
                           sources=z["sources"].tolist(), fingerprint=str(z["fingerprint"]),
                           report=json.loads(str(z["report"])))
    except UserError:
        raise
    except FileNotFoundError:
        raise UserError(f"{path} does not exist: run `python -m kit prepare --data ... --out {path}` first")
    except Exception as e:
        raise UserError(f"{path} is not a prepared cache ({type(e).__name__}): "
                        "run `python -m kit prepare` to make one") from None
