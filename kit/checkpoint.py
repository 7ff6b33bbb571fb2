"""One checkpoint file holds everything: models, EMA, optimisers, scaler, step, RNG, config."""
import torch

from kit.errors import UserError
from kit.files import atomic_path

REQUIRED_KEYS = ("config", "G", "step")


def save(path, state: dict) -> None:
    """Write `state` to `path` atomically: a run killed mid-write keeps the previous file."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load(path, map_location="cpu") -> dict:
    """Read a checkpoint written by `save`; a bad file gives a one-line UserError."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except FileNotFoundError:
        raise UserError(f"checkpoint {path} does not exist: pass the last.pt or best.pt of a run made by `kit train`")
    except Exception as e:
        raise UserError(f"checkpoint {path} is not readable ({type(e).__name__}): "
                        "pass the last.pt or best.pt of a run made by `kit train`") from None
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED_KEYS):
        raise UserError(f"checkpoint {path} was not written by `kit train` (no config/G/step inside): "
                        "pass the last.pt or best.pt of a run made by `kit train`")
    return state
