"""Train a GAN on a prepared cache within a hard wall-clock budget, read top to bottom: open the run, build the
Trainer (kit.trainer: the step) and the Run (kit.jobs: periodic work and the record), reserve the end's time
(kit.budget), loop, then write the images and the zip from the selected checkpoint, and score it."""
import json
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from kit import checkpoint, losses, models, tune
from kit.budget import Budget
from kit.config import TrainConfig, add_arguments as add_config_arguments, asdict, for_device, from_args, from_dict
from kit.data import cache
from kit.device import resolve_device
from kit.errors import UserError
from kit.files import refuse_overwrite
from kit.package import write_zip
from kit.jobs import EVAL_SEED, Run, optional
from kit.metrics.ranks import from_rank_0
from kit.plot import save_line_chart
from kit.progress import Progress
from kit.sample import STATS_BATCH, generate, load_generator
from kit.trainer import Trainer, fused_optimisers, set_rng_state

# Fields a resumed run takes from the command line; every other field comes from the checkpoint.
RUN_FIELDS = ("data", "out", "budget", "budget_from", "device", "threads", "compile", "cuda_graph", "checkpoint_every",
              "sample_every", "log_every", "n_images", "zip", "truncation", "standing_stats", "class_balance", "tune", "resume",
              "max_steps", "force", "eval_every", "eval_n", "select", "score_n", "real")
MAX_ROLLBACKS = 5       # NaN rollbacks in a row before giving up
FP16_ROLLBACKS = 2      # rollbacks in a row under fp16 before the run goes on in fp32 (bf16 where the GPU has it)
FIRST_STEPS = 100       # steps after the start in which a compile/capture failure or an OOM falls back
TAIL_SAFETY = 1.5       # the measured costs of the end are multiplied by this ...
TAIL_MARGIN_S = 3.0     # ... and this is added
TAIL_PROBES = (8, 32, 256)   # images generated and zipped at the start: a warm-up, then two timed probes
SELECTIONS = ("private", "public", "last")


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


def graph_allowed(cfg, device, dtype, world):
    """Whether the step is captured in a CUDA graph: asked for (the default), one CUDA process, no torch.compile
    (whose graphs are its own), and fp16 only with Adam, fused on a GPU: its grad scaler's inf check and skipped step
    stay on the device there, where RMSprop's (wgan) read the inf check on the host."""
    fp16_on_device = dtype is not torch.float16 or fused_optimisers(losses.get(cfg.loss).optimizer, device)
    return cfg.cuda_graph and device.type == "cuda" and fp16_on_device and world == 1 and not cfg.compile


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


def measure_tail(state, cfg, device):
    """(fixed seconds, seconds per image) of the end's images, on warm probes in a temporary folder: building G is
    timed on its own, then, after a warm-up (thread start-up, first allocations, matplotlib's import by the loss
    chart), two sizes generated and zipped with that G separate the per-image cost from the rest."""
    warm, small, large = (min(k, max(1, cfg.n_images)) for k in TAIL_PROBES)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.monotonic()
        built = load_generator(state, device)
        build_s = time.monotonic() - t

        def seconds(k):
            t = time.monotonic()
            images, _ = generate(state, k, device=device, class_balance=cfg.class_balance, built=built)
            write_zip(images, Path(tmp) / "probe.zip", force=True, progress=False)
            return time.monotonic() - t

        optional("the loss chart's warm-up", save_line_chart, {}, Path(tmp) / "chart.png")
        seconds(warm)
        t_small, t_large = seconds(small), seconds(large)
    per_image = max(t_large - t_small, 0.0) / max(large - small, 1)
    return build_s + max(t_small - per_image * small, 0.0), per_image


def tail_seconds(fixed, per_image, cfg):
    """The images' share of the end's reserve: the fixed cost, n_images generated and zipped, plus the standing
    statistics' batches (generated, not zipped), times the safety factor, plus the margin."""
    images = cfg.n_images + (max(0, cfg.standing_stats) * STATS_BATCH if cfg.n_images else 0)
    return (fixed + per_image * images) * TAIL_SAFETY + TAIL_MARGIN_S


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
    if cfg.select not in ("",) + SELECTIONS:
        raise UserError(f"--select {cfg.select} is not known: use private, public or last")
    if cfg.lecam < 0 or cfg.cr < 0:
        raise UserError(f"--lecam {cfg.lecam:g} and --cr {cfg.cr:g} must be at least 0 (0 turns each off; -1 leaves "
                        f"--lecam to the model)")
    if cfg.r1 < 0 or cfg.r2 < 0:
        raise UserError(f"--r1 {cfg.r1:g} and --r2 {cfg.r2:g} must be at least 0 (0 turns each off; -1 leaves them to "
                        f"the model)")
    if cfg.eval_n < 2:
        raise UserError(f"--eval-n {cfg.eval_n} must be at least 2 (FID needs two images)")
    return cfg, resumed


