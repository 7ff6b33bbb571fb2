"""Which torch device a command runs on: one rule for training, sampling, scoring and the benchmarks."""
import torch

from kit.errors import UserError


def resolve_device(name="auto") -> torch.device:
    """'auto' -> cuda when available, else cpu; anything else as torch names it (a missing GPU is one line)."""
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name} is not a device: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name} asked for, but no CUDA GPU is visible: use --device cpu")
    return device
