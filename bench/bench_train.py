"""Training images/s of `kit train` (DCGAN, CGAN, BigGAN; eager, compile, CUDA graph) against a notebook DCGAN loop.

    python bench/bench_train.py [--device auto] [--batch-sizes 64 256] [--steps N] [--threads N] [--procs 1 2]
                                [--precisions auto fp16 bf16]

The baseline is the notebook that bench/quality measures (bench/quality/baseline.py): pytorch/examples' width-64
DCGAN, ImageFolder of JPEGs + DataLoader(num_workers=2), fp32, BCE. kit trains from the uint8 cache resident on the
device, with its default precision (bf16 on recent GPUs) unless --precisions names others (fp16: a T4's, its grad
scaler inside the CUDA graph).
Figures are real images consumed per second after warm-up; the device is detected, so this runs unchanged on a GPU.
Each run appends its table to --results with the commit, device and load; on a CPU the GPU rows (every model, eager,
compile and CUDA graph) are listed as not measured yet.
"""
import argparse
import itertools
import json
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # this checkout's kit, before an installed one

from kit.config import TrainConfig  # noqa: E402
from kit.data import cache, synthetic  # noqa: E402
from kit.device import resolve_device  # noqa: E402
from kit.kernel.runtime import train_ranks  # noqa: E402
from kit.train import train  # noqa: E402
from quality.baseline import notebook_steps  # noqa: E402
from results_file import append_run  # noqa: E402


def make_data(work: Path, n_images: int):
    """Stanford-Dogs-like JPEGs (300-500 px) as an ImageFolder, and their prepared 64×64 cache."""
    synthetic.write_demo(work, n_images=n_images, n_breeds=12, sizes=(300, 500), grain=5.0, quality=90)
    with zipfile.ZipFile(work / "all-dogs.zip") as z:
        z.extractall(work / "folder")   # ImageFolder wants root/class/*.jpg: all-dogs/ is the one class
    cache.prepare(work, work / "cache.npz", crop="square", progress=False)
    return work / "folder", work / "cache.npz"


def baseline(folder, device, batch, steps, warmup):
    """images/s of the notebook DCGAN loop (bench/quality/baseline.py) over `steps` steps after `warmup` untimed ones."""
    seen = 0
    for done, (_, b) in enumerate(notebook_steps(folder, device, batch), 1):
        seen += b
        if done == warmup:
            torch.cuda.synchronize() if device.type == "cuda" else None
            seen, start = 0, time.perf_counter()
        if done == warmup + steps:
            break
    torch.cuda.synchronize() if device.type == "cuda" else None
    return seen / (time.perf_counter() - start)


def kit_rate(data, out, device, model, batch, mode, steps, warmup, threads, procs=1, precision="auto"):
    """images/s of `kit train` (all `procs` DDP processes together, as a kernel starts them), from rank 0's
    metrics.jsonl lines after the warm-up window."""
    cfg = TrainConfig(data=str(data), out=str(out), model=model, batch_size=batch, device=str(device),
                      compile=mode == "compile", cuda_graph=mode == "cuda_graph", max_steps=warmup + steps,
                      log_every=warmup, n_images=64, checkpoint_every="1h", sample_every="1h", threads=threads,
                      precision=precision, force=True)
    if procs == 1:
        train(cfg)
    elif failure := train_ranks(cfg, procs, deadline=time.time() + 3600):
        raise SystemExit(f"{procs} processes: {failure}")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "images_per_s" in r]
    first, last = rows[0], rows[-1]   # the first line closes the warm-up window
    return (last["step"] - first["step"]) * batch * procs / (last["elapsed"] - first["elapsed"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--models", nargs="+", default=["dcgan", "cgan", "biggan"])
    parser.add_argument("--modes", nargs="+", default=None,
                        help="eager compile cuda_graph (default: all three on a GPU, eager on CPU)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 600 on a GPU, 6 on CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 100 GPU, 2 CPU)")
    parser.add_argument("--images", type=int, default=1024, help="JPEGs generated for the baseline and the cache")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--procs", type=int, nargs="+", default=[1],
                        help="DDP processes per kit row (one per GPU; on the CPU gloo processes), e.g. 1 2")
    parser.add_argument("--precisions", nargs="+", default=["auto"], help="auto fp32 fp16 bf16 (default: auto)")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--results", type=Path, default=Path(__file__).resolve().parent / "results" / "train.md",
                        help="markdown file the table is appended to (empty: print only)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    modes = args.modes or (["eager", "compile", "cuda_graph"] if gpu else ["eager"])
    warmup = args.warmup or (100 if gpu else 2)
    steps = args.steps or (600 if gpu else 6)
    steps = max(warmup, steps // warmup * warmup)   # whole metrics windows of `warmup` steps
    if args.threads:
        torch.set_num_threads(args.threads)
    name = torch.cuda.get_device_name(device) if gpu else f"CPU, {torch.get_num_threads()} torch threads"
    print(f"device: {name}; torch {torch.__version__}; {warmup} warm-up + {steps} timed steps per row", flush=True)
    results, load_before = [], os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        folder, data = make_data(work, args.images)
        for batch in args.batch_sizes:
            if not args.no_baseline:
                rate = baseline(folder, device, batch, steps, warmup)
                results.append(("notebook DCGAN (ImageFolder, 2 workers, fp32)", batch, "eager", rate))
                print(f"{results[-1][0]:<56} batch {batch:>4} {'eager':<10} {rate:>9.0f} img/s", flush=True)
            for model, precision, mode, procs in itertools.product(args.models, args.precisions, modes, args.procs):
                rate = kit_rate(data, work / f"run-{model}-{batch}-{precision}-{mode}-{procs}", device, model,
                                batch, mode, steps, warmup, args.threads, procs, precision)
                loop = (f"kit train --model {model}" + (f" --precision {precision}" if precision != "auto" else "")
                        + (f", {procs} DDP processes" if procs > 1 else ""))
                results.append((loop, batch, mode, rate))
                print(f"{loop:<56} batch {batch:>4} {mode:<10} {rate:>9.0f} img/s", flush=True)
    lines = ["| loop | batch | mode | images/s |", "|---|---|---|---|"]
    lines += [f"| {loop} | {batch} | {mode} | {rate:,.0f} |" for loop, batch, mode, rate in results]
    if not gpu:
        lines += [f"| kit train --model {model} | {batch} | GPU: eager, compile, cuda_graph | not measured yet |"
                  for batch in args.batch_sizes for model in args.models]
    print("\n" + "\n".join(lines))
    if str(args.results):
        append_run(args.results, "Training images/s (`bench/bench_train.py`), every run appended", name,
                   f"{warmup} warm-up + {steps} timed steps", load_before, lines)


if __name__ == "__main__":
    main()
