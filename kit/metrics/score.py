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

from kit.data.cache import Dataset, default_dir, is_cache
from kit.errors import UserError
from kit.files import atomic_path, refuse_overwrite
from kit.metrics import fid as F
from kit.device import resolve_device
from kit.metrics.features import RESIZES, InceptionFeatures, NASNetFeatures, find_nasnet_weights
from kit.metrics.originals import decode, original_images
from kit.metrics.ranks import all_agree, gather_rows, share

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


def compute_statistics(features) -> dict:
    """mu, sigma and the features themselves, as numpy arrays."""
    features = torch.as_tensor(features)
    mu, sigma = F.statistics(features)
    stats = {"mu": mu, "sigma": sigma, "features": features}
    return {key: value.cpu().numpy() for key, value in stats.items()}


def cached_statistics(key: str, extractor, compute, device="cpu", rank=0, world=1) -> dict:
    """The statistics stored under `key` for this extractor, or compute() them once and store them (rank 0 writes;
    under DDP every rank computes when any rank lacks the file, as compute() is collective)."""
    path = default_dir() / f"real-{extractor.name}-{key}.npz"
    try:
        with np.load(path) as z:
            stats = {key: z[key] for key in ("mu", "sigma", "features")}
    except Exception:   # not there yet, or a broken file: compute it again
        stats = None
    if all_agree(stats is not None, world, device):
        return stats
    stats = compute_statistics(compute())
    if rank == 0:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **stats)
    return stats


def shared_features(extractor, images, device, rank, world) -> torch.Tensor:
    """Features of every image on every rank, each rank extracting its share (`images` is indexable)."""
    return gather_rows(torch.as_tensor(extractor(share(images, rank, world))).to(device), world)


def real_statistics(real, extractor, device, rank=0, world=1) -> tuple:
    """(statistics on the device, real uint8 images or None, count) of the real set, computed once, then cached.

    With the organisers' resize and a path that is not a cache, every real image is read whole at its own size
    and resized as their scorer did (never through a 64-px cache); otherwise the images of open_real(real).
    Under DDP (world > 1) each rank extracts its share of the real images and the features are gathered.
    """
    device = resolve_device(device)
    if getattr(extractor, "resize", "") == "organisers" and not isinstance(real, Dataset) and not is_cache(real):
        fingerprint, records = original_images(real)
        key = hashlib.blake2b(f"{fingerprint}|{extractor.fingerprint}".encode(), digest_size=16).hexdigest()
        mine = share(records, rank, world)

        def compute():
            arrays = filter(lambda a: a is not None, map(decode, mine))
            return gather_rows(torch.from_numpy(extractor.of_originals(arrays, len(mine))).to(device), world)
        images = None
    else:
        images = open_real(real).images
        key = content_key(images, extractor)

        def compute():
            return shared_features(extractor, images, device, rank, world)
    stats = cached_statistics(key, extractor, compute, device, rank, world)
    return {key: torch.from_numpy(value).to(device) for key, value in stats.items()}, images, len(stats["features"])


def measure(gen: torch.Tensor, stats: dict, threshold: float) -> tuple:
    """(FID, d, d_thr, MiFID and threshold as a dict; nearest_real's answer) of generated features against real
    statistics on the same device."""
    fid = F.frechet_distance_of(gen, stats)
    nearest = F.nearest_real(gen, stats["features"])
    d = F.memorisation_distance(nearest[0])
    d_thr = F.thresholded(d, threshold)
    return {"fid": fid, "distance": d, "distance_thresholded": d_thr, "mifid": F.mifid(fid, d_thr),
            "threshold": threshold}, nearest


def score_images(images, real, extractor=None, threshold=0.1, device="auto", nearest_png=None) -> dict:
    """FID, d, d_thr and MiFID of uint8 images N×C×H×W against real images (a path or a Dataset).

    extractor: callable uint8 images -> float32 N×D with name, fingerprint, dim (default: the FID Inception).
    nearest_png: a file for the generated images closest to a real one, each beside it.
    """
    start = time.perf_counter()
    device = resolve_device(device)
    images = np.asarray(images.cpu() if hasattr(images, "cpu") else images)
    if len(images) < 2:
        raise UserError(f"{len(images)} generated image(s): FID needs at least 2")
    extractor = extractor or InceptionFeatures(device=device)
    stats, real_images, n_real = real_statistics(real, extractor, device)
    gen = torch.as_tensor(extractor(images)).to(device)
    result, (nearest, gen_index, real_index) = measure(gen, stats, threshold)
    result.update(n_generated=len(images), n_real=n_real, n_generated_zero_features=len(images) - len(gen_index),
                  n_real_zero_features=int((stats["features"].double().sum(1) == 0).sum()),
                  extractor=extractor.name, seconds=round(time.perf_counter() - start, 3))
    if nearest_png:
        real_images = open_real(real).images if real_images is None else real_images
        write_nearest(Path(nearest_png), images, real_images, nearest, gen_index, real_index)
    return result


