"""Score generated images with the competition's metric: FID, memorisation distance d, MiFID (real stats cached)."""
import contextlib
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from kit.data.cache import Dataset, default_dir
from kit.errors import UserError
from kit.files import atomic_path, refuse_overwrite
from kit.metrics import fid as F
from kit.device import resolve_device
from kit.metrics.features import InceptionFeatures

N_NEAREST_SHOWN = 32


def open_real(real) -> Dataset:
    """A Dataset as is; anything else through kit.data.cache.load_or_prepare as whole images resized to 64×64."""
    if isinstance(real, Dataset):
        return real
    from kit.data.cache import load_or_prepare
    return load_or_prepare(real, crop="whole", size=64)


def content_key(images: np.ndarray, extractor) -> str:
    """Hash of the uint8 images (shape and bytes) and the extractor's fingerprint."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{images.shape}|{extractor.fingerprint}|".encode())
    digest.update(np.ascontiguousarray(images).data)
    return digest.hexdigest()


def real_statistics(images: np.ndarray, extractor, device) -> dict:
    """mu, sigma, sqrt(sigma) and raw features of the real images: computed once, then read from the cache."""
    path = default_dir() / f"real-{extractor.name}-{content_key(images, extractor)}.npz"
    try:
        with np.load(path) as z:
            stats = {key: z[key] for key in ("mu", "sigma", "sqrt_sigma", "features")}
    except Exception:   # not there yet, or a broken file: compute it again
        features = torch.as_tensor(extractor(images)).to(device)
        mu, sigma = F.statistics(features)
        stats = {"mu": mu, "sigma": sigma, "sqrt_sigma": F.sqrt_psd(sigma), "features": features}
        stats = {key: value.cpu().numpy() for key, value in stats.items()}
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **stats)
    return {key: torch.from_numpy(value).to(device) for key, value in stats.items()}


def score_images(images, real, extractor=None, threshold=0.1, device="auto", report=None, force=False) -> dict:
    """FID, d, d_thr and MiFID of uint8 images N×C×H×W against real images (a path or a Dataset).

    extractor: callable uint8 images -> float32 N×D with name, fingerprint, dim (default: the FID Inception).
    report: a folder to also write score.json and nearest.png (generated images closest to a real one, each beside it).
    """
    start = time.perf_counter()
    for name in ("score.json", "nearest.png") if report else ():
        refuse_overwrite(Path(report) / name, force)
    device = resolve_device(device)
    images = np.asarray(images.cpu() if hasattr(images, "cpu") else images)
    if len(images) < 2:
        raise UserError(f"{len(images)} generated image(s): FID needs at least 2")
    extractor = extractor or InceptionFeatures(device=device)
    dataset = open_real(real)
    stats = real_statistics(dataset.images, extractor, device)
    gen = torch.as_tensor(extractor(images)).to(device)
    fid = F.frechet_distance(*F.statistics(gen), stats["mu"], stats["sigma"], stats["sqrt_sigma"])
    nearest, gen_index, real_index = F.nearest_real(gen, stats["features"])
    d = F.memorisation_distance(nearest)
    d_thr = F.thresholded(d, threshold)
    result = {"fid": fid, "distance": d, "distance_thresholded": d_thr, "mifid": F.mifid(fid, d_thr),
              "threshold": threshold, "n_generated": len(images), "n_real": len(dataset.images),
              "n_generated_zero_features": len(images) - len(gen_index),
              "n_real_zero_features": int((stats["features"].double().sum(1) == 0).sum()),
              "extractor": extractor.name, "seconds": round(time.perf_counter() - start, 3)}
    if report:
        write_report(Path(report), result, images, dataset.images, nearest, gen_index, real_index)
    return result


def write_report(folder: Path, result, images, real_images, nearest, gen_index, real_index):
    """score.json, and nearest.png: the generated images closest to a real one, each followed by that real image."""
    from kit.plot import save_grid
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "score.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    order = torch.argsort(nearest)[:N_NEAREST_SHOWN].cpu()
    gen_shown = torch.from_numpy(images[gen_index.cpu()[order]])
    real_shown = torch.from_numpy(real_images[real_index.cpu()[order]])
    if real_shown.shape[1:] != gen_shown.shape[1:]:   # e.g. real images kept larger: show them at the generated size
        real_shown = torch.nn.functional.interpolate(real_shown.float(), gen_shown.shape[2:], mode="area").round().byte()
        real_shown = real_shown.expand(-1, gen_shown.shape[1], -1, -1) if real_shown.shape[1] == 1 else real_shown
    save_grid(torch.stack([gen_shown, real_shown], 1).flatten(0, 1), folder / "nearest.png", nrow=8)


def load_generated(path, n, lenient, device):
    """uint8 images from a zip or folder (kit.images.read_images), or n generated in memory from a checkpoint."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist: pass images.zip, a folder of PNGs or a checkpoint")
    if not (path.is_dir() or path.suffix.lower() == ".zip"):
        from kit.sample import generate
        return generate(path, n, device=device)[0].numpy()
    from kit.images import read_images
    images, problems = read_images(path, lenient=lenient)
    if len(images) == 0:
        raise UserError(f"{path} holds no readable images ({'; '.join(problems) or 'empty'}): "
                        "pass images.zip or a folder of 64×64 PNGs")
    if len(images) != n:
        problems = problems + [f"{len(images):,} readable images; {n:,} expected (--n)"]
    if problems and not lenient:
        raise UserError(f"{path}: {'; '.join(problems)}: fix the images, or pass --lenient to score what is readable")
    for problem in problems:
        print(f"warning: {path}: {problem}", file=sys.stderr)
    return images


