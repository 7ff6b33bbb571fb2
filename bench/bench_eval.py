"""Evaluation's cost per leaderboard network (issue 19): generated images/s through each network, the metric (FID + d)
at n images against 20,580 real features, and the one-off real statistics; appends the table to
bench/results/eval.md with what it measured and what it derived from that.

    python bench/bench_eval.py [--n 2000] [--inception-images 64] [--nasnet-images 8] [--real-images 16] [--threads 1]

Random weights of the real shapes stand in where the real ones cannot be found (the cost is the same), random
64×64 images for the generated ones, Stanford-sized JPEGs (300-500 px) for the real ones, random non-negative
features for the metric. On a CPU the networks run on a few images and the cost of n images or of the 20,579 real
images is derived from the measured rate; the metric and the real covariance are measured at full size.
"""
import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_score import nasnet_weights_file, random_images, timed, weights_file  # noqa: E402
from results_file import append_run  # noqa: E402
from kit.data import synthetic  # noqa: E402
from kit.device import resolve_device  # noqa: E402
from kit.metrics import features, score  # noqa: E402
from kit.metrics import fid as F  # noqa: E402
from kit.metrics.originals import decode, original_images  # noqa: E402

N_REAL = 20_580            # the real statistics' rows (Stanford Dogs' images; all-dogs.zip holds 20,579)
NETWORKS = {"public": ("FID Inception", features.InceptionFeatures, weights_file),
            "private": ("NASNet-A Large", features.NASNetFeatures, nasnet_weights_file)}


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("" where there is none)."""
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return ""


def nonnegative_features(n, dim, seed, device) -> torch.Tensor:
    """n×dim float32 features >= 0 on the device (the metric's cost does not depend on their values)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((n, dim), generator=generator).abs_().to(device)


def measure_network(name, extractor, device, n, n_generated, real_folder, n_real_images) -> dict:
    """Seconds and rates of one network: generated images/s, the metric at n, real images/s, real statistics."""
    images = random_images(n_generated, 5)
    extractor(images[:2])                                                    # warm-up
    _, t_generated = timed(extractor, images)
    _, records = original_images(real_folder)
    arrays = [decode(record) for record in records[:n_real_images]]
    _, t_real = timed(extractor.of_originals, iter(arrays), len(arrays))
    real = nonnegative_features(N_REAL, extractor.dim, 1, device)
    (mu, sigma), t_stats = timed(F.statistics, real)
    stats = {"mu": mu, "sigma": sigma, "features": real}
    _, t_metric = timed(score.measure, nonnegative_features(n, extractor.dim, 2, device), stats, 0.1)
    return {"name": name, "generated_rate": n_generated / t_generated, "n_generated": n_generated,
            "real_rate": len(arrays) / t_real, "n_real_images": len(arrays), "stats_s": t_stats, "metric_s": t_metric}


def rows(measured, n, device_name, derive) -> list:
    """Markdown rows: what was measured, then what follows from it (labelled derived when it is)."""
    label = "derived" if derive else "measured"
    lines = ["| network | generated images/s (measured) | metric FID + d at n (measured) | "
             f"one evaluation at n = {n:,} ({label}) | real images/s (measured) | real statistics once "
             f"({label}) |", "|---|---|---|---|---|---|"]
    for m in measured:
        evaluation = n / m["generated_rate"] + m["metric_s"]
        real_once = (N_REAL - 1) / m["real_rate"] + m["stats_s"]
        lines.append(f"| {m['name']} ({device_name}) | {m['generated_rate']:.2f} on {m['n_generated']} images | "
                     f"{m['metric_s']:.1f} s | {evaluation / 60:.1f} min | {m['real_rate']:.2f} on "
                     f"{m['n_real_images']} JPEGs | {real_once / 60:.1f} min (covariance {m['stats_s']:.1f} s) |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="images per evaluation (default 2,000, the GPU default)")
    parser.add_argument("--inception-images", type=int, default=0, help="timed through Inception (CPU 64, GPU n)")
    parser.add_argument("--nasnet-images", type=int, default=0, help="timed through NASNet (CPU 8, GPU n)")
    parser.add_argument("--real-images", type=int, default=0, help="Stanford-sized JPEGs timed (CPU 16, GPU 2,000)")
    parser.add_argument("--inception-weights",
                        help="pytorch-fid's FID weights (else found as `kit score` does, else random)")
    parser.add_argument("--nasnet-weights", help="timm's nasnetalarge weights (else found, else random)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--results", default=str(Path(__file__).resolve().parent / "results" / "eval.md"),
                        help="markdown file the table is appended to (empty: print only)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device("auto")
    gpu = device.type == "cuda"
    device_name = (torch.cuda.get_device_name(device) if gpu else
                   f"CPU ({cpu_model()}, {os.cpu_count()} cores), {args.threads} torch thread(s)")
    counts = {"public": args.inception_images or (args.n if gpu else 64),
              "private": args.nasnet_images or (args.n if gpu else 8)}
    n_real_images = args.real_images or (2000 if gpu else 16)
    load_before, measured = os.getloadavg()[0], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        synthetic.write_demo(tmp / "real", n_images=n_real_images, n_breeds=4, sizes=(300, 500), grain=5.0, quality=90)
        given = {"public": args.inception_weights, "private": args.nasnet_weights}
        for leaderboard, (name, network, find) in NETWORKS.items():
            path, kind = find(given[leaderboard], tmp)
            m = measure_network(f"{name}, {kind}", network(path, device), device, args.n, counts[leaderboard],
                                tmp / "real", n_real_images)
            measured.append(m)
            print(f"{m['name']}: {m['generated_rate']:.2f} generated images/s, metric at n={args.n:,} "
                  f"{m['metric_s']:.1f} s, {m['real_rate']:.2f} real images/s, covariance {m['stats_s']:.1f} s",
                  flush=True)
    lines = rows(measured, args.n, device_name, derive=not gpu)
    if not gpu:
        lines += [f"| {name} (GPU) | not measured yet | not measured yet | not measured yet | not measured yet | "
                  "not measured yet |" for name, _, _ in NETWORKS.values()]
    print("\n".join(lines))
    if args.results:
        append_run(args.results, "Evaluation's cost per network (`bench/bench_eval.py`), every run appended",
                   device_name, "", load_before, lines)


if __name__ == "__main__":
    main()