def write_nearest(path: Path, images, real_images, nearest, gen_index, real_index):
    """The generated images closest to a real one, each followed by that real image, as one grid."""
    from kit.plot import save_grid
    path.parent.mkdir(parents=True, exist_ok=True)
    order = torch.argsort(nearest)[:N_NEAREST_SHOWN].cpu()
    gen_shown = torch.from_numpy(images[gen_index.cpu()[order]])
    real_shown = torch.from_numpy(real_images[real_index.cpu()[order]])
    if real_shown.shape[1:] != gen_shown.shape[1:]:   # e.g. real images kept larger: show them at the generated size
        real_shown = torch.nn.functional.interpolate(real_shown.float(), gen_shown.shape[2:], mode="area").round().byte()
        real_shown = real_shown.expand(-1, gen_shown.shape[1], -1, -1) if real_shown.shape[1] == 1 else real_shown
    save_grid(torch.stack([gen_shown, real_shown], 1).flatten(0, 1), path, nrow=8)


def write_score_json(path, result) -> None:
    """The scores as indented JSON, written atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")


def extractors_at_hand(weights=None, device="auto", resize="organisers", progress=False) -> tuple:
    """({leaderboard: its network, loaded}, {leaderboard: why it was skipped}) for every leaderboard, in order."""
    weights = weights or {}
    extractors, skipped = {}, {}
    for name, (network, _) in LEADERBOARDS.items():
        try:
            extractors[name] = network(weights.get(name), device, progress=progress, resize=resize)
        except (UserError, ImportError) as e:
            skipped[name] = str(e)
    return extractors, skipped


def refuse_report(report, names, force: bool) -> None:
    """Refuse a report folder holding score.json or a leaderboard's nearest-pairs grid already (unless force)."""
    for path in [Path(report) / "score.json"] + [Path(report) / f"nearest-{name}.png" for name in names]:
        refuse_overwrite(path, force)


def score_leaderboards(images, real, extractors: dict, threshold=0.0, device="auto", report=None) -> dict:
    """{leaderboard: score_images's answer} for each extractor given (`threshold` overrides each leaderboard's);
    report: a folder for each leaderboard's nearest pairs (check it first with refuse_report)."""
    results = {}
    for name, extractor in extractors.items():
        nearest_png = report and Path(report) / f"nearest-{name}.png"
        with contextlib.redirect_stdout(sys.stderr):    # what preparing the real set says stays off stdout (--json)
            results[name] = score_images(images, real, extractor, threshold or LEADERBOARDS[name][1], device,
                                         nearest_png)
    return results


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


LEADERBOARDS = {"public": (InceptionFeatures, 0.1), "private": (NASNetFeatures, 0.25)}   # network, threshold
MARGIN_WARNING = 0.02   # a d this close above its threshold is one unlucky zip away from the penalty


def margin_words(d: float, threshold: float) -> str:
    """d − threshold in words: below (penalised), close above, or clear."""
    margin = d - threshold
    if not math.isfinite(margin) or margin < 0:
        return f"{margin:+.4f}  BELOW the threshold: MiFID divides the FID by d"
    if margin < MARGIN_WARNING:
        return f"{margin:+.4f}  within {MARGIN_WARNING} of the threshold: at risk"
    return f"{margin:+.4f}  clear"


