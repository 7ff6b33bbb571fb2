"""Time writing 10,000 64×64 PNGs into the submission zip against the save-a-folder-then-archive baseline."""
import argparse
import io
import shutil
import tempfile
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from kit import package


def smooth_noise(n, seed=0):
    """n realistic-ish images: 8×8 noise upsampled bilinearly to 64×64, uint8 N×3×64×64."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(n, 3, 8, 8, generator=g) * 255
    return torch.nn.functional.interpolate(small, size=64, mode="bilinear").round().byte().numpy()


def timed(label, fn, results):
    """Run fn once, print and record its wall time."""
    t = time.perf_counter()
    fn()
    results[label] = time.perf_counter() - t
    print(f"{label:<48} {results[label]:6.2f} s")


def encode_with_pil(hwc):
    """The PIL alternative to package._encode_png, for comparison (compress_level=1)."""
    buf = io.BytesIO()
    Image.fromarray(hwc, "RGB").save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def encode_with_opencv(hwc):
    """OpenCV's PNG encoder (albumentations brings it), at compression 1, for comparison."""
    import cv2
    ok, png = cv2.imencode(".png", np.ascontiguousarray(hwc[:, :, ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return png.tobytes()


def encode_chunk(chunk):
    """Process-pool worker: PNG bytes of a chunk of H×W×3 arrays."""
    return [package._encode_png(a) for a in chunk]


def write_with_processes(images, path, workers):
    """The process-pool alternative to write_zip's threads, for comparison."""
    hwc = package._as_nhwc_rgb(images)
    with ProcessPoolExecutor(workers) as pool, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        pngs = (p for chunk in pool.map(encode_chunk, np.array_split(hwc, workers * 8)) for p in chunk)
        for i, png in enumerate(pngs):
            zf.writestr(f"{i}.png", png)


def baseline(images, tmp):
    """Save every PNG to a folder with PIL defaults, then shutil.make_archive (deflate)."""
    folder = tmp / "baseline"
    folder.mkdir()
    for i, image in enumerate(images.transpose(0, 2, 3, 1)):
        Image.fromarray(image).save(folder / f"{i}.png")
    shutil.make_archive(str(tmp / "baseline"), "zip", folder)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10000)
    args = parser.parse_args()
    images = smooth_noise(args.n)
    results = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        timed(f"write_zip, {package.workers()} threads (shipped)",
              lambda: package.write_zip(images, tmp / "a.zip", progress=False), results)
        workers = package.workers
        package.workers = lambda: 1
        timed("write_zip, 1 thread", lambda: package.write_zip(images, tmp / "b.zip", progress=False), results)
        package.workers = workers
        encode = package._encode_png
        package._encode_png = encode_with_pil
        timed(f"write_zip with PIL's PNG encoder, {workers()} threads",
              lambda: package.write_zip(images, tmp / "d.zip", progress=False), results)
        package._encode_png = encode_with_opencv
        timed(f"write_zip with OpenCV's PNG encoder, {workers()} threads",
              lambda: package.write_zip(images, tmp / "e.zip", progress=False), results)
        package._encode_png = encode
        timed(f"process pool of {workers()}", lambda: write_with_processes(images, tmp / "c.zip", workers()), results)
        timed("baseline: PNG folder + shutil.make_archive", lambda: baseline(images, tmp), results)
        timed("check_zip of the written zip", lambda: package.check_zip(tmp / "a.zip", n_images=args.n), results)
        size = (tmp / "a.zip").stat().st_size / 1e6
    print(f"zip size {size:.1f} MB for {args.n:,} images; shipped vs baseline: "
          f"{results['baseline: PNG folder + shutil.make_archive'] / results[next(iter(results))]:.1f}x faster")


if __name__ == "__main__":
    main()