def synced(losses, flags, world):
    """(D loss sum, G loss sum, flags) with one host sync; under DDP rank 0's flags decide for everyone."""
    values = torch.cat([losses, torch.tensor([float(f) for f in flags], device=losses.device)])
    if world > 1:
        torch.distributed.broadcast(values[2:], 0)
        torch.distributed.all_reduce(values[:2])
    d_sum, g_sum, *rest = values.tolist()
    return d_sum, g_sum, [bool(f) for f in rest]


def real_images(cfg, dataset):
    """Where the real images for evaluation are: --real, else what DATA was prepared from; "" when unknown."""
    if cfg.real:
        return cfg.real
    source = dataset.report.get("data", "")
    return source if source and Path(source).exists() else ("" if cache.is_cache(cfg.data) else cfg.data)


def open_evaluator(cfg, real, device, rank, world):
    """(the Evaluator or None, the selection: private, public or last, and a line on what is not evaluated)."""
    wanted = cfg.eval_every not in ("0", "") or cfg.score_n > 0
    evaluator, why = None, ""
    if wanted and not real:
        why = f"no real images to evaluate against ({cfg.data} does not say where it was prepared from): pass --real"
    elif wanted:
        from kit.metrics.evaluate import Evaluator
        evaluator = Evaluator(real, device, cfg.eval_n, rank=rank, world=world)   # the ranks share its feature work
        skipped = "; ".join(f"{name}: {reason}" for name, reason in evaluator.skipped.items())
        if not evaluator.leaderboards:
            evaluator, why = None, f"no leaderboard weights at hand, so no evaluation ({skipped})"
        elif skipped:
            why = f"evaluating {', '.join(evaluator.leaderboards)} only ({skipped})"
        else:
            why = ""
    at_hand = evaluator.leaderboards if evaluator else ()
    select = cfg.select or next((name for name in ("private", "public") if name in at_hand), "last")
    if select != "last" and select not in at_hand:
        raise UserError(f"--select {select} needs that leaderboard's network, which is not at hand ({why}): "
                        f"attach its weights or pass --select last")
    return evaluator, select, why


