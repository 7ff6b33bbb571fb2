"""The sampling setting the final zip is drawn with, chosen by the score that ranks: the run's own setting and each
change of one of its parts (truncation, standing statistics, EMA or raw G, class balance), every one scored with the
leaderboards' networks on the same noise; a setting whose d falls under the threshold never beats one above it."""
from dataclasses import dataclass, replace

import torch

from kit.sample import generate

TRUNCATIONS = (0.0, 1.0, 0.5)   # off, then BigGAN's truncation trick at two thresholds of the N(0, 1) noise
STANDING_BATCHES = 4            # standing statistics tried where the run had none (the CPU default's count)


@dataclass(frozen=True)
class Sampling:
    """How images are drawn from a checkpoint."""
    truncation: float = 0.0
    standing_stats: int = 0
    class_balance: bool = False
    ema: bool = True

    def words(self) -> str:
        """The setting in a few words, for the log."""
        return ", ".join([f"truncation {self.truncation:g}" if self.truncation else "no truncation",
                          f"standing statistics ({self.standing_stats} batches)" if self.standing_stats else
                          "no standing statistics", "EMA G" if self.ema else "raw G",
                          "balanced breeds" if self.class_balance else "breeds by frequency"])

    def options(self) -> dict:
        """The keyword arguments of kit.sample.generate."""
        return {"truncation": self.truncation, "standing_stats": self.standing_stats,
                "class_balance": self.class_balance, "ema": self.ema}


def settings(state: dict, default: Sampling) -> list:
    """The default first, then each setting that changes one part of it and can change this checkpoint's images:
    standing statistics only where G has batch norm, raw G only where there is an EMA, balance only with breeds."""
    from kit.sample import load_generator
    G, _ = load_generator(state, "cpu")
    batch_norm = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in G.modules())
    changes = [replace(default, truncation=t) for t in TRUNCATIONS if t != default.truncation]
    if batch_norm:
        changes.append(replace(default, standing_stats=0 if default.standing_stats else STANDING_BATCHES))
    if state.get("G_ema"):
        changes.append(replace(default, ema=not default.ema))
    if G.n_classes > 1:
        changes.append(replace(default, class_balance=not default.class_balance))
    return [default] + changes


def choose(scored: list, board: str) -> tuple:
    """The (setting, scores) with the lowest MiFID on `board` among those whose d is at or above that leaderboard's
    threshold, else among all; the earlier one (the default first) on a tie."""
    above = [item for item in scored if item[1][board]["d"] >= item[1][board]["threshold"]]
    return min(above or scored, key=lambda item: item[1][board]["mifid"])


def tune(state: dict, evaluator, grid: list, seed: int, device, known=None) -> list:
    """[(setting, scores)] for each setting of `grid`: evaluator.share images drawn with `seed` under it, scored by
    the evaluator ({leaderboard: fid, d, mifid, threshold, ...}); `known`: the first setting's scores, already had."""
    scored = []
    for i, setting in enumerate(grid):
        if i == 0 and known:
            scored.append((setting, known))
            continue
        images, _ = generate(state, evaluator.share, seed=seed, device=device, **setting.options())
        scored.append((setting, evaluator(images)))
    return scored


def table(scored: list, board: str) -> list:
    """One line per setting: its words and its scores on `board`."""
    lines = []
    for setting, scores in scored:
        s = scores[board]
        under = " under its threshold" if s["d"] < s["threshold"] else ""
        lines.append(f"{setting.words()}: {board} MiFID {s['mifid']:.2f} (FID {s['fid']:.2f}, d {s['d']:.4f}{under})")
    return lines
