"""GPU acceptance: every GPU-only path of the kit in one command, each item isolated, within a wall-clock limit.

    python bench/gpu_acceptance.py                 # a machine with GPUs: --minutes 9, the rest reported not reached
    python bench/gpu_acceptance.py --dry-run       # the same list on the CPU at toy sizes (CI keeps it working)

Items, in order: the device; demo data; the kernel script in the Kaggle-like sandbox of tests/test_kernel_sandbox.py
with "device": "cuda"; each model (dcgan, cgan, biggan) trained in bf16 (where the GPU has it) and in fp16 with the
grad scaler (inside the CUDA graph), each writing and checking its 10,000-image zip; biggan with --compile, with
--cuda-graph (bf16, or fp32 where there is no bf16) and in fp16 eager (beside the graphed fp16 item: the same seed);
two NCCL processes (skipped with fewer than two GPUs); sampling with standing statistics and balanced breeds; both
feature extractors' images/s with random weights; FID and d on 10,000 × 20,000 features; bench/bench_train.py's biggan
rows at batch 64 and 256, fp16 and bf16, eager and CUDA graph (--compile is its own item); a 2-minute
bench/quality row of the kernels' default model (biggan) at its GPU settings.

Each item runs in a forked process of its own (its own process group, killed at its timeout), so one failure or hang
never stops the rest; no item starts after --minutes. Items that only prove a path (dcgan and cgan training, NCCL, the
kernel) share the GPU two at a time, so their images/s are shared figures; biggan's training items (a probe made beside
another process reserved 3.5-5× the tail's time it reserves alone: bench/results/gpu.md) and the sampling, extractor,
metric, bench_train and quality items, whose figures are speeds or quality, run alone. A training run whose metrics.jsonl
holds a fallback row (`"event": "fallback"`) is a finding, not a pass. Writes OUT/gpu.md (this run's table) and
appends one JSON record to OUT/gpu.jsonl (GPU, capability, torch, CUDA, commit, every figure and every failure);
exits 1 naming each item that failed, fell back or was not reached. OUT is bench/results, or bench/out/gpu for a dry
run, so a dry run never overwrites a GPU's results.
"""
import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))   # this checkout's kit, before an installed one

from bench_score import timed  # noqa: E402  (beside this script)
from kit.config import TrainConfig  # noqa: E402

RESULTS, DRY_RESULTS = ROOT / "bench" / "results", ROOT / "bench" / "out" / "gpu"
WORK = ROOT / "bench" / "out" / "gpu-work"   # scratch: runs, weights, each item's log; emptied at the start


@dataclass
class Context:
    """What every item reads: dry run or not, the device, the scratch folder and what the device item found."""
    dry: bool
    work: Path
    train_seconds: float
    biggan_seconds: float
    gpus: int = 0
    bf16: bool = True

    @property
    def device(self) -> str:
        return "cpu" if self.dry else "cuda"

    @property
    def cache(self) -> Path:
        return self.work / "data" / "cache.npz"


def train_config(ctx: Context, name: str, model: str, extra_seconds: float = 0.0, **options) -> TrainConfig:
    """The TrainConfig of a training item: its GPU settings for train_seconds (biggan_seconds) plus extra_seconds with
    a 10,000-image tail, or a toy."""
    seconds = (ctx.biggan_seconds if model == "biggan" else ctx.train_seconds) + extra_seconds
    toy = {"max_steps": 2, "budget": "5m", "g_width": 4, "d_width": 4, "batch_size": 8, "n_images": 16,
           "standing_stats": 0, "threads": 1, "log_every": 1} if ctx.dry else {"budget": f"{seconds:g}s"}
    return TrainConfig(**{"data": str(ctx.cache), "out": str(ctx.work / name), "model": model, "device": ctx.device,
                          "checkpoint_every": "1h", "sample_every": "1h", "force": True, **toy, **options})


def metrics_rows(run: Path) -> list:
    """The rows of a run's metrics.jsonl."""
    return [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines() if line.strip()]


def fallbacks(rows: list) -> list:
    """The messages of a run's fallback rows (the contract: `"event": "fallback"`)."""
    return [r.get("message", json.dumps(r)) for r in rows if r.get("event") == "fallback"]