def train(cfg: TrainConfig) -> Path:
    """Train until cfg.max_steps or the budget's end, then checkpoint, zip cfg.n_images from the selected checkpoint
    and score the zip when the leaderboards' weights are at hand; returns OUT/last.pt."""
    start = time.monotonic() - (max(0.0, time.time() - cfg.budget_from) if cfg.budget_from else 0.0)
    rank, world, device = setup_distributed(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    main = rank == 0
    cfg, resumed = open_run(cfg, device)
    out, last = Path(cfg.out), Path(cfg.out) / "last.pt"
    zip_path = Path(cfg.zip) if cfg.zip else out / "images.zip"
    dtype = pick_precision(cfg.precision, device)
    use_graph = graph_allowed(cfg, device, dtype, world)
    if cfg.cuda_graph and not use_graph and main and device.type == "cuda":
        tqdm.write("the CUDA graph is off: it needs one GPU process, bf16 or fp32 precision and no --compile")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True

    # --- data on the device, the trainer (models, optimisers, scalers, EMA), the evaluator ---
    dataset = open_data(cfg, rank, world)
    classes, family = list(dataset.classes), models.family(cfg.model)
    if family.needs_breeds and len(classes) < 2:
        raise UserError(f"--model {cfg.model} needs breed labels, but {cfg.data} has {len(classes)} class: "
                        "use --model dcgan or biggan")
    images = torch.from_numpy(dataset.images).to(device)   # uint8 N×C×H×W, resident
    trainer = Trainer(cfg, images, torch.from_numpy(dataset.labels).to(device), len(classes), device, dtype,
                      use_graph, rank, world)
    record = {"classes": classes, "image_shape": tuple(images.shape[1:]),
              "label_counts": np.bincount(dataset.labels, minlength=len(classes)).tolist()}
    if resumed:
        if tuple(resumed["image_shape"]) != record["image_shape"] or list(resumed["classes"]) != classes:
            raise UserError(f"{last} was trained on other data (images {tuple(resumed['image_shape'])}, "
                            f"{len(resumed['classes'])} classes): pass the same --data, or start a new --out")
        trainer.restore(resumed)
        if world == 1:
            set_rng_state(resumed["rng"])
        else:  # one saved RNG state cannot serve every rank: reseed each from the step
            torch.manual_seed(cfg.seed + rank + 1000003 * trainer.step_count)
    real = real_images(cfg, dataset)
    evaluator, select, why = open_evaluator(cfg, real, device, rank, world)
    if why and main:
        tqdm.write(why)

    # --- the budget: measure what the end needs (images, zip, checkpoint, evaluation, score) before training ---
    budget = Budget(cfg, start, device.type)
    out.mkdir(parents=True, exist_ok=True)
    run = Run(trainer, budget, out, record, resumed, start, main, world, rank, evaluator, select)
    fixed, per_image = measure_tail(run.good, cfg, device) if main else (0.0, 0.0)
    reserve = tail_seconds(fixed, per_image, cfg)
    if main and not budget.training_only and time.monotonic() + reserve >= start + budget.seconds:
        raise UserError(f"--budget {cfg.budget} leaves no time to train: writing {cfg.n_images} images needs "
                        f"about {reserve:.0f} s; raise --budget or lower --n-images")
    t = time.monotonic()
    run.save()
    checkpoint_s = time.monotonic() - t
    reserve += 2 * checkpoint_s   # the final checkpoint, twice over
    precision = str(dtype or "fp32").replace("torch.", "")
    run.log({"event": "start", "step": trainer.step_count, "resumed": bool(resumed), "world_size": world,
             "device": str(device), "precision": precision, "cuda_graph": use_graph, "select": select,
             "evaluating": list(evaluator.leaderboards) if evaluator else [], "tail_fixed_s": round(fixed, 3),
             "tail_per_image_s": round(per_image, 6), "checkpoint_s": round(checkpoint_s, 3)})
    run.say(f"training {cfg.model} ({cfg.loss}) on {device}, {precision}, {world} process(es); batch "
            f"{cfg.batch_size} per process ({cfg.batch_size * world} in all); lr G {cfg.lr_g:g} D {cfg.lr_d:g}; "
            f"{trainer.n_critic} D step(s) per G step")
    tuning = False
    if evaluator:
        if not run.history:
            run.evaluate(time.monotonic())   # the first row, and what an evaluation costs
        settings = len(tune.settings(run.good, sampling_of(cfg))) - 1 if cfg.tune and select != "last" else 0
        tuning = settings > 0 and world == 1   # the tuning's evaluations run on rank 0 alone
        for tuned in ((settings, 0) if tuning else (0,)):   # the last evaluation, the score, the settings' evaluations
            evaluating = TAIL_SAFETY * run.evaluation_seconds() * (1 + cfg.score_n / evaluator.n + tuned)
            fits = from_rank_0(budget.training_only or time.monotonic() + reserve + evaluating < start + budget.seconds,
                               world, device)
            if fits:
                break
        tuning = tuning and tuned > 0
        if fits:
            reserve += evaluating
        else:
            run.stop_evaluating(f"evaluation off: the last evaluation and the score need about {evaluating:.0f} s "
                                f"more than the budget holds; the zip comes from the last checkpoint")
        if cfg.tune and settings and not tuning and fits:
            run.say("sampling not tuned: " + ("its evaluations run in one process" if world > 1 else
                                               "its evaluations need more time than the budget holds"))
    budget.reserve(reserve)

    # --- the loop: a step, and every budget.check_every steps one host sync, the NaN check and the due jobs ---
    progress = Progress(cfg.max_steps or None, trainer.step_count, enabled=main)
    jobs, first_step, since_check = run.jobs(), trainer.step_count, 0
    try:
        while True:
            if budget.check_due(since_check):
                now = time.monotonic()
                budget.checked(since_check, now)
                stop = trainer.step_count >= cfg.max_steps > 0 or budget.out_of_time(now)
                due = [stop] + [job.due(now) or (stop and job.at_stop) for job in jobs]
                d_sum, g_sum, (stop, *due) = synced(trainer.take_losses(), due, world)
                if not (math.isfinite(d_sum) and math.isfinite(g_sum)):
                    progress.restart_at(after_nan(trainer, run))
                    run.restart_window(time.monotonic())
                    since_check = 0
                    budget.checked(0, time.monotonic())
                    continue
                run.add_losses(d_sum, g_sum, since_check)
                for job, is_due in zip(jobs, due):
                    if is_due:
                        job.run(now)
                progress.update(since_check, **run.shown)
                since_check = 0
                if stop:
                    break
            try:
                trainer.step()
            except Exception as error:   # noqa: BLE001 - fall_back re-raises what it cannot recover from
                fall_back(error, trainer, run, trainer.step_count - first_step < FIRST_STEPS and world == 1)
                since_check = 0
                continue
            since_check += 1
    finally:
        progress.close()

    # --- the end: loss curve, images and zip from the selected checkpoint, the score (all inside the budget) ---
    if main:
        finish(run, zip_path, real, start, tuning)
    if world > 1:
        torch.distributed.destroy_process_group()
    return last


def sampling_of(cfg) -> tune.Sampling:
    """The sampling setting the run's flags ask for."""
    return tune.Sampling(cfg.truncation, max(0, cfg.standing_stats), cfg.class_balance)


def tuned_sampling(run, chosen) -> tuple:
    """(the setting the zip is drawn with, what the end row says of it): with tuning on, the best of kit.tune's grid
    for the chosen checkpoint on the selected leaderboard (the default's scores are its evaluation's: same noise),
    each setting a line and the choice beside the default's; else the run's own."""
    cfg, board = run.trainer.cfg, run.select
    default = sampling_of(cfg)
    if not (run.best and run.evaluator and chosen["step"] == run.best["step"]):
        return default, {}
    scored = tune.tune(chosen, run.evaluator, tune.settings(chosen, default), cfg.seed + EVAL_SEED,
                       run.trainer.device, run.best["scores"])
    for line in tune.table(scored, board):
        run.say(f"sampling: {line}")
    setting, scores = tune.choose(scored, board)
    said = {"sampling": asdict(setting), "sampling_mifid": scores[board]["mifid"],
            "default_mifid": scored[0][1][board]["mifid"], "settings": len(scored)}
    run.log({"event": "tuning", "step": chosen["step"], "leaderboard": board,
             "settings": [{**asdict(s), **{name: r[name] for name in r}} for s, r in scored]})
    run.say(f"sampling: the zip is drawn with {setting.words()}: {board} MiFID {said['sampling_mifid']:.2f}, the "
            f"default's {said['default_mifid']:.2f} (the lowest of {len(scored)} settings whose d is not under the "
            f"threshold where any is not)")
    return setting, said


def finish(run, zip_path, real, start, tuning=False):
    """The end of a run: the loss chart, the sampling setting (tuned when asked), the zip from the selected
    checkpoint, the score, the end row and line."""
    trainer, budget, out = run.trainer, run.budget, run.out
    cfg, t = trainer.cfg, time.monotonic()
    optional("the loss chart", save_line_chart, read_metrics(out / "metrics.jsonl"), out / "losses.png", "step",
             "loss", f"{cfg.model} {cfg.loss}")
    chosen = run.chosen()
    setting, said = tuned_sampling(run, chosen) if tuning else (sampling_of(cfg), {})
    images, _ = generate(chosen, cfg.n_images, seed=cfg.seed, device=trainer.device, **setting.options())
    write_zip(images, zip_path, force=True)
    end = {"event": "end", "step": trainer.step_count, "zip_step": chosen["step"],
           "tail_s": round(time.monotonic() - t, 2), "tail_reserved_s": round(budget.tail, 1),
           "budget_s": round(budget.seconds, 1), "zip": str(zip_path), **said}
    if run.best and run.select != "last":
        end.update(selected=run.best, last=run.history[-1])
        run.say(f"the zip comes from step {chosen['step']} ({run.select} MiFID {run.best['mifid']:.2f}, the lowest "
                f"of {len(run.history)} evaluations); the last evaluated step, {run.history[-1]['step']}, had "
                f"{run.select} MiFID {run.history[-1][run.select]['mifid']:.2f}")
    if run.evaluator and cfg.score_n > 0:
        end["score"] = final_score(zip_path, real, cfg, run, budget, trainer.device, said)
    run.log({**end, "wall_s": round(time.monotonic() - start, 2)})
    run.close()
    tqdm.write(f"{trainer.step_count} steps; wrote {out / 'last.pt'} and {cfg.n_images} images from step "
               f"{chosen['step']} to {zip_path} ({time.monotonic() - start:.0f} s of the {budget.seconds:.0f} s budget)")


def final_score(zip_path, real, cfg, run, budget, device, sampling=None):
    """Score the zip's first score_n images with each leaderboard at hand into score.json beside it, when the budget
    still has the time; the path written, or why not."""
    from kit.metrics.evaluate import score_zip, write_score_json
    need = TAIL_SAFETY * run.evaluation_seconds() * cfg.score_n / run.evaluator.n
    left = budget.start + budget.seconds - time.monotonic()
    if need > left:
        run.say(f"score skipped: scoring {cfg.score_n} images needs about {need:.0f} s and {left:.0f} s are left")
        return f"skipped: needs about {need:.0f} s, {left:.0f} s left"
    result = score_zip(zip_path, real, n=cfg.score_n, device=device)
    path = Path(zip_path).parent / "score.json"
    write_score_json(path, {**result, **({"sampling": sampling} if sampling else {})})
    for name, scores in result.items():
        run.say(f"score: {name} MiFID {scores['mifid']:.2f} (FID {scores['fid']:.2f}, d {scores['distance']:.4f}) "
                f"on {scores['n_generated']} images of {zip_path}")
    return str(path)


def after_nan(trainer, run):
    """After NaN/inf losses: back to the last good state with halved learning rates, or, after FP16_ROLLBACKS in a
    row under fp16, at the same learning rates in fp32 (bf16 where the GPU has it); the step it went back to."""
    run.rollbacks += 1
    if trainer.dtype is torch.float16 and run.rollbacks >= FP16_ROLLBACKS:
        trainer.leave_fp16()
        bad_step, step = trainer.step_count, trainer.rollback(run.good, 0)
        run.fell_back("precision", f"fp16 gave NaN/inf losses {run.rollbacks} times in a row (last near step "
                                   f"{bad_step}): back to step {step}, going on in {trainer.cfg.precision}")
        run.rollbacks = 0
        return step
    if run.rollbacks > MAX_ROLLBACKS:
        raise UserError(f"training diverged: {MAX_ROLLBACKS} rollbacks in a row after NaN/inf losses; "
                        "lower --lr-g/--lr-d or try another --loss")
    bad_step, step = trainer.step_count, trainer.rollback(run.good, run.rollbacks)
    opt_G, opt_D = trainer.optimisers()
    message = (f"NaN/inf loss near step {bad_step}: rolled back to step {step}, learning rates "
               f"×{0.5 ** run.rollbacks:g} (now G {opt_G.param_groups[0]['lr']:.2e}, D "
               f"{opt_D.param_groups[0]['lr']:.2e})")
    run.say(message)
    run.log({"event": "rollback", "step": step, "bad_step": bad_step, "message": message})
    return step


def fall_back(error, trainer, run, early):
    """Recover from a step that raised in the first steps of one process: an out-of-memory error halves the batch,
    a torch.compile or CUDA-graph failure goes on eagerly; both from the last good state. Anything else is raised."""
    what = f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0][:200]}"
    if isinstance(error, torch.cuda.OutOfMemoryError):
        batch = trainer.cfg.batch_size
        if not early or batch < 2:
            raise UserError(f"--batch-size {batch} does not fit in the GPU's memory: pass a smaller --batch-size "
                            "(or --no-compile / --no-cuda-graph)") from None
        if trainer.device.type == "cuda":
            torch.cuda.empty_cache()
        step = trainer.rollback(run.good, 0)
        trainer.set_batch_size(batch // 2)
        run.fell_back("batch", f"out of memory at batch {batch} ({what}): back to step {step}, going on with "
                               f"batch {batch // 2} per process")
    elif early and (trainer.compiled or trainer.use_graph):
        how = " and ".join(n for n, on in (("torch.compile", trainer.compiled), ("the CUDA graph", trainer.use_graph))
                           if on)
        trainer.go_eager()
        step = trainer.rollback(run.good, 0)
        run.fell_back("eager", f"{how} failed ({what}): back to step {step}, going on eagerly")
    else:
        raise error

def add_arguments(parser):
    """Flags of `kit train`: one per TrainConfig field."""
    add_config_arguments(parser)


def main(args):
    """Run `kit train`."""
    train(from_args(args))
