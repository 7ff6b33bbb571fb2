"""Real images as the organisers' scorer read them: every source image whole, at its own size, decoded to RGB."""
import numpy as np

from kit.data import cache, crops, readers


def original_images(real):
    """(fingerprint of the source files, list of records, one per image file) of a real-image path of any layout."""
    layout = readers.locate(real)
    source = readers.read(layout)
    unique = {}
    for record in source.records:
        unique.setdefault(record.image, record)
    return cache.fingerprint(layout, "originals", 0), list(unique.values())


def decode(record):
    """H×W×3 uint8 pixels of a record's image, or None when it cannot be decoded."""
    try:
        return np.array(crops.decoded(crops.open_image(record), "RGB"))
    except Exception:
        return None
