"""TrainConfig: every training knob in one dataclass, stored inside every checkpoint."""
import argparse
import dataclasses
import re
from dataclasses import dataclass, fields
from typing import Optional

from kit.errors import UserError


@dataclass
class TrainConfig:
    """Training options; the CLI flags are generated from these fields (`--lr-g` for lr_g)."""
    data: str = ""                 # prepared cache (.npz), or any layout `kit prepare` reads
    out: str = "runs/dcgan"        # run folder: checkpoints, samples, metrics, images.zip
    model: str = "dcgan"           # dcgan | cgan | mlp
    loss: str = "bce"              # bce | lsgan | wgan-gp | hinge | ralsgan
    budget: str = "8h30m"          # hard wall-clock limit, tail (10k images + zip) included
    batch_size: int = 64
    lr_g: float = 0.0              # 0: by device, see DEVICE_DEFAULTS
    lr_d: float = 0.0              # 0: by device
    beta1: float = 0.5
    beta2: float = 0.999
    z_dim: int = 128
    g_width: int = 0               # channels of G's last hidden layer; 0: by device
    d_width: int = 0               # channels of D's first layer; 0: by device
    spectral_norm: bool = False    # spectral norm on D
    n_critic: int = 1              # D steps per G step
    gp_weight: float = 10.0        # gradient penalty weight (wgan-gp)
    ema: float = 0.999             # EMA decay of G's weights; 0 turns EMA off
    augment: str = "translation,color"  # comma list of: flip, translation, color, cutout (or none)
    precision: str = "auto"        # auto | fp32 | fp16 | bf16
    channels_last: bool = True
    compile: bool = False          # torch.compile the models
    cuda_graph: bool = False       # capture the whole step in one CUDA graph (GPU only)
    device: str = "auto"           # auto | cpu | cuda | cuda:N
    threads: int = 0               # CPU threads for torch; 0 keeps torch's default (use 1 on a busy shared CPU)
    seed: int = 0
    checkpoint_every: str = "10m"  # duration between checkpoints
    sample_every: str = "10m"      # duration between sample grids
    log_every: int = 50            # steps between metrics.jsonl lines
    n_images: int = 10000          # images written to the zip at the end
    zip: str = ""                  # where the final zip goes; default OUT/images.zip
    truncation: float = 0.0        # truncated sampling for the final zip; 0 is off
    crop: str = "square"           # square | box | whole (when DATA must be prepared first)
    resume: bool = False           # continue from OUT/last.pt
    max_steps: int = 0             # stop after this many G steps; 0 is no limit
    force: bool = False            # allow writing into a run folder that is not ours to resume


# Values for the fields left at 0, by device type. CPU: chosen by bench/quality.py on real digits (see README).
# GPU: the DCGAN paper's width and learning rate; no GPU has measured them here yet.
DEVICE_DEFAULTS = {
    "cpu": {"g_width": 16, "d_width": 16, "lr_g": 1e-3, "lr_d": 1e-3},
    "cuda": {"g_width": 64, "d_width": 64, "lr_g": 2e-4, "lr_d": 2e-4},
}


def for_device(cfg: TrainConfig, device_type: str) -> TrainConfig:
    """cfg with each field left at 0 that DEVICE_DEFAULTS names filled in for this device type."""
    table = DEVICE_DEFAULTS["cuda" if device_type == "cuda" else "cpu"]
    return dataclasses.replace(cfg, **{k: v for k, v in table.items() if not getattr(cfg, k)})


def parse_duration(text: str) -> float:
    """'8h30m', '45m', '90s', '1h', '1.5h' or plain seconds -> seconds."""
    s = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s)
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", s)
    if not parts or "".join(a + b for a, b in parts) != s:
        raise UserError(f"duration '{text}' is not understood: write it like 8h30m, 45m or 90s")
    return sum(float(a) * {"h": 3600, "m": 60, "s": 1}[b] for a, b in parts)


def add_arguments(parser: argparse.ArgumentParser, defaults: Optional[TrainConfig] = None) -> None:
    """Add one `--flag` per TrainConfig field; booleans get --flag / --no-flag."""
    defaults = defaults or TrainConfig()
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        if f.type in (bool, "bool"):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        else:
            kind = {"int": int, "float": float, "str": str}.get(f.type if isinstance(f.type, str) else f.type.__name__)
            parser.add_argument(flag, type=kind, default=default, metavar=f.name.upper())


def from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig named by parsed arguments."""
    return TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})


def from_dict(values: dict) -> TrainConfig:
    """A TrainConfig from a checkpoint's dict; unknown keys (from other versions) are ignored."""
    names = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in values.items() if k in names})


asdict = dataclasses.asdict
