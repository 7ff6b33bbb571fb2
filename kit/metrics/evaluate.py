"""Both leaderboards' scores where training and kernels need them: an Evaluator that scores generated images
against real statistics computed once (DDP ranks each extracting their share), and score_zip, the final score of
images.zip by the same code path as `python -m kit score --json`."""
import sys
import time
from pathlib import Path

import torch

from kit.device import resolve_device
from kit.errors import UserError
from kit.metrics.ranks import all_agree, from_rank_0, gather_rows, share
from kit.metrics.score import (LEADERBOARDS, extractors_at_hand, measure, real_statistics, refuse_report,
                               score_leaderboards, write_score_json)

__all__ = ["Evaluator", "score_zip", "write_score_json", "first_images"]


class Evaluator:
    """Scores n generated images (each rank passes its share) on every leaderboard whose weights are at hand.

    .leaderboards: the names scored; .skipped: {name: one-line reason}; .share: how many images this rank passes.
    real: the competition's images (archives or a folder); a prepared cache gives its 64-px crops instead.
    extractors: {name: feature extractor} instead of the leaderboards' networks (tests, other metrics);
    thresholds: {name: memorisation threshold} over the leaderboards' (0.1 public, 0.25 private).
    Under DDP every rank calls it together with its share. Only rank 0 needs the real statistics: by default it
    computes them alone at construction (the others skip them; construction is no collective). share_real=True
    shares that work out instead: then every rank must construct it at the same time, with no barrier around it.
    """

    def __init__(self, real, device, n, rank=0, world=1, weights=None, extractors=None, resize="organisers",
                 progress=False, thresholds=None, share_real=False):
        if n < 2:
            raise UserError(f"an evaluation of {n} image(s) cannot give a FID: evaluate at least 2")
        self.device = resolve_device(device)
        self.n, self.rank, self.world = n, rank, world
        self.share = len(share(range(n), rank, world))
        if extractors is None:
            extractors, self.skipped = extractors_at_hand(weights, self.device, resize, progress)
        else:
            extractors, self.skipped = dict(extractors), {}
        for name in LEADERBOARDS if share_real else ():   # the ranks run the same collectives: what all of them can
            if not all_agree(name in extractors, world, self.device) and name in extractors:
                del extractors[name]
                self.skipped[name] = "its network did not load on every rank"
        self.extractors = extractors
        self.leaderboards = tuple(extractors)
        self.thresholds = {**{name: threshold for name, (_, threshold) in LEADERBOARDS.items()}, **(thresholds or {})}
        self.real_stats = {}
        for name, extractor in extractors.items():
            if share_real:
                stats = real_statistics(real, extractor, self.device, rank, world)[0]
            else:
                stats = real_statistics(real, extractor, self.device)[0] if rank == 0 else None
            self.real_stats[name] = stats if rank == 0 else None    # only rank 0 computes the metric

    def __call__(self, images) -> dict:
        """{leaderboard: {fid, d, d_thr, mifid, threshold, margin (d - threshold), n, seconds}} of every rank's
        images together (uint8 N×3×H×W, this rank's share); every rank returns rank 0's numbers."""
        results = {}
        for name, extractor in self.extractors.items():
            start = time.perf_counter()
            features = gather_rows(torch.as_tensor(extractor(images)).to(self.device), self.world)
            if self.rank == 0:
                scores, _ = measure(features, self.real_stats[name], self.thresholds[name])
                results[name] = {"fid": scores["fid"], "d": scores["distance"], "d_thr": scores["distance_thresholded"],
                                 "mifid": scores["mifid"], "threshold": scores["threshold"],
                                 "margin": scores["distance"] - scores["threshold"], "n": len(features),
                                 "seconds": round(time.perf_counter() - start, 3)}
        return from_rank_0(results, self.world, self.device)


def first_images(zip_path, n: int):
    """The zip's first n images (0.png upward, in numeric order) as uint8 n×3×64×64; a bad member is one line."""
    from kit.images import read_images
    images, problems = read_images(zip_path)
    if problems:
        raise UserError(f"{zip_path}: {'; '.join(problems)}: check it with `python -m kit zip --check {zip_path}`")
    if len(images) < n:
        raise UserError(f"{zip_path} holds {len(images):,} images, fewer than the {n:,} to score: lower n")
    return images[:n]


def score_zip(zip_path, real, n=10000, device="auto", report=None, force=False, weights=None,
              progress=False) -> dict:
    """{leaderboard: scores} of the zip's first n images on each leaderboard at hand: what
    `python -m kit score ZIP --real REAL --leaderboard both --json` prints when both are.
    report: a folder for score.json (this answer) and nearest-LEADERBOARD.png; skipped leaderboards are a note."""
    extractors, skipped = extractors_at_hand(weights, device, progress=progress)
    if not extractors:
        raise UserError(f"no leaderboard network to score {zip_path} with: {'; '.join(skipped.values())}")
    if report:
        refuse_report(report, extractors, force)
    results = score_leaderboards(first_images(zip_path, n), real, extractors, device=device, report=report)
    if report:
        write_score_json(Path(report) / "score.json", results)
    for name, reason in skipped.items():
        print(f"note: {name} leaderboard skipped: {reason}", file=sys.stderr)
    return results
