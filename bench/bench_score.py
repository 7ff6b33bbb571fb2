"""Scoring benchmark: the kit's scorer against pytorch-fid's pipeline + the competition's numpy memorisation term.

    python bench/bench_score.py                       # GPU: full run; CPU: metric part + extrapolated Inception
    python bench/bench_score.py --inception-images 100 --inception-weights pt_inception-2015-12-05-6726825d.pth

Random images stand in for the 10,000 generated and 20,580 real (timing does not depend on content). Without the real
FID weights the network gets random weights of the same shape (same cost). On a GPU both pipelines run end to end on
all images, with the real statistics already cached (computed once beforehand, untimed, for both). On a CPU only the
metric part runs at full size (FID + d on 10,000 × 20,580 features); Inception runs on --inception-images images
through each pipeline and its time for 10,000 is extrapolated from that throughput, and printed as such.
"""
import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import scipy
import scipy.linalg
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kit.data import cache  # noqa: E402
from kit.device import resolve_device  # noqa: E402
from kit.errors import UserError  # noqa: E402
from kit.metrics import fid as F  # noqa: E402
from kit.metrics import features, score  # noqa: E402

N_GEN, N_REAL, DIM = 10_000, 20_580, 2048


def timed(fn, *args, **kwargs):
    """(result, seconds) of fn(*args), synchronising the GPU."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def weights_file(path, folder: Path) -> tuple:
    """The real FID weights when they can be found, else random weights of the same shape written to `folder`."""
    try:
        return features.find_inception_weights(path), "FID weights"
    except UserError:
        state_dict = features.random_inception_state_dict()
        torch.save(state_dict, folder / "random.pth")
        return folder / "random.pth", "random weights (timing only)"


def nasnet_weights_file(path, folder: Path) -> tuple:
    """timm's NASNet-A Large weights when they can be found, else a randomly initialised network's (same cost)."""
    try:
        return features.find_nasnet_weights(path), "NASNet weights"
    except UserError:
        import timm
        torch.save(timm.create_model("nasnetalarge", pretrained=False).state_dict(), folder / "nasnet.pth")
        return folder / "nasnet.pth", "random weights (timing only)"


def nasnet_rate(weights: Path, device, n_images: int) -> float:
    """NASNet-A Large images/s at 331 px (organisers' resize) on n_images random 64×64 images, after a warm-up."""
    extractor = features.NASNetFeatures(weights, device, progress=True)
    images = random_images(n_images, 4)
    extractor(images[:2])
    _, seconds = timed(extractor, images)
    return n_images / seconds


def random_features(n, seed):
    """Non-negative float32 features with pool3-like correlations."""
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(256, DIM)).astype(np.float32)
    return np.maximum(rng.normal(size=(n, 256)).astype(np.float32) @ basis, 0) / 16


def baseline_fid(mu1, sigma1, mu2, sigma2) -> tuple:
    """pytorch-fid's calculate_frechet_distance, or scipy's sqrtm by hand where that crashes (scipy >= 1.18)."""
    from pytorch_fid.fid_score import calculate_frechet_distance
    try:
        return calculate_frechet_distance(mu1, sigma1, mu2, sigma2), "pytorch-fid calculate_frechet_distance"
    except TypeError:
        covmean = scipy.linalg.sqrtm(sigma1 @ sigma2).real
        diff = mu1 - mu2
        fid = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)
        return fid, f"scipy.linalg.sqrtm (pytorch-fid's crashes on scipy {scipy.__version__})"


def baseline_distance(gen, real) -> float:
    """The competition's numpy memorisation term as published: the whole N×M matrix in float64."""
    g = gen[gen.sum(1) != 0]
    r = real[real.sum(1) != 0]
    g = np.nan_to_num(g / np.linalg.norm(g, axis=1, keepdims=True))
    r = np.nan_to_num(r / np.linalg.norm(r, axis=1, keepdims=True))
    return float(np.mean(np.min(1.0 - np.abs(g @ r.T), axis=1)))


def baseline_activations(images, folder: Path, weights: Path, device) -> np.ndarray:
    """pytorch-fid's get_activations over PNG files of `images` (written first, untimed by the caller)."""
    from pytorch_fid import inception
    from pytorch_fid.fid_score import get_activations
    state_dict = torch.load(weights, map_location="cpu", weights_only=True)
    with mock.patch.object(inception, "load_state_dict_from_url", lambda *a, **k: state_dict):
        model = inception.InceptionV3([3]).to(device).eval()
    files = sorted(folder.glob("*.png"))
    return get_activations(files, model, batch_size=50, dims=DIM, device=device, num_workers=min(8, os.cpu_count()))


def write_pngs(images, folder: Path) -> Path:
    """images as folder/i.png (what pytorch-fid reads)."""
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image.transpose(1, 2, 0)).save(folder / f"{i}.png", compress_level=1)
    return folder


def random_images(n, seed):
    """Random uint8 3×64×64 images."""
    return np.random.default_rng(seed).integers(0, 256, (n, 3, 64, 64), dtype=np.uint8)


