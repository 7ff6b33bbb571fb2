"""The end's reserve against what the end took, as a user runs it: `kit train` with default flags (10,000 final
images) for dcgan, cgan and biggan, and `kit demo` from scratch while another training job loads every core.

    python bench/bench_tail.py [--budget 150s] [--models dcgan,cgan,biggan] [--skip-demo]

Writes bench/out/tail/ (runs) and prints one row per run: the tail's measured fixed and per-image costs, its
reserve, what it took, the ratio, and the wall time against the budget.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def kit(*args, cwd, log):
    """Run `python -m kit ARGS` with its output in `log`; (exit status, seconds)."""
    t = time.monotonic()
    with open(log, "w") as f:
        done = subprocess.run([sys.executable, "-m", "kit", *args], cwd=cwd, stdout=f, stderr=subprocess.STDOUT,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    return done.returncode, time.monotonic() - t


def rows_of(run):
    """(start row, end row) of a run's metrics.jsonl."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return rows[0], rows[-1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="150s")
    parser.add_argument("--models", default="dcgan,cgan,biggan")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "tail")
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    data = args.out / "data"
    if not (args.out / "demo.npz").exists():
        from kit.data import cache, synthetic
        synthetic.write_demo(data)
        cache.prepare(data, args.out / "demo.npz", progress=False)
    print(f"load before: {os.getloadavg()[0]:.1f}; {os.cpu_count()} CPUs")
    print(f"{'run':<28} {'fixed s':>8} {'per image ms':>13} {'reserved s':>11} {'tail s':>7} {'ratio':>6} "
          f"{'wall s':>7} {'budget s':>9}")
    for model in args.models.split(","):
        run = args.out / f"run-{model}"
        rc, _ = kit("train", "--data", str(args.out / "demo.npz"), "--out", str(run), "--model", model,
                    "--budget", args.budget, "--force", cwd=args.out, log=args.out / f"{model}.log")
        if rc:
            print(f"{model:<28} failed (exit {rc}): see {args.out / f'{model}.log'}")
            continue
        start, end = rows_of(run)
        print(f"{'train ' + model:<28} {start['tail_fixed_s']:>8.2f} {start['tail_per_image_s'] * 1e3:>13.2f} "
              f"{end['tail_reserved_s']:>11.1f} {end['tail_s']:>7.1f} {end['tail_reserved_s'] / end['tail_s']:>6.2f} "
              f"{end['wall_s']:>7.1f} {end['budget_s']:>9.0f}")
    if args.skip_demo:
        return
    load = subprocess.Popen([sys.executable, "-m", "kit", "train", "--data", str(args.out / "demo.npz"), "--out",
                             str(args.out / "load"), "--budget", "30m", "--n-images", "0", "--force"],
                            cwd=args.out, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        time.sleep(20)
        rc, seconds = kit("demo", "--out", str(args.out / "demo"), "--force", cwd=args.out, log=args.out / "demo.log")
    finally:
        load.kill()
        load.wait()
    start, end = rows_of(args.out / "demo" / "run")
    status = "passed" if rc == 0 else f"FAILED (exit {rc}): see {args.out / 'demo.log'}"
    print(f"{'demo, under load':<28} {start['tail_fixed_s']:>8.2f} {start['tail_per_image_s'] * 1e3:>13.2f} "
          f"{end['tail_reserved_s']:>11.1f} {end['tail_s']:>7.1f} {end['tail_reserved_s'] / end['tail_s']:>6.2f} "
          f"{end['wall_s']:>7.1f} {end['budget_s']:>9.0f}  {status}, {seconds:.0f} s in all")
    print(f"load after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
