"""Generate images from a checkpoint (EMA weights) and write them as one PNG grid."""
import argparse
import math

import numpy as np
import torch

from kit import checkpoint as ckpt
from kit.config import from_dict
from kit.errors import UserError
from kit.files import refuse_overwrite
from kit.device import resolve_device
from kit.models import build
from kit.plot import save_grid

CHUNK = {"cpu": 100, "cuda": 500}  # images per forward pass, by device type: on a CPU, chunks of 100 stay in cache
                                   # (biggan in channels_last: 3× the images a second of chunks of 500 in NCHW)
STATS_BATCH = 256  # images per batch of the standing statistics


def to_uint8(x):
    """Images in [-1, 1] -> uint8 [0, 255] on the CPU."""
    return ((x.float() + 1) * 127.5).round_().clamp_(0, 255).to(torch.uint8).cpu().contiguous()


def truncated_noise(n, z_dim, truncation, generator):
    """Standard normal noise; with truncation t > 0 every entry with |z| > t is drawn again."""
    z = torch.randn(n, z_dim, generator=generator)
    while truncation > 0 and (bad := z.abs() > truncation).any():
        z[bad] = torch.randn(int(bad.sum()), generator=generator)
    return z


def load_generator(checkpoint, device, ema=True):
    """The checkpoint's generator (EMA weights when present, unless ema is False) in eval mode on `device`,
    channels_last when the run's config asks for it (on a CPU too, where the trainer keeps NCHW: sampling there is 2×
    faster), and the checkpoint dict."""
    state = checkpoint if isinstance(checkpoint, dict) else ckpt.load(checkpoint)
    cfg = from_dict(state["config"])
    with torch.random.fork_rng(devices=[]):  # building initialises weights: leave the caller's RNG alone
        G, _ = build(cfg, state["image_shape"], len(state.get("classes") or []))
    G.load_state_dict(state.get("G_ema") if ema and state.get("G_ema") else state["G"])
    layout = torch.channels_last if cfg.channels_last else torch.contiguous_format
    return G.to(device, memory_format=layout).eval(), state


def pick_labels(state, n, labels, generator):
    """Labels for n samples: the given ones (an int, a name or a sequence), else drawn with the training frequencies."""
    classes = list(state.get("classes") or [])
    if labels is None:
        counts = torch.as_tensor(np.asarray(state["label_counts"]), dtype=torch.float64)
        return torch.multinomial(counts, n, replacement=True, generator=generator)
    if isinstance(labels, str):
        if labels not in classes and not labels.isdigit():
            raise UserError(f"breed '{labels}' is not in this checkpoint: pass an index 0..{len(classes) - 1} "
                            f"or one of {', '.join(classes[:5])}...")
        labels = classes.index(labels) if labels in classes else int(labels)
    labels = torch.full((n,), labels) if isinstance(labels, int) else torch.as_tensor(labels).long()
    if len(labels) != n or labels.min() < 0 or labels.max() >= len(classes):
        raise UserError(f"breed labels must be {n} indices in 0..{len(classes) - 1} "
                        f"(this checkpoint has {len(classes)} breeds)")
    return labels


def balanced_labels(n_classes, n, generator):
    """n labels covering the classes evenly (counts differ by at most one), shuffled."""
    labels = torch.arange(n) % n_classes
    return labels[torch.randperm(n, generator=generator)]