def run_figures(cfg: TrainConfig) -> dict:
    """What a finished run shows: precision, graph, processes, steps, images/s, the tail against its reserve, the
    zip's check, rollbacks and fallbacks."""
    from kit.package import check_zip
    rows = metrics_rows(cfg.out)
    start, end = rows[0], rows[-1]
    rates = [r["images_per_s"] for r in rows if "images_per_s" in r][1:] or [0.0]   # the first window warms up
    if end.get("event") != "end":
        raise RuntimeError(f"{cfg.out}/metrics.jsonl has no end row: the run did not finish")
    zip_path = Path(cfg.zip or Path(cfg.out) / "images.zip")
    problems = check_zip(zip_path, n_images=cfg.n_images)
    if problems:
        raise RuntimeError(f"{zip_path}: {problems[0]}")
    return {"precision": start["precision"], "cuda_graph": start["cuda_graph"], "processes": start["world_size"],
            "steps": end["step"], "images_per_s": round(float(np.median(rates)), 1), "tail_s": end["tail_s"],
            "tail_reserved_s": end["tail_reserved_s"], "wall_s": end["wall_s"], "budget_s": end["budget_s"],
            "zip_images": cfg.n_images, "rollbacks": sum(r.get("event") == "rollback" for r in rows),
            "fallbacks": fallbacks(rows)}


def train_item(model: str, precision: str, extra_seconds: float = 0.0, **options):
    """An item that trains `model` in `precision` in this process."""
    def item(ctx: Context) -> dict:
        from kit.train import train
        if precision == "bf16" and not ctx.bf16:
            return {"skipped": "this GPU has no bf16"}
        cfg = train_config(ctx, f"{model}-{precision}{''.join('-' + k for k in options)}", model, extra_seconds,
                           precision=precision, **options)
        train(cfg)
        return run_figures(cfg)
    return item


def precision_for_graph(ctx: Context) -> str:
    """bf16 where the GPU has it, else fp32 (fp16 in the graph is "train biggan fp16" beside "biggan fp16 eager")."""
    return "bf16" if ctx.bf16 else "fp32"


def item_device(ctx: Context) -> dict:
    """The GPU(s) or, in a dry run, the CPU."""
    facts = {"gpus": torch.cuda.device_count()}
    if ctx.dry:
        return {**facts, "name": f"CPU ({platform.processor() or platform.machine()}), dry run", "capability": "",
                "bf16": True, "memory_gib": 0}
    if not torch.cuda.is_available():
        raise RuntimeError("no CUDA GPU is visible: run with --dry-run on a CPU")
    major, minor = torch.cuda.get_device_capability(0)
    torch.ones(1, device="cuda").add_(1).cpu()   # a real operation: a torch without this GPU's kernels fails here
    memory = torch.cuda.get_device_properties(0).total_memory / 2 ** 30
    return {**facts, "name": torch.cuda.get_device_name(0), "capability": f"sm_{major}{minor}",
            "bf16": (major, minor) >= (8, 0), "memory_gib": round(memory, 1)}   # kit.train's rule for bf16


def item_data(ctx: Context) -> dict:
    """Stanford-Dogs-shaped demo archives, prepared into the cache every training item reads."""
    from kit.data import cache, synthetic
    n = 60 if ctx.dry else 600
    synthetic.write_demo(ctx.cache.parent, n_images=n, n_breeds=6)
    dataset = cache.prepare(ctx.cache.parent, ctx.cache, crop="square", progress=False, force=True)
    return {"images": n, "crops": len(dataset.labels)}


def item_compile(ctx: Context) -> dict:
    """biggan with --compile; in a dry run TORCHDYNAMO_DISABLE makes it eager (a CPU compile costs minutes)."""
    if ctx.dry:
        os.environ["TORCHDYNAMO_DISABLE"] = "1"
    return train_item("biggan", "auto", COMPILE_S, compile=True)(ctx)


def item_cuda_graph(ctx: Context) -> dict:
    """biggan with --cuda-graph; on a GPU the start row must say the graph was used."""
    figures = train_item("biggan", precision_for_graph(ctx), cuda_graph=True)(ctx)
    if not ctx.dry and not figures["cuda_graph"]:
        raise RuntimeError("--cuda-graph was asked for but the run's start row says the graph was not used")
    return figures


def item_nccl(ctx: Context) -> dict:
    """biggan in two processes (NCCL on two GPUs; dcgan over gloo in a dry run), started as a kernel starts them."""
    from kit.kernel.runtime import train_ranks
    if not ctx.dry and ctx.gpus < 2:
        return {"skipped": f"{ctx.gpus} GPU: two NCCL processes need two"}
    model = "dcgan" if ctx.dry else "biggan"
    cfg = train_config(ctx, f"{model}-2-processes", model)
    failure = train_ranks(cfg, 2, deadline=time.time() + 600)
    if failure:
        raise RuntimeError(failure)
    figures = run_figures(cfg)
    if figures["processes"] != 2:
        raise RuntimeError(f"the run's start row says {figures['processes']} process(es), not 2")
    return figures


