"""One benchmark run per (config, budget): train it, score its snapshots, keep a record; and the command line."""
import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from kit.config import parse_duration
from kit.device import resolve_device

from . import baseline
from .classifier import evaluate, load_classifier, references
from .data import SETS, SIZE, write_set
from .report import read_records, scored_alike, write_plots, write_table

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench" / "out" / "quality"
RESULTS = ROOT / "bench" / "results"
KIT_TRAIN = [sys.executable, "-m", "kit", "train"]
KIT_TAIL_IMAGES = 64      # --n-images of the benchmarked `kit train` runs by default: keeps the zip tail small;
                          # --n-images 10000 gives the user's tail (both are in the table, beside each other)

PLAIN = ["--augment", "translation,color", "--ada-target", "0"]   # biggan's augmentation before issue 21
TCUT = ["--augment", "translation,cutout"]                         # DiffAugment's BigGAN policy
ADA = ["--ada-target", "0.6", "--ada-kimg", "5"]                   # ADA paced for a CPU run's thousands of images
LECAM = ["--lecam", "0.3", "--lecam-start", "0"]
NO_LECAM = ["--lecam", "0"]                                        # biggan's default has LeCam 0.3 since issue 21
# name -> extra `kit train` flags (None: the notebook baseline); each variant changes one default
CONFIGS = {
    "kit-dcgan": ["--model", "dcgan"],
    "baseline": None,
    "kit-cgan": ["--model", "cgan"],
    "kit-biggan": ["--model", "biggan"],
    "kit-r3gan": ["--model", "r3gan"],                                # issue 30: R3GAN's pair with its recipe
    "biggan-rpgan": ["--model", "biggan", "--loss", "rpgan", "--r1", "1", "--r2", "1"],   # R3GAN's loss on biggan
    **{f"dcgan-loss-{loss}": ["--model", "dcgan", "--loss", loss]
       for loss in ("hinge", "bce", "lsgan", "ralsgan", "wgan-gp")},
    "dcgan-ema-0": ["--model", "dcgan", "--ema", "0"],
    "dcgan-ema-0.999": ["--model", "dcgan", "--ema", "0.999"],
    **{f"dcgan-aug-{name}": ["--model", "dcgan", "--augment", policy] for name, policy in
       (("none", "none"), ("flip", "flip"), ("tc", "translation,color"), ("diffaug", "flip,translation,color"))},
    # issue 21: the limited-data regularisers on plain biggan (its defaults before they were chosen by these rows), one
    # at a time, at CPU scale (a 5-minute run is a few hundred steps: LeCam's anchors average from the start, ADA's
    # probability can travel 0 -> 1 in 5k images); kit-biggan is whatever the kit's defaults are now
    **{f"biggan-{name}": ["--model", "biggan", *flags] for name, flags in (
        ("plain", [*PLAIN, *NO_LECAM]),
        ("lecam", [*PLAIN, *LECAM]),
        ("cr", [*PLAIN, *NO_LECAM, "--cr", "10"]),
        ("ada", ["--augment", "translation,color", *ADA, *NO_LECAM]),
        ("tcut", [*TCUT, "--ada-target", "0", *NO_LECAM]),
        ("tcut-ada", [*TCUT, *ADA, *NO_LECAM]),
        ("tcut-lecam", [*TCUT, "--ada-target", "0", *LECAM]),
        ("tcut-ada-lecam", [*TCUT, *ADA, *LECAM]))},
}
DEFAULT_CONFIGS = ("kit-dcgan", "baseline", "kit-cgan", "kit-biggan")


