"""Train a GAN on a prepared cache within a hard wall-clock budget, read top to bottom: open the run, build the
Trainer (kit.trainer: the step), reserve the end's time (kit.budget), loop, then write the images and the zip."""
import json
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from kit import checkpoint, models
from kit.budget import Budget
from kit.config import TrainConfig, add_arguments as add_config_arguments, asdict, for_device, from_args, from_dict
from kit.data import cache
from kit.device import resolve_device
from kit.errors import UserError
from kit.files import refuse_overwrite
from kit.package import write_zip
from kit.plot import save_grid, save_line_chart
from kit.progress import Progress
from kit.sample import STATS_BATCH, generate, to_uint8
from kit.trainer import Trainer, set_rng_state, to_cpu

# Fields a resumed run takes from the command line; every other field comes from the checkpoint.
RUN_FIELDS = ("data", "out", "budget", "device", "threads", "compile", "cuda_graph", "checkpoint_every", "sample_every",
              "log_every", "n_images", "zip", "truncation", "standing_stats", "class_balance", "resume", "max_steps",
              "force")
MAX_ROLLBACKS = 5       # NaN rollbacks in a row before giving up
TAIL_SAFETY = 1.5       # the measured time of generating + zipping is multiplied by this ...
TAIL_MARGIN_S = 10.0    # ... and this is added
TAIL_PROBE = 256        # images generated and zipped at the start to time the tail
GRID_BREEDS = 10        # rows of the conditional sample grid (breeds spread over the classes)


def pick_precision(name, device):
    """The autocast dtype (None is fp32): auto is bf16 on GPUs that have it, fp16 on older GPUs, fp32 on CPU;
    fp16 runs on the CPU too (with a grad scaler), which is how the T4 path is tested without a GPU."""
    if name == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.get_device_capability(device) >= (8, 0) else torch.float16  # T4, P100: fp16
    table = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if name not in table:
        raise UserError(f"--precision {name} is not known: use auto, fp32, bf16 or fp16")
    return table[name]


def setup_distributed(device_name):
    """(rank, world size, device); under torchrun one process per GPU (gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device_name)
    if world == 1:
        return 0, 1, device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return torch.distributed.get_rank(), world, device


def open_data(cfg, rank, world):
    """The training Dataset; under DDP rank 0 prepares it first so the others only read the cache."""
    if not cfg.data:
        raise UserError("no --data given: pass a cache made by `kit prepare`, or a folder/archive to prepare")
    if world > 1 and rank > 0:
        torch.distributed.barrier()   # wait until rank 0 has prepared the cache
    dataset = cache.load_or_prepare(cfg.data, crop=cfg.crop)
    if world > 1 and rank == 0:
        torch.distributed.barrier()
    if len(dataset) == 0:
        raise UserError(f"{cfg.data} holds no images: check the path, or prepare it again with `kit prepare`")
    return dataset


def measure_tail(state, cfg, out, device):
    """Seconds the end of a run needs (generate + zip n_images, measured on a small probe, with a safety factor)."""
    k = max(1, min(cfg.n_images, TAIL_PROBE))
    t = time.monotonic()
    images, _ = generate(state, k, device=device, class_balance=cfg.class_balance)
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        write_zip(images, Path(tmp) / "probe.zip", force=True, progress=False)
    return tail_seconds((time.monotonic() - t) / k, cfg)


def tail_seconds(per_image, cfg):
    """The tail's reserve from the probe's seconds per image: n_images generated and zipped, plus the standing
    statistics' batches (a fixed cost, generated but not zipped), times the safety factor, plus the margin."""
    images = cfg.n_images + (max(0, cfg.standing_stats) * STATS_BATCH if cfg.n_images else 0)
    return per_image * images * TAIL_SAFETY + TAIL_MARGIN_S


