"""The loop's periodic work and the record it keeps: a short list of timed jobs (loss rows, evaluations that keep
best.pt, checkpoints, sample grids) run at the loop's checks, and what every checkpoint holds besides the models
(evaluation history, the best so far, the fallbacks taken)."""
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from kit import checkpoint
from kit.budget import Every
from kit.config import parse_duration
from kit.plot import save_grid, save_progress_chart
from kit.sample import generate, to_uint8
from kit.trainer import to_cpu

GRID_BREEDS = 10        # rows of the conditional sample grid (breeds spread over the classes)
EVAL_SEED = 7919        # evaluations draw the same noise every time (rank r adds r times this)


@dataclass
class Job:
    """Periodic work: `run(now)` at a check where `due(now)`, and at the last check when `at_stop`."""
    name: str
    due: Callable
    run: Callable
    at_stop: bool = True


def optional(what: str, fn, *args):
    """fn(*args), or one line saying that `what` was skipped: a chart, a grid or a report never ends a run."""
    try:
        return fn(*args)
    except Exception as e:   # noqa: BLE001 - anything cosmetic that fails is reported and passed over
        tqdm.write(f"{what} skipped: {type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}")
        return None


def fixed_noise(cfg, n_classes, conditional):
    """The sample grid's noise and labels (one row per breed for a conditional model) and its row length."""
    generator = torch.Generator().manual_seed(cfg.seed)
    if not conditional:
        return torch.randn(64, cfg.z_dim, generator=generator), None, 8
    breeds = np.unique(np.linspace(0, n_classes - 1, min(n_classes, GRID_BREEDS)).round().astype(np.int64))
    z = torch.randn(8 * len(breeds), cfg.z_dim, generator=generator)
    return z, torch.from_numpy(breeds).repeat_interleave(8), 8


