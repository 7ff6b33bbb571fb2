"""Time `prepare` on a Stanford-Dogs-sized archive (20,580 JPEGs, 300-500 px, quality 90) and the cache load.

    python bench/bench_prepare.py [--work /tmp/dogkit-bench] [--images 20580] [--workers N] [--variants K]

The archive is generated once into --work (outside the repo) and reused; the target is <= 60 s on 2 cores.
With --variants K the same archive is prepared again with K crops per box (random box-safe variants), for a
row beside the one-crop figure.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kit.data import cache, synthetic  # noqa: E402


def make_archive(work: Path, n_images: int) -> None:
    """Write all-dogs.zip + Annotation.zip once; grain makes the JPEGs as large as real ones (~35 KB each)."""
    marker = work / "made.json"
    if marker.exists() and json.loads(marker.read_text()).get("images") == n_images:
        return
    print(f"generating {n_images} JPEGs into {work} (once) ...", flush=True)
    start = time.time()
    synthetic.write_demo(work, n_images=n_images, n_breeds=120, sizes=(300, 500), grain=5.0, quality=90)
    marker.write_text(json.dumps({"images": n_images}))
    size = (work / "all-dogs.zip").stat().st_size
    print(f"generated in {time.time() - start:.0f} s: all-dogs.zip {size / 2**20:.0f} MiB, "
          f"{size / n_images / 1024:.1f} KiB per image")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/dogkit-bench", help="where the archive and the cache go")
    parser.add_argument("--images", type=int, default=20580)
    parser.add_argument("--workers", type=int, default=None, help="decoding processes (default: one per core)")
    parser.add_argument("--crop", default="square")
    parser.add_argument("--variants", type=int, default=1, metavar="K", help="also time K crops per box")
    args = parser.parse_args()
    work = Path(args.work)
    make_archive(work, args.images)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    for variants in sorted({1, args.variants}):
        start = time.time()
        ds = cache.prepare(work, work / "bench.npz", crop=args.crop, workers=args.workers, force=True,
                           variants=variants)
        seconds = time.time() - start
        print(f"prepare --variants {variants}: {args.images} images -> {len(ds)} crops {ds.images.shape[1:]} in "
              f"{seconds:.1f} s = {args.images / seconds:.0f} images/s, {len(ds) / seconds:.0f} crops/s "
              f"({args.workers or cores} workers, {cores} cores visible)")
    loads = []
    for _ in range(3):
        start = time.time()
        loaded = cache.load(work / "bench.npz")
        loads.append(time.time() - start)
    size = (work / "bench.npz").stat().st_size
    print(f"load: {len(loaded)} samples ({size / 2**20:.0f} MiB) in {loads[0]:.2f} s first, "
          f"{min(loads):.2f} s best of 3")


if __name__ == "__main__":
    main()