def run_kit(name, flags, cache, seconds, args, seed):
    """`python -m kit train` under the budget; each checkpoint it writes is kept (G weights only) as a snapshot."""
    run_dir = run_folder(args.out, args.set, name, seconds, seed, args.n_images)
    command = [*KIT_TRAIN, "--data", str(cache), "--out", str(run_dir), "--force", "--seed", str(seed),
               "--budget", f"{seconds:g}s", "--device", args.device, "--n-images", str(args.n_images),
               "--threads", str(args.threads), "--checkpoint-every", f"{seconds / args.points:g}s", *flags]
    print(" ".join(command[1:]), flush=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "last.pt").unlink(missing_ok=True)
    snapshots, seen, start = [], None, time.perf_counter()
    with open(run_dir / "train.log", "w") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        while True:
            done = process.poll() is not None
            seen = keep_snapshot(run_dir / "last.pt", seen, time.perf_counter() - start, snapshots)
            if done:
                break
            time.sleep(0.5)
    wall = time.perf_counter() - start
    if process.returncode:
        raise SystemExit(f"kit train failed for {name}: see {run_dir / 'train.log'}")
    final = snapshots[-1][1]
    c = final["config"]
    info = {"steps": final["step"], "images_seen": final["step"] * c["batch_size"], "seconds": wall,
            "tail": args.n_images,
            "settings": f"width {c['g_width']}/{c['d_width']}, lr {c['lr_g']:g}/{c['lr_d']:g}, {c['loss']}, "
                        f"batch {c['batch_size']}, EMA {c['ema']:g}, augment {c['augment']}, ADA {c['ada_target']:g}, "
                        f"LeCam {c['lecam']:g}, bCR {c['cr']:g}, threads {c['threads']}"}
    return info, [(t, state["step"], state) for t, state in snapshots]


def run_folder(out, set_name, name, seconds, seed, tail):
    """Where `kit train` runs one config on one set at one budget, seed and tail."""
    return out / set_name / "runs" / f"{name}-{seconds:g}s-seed{seed}-tail{tail}"


def keep_snapshot(path, seen, elapsed, snapshots):
    """Append (elapsed, slim checkpoint) to snapshots when `path` changed since `seen` (its mtime); returns the mtime."""
    try:
        mtime = path.stat().st_mtime_ns
        if mtime != seen:
            state = torch.load(path, map_location="cpu", weights_only=False)
            keep = ("config", "G", "G_ema", "step", "classes", "label_counts", "image_shape")
            snapshots.append((elapsed, {k: state.get(k) for k in keep}))
        return mtime
    except FileNotFoundError:   # not written yet, or replaced while we looked: the next poll sees it
        return seen


def kit_samples(state, n):
    """n uint8 images from a kit checkpoint, sampled with its own settings, and the classes asked for (i mod classes).

    A conditional model is asked for class i mod (its classes) for image i; an unconditional one for nothing (None).
    """
    from kit.sample import generate, load_generator
    cfg = state["config"]
    options = {k: cfg[k] for k in ("truncation", "standing_stats") if cfg.get(k)}
    n_classes = load_generator(state, "cpu")[0].n_classes
    asked = np.arange(n) % n_classes if n_classes else None
    images, _ = generate(state, n, seed=0, device="cpu", labels=asked, **options)
    return images, asked


def bench_one(name, flags, seconds, seed, args, real, extractor, cache, folder):
    """Train one config for one budget and seed, score its snapshots; returns the record (final = last snapshot)."""
    device = str(resolve_device(args.device))
    load_before = os.getloadavg()[0]
    if flags is None:
        times = [seconds * k / args.points for k in range(1, args.points)]
        info, snapshots = baseline.train_baseline(folder, seconds, device, times, seed=seed)
        info.update(settings=f"{baseline.SETTINGS}, threads {args.threads}", tail=0)   # it writes no zip
        samplers = [(t, step, lambda s=state: (baseline.baseline_samples(s, args.n_eval, device), None))
                    for t, step, state in snapshots]
        flags = [baseline.DESCRIPTION]
    else:
        info, snapshots = run_kit(name, flags, cache, seconds, args, seed)
        samplers = [(t, step, lambda s=state: kit_samples(s, args.n_eval)) for t, step, state in snapshots]
    load_after = os.getloadavg()[0]
    curve = []
    for t, step, sampler in samplers:
        images, asked = sampler()
        final = evaluate(images, real, extractor, asked)
        curve.append((round(t, 1), step, round(final["fid"], 3)))
    from kit.plot import save_grid
    save_grid(images[:100], args.results / f"{SETS[args.set].stem}_samples_{name}_{seconds:g}s.png", nrow=10)
    record = {"config": name, "flags": " ".join(flags), "budget_s": seconds, "seed": seed, **info, **final, "curve": curve,
              "load": [round(load_before, 2), round(load_after, 2)], "device": device, "n_eval": args.n_eval}
    print(json.dumps({k: v for k, v in record.items() if k != "curve"}), flush=True)
    return record


