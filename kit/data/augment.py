"""Per-batch augmentation on any device: flip and DiffAugment-style translation, colour and cutout (differentiable)."""
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


def augment(x: torch.Tensor, policy: str) -> torch.Tensor:
    """Apply the comma-listed augmentations to a float batch N×C×H×W in [-1, 1]."""
    for fn in parse(policy):
        x = fn(x)
    return x