def item_kernel(ctx: Context) -> dict:
    """The kernels' default script (biggan; dcgan in a dry run) in the Kaggle-like sandbox of
    tests/test_kernel_sandbox.py, asked for the GPU: preflight, prepare, train (separate runs, one per GPU, the
    kernels' default), zip, check."""
    sys.path.insert(0, str(ROOT / "tests"))
    from test_kernel_sandbox import run_kernel, sandbox, stage_lines
    from kit.data import synthetic
    synthetic.write_demo(ctx.work / "kernel-data", n_images=120, n_breeds=6)
    name, budget = ("dcgan", "3m") if ctx.dry else ("biggan", "60s")
    train = {"device": ctx.device, **({"max_steps": 2, "g_width": 4, "d_width": 4, "batch_size": 8, "threads": 1}
                                      if ctx.dry else {})}
    places = sandbox(ctx.work / "kernel", ctx.work / "kernel-data", name)
    start = time.monotonic()
    done, report = run_kernel(places, budget, train, 0, timeout=600)
    print(done.stdout, done.stderr, sep="\n")
    stages = stage_lines(done.stdout)
    if done.returncode or report:
        raise RuntimeError(f"exit status {done.returncode}; last line: {(done.stdout + done.stderr).strip()[-300:]}"
                           + (f"; sandbox guard: {report[:3]}" if report else ""))
    folders = sorted(path.parent for path in (places["working"] / "run").rglob("last.pt"))   # one, or one per GPU
    rows = {folder.name: metrics_rows(folder) for folder in folders}
    winner = [line for line in stages["train"] if line.startswith("the zip is")]
    return {"kernel": name, "wall_s": round(time.monotonic() - start, 1), "preflight": stages["preflight"][0],
            "check": stages["check"][-1], "steps": {name: r[-1].get("step") for name, r in rows.items()},
            "winner": winner[0] if winner else "one run", "fallbacks": {name: fallbacks(r) for name, r in rows.items()}}


def item_sample(ctx: Context) -> dict:
    """10,000 images (a toy count in a dry run) from the biggan run's checkpoint, with standing statistics (16 batches
    of 256 on a GPU) and balanced breeds."""
    from kit.sample import generate
    runs = [ctx.work / f"biggan-{precision}" / "last.pt" for precision in ("bf16", "fp16")]
    runs = [run for run in runs if run.is_file()]
    if not runs:
        raise RuntimeError("no biggan checkpoint: the biggan training items failed")
    n, batches = (64, 1) if ctx.dry else (10_000, 16)
    (images, labels), seconds = timed(generate, runs[0], n, device=ctx.device, standing_stats=batches,
                                      class_balance=True)
    counts = np.bincount(labels.numpy())
    if counts.max() - counts.min() > 1 or images.shape[0] != n:
        raise RuntimeError(f"{images.shape[0]} images with breed counts {counts.tolist()}: not balanced")
    return {"checkpoint": runs[0].parent.name, "images": n, "standing_stats": batches, "seconds": round(seconds, 2),
            "images_per_s": round(n / seconds, 1)}


def item_features(ctx: Context) -> dict:
    """images/s of the FID Inception and NASNet-A Large extractors with random weights (the same cost as real ones)."""
    import timm
    from kit.metrics import features
    inception, nasnet = ctx.work / "inception.pth", ctx.work / "nasnet.pth"
    torch.save(features.random_inception_state_dict(), inception)
    torch.save(timm.create_model("nasnetalarge", pretrained=False).state_dict(), nasnet)
    figures = {}
    for key, extractor, weights, n in (("inception", features.InceptionFeatures, inception, 2 if ctx.dry else 1000),
                                       ("nasnet", features.NASNetFeatures, nasnet, 1 if ctx.dry else 200)):
        network = extractor(weights=weights, device=ctx.device)
        images = np.random.default_rng(0).integers(0, 256, (n, 3, 64, 64), dtype=np.uint8)
        if not ctx.dry:
            network(images[:network.batch_size])   # warm-up: cuDNN picks its kernels
        out, seconds = timed(network, images)
        if out.shape != (n, network.dim) or not np.isfinite(out).all():
            raise RuntimeError(f"{key}: features of shape {out.shape}, finite: {np.isfinite(out).all()}")
        figures.update({f"{key}_images": n, f"{key}_images_per_s": round(n / seconds, 1)})
    return figures