@torch.no_grad()
def collect_standing_stats(G, batches, batch_size, labels_for, generator, device):
    """Re-estimate G's batch-norm running statistics as the average over `batches` generated batches (BigGAN's
    standing statistics): reset, cumulative momentum, batch norm alone in training mode (spectral norm's power
    iteration must not move), then back to eval. Weights unchanged."""
    norms = [m for m in G.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    G.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
        norm.train()
    for _ in range(batches):
        z = torch.randn(batch_size, G.z_dim, generator=generator).to(device)
        y = labels_for(batch_size)
        G(z, None if y is None else y.to(device))
    return G.eval()


@torch.no_grad()
def generate(checkpoint, n, seed=0, truncation=0.0, device="auto", labels=None, standing_stats=0,
             class_balance=False, built=None, ema=True):
    """n images (uint8 N×C×H×W on the CPU) and their labels (None unless conditional) from a checkpoint.

    standing_stats: re-collect G's batch-norm statistics over that many generated batches first;
    class_balance: draw breeds evenly instead of with the training frequencies;
    built: what load_generator returned for this checkpoint, reused instead of building G again;
    ema: the EMA weights (where the checkpoint has them), else the raw G's.
    """
    device = resolve_device(device)
    G, state = built or load_generator(checkpoint, device, ema)
    if labels is not None and not G.n_classes:
        raise UserError("this checkpoint's model is not breed-conditioned: leave out --breed")
    generator = torch.Generator().manual_seed(seed)
    conditional = G.n_classes > 1 or labels is not None

    def labels_for(k):
        if not conditional:
            return None
        if class_balance and labels is None:
            return balanced_labels(G.n_classes, k, generator)
        return pick_labels(state, k, labels, generator)

    def labels_for_stats(k):
        if conditional and labels is not None and not isinstance(labels, (int, str)):   # a label per image asked
            return pick_labels(state, n, labels, generator)[torch.randint(n, (k,), generator=generator)]
        return labels_for(k)

    if standing_stats > 0 and n:
        collect_standing_stats(G, standing_stats, STATS_BATCH, labels_for_stats, generator, device)
    z = truncated_noise(n, G.z_dim, truncation, generator)
    y = labels_for(n)
    chunk = CHUNK.get(device.type, CHUNK["cuda"])
    images = [to_uint8(G(z[i:i + chunk].to(device), None if y is None else y[i:i + chunk].to(device)))
              for i in range(0, n, chunk)]
    return torch.cat(images) if images else torch.zeros(0, *state["image_shape"], dtype=torch.uint8), y


def sampling_options(state, standing_stats=None, class_balance=None) -> dict:
    """standing_stats and class_balance as given, else as the run that wrote the checkpoint chose them."""
    config = state.get("config", {})
    return {"standing_stats": config.get("standing_stats", 0) if standing_stats is None else standing_stats,
            "class_balance": config.get("class_balance", False) if class_balance is None else class_balance}


def add_sampling_arguments(parser):
    """--standing-stats and --class-balance, for `kit sample` and `kit zip`."""
    parser.add_argument("--standing-stats", type=int, default=None, metavar="N",
                        help="re-collect G's batch-norm statistics over N generated batches (default: the run's)")
    parser.add_argument("--class-balance", action=argparse.BooleanOptionalAction, default=None,
                        help="draw breeds evenly instead of by training frequency (default: the run's)")


def add_arguments(parser):
    """Flags of `kit sample`."""
    parser.add_argument("--checkpoint", required=True, help="last.pt or best.pt of a run")
    parser.add_argument("--n", type=int, default=64, help="number of images")
    parser.add_argument("--out", required=True, help="PNG grid to write")
    parser.add_argument("--breed", default=None, help="breed index or name (conditional models)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--truncation", type=float, default=0.0, help="redraw noise entries with |z| above it; 0: off")
    add_sampling_arguments(parser)
    parser.add_argument("--nrow", type=int, default=0, help="images per grid row (default: about square)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--force", action="store_true", help="overwrite --out")


def main(args):
    """Write a grid of --n samples."""
    refuse_overwrite(args.out, args.force)
    state = ckpt.load(args.checkpoint)
    images, _ = generate(state, args.n, args.seed, args.truncation, args.device, args.breed,
                         **sampling_options(state, args.standing_stats, args.class_balance))
    save_grid(images, args.out, args.nrow or math.ceil(math.sqrt(args.n)))
    print(f"wrote {len(images)} samples to {args.out}")
