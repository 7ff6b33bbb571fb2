"""Operations a training step dispatches, per model at its GPU settings: on a GPU each is a kernel launch, and biggan's
eager step is bound by their count (bench/results/gpu.md: 596 images/s on an H200, 4.2× that with the CUDA graph).

    python bench/bench_ops.py [--models dcgan cgan biggan]

Counted on the CPU with a torch dispatch mode over one step after a warm-up step (the GPU's widths, batch, loss and
augmentation; fp32), so the figure is the same on any machine and needs no GPU. On a CPU torch's Adam runs tensor by
tensor (a dozen operations per parameter), where on a GPU its default multi-tensor form launches a few dozen kernels
in all: the optimisers' share is given apart, and so are the views (detach, view, transpose and the like: they cost the
host a dispatch, as every operation does, but launch no kernel, so a CUDA graph drops them). Appends its table to
bench/results/ops.md.
"""
import argparse
import collections
import os
import sys
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # this checkout's kit, before an installed one

from kit.config import TrainConfig, for_device  # noqa: E402
from kit.trainer import Trainer  # noqa: E402
from results_file import append_run  # noqa: E402

N_CLASSES = 120


class Count(TorchDispatchMode):
    """Counts every aten operation dispatched inside it, and the views among them."""

    def __init__(self):
        super().__init__()
        self.counts, self.views = collections.Counter(), 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[func.overloadpacket.__name__] += 1
        self.views += func.is_view
        return func(*args, **(kwargs or {}))


def step_operations(model: str, **changes) -> tuple:
    """(operations in one training step, of which inside the optimisers' step, of which views) of `model` at its GPU
    settings with `changes` (widths and batch size change the arithmetic, not the count)."""
    torch.manual_seed(0)
    cfg = for_device(TrainConfig(model=model, device="cpu", **changes), "cuda")
    images = torch.randint(0, 256, (4 * cfg.batch_size, 3, 64, 64), dtype=torch.uint8)
    trainer = Trainer(cfg, images, torch.randint(0, N_CLASSES, (len(images),)), N_CLASSES, torch.device("cpu"), None,
                      False)
    trainer.step()   # the warm-up: lazy state (optimiser moments) is made here
    optimiser_counts = Count()
    for opt in trainer.optimisers():
        step = opt.step

        def counted(*args, _step=step, **kwargs):
            with optimiser_counts:
                return _step(*args, **kwargs)
        opt.step = counted
    with Count() as count:
        trainer.step()
    return sum(count.counts.values()), sum(optimiser_counts.counts.values()), count.views


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["dcgan", "cgan", "biggan"])
    parser.add_argument("--results", type=Path, default=Path(__file__).resolve().parent / "results" / "ops.md")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    lines = ["| model (GPU settings) | operations a step | of which the optimisers (per tensor on a CPU) | the rest | "
             "of all, views (no kernel) |", "|---|---|---|---|---|"]
    for model in args.models:
        total, optimisers, views = step_operations(model)
        lines.append(f"| {model} | {total:,} | {optimisers:,} | {total - optimisers:,} | {views:,} |")
        print(lines[-1], flush=True)
    append_run(args.results, "Operations a training step dispatches (bench/bench_ops.py)", "CPU count", "", load,
               lines)


if __name__ == "__main__":
    main()