def item_metric(ctx: Context) -> dict:
    """FID and d on 10,000 generated × 20,000 real 2048-d features on the device (toy sizes in a dry run)."""
    from kit.metrics import fid
    n_gen, n_real, dim = (100, 200, 64) if ctx.dry else (10_000, 20_000, 2048)
    generator = torch.Generator().manual_seed(0)
    gen = torch.randn(n_gen, dim, generator=generator).to(ctx.device)
    real = torch.randn(n_real, dim, generator=generator).to(ctx.device)
    value, fid_seconds = timed(lambda: fid.frechet_distance(*fid.statistics(gen), *fid.statistics(real)))
    d, d_seconds = timed(lambda: fid.memorisation_distance(fid.nearest_real(gen, real)[0]))
    if not (np.isfinite(value) and 0 < d <= 1):
        raise RuntimeError(f"FID {value}, d {d}: not a distance")
    return {"generated": n_gen, "real": n_real, "dim": dim, "fid": round(value, 3), "d": round(d, 4),
            "fid_seconds": round(fid_seconds, 2), "d_seconds": round(d_seconds, 2)}


def item_bench_train(ctx: Context) -> dict:
    """bench/bench_train.py's rows (biggan at batch 64 and 256, fp16 and bf16, eager and CUDA graph; in a dry run the
    notebook baseline and dcgan in fp16) into a scratch table, read back."""
    sys.path.insert(0, str(ROOT / "bench"))
    import bench_train
    table = ctx.work / "train.md"
    flags = (["--device", "cpu", "--batch-sizes", "8", "--models", "dcgan", "--steps", "1", "--warmup", "1",
              "--images", "24", "--threads", "1", "--precisions", "fp16"] if ctx.dry else
             ["--batch-sizes", "64", "256", "--modes", "eager", "cuda_graph", "--steps", "60", "--warmup", "30",
              "--models", "biggan", "--precisions", "fp16", *(["bf16"] if ctx.bf16 else []), "--no-baseline"])
    sys.argv = ["bench_train.py", *flags, "--results", str(table)]
    bench_train.main()
    rows = [line for line in table.read_text().splitlines() if line.startswith("| ") and "images/s" not in line]
    return {"rows": [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]}


def item_quality(ctx: Context) -> dict:
    """A bench/quality row of biggan at its GPU settings for 2 minutes (scratch results, read back); in a dry run 15 s
    at toy widths, scored by a random (untrained) digit classifier."""
    sys.path.insert(0, str(ROOT / "bench"))
    from quality import runner
    from quality.classifier import ClassifierNet
    out, results = ctx.work / "quality", ctx.work / "quality-results"
    flags = ["--budgets", "2m", "--configs", "kit-biggan", "--points", "2", "--n-eval", "500"]
    if ctx.dry:
        out.mkdir(parents=True, exist_ok=True)
        torch.save(ClassifierNet().state_dict(), out / "digit_classifier.pt")   # found there, so not trained
        flags = ["--budgets", "15s", "--configs", "", "--points", "1", "--n-eval", "32", "--device", "cpu", "--custom",
                 "kit-biggan=--model biggan --g-width 4 --d-width 4 --batch-size 8 --standing-stats 0 --threads 1"]
    runner.main([*flags, "--out", str(out), "--results", str(results)])
    record = [json.loads(line) for line in (results / "quality.jsonl").read_text().splitlines()][-1]
    rows = metrics_rows(runner.run_folder(out, "digits", record["config"], record["budget_s"], record["seed"],
                                          record["tail"]))
    return {**{k: record.get(k) for k in ("budget_s", "steps", "fid", "d", "bits", "rarest", "cgan_acc", "settings")},
            "fallbacks": fallbacks(rows)}