def fixed_noise(cfg, n_classes, conditional):
    """The sample grid's noise and labels (one row per breed for a conditional model) and its row length."""
    generator = torch.Generator().manual_seed(cfg.seed)
    if not conditional:
        return torch.randn(64, cfg.z_dim, generator=generator), None, 8
    breeds = np.unique(np.linspace(0, n_classes - 1, min(n_classes, GRID_BREEDS)).round().astype(np.int64))
    z = torch.randn(8 * len(breeds), cfg.z_dim, generator=generator)
    return z, torch.from_numpy(breeds).repeat_interleave(8), 8


def read_metrics(path):
    """The loss lines of metrics.jsonl as {name: (steps, values)}."""
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "loss_d" in r]
    return {name: ([r["step"] for r in rows], [r[key] for r in rows])
            for name, key in (("D", "loss_d"), ("G", "loss_g"))}


def open_run(cfg, device):
    """(cfg with the checkpoint's fields when resuming and device defaults filled, the resumed checkpoint or None)."""
    last = Path(cfg.out) / "last.pt"
    resumed = None
    if cfg.resume:
        if not last.exists():
            raise UserError(f"--resume given but {last} does not exist: leave out --resume to start a new run")
        resumed = checkpoint.load(last)
        cfg = from_dict({**resumed["config"], **{k: getattr(cfg, k) for k in RUN_FIELDS}})
    elif last.exists() and not cfg.force:
        raise UserError(f"{last} exists: pass --resume to continue that run, or --force to start a new one over it")
    cfg = for_device(cfg, device.type)   # the checkpoint stores the concrete widths, learning rates, loss and betas
    if cfg.zip and not cfg.resume:
        refuse_overwrite(cfg.zip, cfg.force)
    if cfg.batch_size < 1 or cfg.n_critic < 0:
        raise UserError(f"--batch-size {cfg.batch_size} must be at least 1 and --n-critic {cfg.n_critic} at least 0")
    return cfg, resumed


def synced(losses, stop, save_now, world):
    """(D loss sum, G loss sum, stop, save) with one host sync; under DDP rank 0's clock decides for everyone."""
    flags = torch.cat([losses, torch.tensor([float(stop), float(save_now)], device=losses.device)])
    if world > 1:
        torch.distributed.broadcast(flags[2:], 0)
        torch.distributed.all_reduce(flags[:2])
    return flags.tolist()