def metric_part(device) -> None:
    """FID + d on 10,000 × 20,580 features: kit (cached real stats) vs pytorch-fid's FID + numpy d."""
    gen, real = random_features(N_GEN, 1), random_features(N_REAL, 2)
    real_t = torch.from_numpy(real).to(device)
    (mu2, s2), t_stats = timed(F.statistics, real_t)
    r2, t_sqrt = timed(F.sqrt_psd, s2)
    print(f"kit real statistics (once, then cached): {t_stats + t_sqrt:.2f} s")

    def kit():
        g = torch.from_numpy(gen).to(device)
        fid = F.frechet_distance(*F.statistics(g), mu2, s2, r2)
        return fid, F.memorisation_distance(F.nearest_real(g, real_t)[0])
    (fid, d), t_kit = timed(kit)
    print(f"kit metric (FID + d):                    {t_kit:.2f} s   FID {fid:.4f}  d {d:.6f}")

    g64, r64 = gen.astype(np.float64), real.astype(np.float64)
    mu2n, s2n = mu2.cpu().numpy(), s2.cpu().numpy()
    (fid_b, how), t_fid = timed(lambda: baseline_fid(g64.mean(0), np.cov(g64, rowvar=False), mu2n, s2n))
    d_b, t_d = timed(baseline_distance, g64, r64)
    print(f"baseline metric (FID + numpy d):         {t_fid + t_d:.2f} s   FID {fid_b:.4f}  d {d_b:.6f}"
          f"   (FID {t_fid:.2f} s by {how}; d {t_d:.2f} s)")
    print(f"kit - baseline: FID {fid - fid_b:+.2e}, d {d - d_b:+.2e}")
    return t_kit, t_fid + t_d


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inception-weights", help="pytorch-fid's FID weights (else found as `kit score` does, else random)")
    parser.add_argument("--inception-images", type=int, default=200, help="CPU form: images timed through Inception")
    parser.add_argument("--nasnet-weights", help="timm's nasnetalarge weights (else found as `kit score` does, else random)")
    parser.add_argument("--nasnet-images", type=int, default=0,
                        help="images timed through NASNet-A Large (default: 10,000 on a GPU, 6 on a CPU)")
    args = parser.parse_args()
    device = resolve_device("auto")
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"{platform.processor() or 'cpu'}, {os.cpu_count()} cores"
    print(f"device: {name}; torch {torch.__version__}, scipy {scipy.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["DOGKIT_CACHE"] = str(tmp / "cache")
        weights, kind = weights_file(args.inception_weights, tmp)
        print(f"network: FID Inception with {kind}")
        if device.type == "cuda":
            full_run(tmp, weights, device)
        else:
            cpu_form(tmp, weights, args.inception_images)
        nasnet, kind = nasnet_weights_file(args.nasnet_weights, tmp)
        n = args.nasnet_images or (N_GEN if device.type == "cuda" else 6)
        rate = nasnet_rate(nasnet, device, n)
        print(f"NASNet-A Large ({kind}), private leaderboard features: {rate:.2f} images/s on {n} images "
              f"-> {N_GEN / rate:.0f} s for 10,000 generated (real features are cached after the first run)")


def full_run(tmp: Path, weights: Path, device) -> None:
    """Both pipelines end to end on 10,000 generated vs 20,580 real images, real statistics cached for both."""
    gen, real = random_images(N_GEN, 1), random_images(N_REAL, 2)
    real_path = tmp / "real.npz"
    cache.save(score.Dataset(images=real, labels=np.zeros(N_REAL, np.int64), classes=["dog"],
                             sources=[""] * N_REAL), real_path)
    extractor = features.InceptionFeatures(weights, device)
    _, t_first = timed(score.score_images, gen, real_path, extractor)
    print(f"kit first run (computes and caches the real statistics): {t_first:.2f} s")
    result, t_kit = timed(score.score_images, gen, real_path, extractor)
    print(f"kit score, cached real statistics: {t_kit:.2f} s   FID {result['fid']:.4f}  d {result['distance']:.6f}")

    stats = np.load(next((tmp / "cache").glob("real-*.npz")))
    folder = write_pngs(gen, tmp / "gen")

    def baseline():
        act = baseline_activations(gen, folder, weights, device).astype(np.float64)
        fid, _ = baseline_fid(act.mean(0), np.cov(act, rowvar=False), stats["mu"], stats["sigma"])
        return fid, baseline_distance(act, stats["features"].astype(np.float64))
    (fid_b, d_b), t_base = timed(baseline)
    print(f"pytorch-fid pipeline + numpy d, same cached real statistics: {t_base:.2f} s   FID {fid_b:.4f}  d {d_b:.6f}")
    print(f"kit - baseline: FID {result['fid'] - fid_b:+.2e}, d {result['distance'] - d_b:+.2e} "
          "(network outputs differ by TF32/batching round-off)")
    print(f"speed-up: {t_base / t_kit:.1f}x")


def cpu_form(tmp: Path, weights: Path, n_images: int) -> None:
    """Metric part at full size; Inception throughput of both pipelines on n_images, extrapolated to 10,000."""
    t_kit_metric, t_base_metric = metric_part(torch.device("cpu"))
    images = random_images(n_images, 3)
    extractor = features.InceptionFeatures(weights, "cpu")
    extractor(images[:2])                                                    # warm-up
    _, t_kit_net = timed(extractor, images)
    folder = write_pngs(images, tmp / "gen")
    _, t_base_net = timed(baseline_activations, images, folder, weights, "cpu")
    scale = N_GEN / n_images
    print(f"Inception, kit:         {n_images / t_kit_net:.1f} images/s measured on {n_images} images")
    print(f"Inception, pytorch-fid: {n_images / t_base_net:.1f} images/s measured on {n_images} images")
    print(f"EXTRAPOLATED to 10,000 generated images on this CPU: kit {t_kit_metric + t_kit_net * scale:.0f} s, "
          f"pytorch-fid + numpy d {t_base_metric + t_base_net * scale:.0f} s")


if __name__ == "__main__":
    main()