def format_table(result) -> str:
    """The scores as a readable aligned table."""
    rows = [("FID", f"{result['fid']:.4f}"),
            ("distance d", f"{result['distance']:.4f}   mean over generated of min 1-|cos| to a real image"),
            ("d thresholded", f"{result['distance_thresholded']:.4f}   d if d < {result['threshold']:g}, else 1"),
            ("MiFID", f"{result['mifid']:.4f}   FID / (d_thr + 1e-15)"),
            ("generated images", f"{result['n_generated']:,}   ({result['n_generated_zero_features']:,} "
                                 "with all-zero features, left out of d)"),
            ("real images", f"{result['n_real']:,}   ({result['n_real_zero_features']:,} with all-zero features)"),
            ("features", result["extractor"]),
            ("time", f"{result['seconds']:.1f} s")]
    return "\n".join(f"{name:<18}{value}" for name, value in rows)


def add_arguments(parser):
    """Flags of `python -m kit score`."""
    parser.add_argument("generated", metavar="GENERATED", help="images.zip, a folder of images, or a checkpoint")
    parser.add_argument("--real", required=True,
                        help="real images: the competition archives, a folder, or a prepared cache (.npz)")
    parser.add_argument("--inception-weights", metavar="FILE",
                        help="pytorch-fid's FID Inception weights (default: $DOGKIT_INCEPTION_WEIGHTS, "
                             "then the torch hub cache)")
    parser.add_argument("--threshold", type=float, default=0.1,
                        help="memorisation threshold on d (0.1: public Inception; the private NASNet used 0.25)")
    parser.add_argument("--n", type=int, default=10000,
                        help="images to generate from a checkpoint / expected in a zip or folder (default 10000)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--report", metavar="DIR", help="also write DIR/score.json and DIR/nearest.png")
    parser.add_argument("--force", action="store_true", help="overwrite an existing report")
    parser.add_argument("--lenient", action="store_true",
                        help="warn about bad images (count, size, mode, format, corrupt) and score what is readable")
    parser.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda, cuda:1, ...")


def main(args) -> int:
    """Read or generate the images, score them, print the table or JSON."""
    if not math.isfinite(args.threshold) or args.threshold <= 0:
        raise UserError(f"--threshold {args.threshold} must be a positive number (0.1 for the public leaderboard)")
    images = load_generated(args.generated, args.n, args.lenient, args.device)
    extractor = InceptionFeatures(args.inception_weights, args.device, progress=sys.stderr.isatty())
    with contextlib.redirect_stdout(sys.stderr):    # what preparing the real set says stays off stdout (--json)
        real = open_real(args.real)
    result = score_images(images, real, extractor, args.threshold, args.device, args.report, args.force)
    print(json.dumps(result) if args.json else format_table(result))
    return 0