def machine():
    """This machine in one line."""
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), platform.processor())
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{os.cpu_count()}-core CPU ({cpu}){gpu}, torch {torch.__version__}, torch threads {torch.get_num_threads()}"


def parse_args(argv):
    """The command line of bench/quality.py."""
    parser = argparse.ArgumentParser(description="Quality benchmark: kit train vs a notebook DCGAN on a real set "
                                     "(UCI digits or natural-photo crops), scored in its classifier's features")
    parser.add_argument("--set", choices=tuple(SETS), default="digits",
                        help="digits: the 1,797 UCI digits; photos: 4,050 crops of three photographs (27 classes)")
    parser.add_argument("--budgets", default="2m,5m", help="comma list of durations, e.g. 2m,5m,20m")
    parser.add_argument("--configs", default=",".join(DEFAULT_CONFIGS), help=f"comma list of {', '.join(CONFIGS)}")
    parser.add_argument("--custom", action="append", default=[], metavar="LABEL=FLAGS",
                        help="an extra config: a label and `kit train` flags, e.g. 'wide=--model dcgan --g-width 128'")
    parser.add_argument("--seeds", default="0", help="comma list of seeds: each config and budget runs once a seed")
    parser.add_argument("--n-images", type=int, default=KIT_TAIL_IMAGES,
                        help="the `kit train` runs' zip tail, inside the budget (10000 is the user's)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads of every run (0: torch's default; 1 lets two benches share 2 cores)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--n-eval", type=int, default=1000, help="generated images scored per snapshot")
    parser.add_argument("--points", type=int, default=10, help="snapshots per run for the FID curves")
    parser.add_argument("--out", type=Path, default=OUT, help="scratch folder (data, classifier, runs)")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="where the records (quality.jsonl; quality_photos.jsonl for --set photos), "
                             "table, plots and sample grids go")
    parser.add_argument("--table", action="store_true", help="only rewrite the table and plots from past runs")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("DOGKIT_CACHE", str(args.out / "cache"))   # kit.metrics' real-statistics cache
    configs = {name: CONFIGS.get(name, "?") for name in args.configs.split(",") if name}
    configs.update({label: flags.split() for label, _, flags in (c.partition("=") for c in args.custom)})
    unknown = [name for name, flags in configs.items() if flags == "?"]
    if unknown:
        raise SystemExit(f"error: config {unknown[0]} is not known: use one of {', '.join(CONFIGS)}, or --custom")
    if args.threads:
        torch.set_num_threads(args.threads)   # the baseline trains, and every run is scored, in this process
    qset = SETS[args.set]
    results_file = args.results / f"{qset.stem}.jsonl"   # kept with the table, so a new machine still has every run
    if not args.table:
        real, labels = write_set(qset, args.out / qset.name)
        extractor, accuracy = load_classifier(qset, real, labels, args.results / f"{qset.noun}_classifier.pt")
        from kit.data.cache import prepare
        cache = args.out / f"{qset.name}.npz"
        prepare(args.out / qset.name / "archive", out=cache, crop="square", size=SIZE, progress=False)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        session = {"id": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
                   "commit": commit.stdout.strip(), "accuracy": accuracy, "classifier": extractor.fingerprint,
                   "references": references(real, extractor, qset)}
        seeds = [int(s) for s in args.seeds.split(",")]
        for seconds in (parse_duration(b) for b in args.budgets.split(",")):
            for name, flags in configs.items():
                for seed in seeds:
                    record = bench_one(name, flags, seconds, seed, args, real, extractor, cache,
                                       args.out / qset.name / "folder")
                    with open(results_file, "a") as f:   # one write: two benches may append at once
                        f.write(json.dumps({"session": session, **record}) + "\n")
    records, left_out = scored_alike(read_records(results_file))
    if records:
        write_table(records, args.results / f"{qset.stem}.md", qset, left_out)
        write_plots(records, args.results, qset)
        print(f"wrote {args.results / f'{qset.stem}.md'} and its plots")