def format_table(results: dict) -> str:
    """The scores of each leaderboard ({name: result}) side by side as an aligned table."""
    names = list(results)
    rows = [("", names),
            ("features", [r["extractor"] for r in results.values()]),
            ("FID", [f"{r['fid']:.4f}" for r in results.values()]),
            ("distance d", [f"{r['distance']:.4f}" for r in results.values()]),
            ("threshold", [f"{r['threshold']:g}" for r in results.values()]),
            ("d thresholded", [f"{r['distance_thresholded']:.4f}" for r in results.values()]),
            ("MiFID", [f"{r['mifid']:.4f}" for r in results.values()]),
            ("generated images", [f"{r['n_generated']:,} ({r['n_generated_zero_features']:,} zero)"
                                  for r in results.values()]),
            ("real images", [f"{r['n_real']:,} ({r['n_real_zero_features']:,} zero)" for r in results.values()]),
            ("time", [f"{r['seconds']:.1f} s" for r in results.values()])]
    lines = [f"{name:<18}" + "".join(f"{value:<26}" for value in values) for name, values in rows]
    lines.append("")
    lines += [f"margin d - thr, {name}: {margin_words(r['distance'], r['threshold'])}" for name, r in results.items()]
    lines.append("d = mean over generated of min 1-|cos| to a real image; d_thr = d if d < threshold else 1; "
                 "MiFID = FID / (d_thr + 1e-15)")
    return "\n".join(lines)


def pick_leaderboards(choice: str, nasnet_weights) -> tuple:
    """(leaderboard names, note): `both` when NASNet weights are at hand unless one was asked for."""
    if choice:
        return (["public", "private"] if choice == "both" else [choice]), ""
    try:
        find_nasnet_weights(nasnet_weights)
        return ["public", "private"], ""
    except UserError as e:
        return ["public"], f"note: private leaderboard skipped: {e}"


def add_arguments(parser):
    """Flags of `python -m kit score`."""
    parser.add_argument("generated", metavar="GENERATED", help="images.zip, a folder of images, or a checkpoint")
    parser.add_argument("--real", required=True,
                        help="real images: the competition archives, a folder, or a prepared cache (.npz)")
    parser.add_argument("--leaderboard", choices=("public", "private", "both"), default="",
                        help="public (FID Inception, d threshold 0.1), private (NASNet-A Large, 0.25; what ranked), "
                             "or both (default when the NASNet weights are at hand, else public)")
    parser.add_argument("--inception-weights", metavar="FILE",
                        help="pytorch-fid's FID Inception weights (default: $DOGKIT_INCEPTION_WEIGHTS, "
                             "then the torch hub cache)")
    parser.add_argument("--nasnet-weights", metavar="FILE",
                        help="timm's nasnetalarge weights (default: $DOGKIT_NASNET_WEIGHTS, then timm's cache)")
    parser.add_argument("--resize", choices=RESIZES, default="organisers",
                        help="organisers: TF1 legacy bilinear, real images from full size, as the leaderboards "
                             "(default); pytorch-fid: its torch resize, real images through a 64-px cache")
    parser.add_argument("--threshold", type=float, default=0.0,
                        help="override the memorisation threshold on d (default: 0.1 public, 0.25 private)")
    parser.add_argument("--n", type=int, default=10000,
                        help="images to generate from a checkpoint / expected in a zip or folder (default 10000)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--report", metavar="DIR",
                        help="also write DIR/score.json (what --json prints) and DIR/nearest-LEADERBOARD.png")
    parser.add_argument("--force", action="store_true", help="overwrite an existing report")
    parser.add_argument("--lenient", action="store_true",
                        help="warn about bad images (count, size, mode, format, corrupt) and score what is readable")
    parser.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda, cuda:1, ...")


def main(args) -> int:
    """Read or generate the images, score them on each leaderboard, print the table or JSON."""
    if args.threshold and (not math.isfinite(args.threshold) or args.threshold <= 0):
        raise UserError(f"--threshold {args.threshold} must be a positive number (0.1 public, 0.25 private)")
    names, note = pick_leaderboards(args.leaderboard, args.nasnet_weights)
    if args.report:
        refuse_report(args.report, names, args.force)
    images = load_generated(args.generated, args.n, args.lenient, args.device)
    weights = {"public": args.inception_weights, "private": args.nasnet_weights}
    extractors = {name: LEADERBOARDS[name][0](weights[name], args.device, progress=sys.stderr.isatty(),
                                              resize=args.resize) for name in names}
    results = score_leaderboards(images, args.real, extractors, args.threshold, args.device, args.report)
    printed = results if len(names) > 1 else results[names[0]]
    if args.report:
        write_score_json(Path(args.report) / "score.json", printed)
    if note:
        print(note, file=sys.stderr)
    if args.json:
        print(json.dumps(printed))
    else:
        print(format_table(results))
    return 0