def train(cfg: TrainConfig) -> Path:
    """Train until cfg.max_steps or the budget's end, then checkpoint and zip cfg.n_images; returns OUT/last.pt."""
    start = time.monotonic()
    rank, world, device = setup_distributed(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    main = rank == 0
    cfg, resumed = open_run(cfg, device)
    out, last = Path(cfg.out), Path(cfg.out) / "last.pt"
    zip_path = Path(cfg.zip) if cfg.zip else out / "images.zip"
    dtype = pick_precision(cfg.precision, device)
    use_graph = cfg.cuda_graph and device.type == "cuda" and dtype is not torch.float16 and world == 1
    if cfg.cuda_graph and not use_graph and main:
        tqdm.write("cuda_graph is off: it needs one CUDA GPU and bf16 or fp32 precision")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True

    # --- data on the device, the trainer (models, optimisers, scalers, EMA) ---
    dataset = open_data(cfg, rank, world)
    classes, family = list(dataset.classes), models.family(cfg.model)
    if family.needs_breeds and len(classes) < 2:
        raise UserError(f"--model {cfg.model} needs breed labels, but {cfg.data} has {len(classes)} class: "
                        "use --model dcgan or biggan")
    images = torch.from_numpy(dataset.images).to(device)   # uint8 N×C×H×W, resident
    trainer = Trainer(cfg, images, torch.from_numpy(dataset.labels).to(device), len(classes), device, dtype,
                      use_graph, rank, world)
    run = {"config": asdict(cfg), "classes": classes, "image_shape": tuple(images.shape[1:]),
           "label_counts": np.bincount(dataset.labels, minlength=len(classes)).tolist()}
    elapsed_before = 0.0
    if resumed:
        if tuple(resumed["image_shape"]) != run["image_shape"] or list(resumed["classes"]) != classes:
            raise UserError(f"{last} was trained on other data (images {tuple(resumed['image_shape'])}, "
                            f"{len(resumed['classes'])} classes): pass the same --data, or start a new --out")
        trainer.restore(resumed)
        elapsed_before = resumed["elapsed"]
        if world == 1:
            set_rng_state(resumed["rng"])
        else:  # one saved RNG state cannot serve every rank: reseed each from the step
            torch.manual_seed(cfg.seed + rank + 1000003 * trainer.step_count)

    def state():
        """The checkpoint dict of the run as it is now (references to live tensors)."""
        return {**run, **trainer.state(), "elapsed": elapsed_before + time.monotonic() - start}

    # --- the budget: measure what the end needs (images, zip, a checkpoint) before writing anything ---
    budget = Budget(cfg, start, device.type)
    out.mkdir(parents=True, exist_ok=True)
    good = to_cpu(state())   # the last state known to be finite: rollback target
    tail = measure_tail(good, cfg, out, device) if main else 0.0
    if main and time.monotonic() + tail >= start + budget.seconds:
        raise UserError(f"--budget {cfg.budget} leaves no time to train: writing {cfg.n_images} images needs "
                        f"about {tail:.0f} s; raise --budget or lower --n-images")
    t = time.monotonic()
    if main:
        checkpoint.save(last, good)
        metrics = open(out / "metrics.jsonl", "a" if resumed else "w")
    budget.reserve(tail + 2 * (time.monotonic() - t))   # the final checkpoint, twice over

    def log(row):
        if main:
            metrics.write(json.dumps(row) + "\n")
            metrics.flush()

    z_fixed, y_fixed, nrow = fixed_noise(cfg, len(classes), trainer.conditional)

    def save_samples():
        sampler = trainer.G_ema or trainer.G
        was_training = sampler.training
        sampler.eval()
        with torch.no_grad():
            grid = to_uint8(sampler(z_fixed.to(device), None if y_fixed is None else y_fixed.to(device)))
        sampler.train(was_training)
        save_grid(grid, out / "samples" / f"step_{trainer.step_count:07d}.png", nrow)

    precision = str(dtype or "fp32").replace("torch.", "")
    log({"event": "start", "step": trainer.step_count, "resumed": bool(resumed), "world_size": world,
         "device": str(device), "precision": precision, "cuda_graph": use_graph,
         "tail_reserved_s": round(budget.tail, 1)})
    if main:
        tqdm.write(f"training {cfg.model} ({cfg.loss}) on {device}, {precision}, {world} process(es); batch "
                   f"{cfg.batch_size} per process ({cfg.batch_size * world} in all); lr G {cfg.lr_g:g} D {cfg.lr_d:g}; "
                   f"{trainer.n_critic} D step(s) per G step")

    # --- the loop: a step, and every budget.check_every steps one host sync to check ---
    progress = Progress(cfg.max_steps or None, trainer.step_count, enabled=main)
    since_check, rollbacks = 0, 0
    window = {"n": 0, "d": 0.0, "g": 0.0, "t": time.monotonic(), "step": trainer.step_count}
    try:
        while True:
            if budget.check_due(since_check):
                now = time.monotonic()
                budget.checked(since_check, now)
                stop = trainer.step_count >= cfg.max_steps > 0 or budget.out_of_time(now)
                d_sum, g_sum, stop, save_now = synced(trainer.take_losses(), stop, budget.checkpoint_due(now), world)
                if not (math.isfinite(d_sum) and math.isfinite(g_sum)):
                    rollbacks += 1
                    step = roll_back(trainer, good, rollbacks, log, main)
                    progress.restart_at(step)
                    window.update(n=0, d=0.0, g=0.0, t=time.monotonic(), step=step)
                    since_check = 0
                    budget.checked(0, time.monotonic())
                    continue
                window.update(d=window["d"] + d_sum, g=window["g"] + g_sum, n=window["n"] + since_check)
                shown = {}
                if window["n"] and (trainer.step_count - window["step"] >= cfg.log_every or stop):
                    row = loss_row(window, trainer, elapsed_before + now - start, now, world)
                    log(row)
                    shown = dict(d=row["loss_d"], g=row["loss_g"], img_s=row["images_per_s"], left=budget.left(now))
                    window.update(n=0, d=0.0, g=0.0, t=now, step=trainer.step_count)
                progress.update(since_check, **shown)
                since_check = 0
                if save_now or stop:
                    good, rollbacks = to_cpu(state()), 0
                    if main:
                        checkpoint.save(last, good)
                    budget.checkpointed(time.monotonic())
                if main and (budget.sample_due(now) or stop):
                    save_samples()
                if stop:
                    break
            trainer.step()
            since_check += 1
    except torch.cuda.OutOfMemoryError:
        raise UserError(f"--batch-size {cfg.batch_size} does not fit in the GPU's memory: pass a smaller --batch-size "
                        "(or --no-compile / --no-cuda-graph)") from None
    finally:
        progress.close()

    # --- the end: loss curve, images, zip (all inside the budget) ---
    if main:
        t = time.monotonic()
        save_line_chart(read_metrics(out / "metrics.jsonl"), out / "losses.png", "step", "loss",
                        f"{cfg.model} {cfg.loss}")
        images_out, _ = generate(good, cfg.n_images, seed=cfg.seed, truncation=cfg.truncation, device=device,
                                 standing_stats=cfg.standing_stats, class_balance=cfg.class_balance)
        write_zip(images_out, zip_path, force=True)
        log({"event": "end", "step": trainer.step_count, "tail_s": round(time.monotonic() - t, 2),
             "tail_reserved_s": round(budget.tail, 1), "wall_s": round(time.monotonic() - start, 2),
             "budget_s": budget.seconds, "zip": str(zip_path)})
        metrics.close()
        tqdm.write(f"{trainer.step_count} steps; wrote {last} and {cfg.n_images} images to {zip_path} "
                   f"({time.monotonic() - start:.0f} s of the {budget.seconds:.0f} s budget)")
    if world > 1:
        torch.distributed.destroy_process_group()
    return last


def roll_back(trainer, good, rollbacks, log, main):
    """After NaN/inf losses: back to the `good` state, learning rates × 0.5^rollbacks, said and logged; its step."""
    if rollbacks > MAX_ROLLBACKS:
        raise UserError(f"training diverged: {MAX_ROLLBACKS} rollbacks in a row after NaN/inf losses; "
                        "lower --lr-g/--lr-d or try another --loss")
    bad_step, step = trainer.step_count, trainer.rollback(good, rollbacks)
    opt_G, opt_D = trainer.optimisers()
    message = (f"NaN/inf loss near step {bad_step}: rolled back to step {step}, learning rates ×{0.5 ** rollbacks:g} "
               f"(now G {opt_G.param_groups[0]['lr']:.2e}, D {opt_D.param_groups[0]['lr']:.2e})")
    if main:
        tqdm.write(message)
    log({"event": "rollback", "step": step, "bad_step": bad_step, "message": message})
    return step


def loss_row(window, trainer, elapsed, now, world):
    """The metrics.jsonl line for the steps in `window`: mean losses, images/s, learning rates."""
    opt_G, opt_D = trainer.optimisers()
    seconds = max(now - window["t"], 1e-9)
    return {"step": trainer.step_count, "elapsed": round(elapsed, 2), "loss_d": window["d"] / window["n"],
            "loss_g": window["g"] / window["n"],
            "images_per_s": round(window["n"] * trainer.n_critic * trainer.cfg.batch_size * world / seconds, 1),
            "lr_g": opt_G.param_groups[0]["lr"], "lr_d": opt_D.param_groups[0]["lr"]}


def add_arguments(parser):
    """Flags of `kit train`: one per TrainConfig field."""
    add_config_arguments(parser)


def main(args):
    """Run `kit train`."""
    train(from_args(args))