# (name, function, timeout in seconds on a GPU, the items it needs); a dry run gives every item DRY_TIMEOUT_S
TRAINED = ("data",)
COMPILE_S = 60.0   # the compile item's budget on top of biggan_seconds: compiling G and D happens inside it
ITEMS = [
    ("device", item_device, 60, ()),
    ("data", item_data, 120, ()),
    ("kernel in the sandbox", item_kernel, 200, ()),
    *[(f"train {model} {precision}", train_item(model, precision), 150, TRAINED)
      for model in ("dcgan", "cgan", "biggan") for precision in ("bf16", "fp16")],
    ("compile", item_compile, 240, TRAINED),
    ("cuda graph", item_cuda_graph, 150, TRAINED),
    ("biggan fp16 eager", train_item("biggan", "fp16", cuda_graph=False), 150, TRAINED),   # beside "train biggan fp16"
    ("nccl 2 processes", item_nccl, 200, TRAINED),
    ("sample", item_sample, 120, ("train biggan bf16", "train biggan fp16")),
    ("features", item_features, 240, ()),
    ("metric", item_metric, 120, ()),
    ("quality", item_quality, 400, ()),
    ("bench_train", item_bench_train, 300, ()),
]
ALONE = {"train biggan bf16", "train biggan fp16", "compile", "cuda graph", "biggan fp16 eager", "sample", "features",
         "metric", "quality", "bench_train"}
DRY_TIMEOUT_S = 240