class Run:
    """One run's folder and record: metrics.jsonl, last.pt and best.pt, the rollback target, the evaluation history
    and the best so far, and the jobs the loop runs at its checks."""

    def __init__(self, trainer, budget, out: Path, record: dict, resumed, start: float, main: bool, world: int,
                 rank: int, evaluator=None, select="last"):
        self.trainer, self.budget, self.out, self.record = trainer, budget, out, record
        self.start, self.main, self.world, self.rank = start, main, world, rank
        self.evaluator, self.select = evaluator, select
        resumed = resumed or {}
        self.elapsed_before = resumed.get("elapsed", 0.0)
        self.history = list(resumed.get("evaluations", []))
        self.best = resumed.get("best")
        self.best_state = None        # the best checkpoint's state, once this process has saved or read one
        self.fallbacks = list(resumed.get("fallbacks", []))
        self.rollbacks, self.saved_step = 0, -1
        self.good = to_cpu(self.state())   # the last state known to be finite: rollback target
        self.metrics, self.resumed = None, bool(resumed)   # metrics.jsonl opens at the first row
        self.window = {"n": 0, "d": 0.0, "g": 0.0, "t": time.monotonic(), "step": trainer.step_count}
        self.shown = {}
        now = time.monotonic()
        cfg = trainer.cfg
        evaluate_every = parse_duration(cfg.eval_every) if evaluator else 0.0
        self.timers = {"evaluate": Every(evaluate_every or math.inf, now),
                       "checkpoint": Every(cfg.checkpoint_every, now), "samples": Every(cfg.sample_every, now)}
        self.grid = fixed_noise(cfg, len(record["classes"]), trainer.conditional)

    # ---------------------------------------------------------------- the record

    def state(self) -> dict:
        """The checkpoint dict of the run as it is now (references to live tensors)."""
        return {**self.record, "config": asdict(self.trainer.cfg), **self.trainer.state(),
                "elapsed": self.elapsed_before + time.monotonic() - self.start, "evaluations": list(self.history),
                "best": self.best, "fallbacks": list(self.fallbacks)}

    def log(self, row: dict) -> None:
        """One metrics.jsonl line (rank 0 only)."""
        if self.main:
            if self.metrics is None:
                self.metrics = open(self.out / "metrics.jsonl", "a" if self.resumed else "w")
            self.metrics.write(json.dumps(row) + "\n")
            self.metrics.flush()

    def say(self, line: str) -> None:
        """One line for the person watching (rank 0 only)."""
        if self.main:
            tqdm.write(line)

    def fell_back(self, what: str, message: str) -> None:
        """Record a fallback: a line, a metrics row and an entry in every later checkpoint."""
        entry = {"step": self.trainer.step_count, "what": what, "message": message}
        self.fallbacks.append(entry)
        self.say(f"fallback: {message}")
        self.log({"event": "fallback", **entry})

    def capture(self) -> None:
        """Take the current state as the rollback target."""
        self.good, self.rollbacks = to_cpu(self.state()), 0

    def save(self) -> None:
        """Write the rollback target as last.pt (rank 0)."""
        if self.main:
            checkpoint.save(self.out / "last.pt", self.good)
        self.saved_step = self.good["step"]

    def stop_evaluating(self, why: str) -> None:
        """No more evaluations in this run, and the zip from the last checkpoint; said in one line."""
        self.evaluator, self.select = None, "last"
        self.timers["evaluate"] = Every(math.inf, 0.0)
        self.say(why)
        self.log({"event": "evaluation off", "step": self.trainer.step_count, "message": why})

    def chosen(self) -> dict:
        """The state the final zip comes from: the best by the selected leaderboard, else the last good one."""
        if self.select == "last" or not self.best or self.best["step"] == self.good["step"]:
            return self.good
        if self.best_state is None:
            self.best_state = checkpoint.load(self.out / "best.pt")
        return self.best_state

    # ---------------------------------------------------------------- the jobs

    def jobs(self) -> list:
        """What the loop runs at its checks, in order."""
        return [Job("log", self.log_due, self.log_losses),
                Job("evaluate", self.evaluate_due, self.evaluate),
                Job("checkpoint", self.timers["checkpoint"].due, self.checkpoint),
                Job("samples", self.timers["samples"].due, self.samples)]

    def add_losses(self, d_sum: float, g_sum: float, steps: int) -> None:
        """Count the summed losses of `steps` steps into the current loss row."""
        self.window.update(d=self.window["d"] + d_sum, g=self.window["g"] + g_sum, n=self.window["n"] + steps)

    def restart_window(self, now: float) -> None:
        """Start a new loss row at the current step (after a row, or after a rollback)."""
        self.window.update(n=0, d=0.0, g=0.0, t=now, step=self.trainer.step_count)

    def log_due(self, now: float) -> bool:
        """Whether --log-every steps have passed since the last loss row."""
        return self.trainer.step_count - self.window["step"] >= self.trainer.cfg.log_every

    def log_losses(self, now: float) -> None:
        """The metrics.jsonl line of the steps since the last one: mean losses, images/s, learning rates."""
        window, trainer = self.window, self.trainer
        if not window["n"]:
            return
        opt_G, opt_D = trainer.optimisers()
        seconds = max(now - window["t"], 1e-9)
        row = {"step": trainer.step_count, "elapsed": round(self.elapsed_before + now - self.start, 2),
               "loss_d": window["d"] / window["n"], "loss_g": window["g"] / window["n"],
               "images_per_s": round(window["n"] * trainer.n_critic * trainer.cfg.batch_size * self.world / seconds,
                                     1),
               "lr_g": opt_G.param_groups[0]["lr"], "lr_d": opt_D.param_groups[0]["lr"]}
        if trainer.cfg.ada_target:
            row["ada_p"] = round(float(trainer.augmentation.p), 5)
        self.log(row)
        self.shown = dict(d=row["loss_d"], g=row["loss_g"], img_s=row["images_per_s"], left=self.budget.left(now))
        self.restart_window(now)

    def evaluate_due(self, now: float) -> bool:
        """Whether an evaluation is due and fits before the deadline (the last one is in the tail's reserve)."""
        return self.timers["evaluate"].due(now) and self.budget.fits(self.evaluation_seconds(), now)

    def evaluation_seconds(self) -> float:
        """What the latest evaluation took (0 before the first)."""
        return self.history[-1]["seconds"] if self.history else 0.0

    def evaluate(self, now: float) -> None:
        """Score the current EMA G with each leaderboard network at hand, log the row, keep best.pt, save last.pt."""
        if self.evaluator is None or (self.history and self.history[-1]["step"] == self.trainer.step_count):
            return
        self.capture()
        t = time.monotonic()
        cfg = self.trainer.cfg
        images, _ = generate(self.good, self.evaluator.share, seed=cfg.seed + EVAL_SEED * (self.rank + 1), truncation=cfg.truncation,
                             device=self.trainer.device, standing_stats=cfg.standing_stats,
                             class_balance=cfg.class_balance)
        scores = self.evaluator(images)
        row = {"event": "evaluation", "step": self.good["step"], "elapsed": round(self.good["elapsed"], 2),
               "seconds": round(time.monotonic() - t, 2), **scores}
        self.history.append(row)
        self.log(row)
        self.say(f"evaluation at step {row['step']}: " + "; ".join(
            f"{name} MiFID {s['mifid']:.2f} (FID {s['fid']:.2f}, d {s['d']:.4f}, {s['margin']:+.4f} from "
            f"{s['threshold']:g}, n {s['n']})" for name, s in scores.items()))
        score = scores.get(self.select, {}).get("mifid", math.inf)
        won = self.select != "last" and math.isfinite(score) and (not self.best or score < self.best["mifid"])
        if won:
            self.best = {"step": row["step"], "leaderboard": self.select, "mifid": score, "scores": scores}
        self.good["evaluations"], self.good["best"] = list(self.history), self.best
        if won:
            self.best_state = self.good
            if self.main:
                checkpoint.save(self.out / "best.pt", self.good)
        self.save()
        if self.main:
            optional("the progress chart", save_progress_chart, self.history, self.best["step"] if self.best else None,
                     self.out / "progress.png",
                     f"{cfg.model}, {self.evaluator.n} images an evaluation: the zip comes from "
                     + (f"the {self.select} leaderboard's lowest MiFID" if self.best else "the last checkpoint"))
        self.timers["evaluate"].ran(now)
        self.timers["checkpoint"].ran(now)

    def checkpoint(self, now: float) -> None:
        """Save last.pt, unless an evaluation saved this step already."""
        if self.saved_step != self.trainer.step_count:
            self.capture()
            self.save()
        self.timers["checkpoint"].ran(now)

    def samples(self, now: float) -> None:
        """Write the fixed-noise sample grid of the EMA G (rank 0)."""
        self.timers["samples"].ran(now)
        if self.main:
            optional("the sample grid", self.write_grid)

    def write_grid(self) -> None:
        """OUT/samples/step_N.png from the fixed noise."""
        trainer, (z, y, nrow) = self.trainer, self.grid
        sampler = trainer.G_ema or trainer.G
        was_training = sampler.training
        sampler.eval()
        with torch.no_grad():
            grid = to_uint8(sampler(z.to(trainer.device), None if y is None else y.to(trainer.device)))
        sampler.train(was_training)
        save_grid(grid, self.out / "samples" / f"step_{trainer.step_count:07d}.png", nrow)

    def close(self) -> None:
        """Close metrics.jsonl."""
        if self.metrics:
            self.metrics.close()
