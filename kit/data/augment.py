"""Per-batch augmentation on any device: flip and DiffAugment-style translation, colour and cutout (differentiable),
always on or with an adaptive probability (ADA, Karras et al. 2020) kept on the device."""
import torch

from kit.errors import UserError


def flip(x: torch.Tensor) -> torch.Tensor:
    """Mirror a random half of the batch left-right."""
    mask = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < 0.5
    return torch.where(mask, x.flip(3), x)


def color(x: torch.Tensor) -> torch.Tensor:
    """Random brightness (±0.5), saturation (×0..2) and contrast (×0.5..1.5) per image, on [-1, 1] data."""
    n = x.shape[0]
    x = x + (torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5)
    if x.shape[1] > 1:
        grey = x.mean(dim=1, keepdim=True)
        x = grey + (x - grey) * (torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) * 2)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return mean + (x - mean) * (torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) + 0.5)


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to `ratio` of its size in x and y; uncovered pixels become 0."""
    n, _, h, w = x.shape
    dy = torch.randint(-int(h * ratio), int(h * ratio) + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-int(w * ratio), int(w * ratio) + 1, (n, 1, 1), device=x.device)
    rows = (torch.arange(h, device=x.device).view(1, h, 1) - dy).clamp(-1, h) + 1     # index into a 1-pixel zero pad
    cols = (torch.arange(w, device=x.device).view(1, 1, w) - dx).clamp(-1, w) + 1
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows.expand(n, h, w), cols.expand(n, h, w)].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero one square of `ratio` × the image size at a random place in each image."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h - ch + 1, (n, 1, 1), device=x.device)
    left = torch.randint(0, w - cw + 1, (n, 1, 1), device=x.device)
    ys, xs = torch.arange(h, device=x.device).view(1, h, 1), torch.arange(w, device=x.device).view(1, 1, w)
    inside = (ys >= top) & (ys < top + ch) & (xs >= left) & (xs < left + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


POLICIES = {"flip": flip, "translation": translation, "color": color, "cutout": cutout}


def parse(policy: str) -> list:
    """'flip,translation' -> the functions, in order; "none" or "" -> []; an unknown name is a UserError."""
    names = [p.strip() for p in (policy or "").split(",") if p.strip() and p.strip() != "none"]
    unknown = [p for p in names if p not in POLICIES]
    if unknown:
        raise UserError(f"--augment {policy}: unknown {', '.join(unknown)}; use a comma list of "
                        f"{', '.join(POLICIES)} (or none)")
    return [POLICIES[p] for p in names]


ADA_INTERVAL = 4   # steps between adjustments of the adaptive probability


class Augmentation:
    """A run's augmentation: its ops in order, each applied to every image, or, with ADA (target > 0), to each image
    with a probability p that rises while D tells real from fake too surely (the mean sign of D(real) above the
    target) and falls otherwise, by batch × ADA_INTERVAL / (kimg × 1000) an adjustment. p and the sign statistic live
    on the device: no host sync, CUDA-graph safe."""

    def __init__(self, policy: str, device, target=0.0, kimg=500):
        self.ops, self.target, self.kimg = parse(policy), target, kimg
        if not 0 <= target < 1:
            raise UserError(f"--ada-target {target} must be in [0, 1): 0.6 is ADA's, 0 turns it off")
        self.p = torch.tensor(0.0 if target else 1.0, device=device)
        self.signs = torch.zeros(2, device=device)   # sum of sign(D(real)) and how many, since the last adjustment

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.ops:
            x = torch.where(torch.rand(len(x), 1, 1, 1, device=x.device) < self.p, op(x), x) if self.target else op(x)
        return x

    def observe(self, real_logits: torch.Tensor) -> None:
        """Count the signs of D's outputs on real images (ADA's overfitting statistic)."""
        if self.target:
            logits = real_logits.detach().float()
            self.signs.add_(torch.stack([logits.sign().sum(), torch.tensor(float(logits.numel()), device=logits.device)]))

    def adjust(self, images_per_step: int, world=1) -> None:
        """Move p one step towards the target's side (the statistic summed over every process first)."""
        if not self.target:
            return
        if world > 1:
            torch.distributed.all_reduce(self.signs)
        overfitting = self.signs[0] / self.signs[1].clamp(min=1)
        step = images_per_step * world * ADA_INTERVAL / (self.kimg * 1000)
        self.p.add_(torch.sign(overfitting - self.target) * step).clamp_(0, 1)
        self.signs.zero_()

    def state(self) -> dict:
        """p and the statistic (references to live tensors)."""
        return {"p": self.p, "signs": self.signs}

    def load(self, saved: dict) -> None:
        """Restore what state() returned."""
        self.p.copy_(saved["p"])
        self.signs.copy_(saved["signs"])