def start_item(function, ctx: Context, log: Path) -> int:
    """Fork a process with its own process group that runs function(ctx), its output to `log`, and writes
    {"figures": ...} or {"error": one line} beside it; returns its pid."""
    answer = log.with_suffix(".json")
    answer.unlink(missing_ok=True)
    pid = os.fork()
    if pid:
        return pid
    os.setsid()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout, sys.stderr = (open(n, "w", buffering=1, closefd=False) for n in (1, 2))   # even if Python's were not
    try:
        result = {"figures": function(ctx)}
    except BaseException as e:   # noqa: BLE001 - whatever ends an item is its failure, reported in one line
        traceback.print_exc()
        result = {"error": f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:400]}"}
    answer.write_text(json.dumps(result, default=str))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def poll_item(pid: int, log: Path, deadline: float, timeout: float):
    """The item's answer once its process has ended, its process group killed past the deadline; None while it runs."""
    if os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() <= deadline:
            return None
        os.killpg(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return {"error": f"timed out after {timeout:.0f} s (see {log})"}
    answer = log.with_suffix(".json")
    if not answer.exists():
        return {"error": f"the item's process died without an answer (see {log})"}
    return json.loads(answer.read_text())


def alone(name: str, dry: bool) -> bool:
    """Whether an item runs with nothing beside it: the device item, and on a GPU those whose figures are speeds or
    quality (the training items only prove paths, so they share the GPU)."""
    return name == "device" or (not dry and name in ALONE)


def run_items(items: list, ctx: Context, jobs: int, minutes: float, dry: bool) -> list:
    """Every item in a process of its own, `jobs` at a time (the device item first; an item after those it needs,
    one that runs alone after the ones before it), none started after `minutes`; the records in the items' order."""
    start, done, running, waiting = time.monotonic(), {}, {}, list(items)
    while waiting or running:
        for name, (pid, began, deadline, timeout, log) in list(running.items()):
            result = poll_item(pid, log, deadline, timeout)
            if result is not None:
                del running[name]
                done[name] = {"name": name, "status": status(result), "seconds": round(time.monotonic() - began, 1),
                              **result}
                if name == "device" and "figures" in result:
                    ctx.gpus, ctx.bf16 = result["figures"]["gpus"], result["figures"]["bf16"]
                print(f"{name:<24} {done[name]['status']:<8} {done[name]['seconds']:>6} s  "
                      f"{result.get('error') or json.dumps(result['figures'], default=str)[:160]}", flush=True)
        left = start + minutes * 60 - time.monotonic()
        waiting_names = {item[0] for item in waiting}
        for item in list(waiting):
            name, function, timeout, needs = item
            if left <= 0:
                done[name] = {"name": name, "status": "failed", "seconds": 0,
                              "error": f"not reached within --minutes {minutes:g}"}
            elif (len(running) >= jobs or any(alone(n, dry) for n in running) or (running and alone(name, dry))
                  or ("device" in waiting_names and name != "device")):
                break
            elif any(n in running or n in waiting_names - {name} for n in needs):
                continue
            else:
                timeout = min(DRY_TIMEOUT_S if dry else timeout, left)
                log = ctx.work / "logs" / (name.replace(" ", "-") + ".log")
                running[name] = (start_item(function, ctx, log), time.monotonic(), time.monotonic() + timeout,
                                 timeout, log)
            waiting.remove(item)
        time.sleep(0.1)
    return [done[item[0]] for item in items]


def status(result: dict) -> str:
    """passed, skipped, fallback (a finding, not a pass) or failed."""
    if "error" in result:
        return "failed"
    figures = result["figures"]
    return "skipped" if "skipped" in figures else "fallback" if figures.get("fallbacks") else "passed"


def commit() -> str:
    """This checkout's commit, marked when the tree has uncommitted changes."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    return head.stdout.strip() + (" + uncommitted changes" if dirty else "")


def table(record: dict) -> str:
    """gpu.md: the run's heading and one row per item."""
    device = record["device"]
    lines = [f"# GPU acceptance (`bench/gpu_acceptance.py{' --dry-run' if record['dry_run'] else ''}`)", "",
             f"{record['date']}: {device.get('name', '?')} {device.get('capability', '')} "
             f"× {device.get('gpus', '?')}, "
             f"torch {record['torch']}, CUDA {record['cuda']}, commit {record['commit']}, "
             f"{record['wall_s']:.0f} s wall. Failed: {', '.join(record['failed']) or 'none'}.", "",
             "| item | status | seconds | figures |", "|---|---|---|---|"]
    for item in record["items"]:
        shown = item.get("error") or "; ".join(f"{k} {v}" for k, v in item.get("figures", {}).items()
                                              if k not in ("rows", "fallbacks") and v not in (None, []))
        fell = "; fallback: " + " / ".join(item["figures"]["fallbacks"]) if item["status"] == "fallback" else ""
        lines.append(f"| {item['name']} | {item['status']} | {item['seconds']} | {shown.replace('|', '/')}{fell} |")
    for item in record["items"]:
        if item.get("figures", {}).get("rows"):
            lines += ["", f"{item['name']} rows (loop | batch | mode | images/s):", ""]
            lines += ["| " + " | ".join(row) + " |" for row in item["figures"]["rows"]]
    return "\n".join(lines) + "\n"


def preload() -> None:
    """Import once, before the items fork, what each would import on its own (seconds each on a busy CPU): the
    trainer, the plots, the extractors, and the compiler stack torch.optim loads with its first optimiser. Dry runs
    only: on a GPU the parent touches nothing that might initialise CUDA before a fork."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    import timm  # noqa: F401
    import torchvision.utils  # noqa: F401
    import kit.metrics.features  # noqa: F401
    import kit.train  # noqa: F401
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="the same list on the CPU at toy sizes")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"where gpu.md and gpu.jsonl go (default {RESULTS.relative_to(ROOT)}, dry run "
                             f"{DRY_RESULTS.relative_to(ROOT)})")
    parser.add_argument("--minutes", type=float, default=9.0, help="no item starts after this many minutes")
    parser.add_argument("--train-seconds", type=float, default=30.0,
                        help="budget of each dcgan and cgan training item on a GPU, its 10,000-image tail included")
    parser.add_argument("--biggan-seconds", type=float, default=45.0,
                        help="budget of each biggan training item on a GPU (alone on an H200: start-up about 10 s, "
                             "the tail's reserve 12 s)")
    parser.add_argument("--jobs", type=int, default=2,
                        help="items run at once (those whose figures are speeds or quality always run alone)")
    parser.add_argument("--items", default="", help="comma list of item names to run (default: all)")
    parser.add_argument("--work", type=Path, default=WORK, help="scratch folder, emptied first; item logs in logs/")
    args = parser.parse_args(argv)
    out = args.out or (DRY_RESULTS if args.dry_run else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(args.work, ignore_errors=True)
    (args.work / "logs").mkdir(parents=True)
    if args.dry_run:
        preload()
    else:   # torch.cuda.is_available() in this process would otherwise break CUDA in every forked item
        os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"
    ctx = Context(dry=args.dry_run, work=args.work, train_seconds=args.train_seconds,
                  biggan_seconds=args.biggan_seconds)
    start = time.monotonic()
    chosen = [item for item in ITEMS if not args.items or item[0] in args.items.split(",")]
    records = run_items(chosen, ctx, args.jobs, args.minutes, args.dry_run)
    failed = [r["name"] + (" (fallback)" if r["status"] == "fallback" else "")
              for r in records if r["status"] in ("failed", "fallback")]
    device = next((r.get("figures", {}) for r in records if r["name"] == "device"), {})
    record = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "dry_run": args.dry_run, "device": device,
              "torch": torch.__version__, "cuda": torch.version.cuda, "commit": commit(),
              "wall_s": round(time.monotonic() - start, 1), "failed": failed, "items": records}
    (out / "gpu.md").write_text(table(record))
    with open(out / "gpu.jsonl", "a") as f:
        f.write(json.dumps(record, default=str) + "\n")
    print(f"wrote {out / 'gpu.md'} and appended to {out / 'gpu.jsonl'}")
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
