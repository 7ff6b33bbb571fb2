"""Generate images from a checkpoint (EMA weights) and write them as one PNG grid."""
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

CHUNK = 500  # images per forward pass


def to_uint8(x):
    """Images in [-1, 1] -> uint8 [0, 255] on the CPU."""
    return ((x.float() + 1) * 127.5).round_().clamp_(0, 255).to(torch.uint8).cpu()


def truncated_noise(n, z_dim, truncation, generator):
    """Standard normal noise; with truncation t > 0 every entry with |z| > t is drawn again."""
    z = torch.randn(n, z_dim, generator=generator)
    while truncation > 0 and (bad := z.abs() > truncation).any():
        z[bad] = torch.randn(int(bad.sum()), generator=generator)
    return z


def load_generator(checkpoint, device):
    """The checkpoint's generator (EMA weights when present) in eval mode on `device`, and the checkpoint dict."""
    state = checkpoint if isinstance(checkpoint, dict) else ckpt.load(checkpoint)
    with torch.random.fork_rng(devices=[]):  # building initialises weights: leave the caller's RNG alone
        G, _ = build(from_dict(state["config"]), state["image_shape"], len(state.get("classes") or []))
    G.load_state_dict(state.get("G_ema") or state["G"])
    return G.to(device).eval(), state


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


@torch.no_grad()
def generate(checkpoint, n, seed=0, truncation=0.0, device="auto", labels=None):
    """n images (uint8 N×C×H×W on the CPU) and their labels (None unless conditional) from a checkpoint."""
    device = resolve_device(device)
    G, state = load_generator(checkpoint, device)
    if labels is not None and not G.n_classes:
        raise UserError("this checkpoint's model is not breed-conditioned: leave out --breed")
    generator = torch.Generator().manual_seed(seed)
    z = truncated_noise(n, G.z_dim, truncation, generator)
    y = pick_labels(state, n, labels, generator) if G.n_classes else None
    images = [to_uint8(G(z[i:i + CHUNK].to(device), None if y is None else y[i:i + CHUNK].to(device)))
              for i in range(0, n, CHUNK)]
    return torch.cat(images) if images else torch.zeros(0, *state["image_shape"], dtype=torch.uint8), y


def add_arguments(parser):
    """Flags of `kit sample`."""
    parser.add_argument("--checkpoint", required=True, help="last.pt of a run")
    parser.add_argument("--n", type=int, default=64, help="number of images")
    parser.add_argument("--out", required=True, help="PNG grid to write")
    parser.add_argument("--breed", default=None, help="breed index or name (conditional models)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--truncation", type=float, default=0.0, help="redraw noise entries with |z| above it; 0: off")
    parser.add_argument("--nrow", type=int, default=0, help="images per grid row (default: about square)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--force", action="store_true", help="overwrite --out")


def main(args):
    """Write a grid of --n samples."""
    refuse_overwrite(args.out, args.force)
    images, _ = generate(args.checkpoint, args.n, args.seed, args.truncation, args.device, args.breed)
    save_grid(images, args.out, args.nrow or math.ceil(math.sqrt(args.n)))
    print(f"wrote {len(images)} samples to {args.out}")
