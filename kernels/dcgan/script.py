"""dogkit Kaggle kernel 'dcgan': made by `python -m kit kernel build dcgan` from kit/; do not edit.

The kit's sources follow, one raw string per file. The script checks each against MANIFEST (SHA-256 of its
UTF-8 text), writes them to a temporary folder and runs kit.kernel.runtime from there.
"""
import hashlib
import os
import sys
import tempfile
import time

START = time.time()
KERNEL = {'name': 'dcgan', 'accelerator': 'NvidiaTeslaT4', 'budget': '8h40m', 'train': {'model': 'dcgan'}, 'continue': '', 'restart_if_different': False, 'zip': '', 'gpus': 'runs'}
MANIFEST = {
    'kit/__init__.py': 'e7d0045deac9a05a409a26697e4ba733903926c7c14286cfeb66ba9a6b828972',
    'kit/budget.py': '0b24602ba3d74381de0f6555b9123e8de54c1b9141a713b73366367235e63a73',
    'kit/checkpoint.py': '4dd68e2698b945979d86be846edea81eba77b690ba08843d10e33304cb56c255',
    'kit/config.py': 'b8c5cf5d6ddf47fff1033ef8dae082fb1727eccea9e5f1424936a786a6194a0e',
    'kit/data/__init__.py': '91eae478aba0ba4b29f550ad3c9b81cc15a9bbbc242a8f90a34d539f4381dbe1',
    'kit/data/augment.py': 'cd4448e5427da519b078cf7bbd5efd443d32600f34f5e302d136208a71d11ebf',
    'kit/data/cache.py': 'd97b231dcfad583b9db15790a7cbae9d91e22c70c86b6d8465380d2be0521d40',
    'kit/data/crops.py': 'eb7ee2749f5158dcb41212c39ad9b6f17636d255fdc9c65320d8a738e0d4a704',
    'kit/data/readers.py': '0c2157e4139ef1699fc1d2eef8c45486a339e98d9d116a3376d1ca2a6d444001',
    'kit/device.py': '682295932abdf2f4fa7453e0cd13e588ed4e30e47d93654d13ae49ce19a3e30c',
    'kit/errors.py': 'd58493f52496815a4d2fa928a315a6f1f23a3fdc29b43073b21a7be5539429a5',
    'kit/files.py': '96dd0525cfe6a371e3b24dc697c82a74dab66d03b85cc60cb8da73b80b520117',
    'kit/images.py': '70e3df4dc3a597b52300b64f7d76602a78ef6f77548c49523ff278aee31d83ad',
    'kit/jobs.py': 'e2d3e27133bbb9ba7e9ea5ece4378a1b175d0a379c2244cade5532ebe7ea5db9',
    'kit/kernel/__init__.py': '830143a6408c2cd2ff8086108926339529a22e028a7a2830e3d628dcf71c178f',
    'kit/kernel/preflight.py': 'c410826bcf78262f06a9741ad31f449985028801a98d9c763b78ff45e08f90bd',
    'kit/kernel/runtime.py': '672e1fb00f8f0a3bcc297019a886ba6658fc08d08db07d7f155b6a7e4b47888e',
    'kit/losses.py': '26dd1431098aa3f0aea3516c53ed6078d11a22beb8748a28741670627fcca8e4',
    'kit/metrics/__init__.py': '51890920afb36f18e27fbce15db9a07c1006c87d80e47085a7eca12d440a2cfc',
    'kit/metrics/evaluate.py': '905ba9d2754ed1b7fc3465ab75b732896beeab46ea1498fb7ee12f912c5b8ceb',
    'kit/metrics/features.py': '2c571677b4ab3567398a8efe163892f08bce77a40c318dfd48c70a923c9cb17d',
    'kit/metrics/fid.py': 'e55d1608ce4343e88846ab27c5f707ff9c23dd685e974919fb785ef5eae07582',
    'kit/metrics/guard.py': 'acd24a45944c1593d8b14862605c7e5b369546c37fef515cdf4155478e367d5e',
    'kit/metrics/originals.py': 'cf42a4c5da924235aad390d796640a1369b5b71bd5e1c8165327a04c50f91bce',
    'kit/metrics/ranks.py': '68eafc5d7b2aface70593e368e8218f7813182cc85ee6c5e2d29f7db58a60a02',
    'kit/metrics/resize.py': '51a1075054cee6309da2aad05613f7edda5f4ae434e2573115f8ecdf28685a0e',
    'kit/metrics/score.py': 'fddc4eeca973479595606627d135fe9d23e866fa8bdb7e5960cf0c78581411e2',
    'kit/models/__init__.py': '3014a9a8253cdd467520f01b69c2131eb609c83daca388611f3f1edb027a1e03',
    'kit/models/biggan.py': '07df77ba2bbc102f59872986cab415be09ed939f67a939767df6efafec1104ec',
    'kit/models/dcgan.py': '9ba42c92203232a26e847c888e46f3bda5487d753889aea98024de2dacd2a5bc',
    'kit/models/r3gan.py': 'c5e9263d3b7fbaaf9839e37248e652a06613263c008dffef68835d5e44863474',
    'kit/models/spectral.py': 'e4a8810ce0478bc6821f2d11baa7cda19bab8f7dc666c5c1aef1a7f6c2bac3c3',
    'kit/package.py': 'f3c24d9630f18cdab6065ff5c297c38a326f128715b6d37a6e476127b5528ee7',
    'kit/plot.py': '33faef336af0e73f085ec010a8aded254860ca9f433a87fd7307ba548f2e3f4b',
    'kit/progress.py': '6683bd9a355ba4006be3dbeada7474de8d3dd901d3fd7d211e1d958cf409b20b',
    'kit/sample.py': '633f14ae1e4bf41f51952a098dfb3eeee7b9cf823f37cf29ff8c0cd31cf82f28',
    'kit/train.py': '0b515580f625590489e78b9b584aab3e4373343f41370444e8c46155a101f1f3',
    'kit/trainer.py': 'e479b74160e99211d7af05847184bec935138c726cd919617d6f3eb604ffb1e7',
    'kit/tune.py': '8258e110062e6efaafa160e4cdcd2ff0f4b68b2ccdd73f9a7dfee6052e3fb2fa',
    'kit/weights.py': '3ba1c94da2c4033d63b99d600400596bf049c335b7365131c6fe4870b6fd4e2a',
}
SOURCES = {}

SOURCES['kit/__init__.py'] = r'''"""dogkit: prepare Stanford Dogs, train a GAN inside a Kaggle kernel's budget, score MiFID, package."""
__version__ = "0.1.0"
'''

SOURCES['kit/budget.py'] = r'''"""The run's clock: a hard deadline (the budget less what the end needs), when to stop and check (one host sync),
and the cadences of the loop's periodic jobs."""
import time

from kit.config import parse_duration

CHECK_EVERY_CUDA = 25   # steps between host syncs on a GPU (NaN check, budget, logging); every step on CPU


class Every:
    """A cadence in seconds (a duration's text, or math.inf for never), counted from the last time the job ran."""

    def __init__(self, every, now: float):
        self.seconds = every if isinstance(every, float) else parse_duration(every)
        self.last = now

    def due(self, now: float) -> bool:
        """Whether the cadence has passed since the job last ran (0: at every check)."""
        return now - self.last >= self.seconds

    def ran(self, now: float) -> None:
        """Note that the job ran at `now`."""
        self.last = now


class Budget:
    """Deadline and step timing of one run, counted from `start` (time.monotonic()).

    A budget written "+DURATION" is training time: the deadline falls DURATION after the reserve is known, and the
    whole budget is that plus what the end needs (`kit demo` uses it, so it never refuses on a slow machine)."""

    def __init__(self, cfg, start, device_type):
        self.start = start
        self.training_only = str(cfg.budget).strip().startswith("+")
        self.seconds = self.asked = parse_duration(str(cfg.budget).strip().lstrip("+"))
        self.check_every = 1 if device_type == "cpu" else CHECK_EVERY_CUDA
        self.tail = 0.0
        self.deadline = start + self.seconds
        self.step_seconds = 0.0
        self.last_check = time.monotonic()

    def reserve(self, tail: float) -> None:
        """Keep `tail` seconds at the end for what follows training (final images, zip, checkpoint, scoring)."""
        if self.training_only:
            self.seconds = time.monotonic() - self.start + self.asked + tail
        self.tail = tail
        self.deadline = self.start + self.seconds - tail

    def check_due(self, since_check: int) -> bool:
        """Whether the loop should sync and check now."""
        return since_check == 0 or since_check >= self.check_every

    def checked(self, since_check: int, now: float) -> None:
        """Note a check: the seconds per step since the last one."""
        if since_check:
            self.step_seconds = (now - self.last_check) / since_check
        self.last_check = now

    def out_of_time(self, now: float) -> bool:
        """Whether the steps until the next check would run past the deadline."""
        return now + self.step_seconds * (self.check_every + 1) >= self.deadline

    def fits(self, seconds: float, now: float) -> bool:
        """Whether work of `seconds` started now ends before the deadline."""
        return now + seconds < self.deadline

    def left(self, now: float) -> float:
        """Seconds until the deadline."""
        return max(0.0, self.deadline - now)
'''

SOURCES['kit/checkpoint.py'] = r'''"""One checkpoint file holds everything: models, EMA, optimisers, scaler, step, RNG, config."""
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
'''

SOURCES['kit/config.py'] = r'''"""TrainConfig: every training knob in one dataclass, stored inside every checkpoint."""
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
    model: str = "dcgan"           # dcgan | cgan | mlp | biggan | r3gan
    loss: str = ""                 # bce | lsgan | wgan-gp | wgan | hinge | ralsgan | rpgan; "": the model's, see
                                   # MODEL_DEFAULTS
    budget: str = "8h30m"          # hard wall-clock limit, tail (10k images + zip) included; "+45s": 45 s of
                                   # training, plus whatever the tail needs
    budget_from: float = 0.0       # wall-clock time (time.time()) the budget counts from; 0: when training starts
                                   # (a kernel passes its own start, so its spawned processes' start-up counts)
    batch_size: int = 0            # per process; 0: by model and device (64, biggan on a CPU 16), see MODEL_DEFAULTS
    lr_g: float = 0.0              # 0: by model and device, see MODEL_DEFAULTS
    lr_d: float = 0.0              # 0: by model and device
    beta1: float = -1.0            # Adam betas; -1: the model's
    beta2: float = -1.0
    z_dim: int = 128
    g_width: int = 0               # channels of G's last hidden layer; 0: by model and device
    d_width: int = 0               # channels of D's first layer; 0: by model and device
    spectral_norm: bool = False    # spectral norm on D (biggan has it on every G and D weight anyway)
    shared_dim: int = 128          # biggan: size of the breed embedding shared by G's blocks; r3gan: of G's and D's
    attn_g: int = -1               # biggan: resolution of G's self-attention block (0: none; -1: by device)
    attn_d: int = -1               # biggan: resolution of D's self-attention block (0: none; -1: by device)
    n_critic: int = 0              # D steps per G step; 0: the loss's (5 for wgan, else 1)
    gp_weight: float = 10.0        # gradient penalty weight (wgan-gp)
    real_label: float = 1.0        # bce: D's target for real images (0.8: one-sided label smoothing, as 3rd place)
    clip: float = 0.01             # wgan: D's weights are clipped to [-clip, clip] after each D step
    ema: float = 0.999             # EMA decay of G's weights; 0 turns EMA off
    augment: str = ""              # comma list of: flip, translation, color, cutout (or none); "": the model's
                                   # (translation,color; biggan translation,cutout), see MODEL_DEFAULTS
    ada_target: float = -1.0       # ADA: each augmentation applies with a probability that follows D's overfitting
                                   # (mean sign of D(real)) towards this target (0.6 is ADA's); 0: always applied;
                                   # -1: the model's (biggan 0.6 on a CPU, else 0), see MODEL_DEFAULTS
    ada_kimg: int = 0              # ADA: thousands of images for the probability to go from 0 to 1; 0: by device
                                   # (500 on a GPU, StyleGAN2-ADA's; 5 on a CPU, whose runs see thousands of images)
    lecam: float = -1.0            # LeCam regularisation weight on D (0.3 on BigGAN in Tseng et al.); 0: off;
                                   # -1: the model's (biggan 0.3, else 0), see MODEL_DEFAULTS
    lecam_decay: float = 0.99      # LeCam: decay of the anchors (moving averages of D's mean outputs)
    lecam_start: int = 0           # LeCam: step from which the anchors average (before it they follow the outputs);
                                   # every bench row ran from 0, google/lecam-gan starts at 1000
    cr: float = 0.0                # balanced consistency regularisation weight on D (10 in Zhao et al.); 0: off
    r1: float = -1.0               # R1: gamma of the zero-centred gradient penalty (gamma/2)·‖∇D(real)‖² on D; 0: off;
                                   # -1: the model's (r3gan 1, else 0), see MODEL_DEFAULTS
    r2: float = -1.0               # R2: the same on fake images (R3GAN takes --loss rpgan with R1 and R2 alike)
    precision: str = "auto"        # auto | fp32 | fp16 | bf16
    channels_last: bool = True
    compile: bool = False          # torch.compile the models
    cuda_graph: bool = True        # capture the whole step in one CUDA graph where it can be: one GPU process, bf16
                                   # or fp32, no --compile (biggan 4.2× eager on an H200: bench/results/gpu.md)
    device: str = "auto"           # auto | cpu | cuda | cuda:N
    threads: int = 0               # CPU threads for torch; 0 keeps torch's default (use 1 on a busy shared CPU)
    seed: int = 0
    checkpoint_every: str = "10m"  # duration between checkpoints
    sample_every: str = "10m"      # duration between sample grids
    log_every: int = 50            # steps between metrics.jsonl lines
    n_images: int = 10000          # images written to the zip at the end
    zip: str = ""                  # where the final zip goes; default OUT/images.zip
    truncation: float = 0.0        # truncated sampling for the final zip; 0 is off
    standing_stats: int = -1       # final zip: re-collect G's batch-norm statistics over this many batches of 256
                                   # first (0: off; -1: by model and device, see MODEL_DEFAULTS)
    class_balance: bool = False    # final zip: draw breeds evenly instead of by training frequency
    tune: bool = True              # final zip, when evaluating: drawn under the setting (truncation, standing
                                   # statistics, EMA or raw G, class balance) with the lowest estimated MiFID of a
                                   # small grid around the three above (kit.tune); --no-tune: under those three
    eval_every: str = ""           # duration between evaluations of the EMA G with each leaderboard network whose
                                   # weights are at hand; "": by device (30m on a GPU, off on a CPU); 0: off
    eval_n: int = 2000             # images generated for each evaluation (the same noise every time)
    select: str = ""               # private | public | last: which checkpoint the final zip comes from (best.pt by
                                   # that leaderboard's estimated MiFID); "": private, else public, else last
    score_n: int = -1              # the final zip's first N images scored with both networks into score.json
                                   # (-1: by device, 10000 on a GPU, 0 (off) on a CPU)
    real: str = ""                 # real images for evaluation and scoring; "": the folder DATA was prepared from
    crop: str = "square"           # square | box | whole (when DATA must be prepared first)
    resume: bool = False           # continue from OUT/last.pt
    max_steps: int = 0             # stop after this many G steps; 0 is no limit
    force: bool = False            # allow writing into a run folder that is not ours to resume


# Values for the fields left unset (0, "" or -1), by model and device type. dcgan/cgan/mlp, CPU: chosen by
# bench/quality on real digits (docs/benchmarks.md); GPU: the DCGAN paper's. biggan, GPU: the 5th place's (hinge, Adam
# betas (0, 0.999), lr 1e-4 / 4e-4, G width 32, D width 64, batch 64, self-attention at 32×32 in G and D). No GPU has
# measured them here. biggan, CPU: chosen by bench/quality on the digits at 2 min (bench/results/quality_explore.md,
# "How the biggan CPU row was chosen"): attention at 32×32 was 60% of a step (1.7 s at batch 64, one thread), at 16×16
# a step costs 0.7 s; batch 16 learns the digits per second far faster than 64 (2 min: digit-FID 301-549, 82-94%
# asked-for digits, against 3237 and 12% for the old row: batch 64, lr 2e-4 / 8e-4, attention at 32), and lr 2.5e-4 /
# 1e-3 (the GPU row's 1:4) kept improving to 5 min (275, 96%) where 1e-3 / 1e-3 rose back from 340 to 771. biggan
# samples with standing statistics ("Why biggan's EMA sampled badly" in the same file): any count from 2 batches of
# 256 cut the late digit-FID by about a third, 2-16 within the noise; 4 on a CPU is cheap, 16 on a GPU is
# BigGAN-PyTorch's. biggan's augmentation: DiffAugment's BigGAN policy translation,cutout on every device, chosen by
# bench/quality on the photo crops (bench/results/quality_photos.md, issue 21; two seeds each, one thread, two runs at
# a time); ADA (target 0.6) on a CPU only. At 5 CPU minutes photo-FID: the policy with ADA 235, the policy alone 322,
# plain biggan (translation,color, no ADA) 499; LeCam 501, bCR 1062, ADA alone 431. At 20 minutes, the nearer stand-in
# for a kernel's hours: the policy alone 113, plain 131, the policy with ADA 151, LeCam 0.3 alone 100, the policy with
# LeCam 0.3 80 (its d 0.87 of plain's, FID / d 0.71 of plain's): a GPU takes the policy with LeCam, without ADA. LeCam
# on the CPU's 5-minute pair: 134 against the pair's 173, both seeds lower, side by side at one commit; so biggan
# takes LeCam 0.3 on every device.
DCGAN_DEFAULTS = {"cpu": {"g_width": 16, "d_width": 16, "lr_g": 1e-3, "lr_d": 1e-3, "loss": "bce", "beta1": 0.5,
                          "beta2": 0.999, "batch_size": 64, "standing_stats": 0, "augment": "translation,color",
                          "ada_target": 0.0, "lecam": 0.0, "r1": 0.0, "r2": 0.0},
                  "cuda": {"g_width": 64, "d_width": 64, "lr_g": 2e-4, "lr_d": 2e-4, "loss": "bce", "beta1": 0.5,
                           "beta2": 0.999, "batch_size": 64, "standing_stats": 0, "augment": "translation,color",
                           "ada_target": 0.0, "lecam": 0.0, "r1": 0.0, "r2": 0.0}}
# r3gan: the paper's ImageNet-64 schedule at its start (RpGAN, R1 = R2 = gamma 1, lr 2e-4, Adam betas (0, 0.9); the
# paper decays gamma, lr and raises beta2 over 200M images, which no budget here reaches), no standing statistics (no
# batch norm), biggan's augmentation; widths sized for a step near biggan's on each device (not tuned).
R3GAN_DEFAULTS = {device: {"g_width": width, "d_width": width, "lr_g": 2e-4, "lr_d": 2e-4, "loss": "rpgan",
                           "beta1": 0.0, "beta2": 0.9, "batch_size": batch, "standing_stats": 0,
                           "augment": "translation,cutout", "ada_target": 0.0, "lecam": 0.0, "r1": 1.0, "r2": 1.0}
                  for device, width, batch in (("cpu", 8, 16), ("cuda", 128, 64))}
MODEL_DEFAULTS = {
    "dcgan": DCGAN_DEFAULTS, "cgan": DCGAN_DEFAULTS, "mlp": DCGAN_DEFAULTS,
    "biggan": {"cpu": {"g_width": 8, "d_width": 8, "lr_g": 2.5e-4, "lr_d": 1e-3, "loss": "hinge", "beta1": 0.0,
                       "beta2": 0.999, "batch_size": 16, "attn_g": 16, "attn_d": 16, "standing_stats": 4,
                       "augment": "translation,cutout", "ada_target": 0.6, "lecam": 0.3, "r1": 0.0, "r2": 0.0},
               "cuda": {"g_width": 32, "d_width": 64, "lr_g": 1e-4, "lr_d": 4e-4, "loss": "hinge", "beta1": 0.0,
                        "beta2": 0.999, "batch_size": 64, "attn_g": 32, "attn_d": 32, "standing_stats": 16,
                        "augment": "translation,cutout", "ada_target": 0.0, "lecam": 0.3, "r1": 0.0, "r2": 0.0}},
    "r3gan": R3GAN_DEFAULTS,
}
# Values by device alone, for fields left unset: evaluation and the final score are cheap on a GPU and cost hours
# on a CPU (bench/results/eval.md); ADA's pace follows how many images a run sees (millions on a GPU, thousands on a
# CPU, where 500 would hold the probability near 0 for the whole run).
DEVICE_DEFAULTS = {"cpu": {"eval_every": "0", "score_n": 0, "ada_kimg": 5},
                   "cuda": {"eval_every": "30m", "score_n": 10000, "ada_kimg": 500}}
# What "unset" is for these fields; 0 for every other. attn_g/attn_d were 32 by default before they were by device:
# older checkpoints store 32 and load as 32.
UNSET = {"loss": "", "augment": "", "ada_target": -1.0, "lecam": -1.0, "r1": -1.0, "r2": -1.0, "beta1": -1.0,
         "beta2": -1.0, "attn_g": -1, "attn_d": -1, "standing_stats": -1, "eval_every": "", "score_n": -1}


# What a run saved before these fields existed trained with (ADA and LeCam off), so that resuming it does not switch
# them on.
SAVED_BEFORE = {"ada_target": 0.0, "ada_kimg": 500, "lecam": 0.0}


def for_device(cfg: TrainConfig, device_type: str) -> TrainConfig:
    """cfg with each field left unset that MODEL_DEFAULTS (or DEVICE_DEFAULTS) names filled in for its model and this
    device type."""
    kind = "cuda" if device_type == "cuda" else "cpu"
    table = {**MODEL_DEFAULTS.get(cfg.model, DCGAN_DEFAULTS)[kind], **DEVICE_DEFAULTS[kind]}
    return dataclasses.replace(cfg, **{k: v for k, v in table.items() if getattr(cfg, k) == UNSET.get(k, 0)})


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
    """A TrainConfig from a checkpoint's dict; unknown keys (from other versions) are ignored, and a field saved before
    its default was by model takes what that run had (SAVED_BEFORE)."""
    names = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{**SAVED_BEFORE, **{k: v for k, v in values.items() if k in names}})


asdict = dataclasses.asdict
'''

SOURCES['kit/data/__init__.py'] = r'''"""Data: readers for every layout, crops, the prepared cache, augmentation, demo archives."""
'''

SOURCES['kit/data/augment.py'] = r'''"""Per-batch augmentation on any device: flip and DiffAugment-style translation, colour and cutout (differentiable),
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
'''

SOURCES['kit/data/cache.py'] = r'''"""Prepare training crops once into a cache file (uint8 N×C×H×W + labels) and load it fast."""
import functools
import hashlib
import json
import multiprocessing
import os
import sys
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from kit.data import crops, readers
from kit.errors import UserError
from kit.files import atomic_path, refuse_overwrite

CACHE_VERSION = 1


@dataclass
class Dataset:
    """The prepared cache: what training, scoring and the benchmarks read."""
    images: np.ndarray                 # uint8 N×C×H×W
    labels: np.ndarray                 # int64 N, index into classes
    classes: list                      # class (breed) names, index = label
    sources: list                      # source file of each sample
    fingerprint: str = ""              # hash of the source files and the prepare options
    report: dict = field(default_factory=dict)

    def __len__(self):
        return len(self.images)


def save(dataset: Dataset, path) -> None:
    """Write the cache atomically as an uncompressed .npz (loads in a fraction of a second); the same samples and
    report give the same bytes (fixed entry times)."""
    arrays = {"version": np.int64(CACHE_VERSION), "images": dataset.images, "labels": dataset.labels.astype(np.int64),
              "classes": np.array(dataset.classes, dtype=str), "sources": np.array(dataset.sources, dtype=str),
              "fingerprint": np.array(dataset.fingerprint), "report": np.array(json.dumps(dataset.report))}
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
            for name, array in arrays.items():
                with z.open(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), "w",
                            force_zip64=True) as entry:
                    np.lib.format.write_array(entry, np.asanyarray(array), allow_pickle=False)


def is_cache(path) -> bool:
    """True when `path` is a file written by `save`."""
    path = Path(path)
    if not path.is_file() or path.suffix != ".npz":
        return False
    try:
        with np.load(path, allow_pickle=False) as z:
            return "version" in z.files and "images" in z.files
    except Exception:
        return False


def load(path) -> Dataset:
    """Read a cache written by `save`; a bad file gives a one-line UserError."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["version"]) != CACHE_VERSION:
                raise UserError(f"{path} is a cache of another kit version: run `python -m kit prepare` again")
            return Dataset(images=z["images"], labels=z["labels"], classes=z["classes"].tolist(),
                           sources=z["sources"].tolist(), fingerprint=str(z["fingerprint"]),
                           report=json.loads(str(z["report"])))
    except UserError:
        raise
    except FileNotFoundError:
        raise UserError(f"{path} does not exist: run `python -m kit prepare --data ... --out {path}` first")
    except Exception as e:
        raise UserError(f"{path} is not a prepared cache ({type(e).__name__}): "
                        "run `python -m kit prepare` to make one") from None


def default_dir() -> Path:
    """Where caches go when --out is not given: $DOGKIT_CACHE, or ~/.cache/dogkit."""
    return Path(os.environ.get("DOGKIT_CACHE") or Path.home() / ".cache" / "dogkit")


def fingerprint(layout, crop: str, size: int, options: crops.Options = crops.Options()) -> str:
    """Hash of the source files' names, sizes and mtimes plus the options (no file is read)."""
    payload = {"files": readers.source_files(layout), "layout": layout.kind, "crop": crop, "size": size,
               "cache": CACHE_VERSION, "crops": crops.VERSION, **options.changes()}
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:16]


def stored(path) -> tuple:
    """(fingerprint, report) inside a cache file, or ("", {}) when `path` is not one (only those entries are read)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return str(z["fingerprint"]), json.loads(str(z["report"]))
    except Exception:
        return "", {}


def check_options(variants, min_box, max_aspect) -> None:
    """One line for a variant count, box size or aspect limit out of range."""
    if variants < 1:
        raise UserError(f"--variants {variants} must be at least 1 (1: one crop per dog box, as before)")
    if min_box < 0:
        raise UserError(f"--min-box {min_box} must be 0 (off) or a side in pixels, e.g. 64")
    if max_aspect and max_aspect < 1:
        raise UserError(f"--max-aspect {max_aspect} must be 0 (off) or at least 1 (long side / short side), e.g. 2.5")


def prepare(data, out=None, crop="square", size=64, workers=None, force=False, progress=True, variants=1, seed=0,
            min_box=0, max_aspect=0.0) -> Dataset:
    """Read any layout, crop every box in parallel and write the cache.

    Nothing is done when `out` holds a cache of the same sources and options; a cache of the same data path and
    options whose files have changed is made again; any other existing `out` needs force=True.
    """
    if crop not in crops.CROPS:
        raise UserError(f"--crop {crop} is not known: use one of {', '.join(crops.CROPS)}")
    if not 8 <= size <= 1024:
        raise UserError(f"--size {size} is out of range: use 8 to 1024 (the competition uses 64)")
    check_options(variants, min_box, max_aspect)
    if is_cache(data):
        raise UserError(f"{data} is already a prepared cache: pass it to train or score as it is")
    options = crops.Options(crop, size, variants, seed, min_box, max_aspect)
    layout = readers.locate(data)
    fp = fingerprint(layout, crop, size, options)
    out = Path(out) if out else default_dir() / f"{layout.kind}-{crop}{size}-{fp}.npz"
    if out.suffix != ".npz":
        raise UserError(f"--out {out} must end in .npz")
    data = str(Path(data).expanduser().resolve())
    if out.exists() and not force:
        old_fingerprint, old = stored(out)
        if old_fingerprint == fp:
            if progress:
                print(f"{out} is up to date (same sources and options): nothing to do")
            return load(out)
        if (old.get("data"), old.get("crop"), old.get("size"), old.get("options", {})) != (data, crop, size,
                                                                                        options.changes()):
            if old_fingerprint:
                raise UserError(f"{out} was prepared from other sources or options: pass --force to replace it, "
                                "or choose another --out")
            refuse_overwrite(out, force)
        elif progress:
            print(f"{data} changed since {out} was prepared: preparing it again")
    start = time.time()
    source = readers.read(layout)
    result = crop_all(source, options, workers, progress)
    report = {"data": data, "layout": layout.kind, "crop": crop, "size": size, "channels": source.channels,
              "options": options.changes(), "images_read": result.images_read, "samples": len(result.labels),
              "no_annotation": result.no_annotation, "boxes_dropped": result.filtered,
              "breeds": {name: int(n) for name, n in zip(source.classes, np.bincount(result.labels,
                                                                                     minlength=len(source.classes)))},
              "skipped": source.skipped + result.skipped, "notes": source.notes}   # no timing: same input, same bytes
    if not result.labels:
        first = report["skipped"][0] if report["skipped"] else None
        example = f"; e.g. {first['file']}: {first['reason']}" if first else ""
        raise UserError(f"no usable images in {data} ({len(report['skipped'])} files skipped{example}); "
                        f"{readers.LAYOUTS_HELP}")
    dataset = Dataset(result.images, np.array(result.labels, np.int64), source.classes, result.sources, fp, report)
    save(dataset, out)
    if progress:
        print(summary(report, out, time.time() - start))
    return dataset


def crop_all(source, options: crops.Options, workers=None, progress=True, chunk=64) -> crops.Crops:
    """Crop every record, in a pool of processes (one per core by default) when there is more than one chunk."""
    workers = workers or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    chunks = [source.records[i:i + chunk] for i in range(0, len(source.records), chunk)]
    work = functools.partial(crops.crop_records, options=options, channels=source.channels,
                             breeds=source.breed_index())
    results = []
    with tqdm(total=len(source.records), unit="img", desc="prepare", disable=None if progress else True,
              leave=False) as bar:                                        # None: shown on a terminal only
        if workers > 1 and len(chunks) > 1:
            # fork on Linux: scripts without a __main__ guard work, and the workers only touch PIL and zipfile
            context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
            with ProcessPoolExecutor(min(workers, len(chunks)), mp_context=context) as pool:
                for records, part in zip(chunks, pool.map(work, chunks)):
                    results.append(part)
                    bar.update(len(records))
        else:
            for records in chunks:
                results.append(work(records))
                bar.update(len(records))
            readers.close_archives()
    merged = crops.Crops(np.zeros((0, source.channels, options.size, options.size), np.uint8), [], [])
    merged.images = np.concatenate([merged.images] + [r.images for r in results])
    for r in results:
        merged.labels += r.labels
        merged.sources += r.sources
        merged.skipped += r.skipped
        merged.images_read += r.images_read
        merged.no_annotation += r.no_annotation
        for flag, count in r.filtered.items():
            merged.filtered[flag] = merged.filtered.get(flag, 0) + count
    return merged


def summary(report: dict, out, seconds: float) -> str:
    """A few lines for the terminal: what was made, from what, and what was skipped."""
    lines = [f"prepared {report['samples']} samples ({len(report['breeds'])} classes, {report['crop']} crops "
             f"{report['channels']}x{report['size']}x{report['size']}) from {report['images_read']} images "
             f"in {seconds:.1f} s -> {out}"]
    if report.get("boxes_dropped"):
        lines.append("boxes dropped: " + ", ".join(f"{n} by --{flag.replace('_', '-')}"
                                                   for flag, n in report["boxes_dropped"].items()))
    if report["no_annotation"]:
        how = ": cropped as a centre square" if report["crop"] != "whole" else ""
        lines.append(f"{report['no_annotation']} images had no usable box{how}")
    if report["skipped"]:
        shown = "; ".join(f"{s['file']}: {s['reason']}" for s in report["skipped"][:3])
        lines.append(f"skipped {len(report['skipped'])}: {shown}{' ...' if len(report['skipped']) > 3 else ''}")
    return "\n".join(lines + [f"note: {note}" for note in report["notes"]])


def load_or_prepare(path, crop="square", size=64, **options) -> Dataset:
    """Load a .npz cache (a broken one is a UserError); prepare anything else first (or load its fresh cache);
    options: those of prepare (variants, seed, min_box, max_aspect)."""
    return load(path) if Path(path).suffix == ".npz" else prepare(path, crop=crop, size=size, **options)


def write_report(report: dict, path, force=False) -> None:
    """Write the JSON report; a file that is not an earlier report is only replaced with --force."""
    path = Path(path)
    try:
        ours = "images_read" in json.loads(path.read_text())
    except Exception:
        ours = False
    if not ours:
        refuse_overwrite(path, force)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(report, indent=1))


def add_arguments(parser) -> None:
    """Flags of `python -m kit prepare`."""
    parser.add_argument("--data", required=True, metavar="PATH",
                        help="folder holding all-dogs.zip + Annotation.zip (or all-dogs.zip itself), all-dogs/ + "
                             "Annotation/, Stanford Images/ + Annotation/, MNIST/raw, or a folder of images")
    parser.add_argument("--out", metavar="FILE.npz", help="the cache; default $DOGKIT_CACHE or ~/.cache/dogkit")
    parser.add_argument("--report", metavar="FILE.json", help="also write the report (counts, skipped files) here")
    parser.add_argument("--crop", choices=crops.CROPS, default="square",
                        help="square around each box (default), the tight box, or the whole image")
    parser.add_argument("--size", type=int, default=64, help="crop side in pixels (default 64)")
    parser.add_argument("--variants", type=int, default=1, metavar="K",
                        help="crops per dog box: the first as --crop makes it, the others random box-safe zooms, "
                             f"shifts and turns of up to {crops.ROTATE_DEGREES} degrees (albumentations); default 1")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random variants (same seed, same cache)")
    parser.add_argument("--min-box", type=int, default=0, metavar="PX",
                        help="drop dog boxes whose shorter side is under PX pixels (5th place: 64); 0 is off")
    parser.add_argument("--max-aspect", type=float, default=0.0, metavar="R",
                        help="drop dog boxes longer than R times their width or height (1st place dropped extreme "
                             "ones); 0 is off")
    parser.add_argument("--workers", type=int, default=None, help="decoding processes (default: one per core)")
    parser.add_argument("--force", action="store_true", help="replace an --out made from other sources or options")


def main(args) -> int:
    """Prepare the cache, write the report, print the summary."""
    dataset = prepare(args.data, args.out, args.crop, args.size, args.workers, args.force, variants=args.variants,
                      seed=args.seed, min_box=args.min_box, max_aspect=args.max_aspect)
    if args.report:
        write_report(dataset.report, args.report, args.force)
    return 0
'''

SOURCES['kit/data/crops.py'] = r'''"""Crops: one record -> size×size uint8 crops (square around each box, the tight box, or the whole image), plus
random box-safe variants (zoom, shift, a few degrees of rotation) made with albumentations, and box filters."""
import functools
import io
import math
import zlib
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, UnidentifiedImageError

from kit.data.readers import name_key, parse_voc, read_bytes

CROPS = ("square", "box", "whole")
VERSION = 1          # bump when the crops change, so prepared caches are made again
VARIANTS_VERSION = 3  # bump when the random variants change (caches of one crop per box stay valid)
ROTATE_DEGREES = 5   # variants turn by at most this much either way
ZOOM_OUT = 1.3       # a variant's square side is up to this many times the (turned) box's long side
MARGIN = 0.03        # and leaves at least this share of that long side free around the box


@dataclass(frozen=True)
class Options:
    """How to cut: the crop kind and size, K crops per box (the first as `crop` makes it, the rest random), the seed
    of the random ones, and the box filters (0 is off): shorter side under min_box px, long/short above max_aspect."""
    crop: str = "square"
    size: int = 64
    variants: int = 1
    seed: int = 0
    min_box: int = 0
    max_aspect: float = 0.0

    def changes(self) -> dict:
        """The options that differ from the defaults and change the crops (what a cache fingerprint must add)."""
        changed = {k: v for k, v in vars(self).items() if k not in ("crop", "size") and v != getattr(Options, k)}
        if self.variants == 1:
            changed.pop("seed", None)         # one crop per box is never random
            return changed
        return {**changed, "variants_version": VARIANTS_VERSION}


@dataclass
class Crops:
    """The crops of some records, stacked, with what was read and skipped."""
    images: np.ndarray                 # uint8 N×C×size×size
    labels: list
    sources: list
    skipped: list = field(default_factory=list)     # {"file", "reason"}
    images_read: int = 0
    no_annotation: int = 0             # images cropped without a usable box (centre square)
    filtered: dict = field(default_factory=dict)    # boxes dropped by --min-box / --max-aspect, by flag


def usable_boxes(boxes: list, width: int, height: int) -> tuple:
    """Clamp boxes to the image; those of zero area or wholly outside become problems."""
    good, problems = [], []
    for i, (x0, y0, x1, y1, name) in enumerate(boxes):
        if x1 <= x0 or y1 <= y0:
            problems.append(f"box {i + 1} ({x0:g},{y0:g},{x1:g},{y1:g}) has zero area")
            continue
        clamped = (max(x0, 0), max(y0, 0), min(x1, width), min(y1, height))
        if clamped[2] <= clamped[0] or clamped[3] <= clamped[1]:
            problems.append(f"box {i + 1} ({x0:g},{y0:g},{x1:g},{y1:g}) lies outside the {width}x{height} image")
            continue
        good.append((*clamped, name))
    return good, problems


def square_around(box: tuple, width: int, height: int) -> tuple:
    """The square centred on `box` (its short side grown), shifted and shrunk to fit in the image."""
    x0, y0, x1, y1 = box[:4]
    side = min(max(x1 - x0, y1 - y0), width, height)
    left = min(max((x0 + x1 - side) / 2, 0), width - side)
    top = min(max((y0 + y1 - side) / 2, 0), height - side)
    return left, top, left + side, top + side


def box_filter(boxes: list, options: Options) -> tuple:
    """(kept boxes, [(flag, reason)] of those dropped) by --min-box and --max-aspect."""
    kept, dropped = [], []
    for i, box in enumerate(boxes):
        w, h = box[2] - box[0], box[3] - box[1]
        if options.min_box and min(w, h) < options.min_box:
            dropped.append(("min_box", f"box {i + 1} is {w:g}x{h:g} px, under --min-box {options.min_box}"))
        elif options.max_aspect and max(w / h, h / w) > options.max_aspect:
            dropped.append(("max_aspect", f"box {i + 1} has aspect {max(w / h, h / w):.2f}, over --max-aspect "
                                          f"{options.max_aspect:g}"))
        else:
            kept.append(box)
    return kept, dropped


def random_square(box: tuple, width: int, height: int, rng) -> tuple:
    """A random square holding the whole box and a MARGIN around it (side up to ZOOM_OUT times that), in the image."""
    x0, y0, x1, y1 = box[:4]
    pad = MARGIN * max(x1 - x0, y1 - y0)
    x0, y0, x1, y1 = max(x0 - pad, 0), max(y0 - pad, 0), min(x1 + pad, width), min(y1 + pad, height)
    long_side = max(x1 - x0, y1 - y0)
    side = min(width, height, long_side * rng.uniform(1.0, ZOOM_OUT))
    if side < long_side:                      # the box is wider than the image is tall (or the reverse)
        return square_around(box, width, height)
    left = rng.uniform(max(0, x1 - side), min(x0, width - side))
    top = rng.uniform(max(0, y1 - side), min(y0, height - side))
    return left, top, left + side, top + side


def pixel_square(square: tuple, width: int, height: int) -> tuple:
    """A float square as whole pixels that still hold it (left and top down, side up), kept in the image."""
    left, top = math.floor(square[0]), math.floor(square[1])
    side = min(math.ceil(max(square[2] - left, square[3] - top)), width, height)
    left, top = min(left, width - side), min(top, height - side)
    return left, top, left + side, top + side


@functools.lru_cache(maxsize=None)
def pipelines(size: int) -> tuple:
    """(turn by a few degrees carrying a pascal_voc box along, resize to size×size), built once per process."""
    import albumentations as A
    import cv2
    turn = A.Compose([A.Affine(rotate=(-ROTATE_DEGREES, ROTATE_DEGREES), border_mode=cv2.BORDER_REFLECT_101, p=1.0)],
                     bbox_params=A.BboxParams(format="pascal_voc", label_fields=[]))
    return turn, A.Resize(size, size, interpolation=cv2.INTER_AREA)


def variant(pixels: np.ndarray, box: tuple, size: int, seed: int) -> np.ndarray:
    """One random box-safe crop of H×W(×C) pixels: turned by a few degrees (albumentations carries the box along),
    then a random square around the turned box, size×size."""
    turn, resize = pipelines(size)
    turn.set_random_seed(seed)
    turned = turn(image=pixels, bboxes=[box[:4]])     # the box becomes the bounding box of its turned corners
    height, width = pixels.shape[:2]
    square = random_square(turned["bboxes"][0], width, height, np.random.default_rng(seed))
    left, top, right, bottom = pixel_square(square, width, height)
    return resize(image=np.ascontiguousarray(turned["image"][top:bottom, left:right]))["image"]


def variant_seed(options: Options, name: str, box_index: int, k: int) -> int:
    """A seed of its own for each record, box and variant: the same whatever worker cuts it."""
    return zlib.crc32(f"{options.seed}|{name}|{box_index}|{k}".encode())


def regions(boxes: list, width: int, height: int, crop: str) -> list:
    """The image regions to cut: one per box, or one for the whole image / its centre square."""
    if crop == "whole":
        return [(0, 0, width, height)]
    if not boxes:
        return [square_around((0, 0, width, height), width, height)]
    return [box[:4] if crop == "box" else square_around(box, width, height) for box in boxes]


def open_image(record) -> Image.Image:
    """The record's image, opened lazily (nothing decoded yet); a file that is no image raises ValueError."""
    if record.pixels is not None:
        return Image.fromarray(record.pixels)
    data = read_bytes(record.image)
    if not data:
        raise ValueError("empty file (0 bytes)")
    try:
        return Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ValueError("not an image, or a corrupt one") from None


def decoded(img: Image.Image, mode: str) -> Image.Image:
    """Decode and convert to RGB (transparency over white) or L."""
    img.load()
    if mode == "RGB" and (img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info):
        img = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", img.size, (255, 255, 255, 255)), img)
    return img if img.mode == mode else img.convert(mode)


def crop_record(record, options: Options, mode: str, breeds: dict) -> tuple:
    """(crops C×size×size, labels, sources, problems {"file", "reason"}, read ok, had a box, dropped boxes' flags)."""
    problems, boxes, dropped = [], [], []
    size = options.size
    if record.annotation:
        try:
            boxes, notes = parse_voc(read_bytes(record.annotation))
        except Exception as e:
            notes = [str(e) if isinstance(e, ValueError) else f"unreadable annotation ({type(e).__name__}: {e})"]
        problems += [{"file": record.annotation[1], "reason": note} for note in notes]
    try:
        img = open_image(record)
        width, height = img.size
        boxes, notes = usable_boxes(boxes, width, height)
        problems += [{"file": record.annotation[1], "reason": note} for note in notes]
        had_boxes = bool(boxes)
        boxes, dropped = box_filter(boxes, options) if options.crop != "whole" else (boxes, [])
        problems += [{"file": record.annotation[1], "reason": reason} for _, reason in dropped]
        if had_boxes and not boxes:
            return [], [], [], problems, True, True, [flag for flag, _ in dropped]
        areas = regions(boxes, width, height, options.crop)
        smallest = min(min(x1 - x0, y1 - y0) for x0, y0, x1, y1 in areas)
        img.draft("RGB", (math.ceil(width * size / smallest), math.ceil(height * size / smallest)))  # JPEG: DCT scaling
        img = decoded(img, mode)
    except Exception as e:
        reason = str(e) if isinstance(e, ValueError) else f"unreadable image ({type(e).__name__}: {e})"
        return [], [], [], problems + [{"file": record.name, "reason": reason.splitlines()[0]}], False, False, []
    sx, sy = img.width / width, img.height / height
    crops = [np.asarray(img.resize((size, size), Image.LANCZOS, box=(x0 * sx, y0 * sy, x1 * sx, y1 * sy),
                                   reducing_gap=3.0)) for x0, y0, x1, y1 in areas]
    labels = ([breeds.get(name_key(box[4]), record.label) for box in boxes] or [record.label])[:len(crops)]
    sources = [record.name] * len(crops)
    if options.variants > 1 and options.crop != "whole":
        pixels = np.asarray(img)
        for i, (x0, y0, x1, y1) in enumerate(box[:4] for box in boxes or [(0, 0, width, height)]):
            for k in range(1, options.variants):
                crops.append(variant(pixels, (x0 * sx, y0 * sy, x1 * sx, y1 * sy), size,
                                     variant_seed(options, record.name, i, k)))
                labels.append(labels[i])
                sources.append(f"{record.name}#box{i + 1}v{k}")
    crops = [c[None] if c.ndim == 2 else c.transpose(2, 0, 1) for c in crops]
    return crops, labels, sources, problems, True, bool(boxes), [flag for flag, _ in dropped]


def crop_records(records: list, options: Options, channels: int, breeds: dict) -> Crops:
    """Crop a chunk of records (what one worker process does)."""
    out = Crops(np.zeros((0, channels, options.size, options.size), np.uint8), [], [])
    images = []
    for record in records:
        crops, labels, sources, problems, ok, boxed, dropped = crop_record(record, options,
                                                                           "L" if channels == 1 else "RGB", breeds)
        images += crops
        out.labels += labels
        out.sources += sources
        out.skipped += problems
        out.images_read += ok
        out.no_annotation += ok and not boxed
        for flag in dropped:
            out.filtered[flag] = out.filtered.get(flag, 0) + 1
    if images:
        out.images = np.stack(images)
    return out
'''

SOURCES['kit/data/readers.py'] = r'''"""Readers: every layout -> records (where each image and its annotation are, its breed) + what was skipped."""
import os
import re
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from kit.errors import UserError

LAYOUTS_HELP = ("--data expects a folder holding all-dogs.zip + Annotation.zip, all-dogs/ + Annotation/, "
                "Images/ + Annotation/ (Stanford Dogs), MNIST/raw or FashionMNIST/raw, or image files")
BREED_FOLDER = re.compile(r"(n\d{8})-(.+)")      # n02085620-Chihuahua
WNID_PREFIX = re.compile(r"(n\d{8})_")           # n02085620_199.jpg


@dataclass
class Layout:
    """Which layout `--data` holds and where its parts are."""
    kind: str                          # kaggle | stanford | folder | mnist
    images: Path                       # all-dogs.zip, all-dogs/, Images/, the image folder, or the MNIST root
    annotations: Optional[Path] = None  # Annotation.zip or Annotation/, when there is one
    dataset: str = ""                  # MNIST | FashionMNIST


@dataclass
class Record:
    """One image: where its bytes (or pixels) and its annotation are, and the breed its folder or name gives."""
    name: str                          # shown in reports and kept as the sample's source
    image: tuple                       # (zip path or "", member or file path)
    label: int                         # breed index; boxes may name their own breed
    annotation: Optional[tuple] = None  # (zip path or "", member or file path)
    pixels: Optional[np.ndarray] = None  # already decoded (MNIST)


@dataclass
class Source:
    """Everything read from one layout: class names (index = label), records, and what was skipped."""
    layout: Layout
    classes: list
    records: list
    channels: int = 3
    skipped: list = field(default_factory=list)    # {"file", "reason"}
    notes: list = field(default_factory=list)      # things the report should say

    def breed_index(self) -> dict:
        """Normalised breed name (as in <name> tags) -> label."""
        return {name_key(name): i for i, name in enumerate(self.classes)}


def name_key(name: str) -> str:
    """'Japanese_spaniel', 'japanese spaniel' and 'Japanese-spaniel' all give one key."""
    return re.sub(r"[\s_-]+", " ", name).strip().lower()


def readable(folder: str) -> str:
    """n02085782-Japanese_spaniel -> Japanese spaniel."""
    match = BREED_FOLDER.fullmatch(folder)
    return (match.group(2) if match else folder).replace("_", " ")


def locate(data) -> Layout:
    """Find out which layout `data` is (cheap: looks at names only)."""
    path = Path(data).expanduser()
    if not path.exists():
        raise UserError(f"{path} does not exist: {LAYOUTS_HELP}")
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise UserError(f"{path} is not a zip archive: download all-dogs.zip again, or pass its folder")
        return Layout("kaggle", path, annotations_beside(path.parent))
    if (path / "all-dogs.zip").is_file():
        return locate(path / "all-dogs.zip")
    if (path / "all-dogs").is_dir():
        return Layout("kaggle", path / "all-dogs", annotations_beside(path))
    if (path / "Images").is_dir():
        return Layout("stanford", path / "Images", annotations_beside(path))
    for name in ("MNIST", "FashionMNIST"):
        if (path / name / "raw").is_dir():
            return Layout("mnist", path, dataset=name)
        if path.name == name and (path / "raw").is_dir():
            return Layout("mnist", path.parent, dataset=name)
    return Layout("folder", path)


def annotations_beside(folder: Path) -> Optional[Path]:
    """Annotation.zip or Annotation/ in `folder`, if either is there."""
    for candidate in (folder / "Annotation.zip", folder / "Annotation"):
        if candidate.exists():
            return candidate
    return None


def source_files(layout: Layout) -> list:
    """(name, size, mtime_ns) of every file the layout reads: the input of the cache fingerprint."""
    roots = [layout.images] if layout.kind != "mnist" else [layout.images / layout.dataset / "raw"]
    roots += [layout.annotations] if layout.annotations else []
    files = []
    for root in roots:
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for p in paths:
            st = p.stat()
            files.append((str(p.relative_to(root.parent)), st.st_size, st.st_mtime_ns))
    return files


def list_files(root: Path) -> list:
    """(location, name) of every file in a zip or under a folder; names are relative to the folder's parent."""
    if root.is_file():
        with open_zip(root) as z:
            return [((str(root), m), m) for m in z.namelist() if not m.endswith("/")]
    return [(("", str(p)), str(p.relative_to(root.parent))) for p in sorted(root.rglob("*")) if p.is_file()]


def open_zip(path: Path) -> zipfile.ZipFile:
    """Open a zip; a broken one is a UserError naming it."""
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise UserError(f"{path} is not a readable zip archive ({e}): download it again") from None


def read(layout: Layout) -> Source:
    """List the layout's images and annotations and give every image its breed."""
    if layout.kind == "mnist":
        return read_mnist(layout)
    if layout.kind == "folder":
        return read_folder(layout)
    return read_dogs(layout)


def read_dogs(layout: Layout) -> Source:
    """all-dogs (zip or folder) or Stanford Images/, joined with Annotation/<wnid-breed>/<image id> by image id."""
    skipped, notes, annotations, breeds = [], [], {}, {}
    if layout.annotations is None:
        notes.append(f"no Annotation.zip or Annotation/ beside {layout.images}: every image is cropped as a centre "
                     "square and its breed comes from its file name")
    else:
        for location, name in list_files(layout.annotations):
            folder = Path(name).parent.name
            if not BREED_FOLDER.fullmatch(folder):
                skipped.append({"file": name, "reason": "annotation not in a breed folder (like n02085620-Chihuahua)"})
                continue
            breeds[folder.split("-")[0]] = readable(folder)
            annotations[Path(name).name.removesuffix(".xml")] = (location, folder.split("-")[0])
    images = []
    for location, name in list_files(layout.images):
        path = Path(name)
        folder = BREED_FOLDER.fullmatch(path.parent.name) if layout.kind == "stanford" else None
        prefix = WNID_PREFIX.match(path.name)
        if folder:
            breeds.setdefault(folder.group(1), readable(folder.group(0)))
        if path.stem in annotations:
            wnid = annotations[path.stem][1]
        else:
            wnid = folder.group(1) if folder else prefix.group(1) if prefix else "unknown"
        breeds.setdefault(wnid, wnid)
        images.append((location, name, path.stem, wnid))
    used = {image_id for _, _, image_id, _ in images}
    skipped += [{"file": location[1], "reason": "annotation without an image"}
                for image_id, (location, _) in annotations.items() if image_id not in used]
    order = sorted(breeds)
    index = {wnid: i for i, wnid in enumerate(order)}
    records = [Record(name, location, index[wnid], annotations[image_id][0] if image_id in annotations else None)
               for location, name, image_id, wnid in images]
    return Source(layout, [breeds[w] for w in order], records, skipped=skipped, notes=notes)


def read_folder(layout: Layout) -> Source:
    """A plain folder: one class per subfolder, or one class when the images lie flat."""
    files = [(loc, name) for loc, name in list_files(layout.images)
             if not any(part.startswith(".") for part in Path(name).parts[1:])]
    keys = [Path(name).parts[1] if len(Path(name).parts) > 2 else layout.images.name for _, name in files]
    classes = sorted(set(keys))
    index = {key: i for i, key in enumerate(classes)}
    return Source(layout, classes, [Record(name, loc, index[key]) for (loc, name), key in zip(files, keys)])


def read_mnist(layout: Layout) -> Source:
    """MNIST or FashionMNIST from the local raw files (train and test), through torchvision."""
    import torchvision
    dataset_class = getattr(torchvision.datasets, layout.dataset)
    try:
        splits = [dataset_class(str(layout.images), train=train, download=False) for train in (True, False)]
    except Exception as e:
        raise UserError(f"{layout.images / layout.dataset / 'raw'} does not hold readable {layout.dataset} files "
                        f"({str(e).splitlines()[0]}): it needs the four *-ubyte files, uncompressed") from None
    records = []
    for split, ds in zip(("train", "test"), splits):
        pixels, labels = ds.data.numpy(), ds.targets.numpy()
        records += [Record(f"{layout.dataset}/{split}/{i}", ("", ""), int(labels[i]), pixels=pixels[i])
                    for i in range(len(pixels))]
    return Source(layout, list(splits[0].classes), records, channels=1)


_open_archives = {}


def read_bytes(location: tuple) -> bytes:
    """The bytes at (zip path or "", member or file path); each process keeps its own open zips."""
    archive, member = location
    if not archive:
        return Path(member).read_bytes()
    key = (os.getpid(), archive)
    if key not in _open_archives:
        _open_archives[key] = zipfile.ZipFile(archive)
    return _open_archives[key].read(member)


def close_archives() -> None:
    """Close the zips this process opened."""
    for key in [k for k in _open_archives if k[0] == os.getpid()]:
        _open_archives.pop(key).close()


def parse_voc(data: bytes) -> tuple:
    """VOC XML -> ([(xmin, ymin, xmax, ymax, name)], problems); raises ValueError when it is not XML."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise ValueError(f"malformed XML ({e})") from None
    boxes, problems = [], []
    for i, obj in enumerate(root.iter("object")):
        try:
            box = obj.find("bndbox")
            coords = [float(box.find(tag).text) for tag in ("xmin", "ymin", "xmax", "ymax")]
        except (AttributeError, TypeError, ValueError):
            problems.append(f"object {i + 1} has no readable <bndbox>")
            continue
        boxes.append((*coords, (obj.findtext("name") or "").strip()))
    if not boxes and not problems:
        problems.append("no <object> in the annotation")
    return boxes, problems
'''

SOURCES['kit/device.py'] = r'''"""Which torch device a command runs on: one rule for training, sampling, scoring and the benchmarks."""
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
'''

SOURCES['kit/errors.py'] = r'''"""The one exception type for bad user input: the CLI prints its message as a single line."""


class UserError(Exception):
    """A problem with the user's files or flags; the message names the file and the fix."""
'''

SOURCES['kit/files.py'] = r'''"""Small file helpers shared by every writer: atomic replace and the --force rule."""
import contextlib
import os
from pathlib import Path

from kit.errors import UserError


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def refuse_overwrite(path, force: bool) -> None:
    """Raise a UserError when `path` exists and --force was not given."""
    if Path(path).exists() and not force:
        raise UserError(f"{path} already exists: pass --force to overwrite it, or choose another --out")


def file_hash(path, hasher) -> str:
    """Hex digest of a file's bytes through a hashlib object (read in 4 MiB blocks)."""
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            hasher.update(block)
    return hasher.hexdigest()
'''

SOURCES['kit/images.py'] = r'''"""Read images from a zip or a folder as uint8 arrays, with every problem found on the way (below packaging and scoring)."""
import io
import os
import re
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from kit.errors import UserError

SIZE = 64
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def workers():
    """Threads for encoding and decoding: zlib and PIL's decoder release the GIL."""
    return min(8, os.cpu_count() or 1)


def _natural_key(name: str):
    """Sort key that puts 2.png before 10.png."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _entries(path: Path):
    """(name, bytes) of every file in a zip or under a folder, plus layout problems as (kind, name)."""
    problems, entries = [], []
    if path.is_dir():
        for f in sorted((f for f in path.rglob("*") if f.is_file()), key=lambda f: _natural_key(str(f))):
            rel = f.relative_to(path).as_posix()
            if any(part.startswith(".") for part in f.relative_to(path).parts):
                problems.append(("hidden files skipped", rel))
                continue
            entries.append((rel, f.read_bytes()))
        return entries, problems
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path} is neither a zip file nor a folder of images")
    with zipfile.ZipFile(path) as zf:
        for info in sorted(zf.infolist(), key=lambda i: _natural_key(i.filename)):
            name = info.filename
            if info.is_dir():
                problems.append(("folders inside the zip (images must sit at its top level)", name))
            elif name.startswith("__MACOSX/") or Path(name).name.startswith("._"):
                problems.append(("macOS metadata files inside the zip", name))
            else:
                if "/" in name:
                    problems.append(("files inside a folder (images must sit at the zip's top level)", name))
                try:
                    entries.append((name, zf.read(info)))
                except Exception:
                    problems.append(("unreadable zip members (corrupt archive)", name))
    return entries, problems


def _decode(entry, lenient: bool):
    """(name, bytes) -> (H×W×3 uint8 array or None, problem kinds); lenient converts wrong size/mode/format."""
    name, data = entry
    kinds = []
    if not name.lower().endswith(".png"):
        kinds.append("files not named .png")
    try:
        im = Image.open(io.BytesIO(data))
        im.load()
    except Exception:
        return None, kinds + ["corrupt or unreadable images"]
    if not data.startswith(PNG_MAGIC):
        kinds.append(f"files that are {im.format or 'unknown'} data, not PNG")
    if im.size != (SIZE, SIZE):
        kinds.append(f"images of size {im.size[0]}×{im.size[1]}, not {SIZE}×{SIZE}")
    if im.mode != "RGB":
        kinds.append(f"images in mode {im.mode}, not RGB")
    content_bad = any(not k.startswith("files not named") for k in kinds)
    if content_bad and not lenient:
        return None, kinds
    im = im.convert("RGB")
    if im.size != (SIZE, SIZE):
        im = im.resize((SIZE, SIZE), Image.LANCZOS)
    return np.asarray(im), kinds


def summarise(problems) -> list:
    """[(kind, name)] -> one line per kind with its count and the first few names."""
    by_kind = {}
    for kind, name in problems:
        by_kind.setdefault(kind, []).append(name)
    lines = []
    for kind, names in by_kind.items():
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        lines.append(f"{kind} ({len(names):,}): {shown}")
    return lines


def read_members(path, lenient: bool):
    """Names, H×W×3 arrays and raw (kind, name) problems of every image in a zip or folder."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist: pass a zip file or a folder of images")
    entries, problems = _entries(path)
    names, arrays = [], []
    with ThreadPoolExecutor(workers()) as pool:
        for (name, _), (array, kinds) in zip(entries, pool.map(lambda e: _decode(e, lenient), entries)):
            problems += [(k, name) for k in kinds]
            if array is not None:
                names.append(name)
                arrays.append(array)
    return names, arrays, problems, len(entries)


def read_images(path, lenient=False):
    """Images of a zip or folder -> (uint8 N×3×64×64, problems); strict skips bad images, lenient converts them."""
    _, arrays, problems, _ = read_members(path, lenient)
    images = np.stack(arrays).transpose(0, 3, 1, 2) if arrays else np.zeros((0, 3, SIZE, SIZE), np.uint8)
    return np.ascontiguousarray(images), summarise(problems)
'''

SOURCES['kit/jobs.py'] = r'''"""The loop's periodic work and the record it keeps: a short list of timed jobs (loss rows, evaluations that keep
best.pt, checkpoints, sample grids) run at the loop's checks, and what every checkpoint holds besides the models
(evaluation history, the best so far, the fallbacks taken)."""
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from kit import checkpoint
from kit.budget import Every
from kit.config import parse_duration
from kit.plot import save_grid, save_progress_chart
from kit.sample import generate, to_uint8
from kit.trainer import to_cpu

GRID_BREEDS = 10        # rows of the conditional sample grid (breeds spread over the classes)
EVAL_SEED = 7919        # evaluations draw the same noise every time (rank r adds r times this)


@dataclass
class Job:
    """Periodic work: `run(now)` at a check where `due(now)`, and at the last check when `at_stop`."""
    name: str
    due: Callable
    run: Callable
    at_stop: bool = True


def optional(what: str, fn, *args):
    """fn(*args), or one line saying that `what` was skipped: a chart, a grid or a report never ends a run."""
    try:
        return fn(*args)
    except Exception as e:   # noqa: BLE001 - anything cosmetic that fails is reported and passed over
        tqdm.write(f"{what} skipped: {type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}")
        return None


def fixed_noise(cfg, n_classes, conditional):
    """The sample grid's noise and labels (one row per breed for a conditional model) and its row length."""
    generator = torch.Generator().manual_seed(cfg.seed)
    if not conditional:
        return torch.randn(64, cfg.z_dim, generator=generator), None, 8
    breeds = np.unique(np.linspace(0, n_classes - 1, min(n_classes, GRID_BREEDS)).round().astype(np.int64))
    z = torch.randn(8 * len(breeds), cfg.z_dim, generator=generator)
    return z, torch.from_numpy(breeds).repeat_interleave(8), 8


class Run:
    """One run's folder and record: metrics.jsonl, last.pt and best.pt, the rollback target, the evaluation history
    and the best so far, and the jobs the loop runs at its checks."""

    def __init__(self, trainer, budget, out: Path, record: dict, resumed, start: float, main: bool, world: int,
                 rank: int, evaluator=None, select="last"):
        self.trainer, self.budget, self.out, self.record = trainer, budget, out, record
        self.start, self.main, self.world, self.rank = start, main, world, rank
        self.evaluator, self.select = evaluator, select
        resumed = resumed or {}
        self.elapsed_before = resumed.get("elapsed", 0.0)
        self.history = list(resumed.get("evaluations", []))
        self.best = resumed.get("best")
        self.best_state = None        # the best checkpoint's state, once this process has saved or read one
        self.fallbacks = list(resumed.get("fallbacks", []))
        self.rollbacks, self.saved_step = 0, -1
        self.good = to_cpu(self.state())   # the last state known to be finite: rollback target
        self.metrics, self.resumed = None, bool(resumed)   # metrics.jsonl opens at the first row
        self.window = {"n": 0, "d": 0.0, "g": 0.0, "t": time.monotonic(), "step": trainer.step_count}
        self.shown = {}
        now = time.monotonic()
        cfg = trainer.cfg
        evaluate_every = parse_duration(cfg.eval_every) if evaluator else 0.0
        self.timers = {"evaluate": Every(evaluate_every or math.inf, now),
                       "checkpoint": Every(cfg.checkpoint_every, now), "samples": Every(cfg.sample_every, now)}
        self.grid = fixed_noise(cfg, len(record["classes"]), trainer.conditional)

    # ---------------------------------------------------------------- the record

    def state(self) -> dict:
        """The checkpoint dict of the run as it is now (references to live tensors)."""
        return {**self.record, "config": asdict(self.trainer.cfg), **self.trainer.state(),
                "elapsed": self.elapsed_before + time.monotonic() - self.start, "evaluations": list(self.history),
                "best": self.best, "fallbacks": list(self.fallbacks)}

    def log(self, row: dict) -> None:
        """One metrics.jsonl line (rank 0 only)."""
        if self.main:
            if self.metrics is None:
                self.metrics = open(self.out / "metrics.jsonl", "a" if self.resumed else "w")
            self.metrics.write(json.dumps(row) + "\n")
            self.metrics.flush()

    def say(self, line: str) -> None:
        """One line for the person watching (rank 0 only)."""
        if self.main:
            tqdm.write(line)

    def fell_back(self, what: str, message: str) -> None:
        """Record a fallback: a line, a metrics row and an entry in every later checkpoint."""
        entry = {"step": self.trainer.step_count, "what": what, "message": message}
        self.fallbacks.append(entry)
        self.say(f"fallback: {message}")
        self.log({"event": "fallback", **entry})

    def capture(self) -> None:
        """Take the current state as the rollback target."""
        self.good, self.rollbacks = to_cpu(self.state()), 0

    def save(self) -> None:
        """Write the rollback target as last.pt (rank 0)."""
        if self.main:
            checkpoint.save(self.out / "last.pt", self.good)
        self.saved_step = self.good["step"]

    def stop_evaluating(self, why: str) -> None:
        """No more evaluations in this run, and the zip from the last checkpoint; said in one line."""
        self.evaluator, self.select = None, "last"
        self.timers["evaluate"] = Every(math.inf, 0.0)
        self.say(why)
        self.log({"event": "evaluation off", "step": self.trainer.step_count, "message": why})

    def chosen(self) -> dict:
        """The state the final zip comes from: the best by the selected leaderboard, else the last good one."""
        if self.select == "last" or not self.best or self.best["step"] == self.good["step"]:
            return self.good
        if self.best_state is None:
            self.best_state = checkpoint.load(self.out / "best.pt")
        return self.best_state

    # ---------------------------------------------------------------- the jobs

    def jobs(self) -> list:
        """What the loop runs at its checks, in order."""
        return [Job("log", self.log_due, self.log_losses),
                Job("evaluate", self.evaluate_due, self.evaluate),
                Job("checkpoint", self.timers["checkpoint"].due, self.checkpoint),
                Job("samples", self.timers["samples"].due, self.samples)]

    def add_losses(self, d_sum: float, g_sum: float, steps: int) -> None:
        """Count the summed losses of `steps` steps into the current loss row."""
        self.window.update(d=self.window["d"] + d_sum, g=self.window["g"] + g_sum, n=self.window["n"] + steps)

    def restart_window(self, now: float) -> None:
        """Start a new loss row at the current step (after a row, or after a rollback)."""
        self.window.update(n=0, d=0.0, g=0.0, t=now, step=self.trainer.step_count)

    def log_due(self, now: float) -> bool:
        """Whether --log-every steps have passed since the last loss row."""
        return self.trainer.step_count - self.window["step"] >= self.trainer.cfg.log_every

    def log_losses(self, now: float) -> None:
        """The metrics.jsonl line of the steps since the last one: mean losses, images/s, learning rates."""
        window, trainer = self.window, self.trainer
        if not window["n"]:
            return
        opt_G, opt_D = trainer.optimisers()
        seconds = max(now - window["t"], 1e-9)
        row = {"step": trainer.step_count, "elapsed": round(self.elapsed_before + now - self.start, 2),
               "loss_d": window["d"] / window["n"], "loss_g": window["g"] / window["n"],
               "images_per_s": round(window["n"] * trainer.n_critic * trainer.cfg.batch_size * self.world / seconds,
                                     1),
               "lr_g": opt_G.param_groups[0]["lr"], "lr_d": opt_D.param_groups[0]["lr"]}
        if trainer.cfg.ada_target:
            row["ada_p"] = round(float(trainer.augmentation.p), 5)
        self.log(row)
        self.shown = dict(d=row["loss_d"], g=row["loss_g"], img_s=row["images_per_s"], left=self.budget.left(now))
        self.restart_window(now)

    def evaluate_due(self, now: float) -> bool:
        """Whether an evaluation is due and fits before the deadline (the last one is in the tail's reserve)."""
        return self.timers["evaluate"].due(now) and self.budget.fits(self.evaluation_seconds(), now)

    def evaluation_seconds(self) -> float:
        """What the latest evaluation took (0 before the first)."""
        return self.history[-1]["seconds"] if self.history else 0.0

    def evaluate(self, now: float) -> None:
        """Score the current EMA G with each leaderboard network at hand, log the row, keep best.pt, save last.pt."""
        if self.evaluator is None or (self.history and self.history[-1]["step"] == self.trainer.step_count):
            return
        self.capture()
        t = time.monotonic()
        cfg = self.trainer.cfg
        images, _ = generate(self.good, self.evaluator.share, seed=cfg.seed + EVAL_SEED * (self.rank + 1), truncation=cfg.truncation,
                             device=self.trainer.device, standing_stats=cfg.standing_stats,
                             class_balance=cfg.class_balance)
        scores = self.evaluator(images)
        row = {"event": "evaluation", "step": self.good["step"], "elapsed": round(self.good["elapsed"], 2),
               "seconds": round(time.monotonic() - t, 2), **scores}
        self.history.append(row)
        self.log(row)
        self.say(f"evaluation at step {row['step']}: " + "; ".join(
            f"{name} MiFID {s['mifid']:.2f} (FID {s['fid']:.2f}, d {s['d']:.4f}, {s['margin']:+.4f} from "
            f"{s['threshold']:g}, n {s['n']})" for name, s in scores.items()))
        score = scores.get(self.select, {}).get("mifid", math.inf)
        won = self.select != "last" and math.isfinite(score) and (not self.best or score < self.best["mifid"])
        if won:
            self.best = {"step": row["step"], "leaderboard": self.select, "mifid": score, "scores": scores}
        self.good["evaluations"], self.good["best"] = list(self.history), self.best
        if won:
            self.best_state = self.good
            if self.main:
                checkpoint.save(self.out / "best.pt", self.good)
        self.save()
        if self.main:
            optional("the progress chart", save_progress_chart, self.history, self.best["step"] if self.best else None,
                     self.out / "progress.png",
                     f"{cfg.model}, {self.evaluator.n} images an evaluation: the zip comes from "
                     + (f"the {self.select} leaderboard's lowest MiFID" if self.best else "the last checkpoint"))
        self.timers["evaluate"].ran(now)
        self.timers["checkpoint"].ran(now)

    def checkpoint(self, now: float) -> None:
        """Save last.pt, unless an evaluation saved this step already."""
        if self.saved_step != self.trainer.step_count:
            self.capture()
            self.save()
        self.timers["checkpoint"].ran(now)

    def samples(self, now: float) -> None:
        """Write the fixed-noise sample grid of the EMA G (rank 0)."""
        self.timers["samples"].ran(now)
        if self.main:
            optional("the sample grid", self.write_grid)

    def write_grid(self) -> None:
        """OUT/samples/step_N.png from the fixed noise."""
        trainer, (z, y, nrow) = self.trainer, self.grid
        sampler = trainer.G_ema or trainer.G
        was_training = sampler.training
        sampler.eval()
        with torch.no_grad():
            grid = to_uint8(sampler(z.to(trainer.device), None if y is None else y.to(trainer.device)))
        sampler.train(was_training)
        save_grid(grid, self.out / "samples" / f"step_{trainer.step_count:07d}.png", nrow)

    def close(self) -> None:
        """Close metrics.jsonl."""
        if self.metrics:
            self.metrics.close()
'''

SOURCES['kit/kernel/__init__.py'] = r'''"""Kaggle kernels: `build` makes and pushes them (never shipped); `runtime` and `preflight` run inside them."""
'''

SOURCES['kit/kernel/preflight.py'] = r'''"""Preflight, the first thing a kernel does: can this torch run on the GPUs it was given, and how many processes?

`decide(facts)` is a pure function of what torch reports (its version and CUDA build, the architectures it was
compiled for, the visible GPUs) and of what the run asks for; `read_facts` asks torch, and `probe` runs one tiny
synchronised operation on each GPU, because a GPU can be visible and still have no kernel image for this torch.
"""
import json
import os
import platform
import re
from dataclasses import dataclass

FIX_ACCELERATOR = "NvidiaTeslaT4"   # two T4s (sm_75), which every recent Kaggle torch build supports
TORCH_FLOOR = (2, 3)     # the newest API kernel code calls is torch.amp.GradScaler(device), new in torch 2.3
PYTHON_FLOOR = (3, 9)    # checked by tests/test_kernels.py: the inlined sources parse as Python 3.9
FAKE_FACTS_ENV = "DOGKIT_PREFLIGHT_FACTS"   # JSON of Facts fields: decide as if on that hardware (tests)


@dataclass(frozen=True)
class Facts:
    """What the decision reads: torch's build, the visible GPUs, and what the run asks for."""
    torch_version: str
    cuda_build: str = ""          # torch.version.cuda; "" for a CPU-only build
    arch_list: tuple = ()         # torch.cuda.get_arch_list(): "sm_75", "sm_90a", "compute_90", ...
    gpus: tuple = ()              # (name, (major, minor)) for each visible GPU
    device: str = "auto"          # the run's TrainConfig.device: auto, cpu, cuda or cuda:N
    precision: str = "auto"       # the run's TrainConfig.precision
    procs: int = 0                # processes asked for ($DOGKIT_PROCS); 0: one per usable GPU, 1 on the CPU
    kernel: str = "NAME"          # the kernel's name, for the rebuild command in the fix
    python_version: str = ""      # platform.python_version(); "" skips the check
    separate: bool = False        # the kernel trains one run per process (--gpus runs), not one DDP run


@dataclass(frozen=True)
class Decision:
    """Go or stop, on which device type with how many processes, and the one line that says why."""
    go: bool
    device: str                   # "cuda" or "cpu"
    procs: int
    message: str
    gpus: tuple = ()              # indices of the GPUs the processes use


def runs_on(arch: str, capability: tuple) -> bool:
    """Whether code compiled for `arch` runs on a GPU of this capability."""
    # sm_XY (machine code) runs on the same major version from minor Y on; sm_XYa on XY alone; compute_XY (PTX,
    # compiled by the driver at load) on XY and every later capability
    kind, _, version = arch.partition("_")
    specific = version.endswith("a")
    digits = version.rstrip("af")
    if kind not in ("sm", "compute") or not digits.isdigit() or len(digits) < 2:
        return False
    built = (int(digits[:-1]), int(digits[-1]))
    if kind == "compute":
        return tuple(capability) >= built
    if specific:
        return tuple(capability) == built
    return capability[0] == built[0] and capability[1] >= built[1]


def sm(capability: tuple) -> str:
    """(7, 5) -> "sm_75"."""
    return f"sm_{capability[0]}{capability[1]}"


def precision_words(precision: str, capability: tuple) -> str:
    """What autocast does on this GPU: auto is bf16 from sm_80 (L4, A100, H100), fp16 with a grad scaler before."""
    if precision != "auto":
        return f"{precision} (asked for)"
    if tuple(capability) >= (8, 0):
        return "bf16 autocast"
    return "fp16 autocast with a grad scaler (no bf16 before sm_80)"


def version(text: str) -> tuple:
    """"2.8.0+cu128" -> (2, 8); "3.12.1" -> (3, 12)."""
    return tuple(int(part) for part in re.findall(r"\d+", text)[:2])


def decide(facts: Facts) -> Decision:
    """Go or stop with one line: a GPU this torch cannot run is named with its capability, the build and the fix."""
    build = f"torch {facts.torch_version} (CUDA {facts.cuda_build or 'none: a CPU-only build'})"
    fix = (f"rebuild with `python -m kit kernel build {facts.kernel} --accelerator {FIX_ACCELERATOR}` "
           f"(or NvidiaL4) and push again")
    floors = (("torch", facts.torch_version, TORCH_FLOOR), ("Python", facts.python_version, PYTHON_FLOOR))
    for name, found, floor in floors:
        if found and version(found) < floor:
            return Decision(False, "cpu", 0, f"preflight: {name} {found} is older than {'.'.join(map(str, floor))}, "
                                             f"the oldest the kit runs on: run the kernel on Kaggle's latest image "
                                             f"(\"docker_image_pinning_type\": \"latest\" in kernel-metadata.json)")
    device = facts.device
    if device == "cpu":
        procs = facts.procs or 1
        idle = f"; the {len(facts.gpus)} GPU(s) stay idle" if facts.gpus else ""
        how = "no DDP" if procs == 1 else "separate runs" if facts.separate else "DDP over gloo"
        return Decision(True, "cpu", procs, f"preflight: the run asks for the CPU: {procs} process(es) ({how}), "
                                            f"{build}{idle}")
    if device not in ("auto", "cuda") and not device.startswith("cuda:"):
        return Decision(False, "cpu", 0, f"preflight: device {device!r} is not auto, cpu, cuda or cuda:N: "
                                         f"fix the kernel's train options")
    if not facts.gpus:
        return Decision(False, "cpu", 0,
                        f"preflight: no GPU in this kernel ({build} sees none): {fix}, or run on the CPU "
                        f"with DOGKIT_TRAIN='{{\"device\": \"cpu\"}}'")
    indices = list(range(len(facts.gpus)))
    if device.startswith("cuda:"):
        index = device.partition(":")[2]
        if not index.isdigit() or int(index) >= len(facts.gpus):
            return Decision(False, "cpu", 0, f"preflight: device {device} asked for, but the kernel has "
                                             f"{len(facts.gpus)} GPU(s): use cuda:0 .. cuda:{len(facts.gpus) - 1}")
        indices = [int(index)]
    for i in indices:
        name, capability = facts.gpus[i]
        if not any(runs_on(arch, capability) for arch in facts.arch_list):
            return Decision(False, "cuda", 0,
                            f"preflight: GPU {i} {name} has capability {sm(capability)}, which {build} has no "
                            f"kernels for (built for {' '.join(facts.arch_list) or 'nothing'}): {fix}")
    procs = facts.procs or len(indices)
    if procs > len(indices):
        return Decision(False, "cuda", 0, f"preflight: {procs} processes asked for, but {len(indices)} usable "
                                          f"GPU(s): set DOGKIT_PROCS to at most {len(indices)}")
    name, capability = facts.gpus[indices[0]]
    how = ("1 process" if procs == 1 else f"{procs} separate runs, one process per GPU" if facts.separate else
           f"{procs} DDP processes over nccl, one per GPU")
    return Decision(True, "cuda", procs,
                    f"preflight: {len(indices)} × {name} ({sm(capability)}) run {build}: {how}, "
                    f"{precision_words(facts.precision, capability)}", tuple(indices[:procs]))


def read_facts(device="auto", precision="auto", procs=0, kernel="NAME", separate=False) -> Facts:
    """The Facts of this machine as torch reports them, or of the hardware ${FAKE_FACTS_ENV} describes."""
    asked = {"device": device, "precision": precision, "procs": procs, "kernel": kernel,
             "python_version": platform.python_version(), "separate": separate}
    fake = os.environ.get(FAKE_FACTS_ENV)
    if fake:
        values = json.loads(fake)
        values["arch_list"] = tuple(values.get("arch_list", ()))
        values["gpus"] = tuple((name, tuple(capability)) for name, capability in values.get("gpus", ()))
        return Facts(**{**values, **asked})
    import torch
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    gpus = tuple((torch.cuda.get_device_name(i), tuple(torch.cuda.get_device_capability(i))) for i in range(n))
    return Facts(torch.__version__, torch.version.cuda or "", tuple(torch.cuda.get_arch_list()) if n else (), gpus,
                 **asked)


def probe(gpus, kernel="NAME") -> str:
    """"" when a tiny synchronised op gives the right answer on each GPU index in `gpus`, else the one line."""
    import torch
    for i in gpus:
        try:
            x = torch.arange(4.0, device=f"cuda:{i}")
            value = float((x * x).sum())   # .item() synchronises: a missing kernel image fails here
            torch.cuda.synchronize(i)
        except RuntimeError as e:   # torch.AcceleratorError is a RuntimeError
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            return (f"preflight: GPU {i} {torch.cuda.get_device_name(i)} failed a tiny CUDA op ({first}): rebuild "
                    f"with `python -m kit kernel build {kernel} --accelerator {FIX_ACCELERATOR}` and push again")
        if value != 14.0:
            return f"preflight: GPU {i} {torch.cuda.get_device_name(i)} computed 0²+1²+2²+3² = {value}, not 14"
    return ""
'''

SOURCES['kit/kernel/runtime.py'] = r'''"""What runs inside a Kaggle kernel: preflight, find the data, prepare it, continue the earlier runs or start
them, train (one process per GPU: one DDP run, or separate runs of which the best is submitted), zip, check; or, in
the scoring kernel, score a zip with both leaderboards' networks.

The generated kernels/NAME/script.py writes the inlined kit/ to a temporary folder and calls `main`. Nothing here
talks to Kaggle's API: building and pushing live in kit.kernel.build, which never ships inside a kernel.
"""
import argparse
import dataclasses
import json
import os
import shutil
import socket
import sys
import tempfile
import time
import traceback
from pathlib import Path

from kit.errors import UserError
from kit.kernel import preflight

COMPETITION = "generative-dog-images"
KERNEL_BUDGET = "8h40m"    # the competition's kernels stopped at 9 h; the tail (10k images + zip) is inside this
RUN_FOLDER = "run"         # in /kaggle/working, so it survives the session: last.pt, best.pt, metrics, samples
CARRIED = ("last.pt", "best.pt", "metrics.jsonl")   # what a continued run takes from the earlier kernel's run
MAX_DEPTH = 4              # input/notebooks/OWNER/SLUG/run: how deep Kaggle mounts sources today, and their folders
SCORE_N = 10000            # images the scoring kernel scores: the leaderboards' count
USER_ERROR_EXIT = 2        # a training process that stopped on a UserError exits with this (its line is in the log)
STOPPED_ON_ERROR = "a training process stopped on bad input (its error line is above)"
CHECK_RESERVE_S = 10.0     # kept back from training for the final check of images.zip
EXIT_GRACE_S = 5.0         # training's budget ends this long before its processes are stopped: time to exit
JOIN_POLL_S = 2.0          # how often the parent looks at its training processes
DATA_NAMES = {"all-dogs.zip": "images", "all-dogs": "images", "annotation.zip": "annotations",
              "annotation": "annotations"}
HARDWARE_NOTE = ("GPU T4 x2 (NvidiaTeslaT4, sm_75): fp16 autocast with a grad scaler, two processes; "
                 "L4 (NvidiaL4, sm_89): bf16, one process; the P100 (NvidiaTeslaP100, sm_60) is refused: "
                 "Kaggle's torch has no sm_60 kernels, so its first CUDA op fails")
# what a kernel does with several GPUs (kit kernel build --gpus)
GPU_MODES = {"runs": "separate runs, one per GPU, each its own seed in one graphed process; the zip of the run "
                     "with the lowest estimated MiFID is submitted",
             "ddp": "one run, one DDP process per GPU averaging their gradients (eager: no CUDA graph)"}


class Log:
    """Lines for the kernel's log, each stamped with the seconds since the script started."""

    def __init__(self, start: float):
        self.start = start

    def __call__(self, line: str) -> None:
        print(f"[{time.time() - self.start:7.1f} s] {line}", flush=True)


def find_inputs(input_dir: Path, max_depth=MAX_DEPTH) -> dict:
    """{"images": path, "annotations": path} of the shallowest all-dogs(.zip) and Annotation(.zip) under input_dir,
    mounted as Kaggle does today (competitions/SLUG, datasets/OWNER/SLUG) or as it did (SLUG)."""
    found = {}
    for root, dirs, files in os.walk(input_dir):
        depth = len(Path(root).relative_to(input_dir).parts)
        for entry in sorted(dirs + files):
            kind = DATA_NAMES.get(entry.lower())
            if kind:
                candidate = (depth, entry.lower().endswith(".zip"), Path(root) / entry)
                found[kind] = min(found.get(kind, candidate), candidate)
        dirs[:] = sorted(d for d in dirs if d.lower() not in DATA_NAMES and depth < max_depth)
    if "images" not in found:
        raise UserError(f"no all-dogs.zip or all-dogs/ under {input_dir}: add the competition "
                        f"'{COMPETITION}' to the kernel's data (or set DOGKIT_KAGGLE_ROOT)")
    return {kind: innermost(path) for kind, (_, _, path) in found.items()}


def find_in_source(input_dir: Path, source: str, name: str, max_depth=MAX_DEPTH + 1) -> Path:
    """The shallowest file `name` under the folder Kaggle mounted the source OWNER/SLUG at (any depth it uses)."""
    slug = source.split("/")[-1]
    found = []
    for root, dirs, files in os.walk(input_dir):
        depth = len(Path(root).relative_to(input_dir).parts)
        if name in files and slug in Path(root).relative_to(input_dir).parts:
            found.append((depth, str(Path(root) / name)))
        dirs[:] = sorted(dirs) if depth < max_depth else []
    if not found:
        raise UserError(f"no {name} from {source} under {input_dir}: attach that kernel's output (or dataset) to this "
                        f"kernel, and check that it wrote {name}")
    return Path(min(found)[1])


def innermost(path: Path) -> Path:
    """all-dogs/all-dogs -> the inner folder (Kaggle's dataset folders wrap the real ones)."""
    while path.is_dir():
        inner = [p for p in path.iterdir() if p.name.lower() == path.name.lower()]
        if len(inner) != 1:
            break
        path = inner[0]
    return path


def link_inputs(inputs: dict, folder: Path) -> Path:
    """A folder of symlinks named as kit.data's readers expect: all-dogs(.zip) beside Annotation(.zip)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for kind, path in inputs.items():
        name = {"images": "all-dogs", "annotations": "Annotation"}[kind] + (".zip" if path.is_file() else "")
        (folder / name).symlink_to(path.resolve())
    return folder


def parse_arguments(argv, budget=KERNEL_BUDGET) -> argparse.Namespace:
    """The kernel's options: flags, or the DOGKIT_* variables a CI run sets; `budget` is the one it was built with."""
    parser = argparse.ArgumentParser(description="dogkit Kaggle kernel")
    parser.add_argument("--kaggle-root", default=os.environ.get("DOGKIT_KAGGLE_ROOT", "/kaggle"))
    parser.add_argument("--budget", default=os.environ.get("DOGKIT_BUDGET", budget),
                        help="whole-kernel wall-clock limit, counted from the script's start")
    parser.add_argument("--train", default=os.environ.get("DOGKIT_TRAIN", "{}"),
                        help='JSON of TrainConfig fields overriding the kernel\'s, e.g. \'{"device": "cpu"}\'')
    parser.add_argument("--procs", default=os.environ.get("DOGKIT_PROCS", "0"),
                        help="training processes (0: one per usable GPU); on the CPU N > 1 runs DDP over gloo")
    parser.add_argument("--score-n", type=int, default=int(os.environ.get("DOGKIT_SCORE_N", SCORE_N)),
                        help="scoring kernel: images of the zip to score, 0.png upward (the leaderboards: 10000)")
    return parser.parse_args(argv)


def train_options(text: str) -> dict:
    """The --train / DOGKIT_TRAIN JSON object, checked against TrainConfig's fields."""
    from kit.config import TrainConfig, asdict
    try:
        options = json.loads(text)
    except ValueError:
        options = None
    if not isinstance(options, dict):
        raise UserError(f"--train / DOGKIT_TRAIN {text!r} is not a JSON object: "
                        f"write it like '{{\"device\": \"cpu\"}}'")
    unknown = set(options) - set(asdict(TrainConfig()))
    if unknown:
        raise UserError(f"--train / DOGKIT_TRAIN names unknown TrainConfig fields {sorted(unknown)}")
    return options


def process_count(text: str) -> int:
    """--procs / DOGKIT_PROCS as a count (0: decided by preflight)."""
    if not text.isdigit():
        raise UserError(f"--procs / DOGKIT_PROCS {text!r} is not a whole number of processes")
    return int(text)


def main(kernel: dict, start: float, argv=()) -> int:
    """The kernel's job, from the script's start time; bad input is one `error:` line and exit status 2."""
    try:
        return run(kernel, start, parse_arguments(argv, kernel.get("budget", KERNEL_BUDGET)))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2


def run(kernel: dict, start: float, args) -> int:
    """Preflight, then the kernel's job: train (or continue) and zip, or score; 0 when it ends as it should."""
    from kit.config import parse_duration
    log = Log(start)
    budget = parse_duration(args.budget)
    options = {**kernel["train"], **train_options(args.train)}
    log(f"dogkit kernel {kernel['name']}: Python {sys.version.split()[0]}, built for {kernel['accelerator']}, "
        f"budget {budget:.0f} s. {HARDWARE_NOTE}")
    separate = kernel.get("gpus", "ddp") == "runs"
    facts = preflight.read_facts(options.get("device", "auto"), options.get("precision", "auto"),
                                 process_count(args.procs), kernel["name"], separate)
    decision = preflight.decide(facts)
    log(decision.message)
    if decision.go and decision.device == "cuda" and os.environ.get(preflight.FAKE_FACTS_ENV):
        log(f"preflight: facts from ${preflight.FAKE_FACTS_ENV}: stopping after the decision")
        return 0
    if decision.go and decision.device == "cuda":
        failure = preflight.probe(decision.gpus, kernel["name"])
        if failure:
            decision = preflight.Decision(False, "cuda", 0, failure)
            log(failure)
    if not decision.go:
        log("preflight: stopped before preparing anything (exit status 1)")
        return 1

    input_dir, work, working = Path(args.kaggle_root) / "input", Path(tempfile.gettempdir()), Path.cwd()
    if kernel.get("zip"):
        return score_stage(kernel["zip"], input_dir, work, working, decision.device, args.score_n, log)
    weights_stage(input_dir, log)
    dataset = prepare(input_dir, work, log)
    run_dir = working / RUN_FOLDER
    shutil.rmtree(run_dir, ignore_errors=True)   # a checkpoint left from another run must not become the zip
    carried = continue_stage(kernel, options, dataset, input_dir, run_dir, separate, log) if kernel.get("continue") \
        else []
    runs = carried or new_runs(run_dir, decision.procs if separate else 1, options)   # (folder, step, seed) each
    folders = [folder for folder, _, _ in runs]
    procs = len(runs) if separate else decision.procs
    deadline = start + budget - CHECK_RESERVE_S
    cfg = run_config(options, decision.device, procs, separate, work, run_dir, bool(carried), start,
                     deadline - EXIT_GRACE_S, log)
    if len(runs) > 1:
        failure, last = train_separately(cfg, runs, decision.gpus, deadline, log)
    else:
        failure, last = train_stage(cfg, procs, deadline, runs[0][1], log), run_dir / "last.pt"
    zip_path = Path(cfg.zip)
    if failure:
        log(f"train: ended early: {failure}")
        if not last.is_file():
            log("zip: no checkpoint was written, so there is nothing to sample from (exit status 1)")
            return 1
        step = zip_from_checkpoint(last, cfg, decision.device)
        log(f"zip: wrote {cfg.n_images} images to {zip_path} from {last} (step {step}) after the failure above")
    else:
        log(f"zip: training wrote {zip_path} ({zip_path.stat().st_size / 2**20:.1f} MiB)")
    from kit.package import check_zip
    problems = check_zip(zip_path)
    for line in problems:
        log(f"check: problem: {line}")
    files = sum(len(names) for _, _, names in os.walk(working))
    kept = ", ".join(str((folder / "last.pt").relative_to(working)) for folder in folders)
    log(f"check: {working} holds {files} files (Kaggle keeps at most 500), {kept} among them for the next session "
        f"(kit kernel build {kernel['name']} --continue OWNER/SLUG)")
    early = f", but it holds step {step}'s images: training ended early (above)" if failure else ""
    log(f"check: {zip_path} {'REJECTED' if problems else 'passes'}{early}; the kernel took "
        f"{time.time() - start:.0f} s of its {budget:.0f} s budget")
    return 1 if problems else 0


def weights_stage(input_dir: Path, log, use="training evaluates with them",
                  without="no weights: training and zipping without evaluation") -> dict:
    """The leaderboard networks' weights found under input_dir (kit.weights checks and exports them), in one line."""
    from kit.weights import export_found
    found = export_found(input_dir)
    names = [f"{board} ({path})" for board, path in found.items() if path]
    log(f"weights: {', '.join(names)}: {use}" if names else f"weights: {without}")
    return found


def prepare(input_dir: Path, work: Path, log):
    """Find the competition's archives and prepare them into TMPDIR/dogkit-cache.npz on every core; the Dataset."""
    from kit.data.cache import prepare as prepare_cache
    t = time.time()
    inputs = find_inputs(input_dir)
    workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    log(f"prepare: {', '.join(f'{kind} {path}' for kind, path in inputs.items())}, {workers} processes")
    cache_path = work / "dogkit-cache.npz"
    dataset = prepare_cache(link_inputs(inputs, work / "dogkit-data"), out=cache_path, workers=workers, force=True)
    log(f"prepare: {len(dataset.labels)} crops of {len(dataset.classes)} breeds in {time.time() - t:.0f} s "
        f"-> {cache_path}")
    return dataset


def continue_stage(kernel: dict, options: dict, dataset, input_dir: Path, run_dir: Path, separate: bool,
                   log) -> list:
    """Carry the earlier kernel's runs (last.pt, best.pt, metrics.jsonl of each) into run_dir, or run_dir/NAME for
    each of separate runs; [(folder, step it resumes at, seed)], or [] when they are of another model or other data
    and the build consented to a fresh start (else a one-line refusal)."""
    from kit import checkpoint
    source = kernel["continue"]
    found = earlier_runs(input_dir, source)
    if len(found) > 1 and not separate:
        raise UserError(f"continue: {source}'s output holds {len(found)} separate runs "
                        f"({', '.join(folder.name for folder in found)}): rebuild with --gpus runs to continue them "
                        f"all")
    states = [checkpoint.load(folder / "last.pt") for folder in found]
    for folder, state in zip(found, states):
        differences = checkpoint_differences(state, options, dataset)
        if differences:
            why = f"{folder / 'last.pt'} is {', '.join(differences)}"
            if not kernel.get("restart_if_different"):
                raise UserError(f"continue: {why}: rebuild with --continue of a run of this model and data, or add "
                                f"--restart-if-different to start afresh")
            log(f"continue: {why}: starting afresh, as built with --restart-if-different")
            return []
    carried = []
    for folder, state in zip(found, states):
        into = run_dir / folder.name if len(found) > 1 else run_dir
        into.mkdir(parents=True)
        names = [name for name in CARRIED if (folder / name).is_file()]
        for name in names:
            shutil.copyfile(folder / name, into / name)
        log(f"continue: resuming {source}'s run at step {state['step']} ({state.get('elapsed', 0) / 3600:.2f} h "
            f"trained before) from {folder} ({', '.join(names)}); this session's budget is its own")
        carried.append((into, state["step"], state["config"]["seed"]))
    return carried


def earlier_runs(input_dir: Path, source: str) -> list:
    """The run folders of an earlier kernel's output: the one holding its shallowest last.pt, or, when that is one
    of separate runs (run/NAME/last.pt), every run/NAME/ beside it that holds a last.pt."""
    last = find_in_source(input_dir, source, "last.pt")
    runs = last.parent.parent
    if last.parent.name != RUN_FOLDER and runs.name == RUN_FOLDER:
        return sorted(path.parent for path in runs.glob("*/last.pt"))
    return [last.parent]


def new_runs(run_dir: Path, count: int, options: dict) -> list:
    """[(folder, 0, seed)] of new runs: run_dir for one, run_dir/seedN for each of separate runs, their seeds counted
    up from the kernel's."""
    from kit.config import TrainConfig
    seed = options.get("seed", TrainConfig().seed)
    return [(run_dir, 0, seed)] if count == 1 else [(run_dir / f"seed{seed + i}", 0, seed + i) for i in range(count)]


def checkpoint_differences(state: dict, options: dict, dataset) -> list:
    """How a checkpoint differs from the kernel's model and data (empty when this kernel can resume it)."""
    from kit.config import UNSET, TrainConfig
    from kit.train import RUN_FIELDS
    saved = state["config"]
    asked = {"model": TrainConfig().model, **options}
    differences = [f"{key} {saved.get(key)!r} where this kernel has {value!r}" for key, value in asked.items()
                   if key not in RUN_FIELDS and value != UNSET.get(key, 0) and saved.get(key) != value]
    shape = tuple(dataset.images.shape[1:])
    if tuple(state["image_shape"]) != shape or list(state["classes"]) != list(dataset.classes):
        differences.append(f"trained on other data ({len(state['classes'])} breeds of {tuple(state['image_shape'])} "
                           f"where this kernel has {len(dataset.classes)} of {shape})")
    return differences


def score_stage(source: str, input_dir: Path, work: Path, working: Path, device: str, n: int, log) -> int:
    """The scoring kernel: the zip from `source` scored against the competition's images; one line per leaderboard."""
    from kit.metrics.evaluate import score_zip
    zip_path = find_in_source(input_dir, source, "images.zip")
    real = link_inputs(find_inputs(input_dir), work / "dogkit-data")
    weights_stage(input_dir, log, "scoring with them", "no weights dataset attached: scoring with what the kernel can "
                                                       "find or download")
    log(f"score: {n} images of {zip_path} against {real} on {device}")
    results = score_zip(zip_path, real, n=n, device=device, report=working)
    for board, result in results.items():
        log(f"score: {board}: FID {result['fid']:.3f}, d {result['distance']:.4f} (threshold "
            f"{result['threshold']:g}), MiFID {result['mifid']:.3f} -> {working / 'score.json'}")
    return 0


def run_config(options: dict, device: str, procs: int, separate: bool, work: Path, run_dir: Path, resume: bool,
               start: float, end: float, log):
    """The TrainConfig of this kernel (of each run, when separate), its budget from the kernel's `start` to `end`
    (wall-clock times), with its per-process batch and learning rates stated in the log."""
    from kit.config import TrainConfig, asdict, for_device, from_dict
    values = {**asdict(TrainConfig()), **options, "data": str(work / "dogkit-cache.npz"), "out": str(run_dir),
              "budget": f"{end - start:.1f}", "budget_from": start, "zip": str(run_dir.parent / "images.zip"),
              "resume": resume, "force": True}
    if device == "cpu" and procs > 1 and not values["threads"]:
        values["threads"] = max(1, (os.cpu_count() or 1) // procs)   # the cores shared out, not oversubscribed
    cfg = from_dict(values)
    shown = for_device(cfg, device)
    how = (f"{procs} separate runs on {device}, batch {shown.batch_size} each" if separate and procs > 1 else
           f"{procs} process(es) on {device}, batch {shown.batch_size} per process ({shown.batch_size * procs} images "
           f"a step)")
    rates = "in every run" if separate else "in every process (DDP averages the gradients)"
    log(f"train: {cfg.model}, loss {shown.loss}, {how}, lr G {shown.lr_g:g} D {shown.lr_d:g} {rates}, "
        f"{end - time.time():.0f} s left for training and the {cfg.n_images} final images")
    return cfg


def train_stage(cfg, procs: int, deadline: float, start_step: int, log) -> str:
    """Train; "" when it finished, else why it stopped. Ranks dead before training past start_step: one process
    retries (from the carried checkpoint when continuing)."""
    if procs == 1:
        return train_here(cfg)
    failure = train_ranks(cfg, procs, deadline)
    if not failure or failure == STOPPED_ON_ERROR or checkpoint_step(Path(cfg.out) / "last.pt") > start_step:
        return failure
    left = deadline - EXIT_GRACE_S - time.time()                        # an old torch's DDP or an untested NCCL
    if left < 1:                                                          # must not cost the whole run
        return f"{failure}; no time was left to train again in 1 process"
    log(f"train: fallback: the {procs} processes ended before training ({failure}); training again in 1 process "
        f"for the {left:.0f} s left")
    if not cfg.resume:
        shutil.rmtree(cfg.out, ignore_errors=True)
    return train_here(cfg)


def checkpoint_step(last: Path) -> int:
    """The step of the checkpoint `last`; 0 when there is none."""
    from kit import checkpoint
    return checkpoint.load(last)["step"] if last.is_file() else 0


def train_here(cfg) -> str:
    """Train in this process; "" when it finished, else why it stopped (bad input in one line; any other error's
    traceback goes to the log)."""
    from kit.train import train
    try:
        train(cfg)
    except UserError as e:
        return str(e)
    except Exception as e:   # noqa: BLE001 - whatever stopped it, the last checkpoint still becomes the zip
        traceback.print_exc()
        return f"{type(e).__name__}: {first_line(e)}"
    return ""


def first_line(error) -> str:
    """The first line of an exception's message (CUDA errors run to five)."""
    return (str(error).strip().splitlines() or [""])[0]


def free_port() -> int:
    """A TCP port nobody listens on, for the processes' rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_rank(rank: int, world: int, port: int, cfg) -> None:
    """One training process, with the variables torchrun would set (kit.train reads them); bad input is one line."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world))
    from kit.train import train
    try:
        train(cfg)
    except UserError as e:
        print(f"error: process {rank}: {e}", file=sys.stderr, flush=True)
        sys.exit(USER_ERROR_EXIT)


def train_ranks(cfg, procs: int, deadline: float, target=run_rank) -> str:
    """Train with `procs` spawned processes; "" when all finished, else why the run ended (one dead rank ends it)."""
    import torch.multiprocessing as mp
    context = mp.start_processes(target, args=(procs, free_port(), cfg), nprocs=procs, join=False,
                                 start_method="spawn")
    try:
        while not context.join(timeout=JOIN_POLL_S):
            if time.time() > deadline:
                for process in context.processes:
                    process.kill()
                    process.join()
                return "the training processes ran past the budget and were stopped"
    except Exception as e:   # noqa: BLE001 - ProcessRaisedException / ProcessExitedException: the others are stopped
        if getattr(e, "exit_code", None) == USER_ERROR_EXIT:
            return STOPPED_ON_ERROR
        print(e, file=sys.stderr, flush=True)
        lines = [line for line in str(e).splitlines() if line.strip()]
        return " ".join(dict.fromkeys(lines[:1] + lines[-1:]))   # "process 1 terminated ..." and the error's end
    return ""


def train_separately(cfg, runs: list, gpus: tuple, deadline: float, log) -> tuple:
    """Train each (folder, step, seed) of `runs` alone in a process (on GPU i of `gpus`, or the CPU); copy the
    winner's images.zip (and score.json) beside the run folder; ("" or why no run wrote a zip, the last.pt to zip
    from when none did)."""
    import multiprocessing
    context = multiprocessing.get_context("spawn")
    configs = [dataclasses.replace(cfg, out=str(folder), zip=str(folder / "images.zip"), seed=seed)
               for folder, _, seed in runs]
    started = []
    for i, run in enumerate(configs):
        receive, send = context.Pipe(duplex=False)
        gpu = str(gpus[i % len(gpus)]) if gpus else ""
        process = context.Process(target=train_alone, args=(run, gpu, send))
        process.start()
        started.append((process, receive))
    while any(process.is_alive() for process, _ in started) and time.time() < deadline:
        time.sleep(JOIN_POLL_S)
    failures = [ended(process, receive) for process, receive in started]
    outcomes = [outcome(run, failure) for run, failure in zip(configs, failures)]
    for run, found in zip(configs, outcomes):
        log(f"train: {Path(run.out).relative_to(Path(cfg.out).parent)}: {found['words']}")
    winner, basis = pick_winner(outcomes)
    if winner is None:
        lasts = [Path(run.out) / "last.pt" for run in configs]
        last = max(lasts, key=checkpoint_step)
        return "; ".join(f"{Path(run.out).name}: {failure}" for run, failure in zip(configs, failures)), last
    chosen = configs[outcomes.index(winner)]
    log(f"train: the zip is {winner['name']}'s: {basis}")
    shutil.copyfile(chosen.zip, cfg.zip)
    score = Path(chosen.out) / "score.json"
    if score.is_file():
        shutil.copyfile(score, Path(cfg.zip).parent / "score.json")
    return "", Path(chosen.out) / "last.pt"


def train_alone(cfg, gpu: str, send) -> None:
    """One of separate runs, in a process of its own that sees only its GPU; sends "" or why it stopped."""
    if gpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu   # before CUDA starts in this process: its GPU is cuda:0
    send.send(train_here(cfg))


def ended(process, receive) -> str:
    """How a separate run's process ended: "" when it finished, else why (stopped at the deadline if still alive)."""
    if process.is_alive():
        process.kill()
        process.join()
        return "it ran past the budget and was stopped"
    process.join()
    if receive.poll():
        return receive.recv()
    return f"its process died with exit status {process.exitcode}"


def outcome(run, failure: str) -> dict:
    """What one of separate runs left: whether its zip was written, its estimated MiFID on the selected leaderboard
    (from the zip's score.json, else from the selected checkpoint's evaluation) and the words for the log."""
    out = Path(run.out)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()] \
        if (out / "metrics.jsonl").is_file() else []
    end = rows[-1] if rows and rows[-1].get("event") == "end" and not failure else None
    found = {"name": out.name, "zip": end is not None and Path(run.zip).is_file(), "board": "", "score": None,
             "evaluation": None, "words": f"seed {run.seed}: " + (f"ended early: {failure}" if failure else
                                                                    "wrote no zip")}
    if not found["zip"]:
        return found
    found["words"] = f"seed {run.seed}, {end['step']} steps, zip from step {end['zip_step']}"
    selected = end.get("selected")
    if not selected:
        found["words"] += ", not evaluated (no leaderboard weights, or no time for them)"
        return found
    board = found["board"] = selected["leaderboard"]
    found["evaluation"] = selected["mifid"]
    found["words"] += f"; {board} MiFID {selected['mifid']:.2f} at that step's evaluation"
    score = out / "score.json"
    if score.is_file():
        result = json.loads(score.read_text())[board]
        found["score"] = result["mifid"]
        found["words"] += (f", {result['mifid']:.2f} on {result['n_generated']} images of its zip (FID "
                           f"{result['fid']:.2f}, d {result['distance']:.4f})")
    return found


def pick_winner(outcomes: list) -> tuple:
    """(the outcome whose zip is submitted, the words that say why), or (None, "") when no run wrote a zip: the lowest
    MiFID on the selected leaderboard, from the zips' scores when every zip has one, else from the selected
    evaluations; by seed order when the runs were not all scored on one leaderboard."""
    done = [found for found in outcomes if found["zip"]]
    if not done:
        return None, ""
    boards = {found["board"] for found in done}
    for key, what in (("score", "its zip's score"), ("evaluation", "its selected checkpoint's evaluation")):
        if boards != {""} and len(boards) == 1 and all(found[key] is not None for found in done):
            winner = min(done, key=lambda found: found[key])
            figures = ", ".join(f"{found['name']} {found[key]:.2f}" for found in done)
            return winner, f"the lowest {boards.pop()} MiFID by {what} of {len(done)} runs ({figures})"
    return done[0], (f"chosen by seed order, not by score: the {len(done)} runs were not all evaluated on one "
                     f"leaderboard (no weights at hand, or no time for them)")


def zip_from_checkpoint(last: Path, cfg, device: str) -> int:
    """Write cfg.n_images images from the checkpoint `last` to cfg.zip, sampling as training's end does."""
    from kit import checkpoint
    from kit.package import write_zip
    from kit.sample import generate, sampling_options
    state = checkpoint.load(last)
    images, _ = generate(state, cfg.n_images, seed=cfg.seed, truncation=cfg.truncation, device=device,
                         **sampling_options(state))
    write_zip(images, cfg.zip, force=True)
    return state["step"]
'''

SOURCES['kit/losses.py'] = r'''"""GAN losses, each declared with what its step needs: D and G terms of (real_logits, fake_logits), whether G's term
reads D(real), a gradient penalty or weight clipping, the optimiser and the critic steps it wants; and the
regularisers any loss takes on D's side (LeCam, balanced consistency)."""
import functools
from dataclasses import dataclass
from typing import Callable

import torch
from torch.nn import functional as F

from kit.errors import UserError


def bce_d(real, fake, real_label=1.0):
    """Non-saturating GAN, discriminator: BCE with target real_label on real (1, or 0.8 smoothed) and 0 on fake."""
    smoothing = (1 - real_label) * F.softplus(real).mean() if real_label != 1.0 else 0.0
    return real_label * F.softplus(-real).mean() + smoothing + F.softplus(fake).mean()


def bce_g(real, fake):
    """Non-saturating GAN, generator: -log sigmoid(fake)."""
    return F.softplus(-fake).mean()


def lsgan_d(real, fake):
    """Least squares GAN (Mao et al.), discriminator: ½(real - 1)² + ½fake²."""
    return 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake ** 2).mean()


def lsgan_g(real, fake):
    """Least squares GAN, generator: ½(fake - 1)²."""
    return 0.5 * ((fake - 1) ** 2).mean()


def wgan_d(real, fake):
    """Wasserstein critic: fake - real (with a gradient penalty, or with weight clipping)."""
    return fake.mean() - real.mean()


def wgan_g(real, fake):
    """Wasserstein generator: -fake."""
    return -fake.mean()


def hinge_d(real, fake):
    """Hinge loss, discriminator: relu(1 - real) + relu(1 + fake)."""
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def hinge_g(real, fake):
    """Hinge loss, generator: -fake."""
    return -fake.mean()


def ralsgan_d(real, fake):
    """Relativistic average LSGAN, discriminator: ½[(real - mean(fake) - 1)² + (fake - mean(real) + 1)²]."""
    return 0.5 * (((real - fake.mean() - 1) ** 2).mean() + ((fake - real.mean() + 1) ** 2).mean())


def ralsgan_g(real, fake):
    """Relativistic average LSGAN, generator: the discriminator's loss with real and fake swapped."""
    return ralsgan_d(fake, real)


def rpgan_d(real, fake):
    """Relativistic pairing GAN (Jolicoeur-Martineau 2019; R3GAN's loss), discriminator: softplus(-(real - fake)),
    each real image against the fake drawn beside it."""
    return F.softplus(fake - real).mean()


def rpgan_g(real, fake):
    """Relativistic pairing GAN, generator: the discriminator's loss with real and fake swapped."""
    return rpgan_d(fake, real)


@dataclass(frozen=True)
class Loss:
    """A loss and what the training step must do for it."""
    name: str
    d: Callable                      # d(real_logits, fake_logits) -> D's loss
    g: Callable                      # g(real_logits, fake_logits) -> G's loss
    g_needs_real: bool = False       # G's term reads D(real) (relativistic losses)
    gradient_penalty: bool = False   # add cfg.gp_weight × WGAN-GP's penalty to D's loss
    clip: bool = False               # clip D's weights to [-cfg.clip, cfg.clip] after each D step (WGAN)
    optimizer: str = "adam"          # adam | rmsprop (WGAN: momentum-free, as Arjovsky et al.)
    n_critic: int = 1                # D steps per G step when --n-critic is left at 0
    batch_norm_in_d: bool = True     # False: a critic whose gradient or Lipschitz bound batch norm would spoil


LOSSES = {loss.name: loss for loss in (
    Loss("bce", bce_d, bce_g),
    Loss("lsgan", lsgan_d, lsgan_g),
    Loss("wgan-gp", wgan_d, wgan_g, gradient_penalty=True, batch_norm_in_d=False),
    Loss("wgan", wgan_d, wgan_g, clip=True, optimizer="rmsprop", n_critic=5, batch_norm_in_d=False),
    Loss("hinge", hinge_d, hinge_g),
    Loss("ralsgan", ralsgan_d, ralsgan_g, g_needs_real=True),
    Loss("rpgan", rpgan_d, rpgan_g, g_needs_real=True),
)}


def get(name, real_label=1.0) -> Loss:
    """The loss called `name`; real_label < 1 smooths bce's real target (only bce has one)."""
    if name not in LOSSES:
        raise UserError(f"--loss {name} is not known: use one of {', '.join(LOSSES)}")
    if not 0 < real_label <= 1:
        raise UserError(f"--real-label {real_label} must be in (0, 1]: 1 is plain bce, 0.8 the usual smoothing")
    loss = LOSSES[name]
    if real_label != 1.0:
        if name != "bce":
            raise UserError(f"--real-label {real_label} applies to --loss bce only, not {name}")
        loss = Loss(name, functools.partial(bce_d, real_label=real_label), bce_g)
    return loss


def lecam(real, fake, anchor_real, anchor_fake):
    """LeCam regulariser (Tseng et al. 2021): D's outputs on real images kept from rising above the fake anchor, on
    fake images from falling below the real anchor; the anchors are moving averages of D's mean outputs."""
    return F.relu(real - anchor_fake).pow(2).mean() + F.relu(anchor_real - fake).pow(2).mean()


def consistency(logits, again):
    """Balanced consistency regularisation's term (Zhao et al. 2021): the squared difference of D's outputs on two
    augmentations of the same images (zero when the augmentation is the identity)."""
    return (again - logits).pow(2).mean()


def zero_centred_penalty(logits, inputs):
    """R1 on real inputs, R2 on fake ones (Mescheder et al. 2018; R3GAN takes both): the mean over samples of
    ‖∇ₓD(x)‖², from D's outputs on inputs that require a gradient, the graph kept so that D's step differentiates it.
    Unlike gradient_penalty's, this gradient is not taken at the fp16 loss scale: D's outputs sum to far more than
    a mix's, and at the scaler's start (65,536) their gradient overflowed fp16 (a NaN penalty in the first steps)."""
    grad, = torch.autograd.grad(logits.float().sum(), inputs, create_graph=True)
    return grad.float().square().flatten(1).sum(1).mean()


def gradient_penalty(D, real, fake, y=None, scale=1.0):
    """WGAN-GP (Gulrajani et al.): mean over samples of (‖∇D(x̂)‖ - 1)², x̂ a random mix of real and fake.

    `scale` is the fp16 loss scale: the gradient is taken of scaled outputs and divided back, so it does not underflow.
    """
    alpha = torch.rand(len(real), 1, 1, 1, device=real.device, dtype=real.dtype)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    out = D(mixed, y)
    grad, = torch.autograd.grad(out.float().sum() * scale, mixed, create_graph=True)
    norm = (grad.float() / scale).flatten(1).norm(dim=1)
    return ((norm - 1) ** 2).mean()
'''

SOURCES['kit/metrics/__init__.py'] = r'''"""Metrics: feature extractors (FID Inception), FID / memorisation distance / MiFID, the `score` command."""
'''

SOURCES['kit/metrics/evaluate.py'] = r'''"""Both leaderboards' scores where training and kernels need them: an Evaluator that scores generated images
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
'''

SOURCES['kit/metrics/features.py'] = r'''"""Feature extractors, the scorer's seam: uint8 images N×C×H×W -> float32 N×D, with a name, a dim and a weights
fingerprint. Two leaderboard networks: the public one's FID Inception (pool3, 2048-d) and the private one's
NASNet-A Large (final_layer/Mean, 4032-d); each resizes as the organisers did unless told otherwise."""
import functools
import glob
import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from kit.device import resolve_device
from kit.errors import UserError
from kit.files import file_hash
from kit.metrics.resize import tf1_resize_bilinear

RESIZES = ("organisers", "pytorch-fid")   # TF1 legacy bilinear as the competition's scorer, or pytorch-fid's
FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"   # pytorch-fid's port of the TF FID Inception
WEIGHTS_HELP = (f"pass --inception-weights FILE or set DOGKIT_INCEPTION_WEIGHTS to pytorch-fid's {FID_WEIGHTS_NAME} "
                "(in a Kaggle kernel: attach it as a dataset), or run once with internet to download it into "
                "the torch hub cache")
NASNET_HELP = ("pass --nasnet-weights FILE or set DOGKIT_NASNET_WEIGHTS to timm's nasnetalarge.tf_in1k weights "
               "(on a machine with internet: python -c \"import timm; timm.create_model('nasnetalarge', "
               "pretrained=True)\" puts them in timm's cache; in a Kaggle kernel: attach the file as a dataset)")


def given_weights(weights, env: str, what: str, help_text: str):
    """The weights file named by the flag or the environment variable (which must exist), or None."""
    path = weights or os.environ.get(env)
    if path and not Path(path).is_file():
        raise UserError(f"{what} weights {path} not found: {help_text}")
    return Path(path) if path else None


def find_inception_weights(weights=None) -> Path:
    """The FID Inception weights: the given path, $DOGKIT_INCEPTION_WEIGHTS, pytorch-fid's hub cache, or a download."""
    given = given_weights(weights, "DOGKIT_INCEPTION_WEIGHTS", "Inception", WEIGHTS_HELP)
    if given:
        return given
    cached = Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_NAME
    if not cached.is_file():
        try:
            download_inception_weights(cached)
        except Exception as e:
            raise UserError(f"no FID Inception weights ({type(e).__name__} while downloading): {WEIGHTS_HELP}") from None
    return cached


def download_inception_weights(path: Path) -> None:
    """Fetch pytorch-fid's FID Inception weights to `path` (where pytorch-fid itself would put them)."""
    from pytorch_fid.inception import FID_WEIGHTS_URL
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(FID_WEIGHTS_URL, str(path), progress=True)


def find_nasnet_weights(weights=None, download=False) -> Path:
    """NASNet-A Large weights: the given path, $DOGKIT_NASNET_WEIGHTS, or timm's caches (Hugging Face or torch hub),
    into which timm downloads them first when `download` is asked and nothing was found."""
    given = given_weights(weights, "DOGKIT_NASNET_WEIGHTS", "NASNet", NASNET_HELP)
    if given:
        return given
    hf_home = os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface"))
    patterns = [str(Path(hf_home) / "hub" / "models--timm--nasnetalarge.tf_in1k" / "snapshots" / "*" / "model.*"),
                str(Path(torch.hub.get_dir()) / "checkpoints" / "nasnetalarge-*.pth")]
    found = sorted(f for pattern in patterns for f in glob.glob(pattern))
    if not found and download:
        try:
            download_nasnet_weights()
        except Exception as e:
            raise UserError(f"no NASNet-A Large weights ({type(e).__name__} while downloading): "
                            f"{NASNET_HELP}") from None
        return find_nasnet_weights(weights)
    if not found:
        raise UserError(f"no NASNet-A Large weights: {NASNET_HELP}")
    return Path(found[0])


def download_nasnet_weights() -> None:
    """Let timm fetch nasnetalarge.tf_in1k into its cache (Hugging Face's, where find_nasnet_weights looks)."""
    import timm
    timm.create_model("nasnetalarge.tf_in1k", pretrained=True)


def load_state_dict(path: Path, help_text: str) -> dict:
    """A state dict from a torch or safetensors file; anything else is one line naming the file."""
    try:
        if Path(path).suffix == ".safetensors":
            from safetensors.torch import load_file
            state_dict = load_file(str(path))
        else:
            state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"{path} is not a weights file ({type(e).__name__}): {help_text}") from None
    if not isinstance(state_dict, dict):
        raise UserError(f"{path} holds a {type(state_dict).__name__}, not a state dict: {help_text}")
    return state_dict


def load_into(build, path: Path, help_text: str, what: str) -> torch.nn.Module:
    """build()'s network holding the state dict from `path` (strict), in eval mode; a mismatch is one line. The
    network is built on the meta device, so no time goes into initialising weights the file replaces."""
    state_dict = load_state_dict(path, help_text)
    with torch.device("meta"):
        model = build()
    try:
        model.load_state_dict(state_dict, assign=True)
    except RuntimeError as e:
        problem = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise UserError(f"{path} does not match {what} ({problem[:200]}): {help_text}") from None
    return model.eval()


def fid_inception_net() -> torch.nn.Module:
    """pytorch-fid's FID Inception structure (torchvision's Inception3 with the TF graph's blocks), untrained."""
    import torchvision
    from pytorch_fid import inception as fid
    net = torchvision.models.inception_v3(num_classes=1008, aux_logits=False, weights=None, init_weights=False)
    for name, block in (("Mixed_5b", fid.FIDInceptionA(192, pool_features=32)),
                        ("Mixed_5c", fid.FIDInceptionA(256, pool_features=64)),
                        ("Mixed_5d", fid.FIDInceptionA(288, pool_features=64)),
                        ("Mixed_6b", fid.FIDInceptionC(768, channels_7x7=128)),
                        ("Mixed_6c", fid.FIDInceptionC(768, channels_7x7=160)),
                        ("Mixed_6d", fid.FIDInceptionC(768, channels_7x7=160)),
                        ("Mixed_6e", fid.FIDInceptionC(768, channels_7x7=192)),
                        ("Mixed_7b", fid.FIDInceptionE_1(1280)), ("Mixed_7c", fid.FIDInceptionE_2(2048))):
        setattr(net, name, block)
    return net


def random_inception_state_dict(seed=0) -> dict:
    """A randomly initialised FID-Inception state dict (for tests and timing), He-initialised so activations stay
    moderate; it has the keys and shapes of pytorch-fid's weights file."""
    generator = torch.Generator().manual_seed(seed)
    net = fid_inception_net()
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            fan_in = module.weight[0].numel()
            module.weight.data = torch.randn(module.weight.shape, generator=generator) * (2 / fan_in) ** 0.5
    return net.state_dict()


def file_digest(path, size=16) -> str:
    """Hex blake2b digest of a file's bytes."""
    return file_hash(path, hashlib.blake2b(digest_size=size))


@functools.lru_cache(maxsize=8)
def weights_digest(path: str, size: int, mtime_ns: int) -> str:
    """file_digest of a weights file as it was at (size, mtime): each is read once per process, not per network."""
    return file_digest(path)


def check_resize(resize: str) -> str:
    """The resize name, or one line listing the known ones."""
    if resize not in RESIZES:
        raise UserError(f"--resize {resize} is not known: use {' or '.join(RESIZES)}")
    return resize


class Extractor:
    """Batches uint8 images through `network_input` and `network` on one device."""
    name, dim = "", 0

    def __init__(self, path: Path, resize: str, device, batch_size, progress):
        self.resize = check_resize(resize)
        self.device = resolve_device(device)
        self.progress = progress
        self.batch_size = batch_size
        stat = Path(path).stat()
        digest = weights_digest(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
        self.fingerprint = f"{self.name}-{self.resize}-{digest}"

    sizes = ()   # the organisers' resizes, in order; the last is the network's input size

    def network(self, x: torch.Tensor) -> torch.Tensor:
        """Features of N×3×S×S float images in [-1, 1] at the network's input size S."""
        raise NotImplementedError

    def network_input(self, x: torch.Tensor) -> torch.Tensor:
        """N×C×H×W uint8 of any size -> the network's input: resized as the organisers (each of `sizes` in turn,
        TF1 bilinear) or as pytorch-fid (one torch bilinear resize), scaled to [-1, 1]."""
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        x = x.float() / 255
        if self.resize == "organisers":
            for size in self.sizes:
                x = tf1_resize_bilinear(x, size)
        else:
            x = torch.nn.functional.interpolate(x, size=(self.sizes[-1],) * 2, mode="bilinear", align_corners=False)
        return 2 * x - 1

    @torch.no_grad()
    def __call__(self, images) -> np.ndarray:
        """uint8 N×C×H×W (numpy or torch, 1 or 3 channels) -> float32 N×dim numpy."""
        images = torch.as_tensor(images)
        out = np.empty((len(images), self.dim), np.float32)
        for start in tqdm(range(0, len(images), self.batch_size), desc=self.name, unit="batch",
                          disable=not self.progress, leave=False):
            x = self.network_input(images[start:start + self.batch_size].to(self.device, non_blocking=True))
            out[start:start + len(x)] = self.network(x).flatten(1).cpu().numpy()
        return out

    @torch.no_grad()
    def of_originals(self, arrays, total: int) -> np.ndarray:
        """Features of H×W×3 uint8 arrays of any (mixed) sizes, each resized on its own, batched after."""
        rows, batch = [], []
        for array in tqdm(arrays, total=total, desc=f"{self.name} (real)", unit="img", disable=not self.progress,
                          leave=False):
            image = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)[None].to(self.device)
            batch.append(self.network_input(image))
            if len(batch) == self.batch_size:
                rows.append(self.network(torch.cat(batch)).flatten(1).cpu().numpy())
                batch = []
        if batch:
            rows.append(self.network(torch.cat(batch)).flatten(1).cpu().numpy())
        return np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, self.dim), np.float32)


class InceptionFeatures(Extractor):
    """The public leaderboard's network: FID Inception pool3 (2048-d) at 299×299, input scaled to [-1, 1]."""
    name, dim, sizes = "inception-pool3", 2048, (64, 299)   # the scorer fed 64×64 images; the graph resized to 299

    def __init__(self, weights=None, device="auto", batch_size=None, progress=False, resize="organisers"):
        path = find_inception_weights(weights)
        super().__init__(path, resize, device, batch_size, progress)
        net = load_into(fid_inception_net, path, WEIGHTS_HELP, "pytorch-fid's FID Inception")
        self.layers = torch.nn.Sequential(
            net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, torch.nn.MaxPool2d(3, 2),
            net.Conv2d_3b_1x1, net.Conv2d_4a_3x3, torch.nn.MaxPool2d(3, 2),
            net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a, net.Mixed_6b, net.Mixed_6c, net.Mixed_6d,
            net.Mixed_6e, net.Mixed_7a, net.Mixed_7b, net.Mixed_7c, torch.nn.AdaptiveAvgPool2d(1)).to(self.device)
        self.batch_size = batch_size or (500 if self.device.type == "cuda" else 50)

    def network(self, x):
        return self.layers(x)


class NASNetFeatures(Extractor):
    """The private leaderboard's network: NASNet-A Large, the mean over space of the last cell's ReLU (4032-d,
    TF-slim's final_layer/Mean) at 331×331, input scaled to [-1, 1]; timm's port of the TF-slim weights."""
    name, dim, sizes = "nasnet-final-mean", 4032, (331,)    # every image straight to 331, real ones from full size

    def __init__(self, weights=None, device="auto", batch_size=None, progress=False, resize="organisers"):
        import timm
        path = find_nasnet_weights(weights)
        super().__init__(path, resize, device, batch_size, progress)
        net = load_into(lambda: timm.create_model("nasnetalarge", pretrained=False, num_classes=1000), path,
                        NASNET_HELP, "timm's nasnetalarge")
        self.net = net.to(self.device)
        self.batch_size = batch_size or (200 if self.device.type == "cuda" else 8)

    def network(self, x):
        return self.net.forward_features(x).mean((2, 3))
'''

SOURCES['kit/metrics/fid.py'] = r'''"""FID, the memorisation distance d and MiFID as pure tensor functions (float64 where it matters)."""
import math

import torch

MIFID_EPSILON = 1e-15   # the organisers' scorer: fid / (d_thr + 1e-15)


def statistics(features: torch.Tensor):
    """Mean and covariance (ddof=1, like np.cov) of N×D features, in float64 on their device."""
    x = features.double()
    mu = x.mean(0)
    xc = x - mu
    return mu, xc.T @ xc / (len(x) - 1)


def sqrt_psd(sigma: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a covariance via its eigendecomposition (negative round-off clamped to 0)."""
    w, v = torch.linalg.eigh(sigma)
    return (v * w.clamp(min=0).sqrt()) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2, sqrt_sigma2=None, centred1=None) -> float:
    """|mu1-mu2|² + tr S1 + tr S2 - 2 tr sqrt(S1 S2).

    centred1 (the N×D features behind S1, minus mu1), when N <= D: S1 = Xᵀ X / (N-1) has rank < N, and S1 S2 shares
    its non-zero eigenvalues with the N×N matrix X S2 Xᵀ / (N-1), so tr sqrt(S1 S2) costs an N×N eigenvalue problem.
    Otherwise tr sqrt(S1 S2) = sum sqrt(eig(R S1 R)) with R = sqrt(S2) (sqrt_sigma2 when given).
    """
    if centred1 is not None and len(centred1) <= len(mu1):
        m = centred1 @ sigma2 @ centred1.T / (len(centred1) - 1)
    else:
        r = sqrt_psd(sigma2) if sqrt_sigma2 is None else sqrt_sigma2
        m = r @ sigma1 @ r                    # similar to S2 S1, but symmetric PSD: stable eigvalsh
    tr_covmean = torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0).sqrt().sum()
    diff = mu1 - mu2
    # A squared distance: identical statistics give round-off either side of 0, and a negative FID would make MiFID
    # negative (the best score there is) for a memorised set.
    return max(0.0, float(diff @ diff + sigma1.trace() + sigma2.trace() - 2 * tr_covmean))


def frechet_distance_of(features: torch.Tensor, real: dict) -> float:
    """FID of N×D features against real statistics {mu, sigma}; R = sqrt(sigma) is computed once, into `real`, when
    N > D needs it."""
    mu, sigma = statistics(features)
    if len(features) > len(mu) and "sqrt_sigma" not in real:
        real["sqrt_sigma"] = sqrt_psd(real["sigma"])
    return frechet_distance(mu, sigma, real["mu"], real["sigma"], real.get("sqrt_sigma"), features.double() - mu)


def nearest_real(gen, real, chunk=1024, candidates=4):
    """For each generated row whose sum is not 0: min over real rows (sum not 0) of 1 - |cos| (>= 0), and where.

    Searches in float32 a chunk of generated rows at a time (the N×M matrix never exists whole), then
    recomputes the best `candidates` pairs in float64, so the result is the float64 value up to float32 near-ties.
    Returns (distance float64 [K], generated row index [K], real row index [K]).
    """
    gen_index = torch.nonzero(gen.double().sum(1) != 0).squeeze(1)
    real_index = torch.nonzero(real.double().sum(1) != 0).squeeze(1)
    g64 = unit_rows(gen[gen_index])
    r64 = unit_rows(real[real_index])
    r32 = r64.float()
    k = min(candidates, len(r64))
    distances, nearest = [], []
    precision = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")     # true float32 even after kit.train turned TF32 on
    try:
        for start in range(0, len(g64), chunk):
            g = g64[start:start + chunk]
            top = (g.float() @ r32.T).abs_().topk(k, dim=1).indices
            best, which = one_minus_abs_cos(g[:, None, :], r64[top]).min(1)
            distances.append(best)
            nearest.append(top.gather(1, which[:, None]).squeeze(1))
    finally:
        torch.set_float32_matmul_precision(precision)
    if not distances:
        return torch.empty(0, dtype=torch.float64), gen_index, real_index[:0]
    return torch.cat(distances), gen_index, real_index[torch.cat(nearest)]


def one_minus_abs_cos(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """1 - |cos| of unit rows as min(|u - v|², |u + v|²) / 2: never below 0, exactly 0 for equal rows."""
    return torch.minimum((u - v).square().sum(-1), (u + v).square().sum(-1)) / 2


def unit_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit L2 norm in float64."""
    x = x.double()
    return x / x.norm(dim=1, keepdim=True)


def memorisation_distance(nearest_distances: torch.Tensor) -> float:
    """The competition's d from nearest_real's distances: their mean over generated images (nan when there are none)."""
    return float(nearest_distances.mean()) if len(nearest_distances) else math.nan


def thresholded(d: float, threshold: float) -> float:
    """d_thr: d itself when d < threshold, else 1 (nan counts as not below)."""
    return d if d < threshold else 1.0


def mifid(fid: float, d_thr: float) -> float:
    """MiFID = FID / (d_thr + 1e-15), as the organisers compute it."""
    return fid / (d_thr + MIFID_EPSILON)
'''

SOURCES['kit/metrics/guard.py'] = r'''"""The memorisation guard of `make_zip --real`: estimate d on a sample of the images on each leaderboard's network
whose weights are at hand, and warn loudly below that leaderboard's threshold."""
from kit.errors import UserError


def memorisation_guard(images, real, weights=None, device="auto", n=1000, threshold=0.0) -> dict:
    """{leaderboard: d} of the first n images against the real ones, printed, with a loud warning below each
    leaderboard's threshold (or `threshold` when given); a network without weights is skipped and said so."""
    from kit.metrics.score import LEADERBOARDS, score_images
    weights = weights or {}
    shown, found = min(n, len(images)), {}
    for name, (network, default_threshold) in LEADERBOARDS.items():
        limit = threshold or default_threshold
        try:
            extractor = network(weights.get(name), device)
        except (UserError, ImportError) as e:
            print(f"memorisation guard skipped: {e} ({name} leaderboard)")
            continue
        d = score_images(images[:n], real, extractor=extractor, threshold=limit, device=device)["distance"]
        found[name] = d
        if d < limit:
            bar = "!" * 72
            print(f"{bar}\nWARNING: memorisation distance d = {d:.4f} < {limit:g} on {shown:,} images ({name} "
                  f"leaderboard): these images are too close to the training data and MiFID will divide the FID by d."
                  f"\n{bar}")
        else:
            print(f"memorisation guard ({name}): d = {d:.4f} on {shown:,} images, margin {d - limit:+.4f} "
                  f"(penalty starts below {limit:g})")
    return found
'''

SOURCES['kit/metrics/originals.py'] = r'''"""Real images as the organisers' scorer read them: every source image whole, at its own size, decoded to RGB."""
import numpy as np

from kit.data import cache, crops, readers


def original_images(real):
    """(fingerprint of the source files, list of records, one per image file) of a real-image path of any layout."""
    layout = readers.locate(real)
    source = readers.read(layout)
    unique = {}
    for record in source.records:
        unique.setdefault(record.image, record)
    return cache.fingerprint(layout, "originals", 0), list(unique.values())


def decode(record):
    """H×W×3 uint8 pixels of a record's image, or None when it cannot be decoded."""
    try:
        return np.array(crops.decoded(crops.open_image(record), "RGB"))
    except Exception:
        return None
'''

SOURCES['kit/metrics/ranks.py'] = r'''"""Feature work shared between DDP ranks: each rank's contiguous share, rows gathered back in rank order, one
decision and one answer for all ranks. With world == 1 every function is the identity, and torch.distributed is
never touched."""
import torch


def share(items, rank: int, world: int):
    """This rank's contiguous slice of `items` (the first len % world ranks get one more), in order."""
    base, extra = divmod(len(items), world)
    start = rank * base + min(rank, extra)
    return items[start:start + base + (rank < extra)]


def gather_rows(rows: torch.Tensor, world: int) -> torch.Tensor:
    """Every rank's rows (counts may differ), concatenated in rank order on every rank."""
    if world == 1:
        return rows
    import torch.distributed as dist
    counts = [torch.zeros(1, dtype=torch.long, device=rows.device) for _ in range(world)]
    dist.all_gather(counts, torch.tensor([len(rows)], dtype=torch.long, device=rows.device))
    padded = rows.new_zeros((int(max(counts)), *rows.shape[1:]))
    padded[:len(rows)] = rows
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([part[:int(count)] for part, count in zip(parts, counts)])


def all_agree(flag: bool, world: int, device) -> bool:
    """True only when `flag` is true on every rank."""
    if world == 1:
        return flag
    import torch.distributed as dist
    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def from_rank_0(obj, world: int, device):
    """Rank 0's `obj` on every rank (any picklable value)."""
    if world == 1:
        return obj
    import torch.distributed as dist
    box = [obj]
    dist.broadcast_object_list(box, src=0, device=device if torch.device(device).type == "cuda" else None)
    return box[0]
'''

SOURCES['kit/metrics/resize.py'] = r'''"""The organisers' resize: TF1 `resize_bilinear(align_corners=False)`, the legacy mode the competition's scorer used.

For an output index j along an axis of input length n and output length m: src = j·n/m (no half-pixel
centres), i0 = floor(src), i1 = min(i0 + 1, n − 1), w = src − i0, value = x[i0]·(1 − w) + x[i1]·w. Rows
first, then columns (separable; the same numbers as TF's four-corner form), no antialiasing: shrinking
skips pixels exactly as TF did.
"""
import torch


def source_indices(n_in: int, n_out: int, device=None):
    """(i0, i1, w) along one axis: the two source pixels of each output pixel and the weight of the second."""
    src = torch.arange(n_out, dtype=torch.float64, device=device) * (n_in / n_out)
    i0 = src.floor()
    w = (src - i0).float()
    i0 = i0.long()
    return i0, (i0 + 1).clamp(max=n_in - 1), w


def tf1_resize_bilinear(x: torch.Tensor, size) -> torch.Tensor:
    """N×C×H×W -> N×C×size×size (or size=(h, w)) in float32, as TF1 resize_bilinear with align_corners=False."""
    h, w = (size, size) if isinstance(size, int) else size
    x = x.float()
    y0, y1, wy = source_indices(x.shape[2], h, x.device)
    x0, x1, wx = source_indices(x.shape[3], w, x.device)
    rows = x[:, :, y0, :] + (x[:, :, y1, :] - x[:, :, y0, :]) * wy[:, None]
    return rows[:, :, :, x0] + (rows[:, :, :, x1] - rows[:, :, :, x0]) * wx
'''

SOURCES['kit/metrics/score.py'] = r'''"""Score generated images with the competition's metric: FID, memorisation distance d, MiFID (real stats cached)."""
import contextlib
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from kit.data.cache import Dataset, default_dir, is_cache
from kit.errors import UserError
from kit.files import atomic_path, refuse_overwrite
from kit.metrics import fid as F
from kit.device import resolve_device
from kit.metrics.features import RESIZES, InceptionFeatures, NASNetFeatures, find_nasnet_weights
from kit.metrics.originals import decode, original_images
from kit.metrics.ranks import all_agree, gather_rows, share

N_NEAREST_SHOWN = 32


def open_real(real) -> Dataset:
    """A Dataset as is; anything else through kit.data.cache.load_or_prepare as whole images resized to 64×64."""
    if isinstance(real, Dataset):
        return real
    from kit.data.cache import load_or_prepare
    return load_or_prepare(real, crop="whole", size=64)


def content_key(images: np.ndarray, extractor) -> str:
    """Hash of the uint8 images (shape and bytes) and the extractor's fingerprint."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{images.shape}|{extractor.fingerprint}|".encode())
    digest.update(np.ascontiguousarray(images).data)
    return digest.hexdigest()


def compute_statistics(features) -> dict:
    """mu, sigma and the features themselves, as numpy arrays."""
    features = torch.as_tensor(features)
    mu, sigma = F.statistics(features)
    stats = {"mu": mu, "sigma": sigma, "features": features}
    return {key: value.cpu().numpy() for key, value in stats.items()}


def cached_statistics(key: str, extractor, compute, device="cpu", rank=0, world=1) -> dict:
    """The statistics stored under `key` for this extractor, or compute() them once and store them (rank 0 writes;
    under DDP every rank computes when any rank lacks the file, as compute() is collective)."""
    path = default_dir() / f"real-{extractor.name}-{key}.npz"
    try:
        with np.load(path) as z:
            stats = {key: z[key] for key in ("mu", "sigma", "features")}
    except Exception:   # not there yet, or a broken file: compute it again
        stats = None
    if all_agree(stats is not None, world, device):
        return stats
    stats = compute_statistics(compute())
    if rank == 0:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **stats)
    return stats


def shared_features(extractor, images, device, rank, world) -> torch.Tensor:
    """Features of every image on every rank, each rank extracting its share (`images` is indexable)."""
    return gather_rows(torch.as_tensor(extractor(share(images, rank, world))).to(device), world)


def real_statistics(real, extractor, device, rank=0, world=1) -> tuple:
    """(statistics on the device, real uint8 images or None, count) of the real set, computed once, then cached.

    With the organisers' resize and a path that is not a cache, every real image is read whole at its own size
    and resized as their scorer did (never through a 64-px cache); otherwise the images of open_real(real).
    Under DDP (world > 1) each rank extracts its share of the real images and the features are gathered.
    """
    device = resolve_device(device)
    if getattr(extractor, "resize", "") == "organisers" and not isinstance(real, Dataset) and not is_cache(real):
        fingerprint, records = original_images(real)
        key = hashlib.blake2b(f"{fingerprint}|{extractor.fingerprint}".encode(), digest_size=16).hexdigest()
        mine = share(records, rank, world)

        def compute():
            arrays = filter(lambda a: a is not None, map(decode, mine))
            return gather_rows(torch.from_numpy(extractor.of_originals(arrays, len(mine))).to(device), world)
        images = None
    else:
        images = open_real(real).images
        key = content_key(images, extractor)

        def compute():
            return shared_features(extractor, images, device, rank, world)
    stats = cached_statistics(key, extractor, compute, device, rank, world)
    return {key: torch.from_numpy(value).to(device) for key, value in stats.items()}, images, len(stats["features"])


def measure(gen: torch.Tensor, stats: dict, threshold: float) -> tuple:
    """(FID, d, d_thr, MiFID and threshold as a dict; nearest_real's answer) of generated features against real
    statistics on the same device."""
    fid = F.frechet_distance_of(gen, stats)
    nearest = F.nearest_real(gen, stats["features"])
    d = F.memorisation_distance(nearest[0])
    d_thr = F.thresholded(d, threshold)
    return {"fid": fid, "distance": d, "distance_thresholded": d_thr, "mifid": F.mifid(fid, d_thr),
            "threshold": threshold}, nearest


def score_images(images, real, extractor=None, threshold=0.1, device="auto", nearest_png=None) -> dict:
    """FID, d, d_thr and MiFID of uint8 images N×C×H×W against real images (a path or a Dataset).

    extractor: callable uint8 images -> float32 N×D with name, fingerprint, dim (default: the FID Inception).
    nearest_png: a file for the generated images closest to a real one, each beside it.
    """
    start = time.perf_counter()
    device = resolve_device(device)
    images = np.asarray(images.cpu() if hasattr(images, "cpu") else images)
    if len(images) < 2:
        raise UserError(f"{len(images)} generated image(s): FID needs at least 2")
    extractor = extractor or InceptionFeatures(device=device)
    stats, real_images, n_real = real_statistics(real, extractor, device)
    gen = torch.as_tensor(extractor(images)).to(device)
    result, (nearest, gen_index, real_index) = measure(gen, stats, threshold)
    result.update(n_generated=len(images), n_real=n_real, n_generated_zero_features=len(images) - len(gen_index),
                  n_real_zero_features=int((stats["features"].double().sum(1) == 0).sum()),
                  extractor=extractor.name, seconds=round(time.perf_counter() - start, 3))
    if nearest_png:
        real_images = open_real(real).images if real_images is None else real_images
        write_nearest(Path(nearest_png), images, real_images, nearest, gen_index, real_index)
    return result


def write_nearest(path: Path, images, real_images, nearest, gen_index, real_index):
    """The generated images closest to a real one, each followed by that real image, as one grid."""
    from kit.plot import save_grid
    path.parent.mkdir(parents=True, exist_ok=True)
    order = torch.argsort(nearest)[:N_NEAREST_SHOWN].cpu()
    gen_shown = torch.from_numpy(images[gen_index.cpu()[order]])
    real_shown = torch.from_numpy(real_images[real_index.cpu()[order]])
    if real_shown.shape[1:] != gen_shown.shape[1:]:   # e.g. real images kept larger: show them at the generated size
        real_shown = torch.nn.functional.interpolate(real_shown.float(), gen_shown.shape[2:], mode="area").round().byte()
        real_shown = real_shown.expand(-1, gen_shown.shape[1], -1, -1) if real_shown.shape[1] == 1 else real_shown
    save_grid(torch.stack([gen_shown, real_shown], 1).flatten(0, 1), path, nrow=8)


def write_score_json(path, result) -> None:
    """The scores as indented JSON, written atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")


def extractors_at_hand(weights=None, device="auto", resize="organisers", progress=False) -> tuple:
    """({leaderboard: its network, loaded}, {leaderboard: why it was skipped}) for every leaderboard, in order."""
    weights = weights or {}
    extractors, skipped = {}, {}
    for name, (network, _) in LEADERBOARDS.items():
        try:
            extractors[name] = network(weights.get(name), device, progress=progress, resize=resize)
        except (UserError, ImportError) as e:
            skipped[name] = str(e)
    return extractors, skipped


def refuse_report(report, names, force: bool) -> None:
    """Refuse a report folder holding score.json or a leaderboard's nearest-pairs grid already (unless force)."""
    for path in [Path(report) / "score.json"] + [Path(report) / f"nearest-{name}.png" for name in names]:
        refuse_overwrite(path, force)


def score_leaderboards(images, real, extractors: dict, threshold=0.0, device="auto", report=None) -> dict:
    """{leaderboard: score_images's answer} for each extractor given (`threshold` overrides each leaderboard's);
    report: a folder for each leaderboard's nearest pairs (check it first with refuse_report)."""
    results = {}
    for name, extractor in extractors.items():
        nearest_png = report and Path(report) / f"nearest-{name}.png"
        with contextlib.redirect_stdout(sys.stderr):    # what preparing the real set says stays off stdout (--json)
            results[name] = score_images(images, real, extractor, threshold or LEADERBOARDS[name][1], device,
                                         nearest_png)
    return results


def load_generated(path, n, lenient, device):
    """uint8 images from a zip or folder (kit.images.read_images), or n generated in memory from a checkpoint."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist: pass images.zip, a folder of PNGs or a checkpoint")
    if not (path.is_dir() or path.suffix.lower() == ".zip"):
        from kit.sample import generate
        return generate(path, n, device=device)[0].numpy()
    from kit.images import read_images
    images, problems = read_images(path, lenient=lenient)
    if len(images) == 0:
        raise UserError(f"{path} holds no readable images ({'; '.join(problems) or 'empty'}): "
                        "pass images.zip or a folder of 64×64 PNGs")
    if len(images) != n:
        problems = problems + [f"{len(images):,} readable images; {n:,} expected (--n)"]
    if problems and not lenient:
        raise UserError(f"{path}: {'; '.join(problems)}: fix the images, or pass --lenient to score what is readable")
    for problem in problems:
        print(f"warning: {path}: {problem}", file=sys.stderr)
    return images


LEADERBOARDS = {"public": (InceptionFeatures, 0.1), "private": (NASNetFeatures, 0.25)}   # network, threshold
MARGIN_WARNING = 0.02   # a d this close above its threshold is one unlucky zip away from the penalty


def margin_words(d: float, threshold: float) -> str:
    """d − threshold in words: below (penalised), close above, or clear."""
    margin = d - threshold
    if not math.isfinite(margin) or margin < 0:
        return f"{margin:+.4f}  BELOW the threshold: MiFID divides the FID by d"
    if margin < MARGIN_WARNING:
        return f"{margin:+.4f}  within {MARGIN_WARNING} of the threshold: at risk"
    return f"{margin:+.4f}  clear"


def format_table(results: dict) -> str:
    """The scores of each leaderboard ({name: result}) side by side as an aligned table."""
    names = list(results)
    rows = [("", names),
            ("features", [r["extractor"] for r in results.values()]),
            ("FID", [f"{r['fid']:.4f}" for r in results.values()]),
            ("distance d", [f"{r['distance']:.4f}" for r in results.values()]),
            ("threshold", [f"{r['threshold']:g}" for r in results.values()]),
            ("d thresholded", [f"{r['distance_thresholded']:.4f}" for r in results.values()]),
            ("MiFID", [f"{r['mifid']:.4f}" for r in results.values()]),
            ("generated images", [f"{r['n_generated']:,} ({r['n_generated_zero_features']:,} zero)"
                                  for r in results.values()]),
            ("real images", [f"{r['n_real']:,} ({r['n_real_zero_features']:,} zero)" for r in results.values()]),
            ("time", [f"{r['seconds']:.1f} s" for r in results.values()])]
    lines = [f"{name:<18}" + "".join(f"{value:<26}" for value in values) for name, values in rows]
    lines.append("")
    lines += [f"margin d - thr, {name}: {margin_words(r['distance'], r['threshold'])}" for name, r in results.items()]
    lines.append("d = mean over generated of min 1-|cos| to a real image; d_thr = d if d < threshold else 1; "
                 "MiFID = FID / (d_thr + 1e-15)")
    return "\n".join(lines)


def pick_leaderboards(choice: str, nasnet_weights) -> tuple:
    """(leaderboard names, note): `both` when NASNet weights are at hand unless one was asked for."""
    if choice:
        return (["public", "private"] if choice == "both" else [choice]), ""
    try:
        find_nasnet_weights(nasnet_weights)
        return ["public", "private"], ""
    except UserError as e:
        return ["public"], f"note: private leaderboard skipped: {e}"


def add_arguments(parser):
    """Flags of `python -m kit score`."""
    parser.add_argument("generated", metavar="GENERATED", help="images.zip, a folder of images, or a checkpoint")
    parser.add_argument("--real", required=True,
                        help="real images: the competition archives, a folder, or a prepared cache (.npz)")
    parser.add_argument("--leaderboard", choices=("public", "private", "both"), default="",
                        help="public (FID Inception, d threshold 0.1), private (NASNet-A Large, 0.25; what ranked), "
                             "or both (default when the NASNet weights are at hand, else public)")
    parser.add_argument("--inception-weights", metavar="FILE",
                        help="pytorch-fid's FID Inception weights (default: $DOGKIT_INCEPTION_WEIGHTS, "
                             "then the torch hub cache)")
    parser.add_argument("--nasnet-weights", metavar="FILE",
                        help="timm's nasnetalarge weights (default: $DOGKIT_NASNET_WEIGHTS, then timm's cache)")
    parser.add_argument("--resize", choices=RESIZES, default="organisers",
                        help="organisers: TF1 legacy bilinear, real images from full size, as the leaderboards "
                             "(default); pytorch-fid: its torch resize, real images through a 64-px cache")
    parser.add_argument("--threshold", type=float, default=0.0,
                        help="override the memorisation threshold on d (default: 0.1 public, 0.25 private)")
    parser.add_argument("--n", type=int, default=10000,
                        help="images to generate from a checkpoint / expected in a zip or folder (default 10000)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--report", metavar="DIR",
                        help="also write DIR/score.json (what --json prints) and DIR/nearest-LEADERBOARD.png")
    parser.add_argument("--force", action="store_true", help="overwrite an existing report")
    parser.add_argument("--lenient", action="store_true",
                        help="warn about bad images (count, size, mode, format, corrupt) and score what is readable")
    parser.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda, cuda:1, ...")


def main(args) -> int:
    """Read or generate the images, score them on each leaderboard, print the table or JSON."""
    if args.threshold and (not math.isfinite(args.threshold) or args.threshold <= 0):
        raise UserError(f"--threshold {args.threshold} must be a positive number (0.1 public, 0.25 private)")
    names, note = pick_leaderboards(args.leaderboard, args.nasnet_weights)
    if args.report:
        refuse_report(args.report, names, args.force)
    images = load_generated(args.generated, args.n, args.lenient, args.device)
    weights = {"public": args.inception_weights, "private": args.nasnet_weights}
    extractors = {name: LEADERBOARDS[name][0](weights[name], args.device, progress=sys.stderr.isatty(),
                                              resize=args.resize) for name in names}
    results = score_leaderboards(images, args.real, extractors, args.threshold, args.device, args.report)
    printed = results if len(names) > 1 else results[names[0]]
    if args.report:
        write_score_json(Path(args.report) / "score.json", printed)
    if note:
        print(note, file=sys.stderr)
    if args.json:
        print(json.dumps(printed))
    else:
        print(format_table(results))
    return 0
'''

SOURCES['kit/models/__init__.py'] = r'''"""The model families: which networks a `--model` name builds and what its training and sampling need."""
from dataclasses import dataclass
from typing import Callable

from kit import losses
from kit.errors import UserError
from kit.models import biggan, r3gan
from kit.models.dcgan import (CondBatchNorm, Discriminator, Generator, MLPDiscriminator, MLPGenerator,  # noqa: F401
                              dcgan_init)


@dataclass(frozen=True)
class Family:
    """A model family: whether G and D take breed labels, and its builder (cfg, channels, size, n_classes) -> (G, D).
    Whether G's batch-norm statistics are re-collected before sampling is a default (config.MODEL_DEFAULTS)."""
    name: str
    conditional: bool
    builder: Callable
    needs_breeds: bool = False   # refuses data with a single class (a one-class BigGAN is simply unconditional)


def batch_norm_in_d(cfg) -> bool:
    """Whether the loss allows batch norm in D (an unset loss is bce's: it does)."""
    return cfg.loss not in losses.LOSSES or losses.LOSSES[cfg.loss].batch_norm_in_d


def build_dcgan(cfg, channels, size, n_classes):
    """DCGAN, or with n_classes the breed-conditioned DCGAN; D has no BN with wgan/wgan-gp or spectral norm."""
    G = Generator(cfg.z_dim, channels, size, cfg.g_width, n_classes)
    D = Discriminator(channels, size, cfg.d_width, n_classes,
                      batch_norm=not cfg.spectral_norm and batch_norm_in_d(cfg), spectral=cfg.spectral_norm)
    dcgan_init(G)
    dcgan_init(D)
    return G, D


def build_mlp(cfg, channels, size, n_classes):
    """Goodfellow et al.'s fully connected pair."""
    return (MLPGenerator(cfg.z_dim, channels, size, cfg.g_width),
            MLPDiscriminator(channels, size, cfg.d_width, cfg.spectral_norm))


FAMILIES = {f.name: f for f in (
    Family("dcgan", conditional=False, builder=build_dcgan),
    Family("cgan", conditional=True, builder=build_dcgan, needs_breeds=True),
    Family("mlp", conditional=False, builder=build_mlp),
    Family("biggan", conditional=True, builder=biggan.build),
    Family("r3gan", conditional=True, builder=r3gan.build),
)}
MODELS = tuple(FAMILIES)


def family(name: str) -> Family:
    """The family called `name`; an unknown name is one line listing the known ones."""
    if name not in FAMILIES:
        raise UserError(f"--model {name} is not known: use one of {', '.join(MODELS)}")
    return FAMILIES[name]


def build(cfg, image_shape, n_classes=0):
    """The (G, D) pair `cfg.model` names for images of shape (C, H, W); unconditional families get no labels."""
    channels, size, _ = image_shape
    if size not in (32, 64) or image_shape[1] != image_shape[2]:
        raise UserError(f"images of shape {tuple(image_shape)} are not supported: prepare the data as 32×32 or 64×64")
    chosen = family(cfg.model)
    return chosen.builder(cfg, channels, size, n_classes if chosen.conditional else 0)
'''

SOURCES['kit/models/biggan.py'] = r'''"""BigGAN-class networks (Brock et al.), as the competition's winners used them: residual G and D, spectral norm on
every weight, orthogonal initialisation, one self-attention block in each, a hierarchical latent whose chunks join a
shared breed embedding to drive G's conditional batch norm, and a projection discriminator."""
import math

import torch
from torch import nn
from torch.nn import functional as F
from kit.models.spectral import spectral_norm


def sn(module: nn.Module) -> nn.Module:
    """The module with an orthogonally initialised weight under spectral norm."""
    nn.init.orthogonal_(module.weight)
    if getattr(module, "bias", None) is not None:
        nn.init.zeros_(module.bias)
    return spectral_norm(module)


def conv(a: int, b: int, kernel: int = 3) -> nn.Module:
    """A same-padded convolution with spectral norm."""
    return sn(nn.Conv2d(a, b, kernel, padding=kernel // 2))


class SelfAttention(nn.Module):
    """SAGAN self-attention: x + gamma·attention(x), with gamma starting at 0 (the identity at initialisation)."""

    def __init__(self, channels: int):
        super().__init__()
        key, value = max(1, channels // 8), max(1, channels // 2)
        self.theta, self.phi = conv(channels, key, 1), conv(channels, key, 1)
        self.g, self.out = conv(channels, value, 1), conv(value, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        n, c, h, w = x.shape
        theta = self.theta(x).flatten(2)                              # N × C/8 × HW
        phi = F.max_pool2d(self.phi(x), 2).flatten(2)                 # N × C/8 × HW/4
        g = F.max_pool2d(self.g(x), 2).flatten(2)                     # N × C/2 × HW/4
        attention = torch.softmax(theta.transpose(1, 2) @ phi, -1)    # N × HW × HW/4
        o = (g @ attention.transpose(1, 2)).view(n, -1, h, w)
        return x + self.gamma * self.out(o)


class ConditionalBatchNorm(nn.Module):
    """Batch norm whose gain (1 + ·) and bias are linear functions of a conditioning vector."""

    def __init__(self, channels: int, cond_dim: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = sn(nn.Linear(cond_dim, channels, bias=False))
        self.bias = sn(nn.Linear(cond_dim, channels, bias=False))

    def forward(self, x, cond):
        return self.bn(x) * (1 + self.gain(cond))[:, :, None, None] + self.bias(cond)[:, :, None, None]


class UpBlock(nn.Module):
    """Residual up-block: CBN-ReLU-upsample-conv-CBN-ReLU-conv, plus an upsampled 1×1 shortcut."""

    def __init__(self, a: int, b: int, cond_dim: int):
        super().__init__()
        self.bn1, self.bn2 = ConditionalBatchNorm(a, cond_dim), ConditionalBatchNorm(b, cond_dim)
        self.conv1, self.conv2 = conv(a, b), conv(b, b)
        self.shortcut = conv(a, b, 1)

    def forward(self, x, cond):
        h = F.interpolate(F.relu(self.bn1(x, cond)), scale_factor=2)
        h = self.conv2(F.relu(self.bn2(self.conv1(h), cond)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2))


class DownBlock(nn.Module):
    """Residual down-block: (ReLU)-conv-ReLU-conv-avgpool plus a 1×1 shortcut; the first block has no pre-activation."""

    def __init__(self, a: int, b: int, first: bool, downsample: bool = True):
        super().__init__()
        self.first, self.downsample = first, downsample
        self.conv1, self.conv2 = conv(a, b), conv(b, b)
        self.shortcut = conv(a, b, 1) if a != b or downsample else None

    def forward(self, x):
        h = self.conv2(F.relu(self.conv1(x if self.first else F.relu(x))))
        pool = (lambda t: F.avg_pool2d(t, 2)) if self.downsample else (lambda t: t)
        if self.shortcut is None:
            return pool(h) + x
        skip = self.shortcut(pool(x)) if self.first else pool(self.shortcut(x))
        return pool(h) + skip


def multipliers(size: int) -> list:
    """Channel multipliers from 4×4 up to size×size: 64 -> [16, 8, 4, 2, 1], 32 -> [8, 4, 2, 1]."""
    return [2 ** i for i in reversed(range(int(math.log2(size)) - 1))]


class Generator(nn.Module):
    """BigGAN generator: z chunk 0 -> 4×4, then residual up-blocks conditioned on [shared embedding(y), z chunk]."""

    def __init__(self, z_dim=128, channels=3, size=64, width=32, n_classes=1, shared_dim=128, attention=32):
        super().__init__()
        widths = [width * m for m in multipliers(size)]
        n_blocks = len(widths) - 1
        self.z_dim, self.n_classes = z_dim, n_classes
        chunk = z_dim // (n_blocks + 1)
        self.chunks = [z_dim - chunk * n_blocks] + [chunk] * n_blocks     # hierarchical latent
        self.shared = nn.Embedding(max(n_classes, 1), shared_dim)
        nn.init.orthogonal_(self.shared.weight)
        self.start = sn(nn.Linear(self.chunks[0], widths[0] * 16))
        self.blocks = nn.ModuleList(UpBlock(a, b, shared_dim + chunk) for a, b in zip(widths, widths[1:]))
        resolutions = [8 * 2 ** i for i in range(n_blocks)]
        self.attention = nn.ModuleDict({str(i): SelfAttention(widths[i + 1])
                                        for i, r in enumerate(resolutions) if r == attention})
        self.out_bn = nn.BatchNorm2d(widths[-1])
        self.to_image = conv(widths[-1], channels)

    def forward(self, z, y=None):
        y = torch.zeros(len(z), dtype=torch.long, device=z.device) if y is None else y
        parts = torch.split(z, self.chunks, dim=1)
        shared = self.shared(y)
        x = self.start(parts[0]).view(len(z), -1, 4, 4)
        for i, (block, part) in enumerate(zip(self.blocks, parts[1:])):
            x = block(x, torch.cat([shared, part], 1))
            if str(i) in self.attention:
                x = self.attention[str(i)](x)
        return torch.tanh(self.to_image(F.relu(self.out_bn(x))))


class Discriminator(nn.Module):
    """BigGAN discriminator: residual down-blocks (attention at one resolution), ReLU, sum pooling, a linear logit plus
    the projection term embed(y)·h."""

    def __init__(self, channels=3, size=64, width=64, n_classes=1, attention=32):
        super().__init__()
        widths = [width * m for m in reversed(multipliers(size))]     # 64: [1, 2, 4, 8, 16] × width
        self.blocks = nn.ModuleList(DownBlock(a, b, first=i == 0)
                                    for i, (a, b) in enumerate(zip([channels] + widths[:-2], widths[:-1])))
        self.blocks.append(DownBlock(widths[-2], widths[-1], first=False, downsample=False))
        resolutions = [size // 2 ** (i + 1) for i in range(len(widths) - 1)] + [4]
        self.attention = nn.ModuleDict({str(i): SelfAttention(widths[i])
                                        for i, r in enumerate(resolutions) if r == attention and i < len(widths) - 1})
        self.linear = sn(nn.Linear(widths[-1], 1))
        self.embed = sn(nn.Embedding(max(n_classes, 1), widths[-1]))

    def forward(self, x, y=None):
        for i, block in enumerate(self.blocks):
            x = block(x)
            if str(i) in self.attention:
                x = self.attention[str(i)](x)
        h = F.relu(x).sum((2, 3))
        y = torch.zeros(len(x), dtype=torch.long, device=x.device) if y is None else y
        return self.linear(h).view(len(x)) + (self.embed(y) * h).sum(1)


ATTENTION = 32   # the attention resolution of a config that left attn_g / attn_d unset (-1) and was never resolved


def build(cfg, channels: int, size: int, n_classes: int):
    """(G, D) of BigGAN for the config's widths, latent and attention resolutions."""
    attn_g, attn_d = (ATTENTION if a < 0 else a for a in (cfg.attn_g, cfg.attn_d))
    G = Generator(cfg.z_dim, channels, size, cfg.g_width, n_classes, cfg.shared_dim, attn_g)
    D = Discriminator(channels, size, cfg.d_width, n_classes, attn_d)
    return G, D
'''

SOURCES['kit/models/dcgan.py'] = r'''"""DCGAN-class networks: DCGAN, breed-conditioned DCGAN (conditional BN in G, projection D), fully connected MLP."""
import math

import torch
from torch import nn
from kit.models.spectral import spectral_norm as sn


class CondBatchNorm(nn.Module):
    """Batch norm whose scale and shift come from the class label (plain affine batch norm when n_classes is 0)."""

    def __init__(self, channels, n_classes=0):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=n_classes == 0)
        if n_classes:
            self.gamma = nn.Embedding(n_classes, channels)
            self.beta = nn.Embedding(n_classes, channels)
            nn.init.normal_(self.gamma.weight, 1.0, 0.02)
            nn.init.zeros_(self.beta.weight)

    def forward(self, x, y=None):
        x = self.bn(x)
        if y is None:
            return x
        return x * self.gamma(y)[:, :, None, None] + self.beta(y)[:, :, None, None]


class Generator(nn.Module):
    """DCGAN generator: z -> 4×4 -> strided transposed convs, BN, ReLU -> tanh image; conditional BN if n_classes."""

    def __init__(self, z_dim=128, channels=3, size=64, width=64, n_classes=0):
        super().__init__()
        n_up = int(math.log2(size)) - 2
        widths = [width * 2 ** i for i in reversed(range(n_up))]  # e.g. 8w, 4w, 2w, w
        self.z_dim, self.n_classes = z_dim, n_classes
        self.convs = nn.ModuleList([nn.ConvTranspose2d(z_dim, widths[0], 4, 1, 0, bias=False)])
        self.convs.extend(nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False) for a, b in zip(widths, widths[1:]))
        self.norms = nn.ModuleList(CondBatchNorm(c, n_classes) for c in widths)
        self.to_image = nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1)

    def forward(self, z, y=None):
        x = z.view(len(z), -1, 1, 1)
        for conv, norm in zip(self.convs, self.norms):
            x = torch.relu(norm(conv(x), y if self.n_classes else None))
        return torch.tanh(self.to_image(x))


class Discriminator(nn.Module):
    """DCGAN discriminator: strided convs, LeakyReLU, optional BN -> one logit; plus a projection term if n_classes."""

    def __init__(self, channels=3, size=64, width=64, n_classes=0, batch_norm=True, spectral=False):
        super().__init__()
        wrap = sn if spectral else (lambda m: m)
        n_down = int(math.log2(size)) - 2
        widths = [width * 2 ** i for i in range(n_down)]  # e.g. w, 2w, 4w, 8w
        self.convs = nn.ModuleList(wrap(nn.Conv2d(a, b, 4, 2, 1, bias=not batch_norm))
                                   for a, b in zip([channels] + widths, widths))
        self.norms = nn.ModuleList(nn.BatchNorm2d(c) if batch_norm and i > 0 else nn.Identity()
                                   for i, c in enumerate(widths))
        self.to_logit = wrap(nn.Conv2d(widths[-1], 1, 4, 1, 0))
        self.embed = None
        if n_classes:
            self.embed = nn.Embedding(n_classes, widths[-1])
            nn.init.normal_(self.embed.weight, 0.0, 0.02)  # the default N(0, 1) swamps the logit at the start
            self.embed = wrap(self.embed)

    def forward(self, x, y=None):
        for conv, norm in zip(self.convs, self.norms):
            x = nn.functional.leaky_relu(norm(conv(x)), 0.2)
        logit = self.to_logit(x).view(len(x))
        if self.embed is not None:
            logit = logit + (self.embed(y) * x.sum((2, 3))).sum(1)
        return logit


class MLPGenerator(nn.Module):
    """Goodfellow et al.'s fully connected generator: z -> 4w -> 8w -> 16w -> tanh image."""

    def __init__(self, z_dim=128, channels=1, size=32, width=64):
        super().__init__()
        self.z_dim, self.n_classes, self.shape = z_dim, 0, (channels, size, size)
        dims = [z_dim, 4 * width, 8 * width, 16 * width]
        layers = []
        for a, b in zip(dims, dims[1:]):
            layers += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*layers, nn.Linear(dims[-1], channels * size * size), nn.Tanh())

    def forward(self, z, y=None):
        return self.net(z).view(len(z), *self.shape)


class MLPDiscriminator(nn.Module):
    """Fully connected discriminator: image -> 8w -> 4w -> one logit."""

    def __init__(self, channels=1, size=32, width=64, spectral=False):
        super().__init__()
        wrap = sn if spectral else (lambda m: m)
        dims = [channels * size * size, 8 * width, 4 * width]
        layers = []
        for a, b in zip(dims, dims[1:]):
            layers += [wrap(nn.Linear(a, b)), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*layers, wrap(nn.Linear(dims[-1], 1)))

    def forward(self, x, y=None):
        return self.net(x.flatten(1)).view(len(x))


def dcgan_init(module):
    """Radford et al.'s initialisation: conv weights N(0, 0.02), batch-norm scales N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and not hasattr(m, "parametrizations"):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
'''

SOURCES['kit/models/r3gan.py'] = r'''"""The R3GAN pair (Huang, Gokaslan, Kuleshov, Tompkin, NeurIPS 2024) at 32 or 64 px: plain residual networks without
normalisation (inverted bottlenecks with a grouped 3×3 convolution, leaky ReLUs with biases), fix-up initialisation
(each residual branch's last layer starts at zero, the others scaled down by the count of blocks), filtered
resampling, a learned 4×4 basis; breeds through a learned embedding, joined to G's noise and projected in D. Trained
with `--loss rpgan --r1 --r2` (config.MODEL_DEFAULTS)."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

SLOPE = 0.2
GAIN = math.sqrt(2 / (1 + SLOPE ** 2))   # a leaky ReLU's gain: its output keeps its input's variance
BLOCKS = 2          # residual blocks per resolution (the paper's presets)
EXPANSION = 2       # a block's bottleneck is this many times wider than its stage
GROUP_CHANNELS = 16  # channels per group of the grouped convolution (the paper's presets: 1536 in 96 groups)
BRANCH_LAYERS = 3   # linear layers in a residual branch


def msr_(weight: torch.Tensor, gain: float) -> None:
    """He initialisation: normal with std gain / sqrt(fan-in)."""
    with torch.no_grad():
        weight.normal_(0.0, gain / math.sqrt(weight[0].numel()))


def conv(a: int, b: int, kernel: int = 1, groups: int = 1, gain: float = 1.0) -> nn.Conv2d:
    """A bias-free convolution, same padding, He-initialised with `gain` (0: zeros)."""
    layer = nn.Conv2d(a, b, kernel, padding=kernel // 2, groups=groups, bias=False)
    msr_(layer.weight, gain)
    return layer


class BiasedLeakyReLU(nn.Module):
    """A per-channel bias, then a leaky ReLU."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        return F.leaky_relu(x + self.bias.view(1, -1, 1, 1).to(x.dtype), SLOPE)


class ResidualBlock(nn.Module):
    """x + 1×1(act(grouped 3×3(act(1×1(x))))) through a bottleneck EXPANSION times wider; the last 1×1 starts at zero,
    the others at He's gain scaled by blocks^(-1/(2·BRANCH_LAYERS - 2)) (fix-up), so the sum starts as x."""

    def __init__(self, channels: int, n_blocks: int):
        super().__init__()
        hidden = channels * EXPANSION
        gain = GAIN * n_blocks ** (-1 / (2 * BRANCH_LAYERS - 2))
        self.branch = nn.Sequential(conv(channels, hidden, gain=gain), BiasedLeakyReLU(hidden),
                                    conv(hidden, hidden, 3, max(1, hidden // GROUP_CHANNELS), gain),
                                    BiasedLeakyReLU(hidden), conv(hidden, channels, gain=0.0))

    def forward(self, x):
        return x + self.branch(x)


def blur_up(x):
    """Twice the resolution, bilinearly (the [1, 3, 3, 1] filter)."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def blur_down(x):
    """Half the resolution, each output the mean of its 2×2 inputs."""
    return F.avg_pool2d(x, 2)


def stage_widths(width: int, size: int) -> list:
    """Channels at 4×4 up to size×size: twice `width` everywhere but the largest, as the paper's FFHQ-64 preset."""
    n = int(math.log2(size)) - 1
    return [2 * width] * (n - 1) + [width]


class Generator(nn.Module):
    """[z, embed(y)] -> coefficients of a learned 4×4 basis -> per resolution: (1×1 to the new width, upsample) and
    BLOCKS residual blocks -> 1×1 to RGB (no tanh: images are clamped when written)."""

    def __init__(self, z_dim=128, channels=3, size=64, width=32, n_classes=1, embed_dim=128):
        super().__init__()
        widths = stage_widths(width, size)
        n_blocks = BLOCKS * len(widths)
        self.z_dim, self.n_classes = z_dim, n_classes
        self.embed = nn.Embedding(max(n_classes, 1), embed_dim)
        nn.init.normal_(self.embed.weight)
        self.basis = nn.Parameter(torch.randn(widths[0], 4, 4))
        self.coefficients = nn.Linear(z_dim + embed_dim, widths[0], bias=False)
        msr_(self.coefficients.weight, 1.0)
        self.widen = nn.ModuleList(conv(a, b) if a != b else nn.Identity() for a, b in zip(widths, widths[1:]))
        self.stages = nn.ModuleList(nn.Sequential(*(ResidualBlock(w, n_blocks) for _ in range(BLOCKS)))
                                    for w in widths)
        self.to_image = conv(widths[-1], channels)

    def forward(self, z, y=None):
        y = torch.zeros(len(z), dtype=torch.long, device=z.device) if y is None else y
        coefficients = self.coefficients(torch.cat([z, self.embed(y).to(z.dtype)], 1))
        x = self.stages[0](self.basis.unsqueeze(0).to(coefficients.dtype) * coefficients[:, :, None, None])
        for widen, stage in zip(self.widen, self.stages[1:]):
            x = stage(blur_up(widen(x)))
        return self.to_image(x)


class Discriminator(nn.Module):
    """RGB -> 1×1 -> per resolution: BLOCKS residual blocks, (downsample, 1×1 to the new width) -> a depthwise 4×4
    basis and a linear to embed_dim features -> their projection on embed(y), scaled by 1/sqrt(embed_dim)."""

    def __init__(self, channels=3, size=64, width=64, n_classes=1, embed_dim=128):
        super().__init__()
        widths = list(reversed(stage_widths(width, size)))
        n_blocks = BLOCKS * len(widths)
        self.from_image = conv(channels, widths[0])
        self.stages = nn.ModuleList(nn.Sequential(*(ResidualBlock(w, n_blocks) for _ in range(BLOCKS)))
                                    for w in widths)
        self.narrow = nn.ModuleList(conv(a, b) if a != b else nn.Identity() for a, b in zip(widths, widths[1:]))
        self.basis = nn.Conv2d(widths[-1], widths[-1], 4, groups=widths[-1], bias=False)
        msr_(self.basis.weight, 1.0)
        self.features = nn.Linear(widths[-1], embed_dim, bias=False)
        msr_(self.features.weight, 1.0)
        self.embed = nn.Embedding(max(n_classes, 1), embed_dim)
        nn.init.normal_(self.embed.weight, std=1 / math.sqrt(embed_dim))

    def forward(self, x, y=None):
        x = self.from_image(x)
        for stage, narrow in zip(self.stages, self.narrow):
            x = narrow(blur_down(stage(x)))
        h = self.features(self.basis(self.stages[-1](x)).flatten(1))
        y = torch.zeros(len(x), dtype=torch.long, device=x.device) if y is None else y
        return (h * self.embed(y).to(h.dtype)).sum(1)


def build(cfg, channels: int, size: int, n_classes: int):
    """(G, D) of R3GAN for the config's widths and latent; the breed embedding has cfg.shared_dim entries."""
    G = Generator(cfg.z_dim, channels, size, cfg.g_width, n_classes, cfg.shared_dim)
    D = Discriminator(channels, size, cfg.d_width, n_classes, cfg.shared_dim)
    return G, D
'''

SOURCES['kit/models/spectral.py'] = r'''"""Spectral norm (Miyato et al. 2018) with torch's arithmetic, state-dict keys and initialisation, in fewer kernels:
a GAN's eager step on a GPU is bound by its launches (bench/bench_ops.py), and torch's parametrisation spends about
thirty a weight a forward and backward where this one spends about twenty-five."""
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize


def as_matrix(weight: torch.Tensor, dim: int) -> torch.Tensor:
    """The weight as a matrix whose rows run along `dim` (torch's reshape for spectral norm)."""
    return (weight.movedim(dim, 0) if dim else weight).flatten(1)


class DividedBySigma(torch.autograd.Function):
    """W / σ with σ = uᵀ W v for constant unit u and v (σ given); the gradient (G - ⟨G, W/σ⟩ u vᵀ) / σ in closed form,
    four kernels where autograd's chain through the division, the dot product and the matrix-vector product takes
    eight."""

    @staticmethod
    def forward(ctx, weight, u, v, sigma, dim):
        normalised = weight / sigma
        ctx.save_for_backward(normalised, u, v, sigma)
        ctx.dim = dim
        return normalised

    @staticmethod
    def backward(ctx, grad):
        normalised, u, v, sigma = ctx.saved_tensors
        along = torch.vdot(grad.reshape(-1), normalised.reshape(-1))
        matrix = torch.addr(as_matrix(grad, ctx.dim), u * along, v, alpha=-1).div_(sigma)
        if not ctx.dim:
            return matrix.view(grad.shape), None, None, None, None
        return matrix.view(grad.movedim(ctx.dim, 0).shape).movedim(0, ctx.dim), None, None, None, None


class SpectralNorm(nn.Module):
    """The parametrisation W -> W / σ(W), σ estimated by one power iteration a training forward (u and v are buffers
    named as torch names them, so checkpoints of torch's spectral_norm load here and the other way round)."""

    def __init__(self, weight: torch.Tensor, dim: int = 0, eps: float = 1e-12):
        super().__init__()
        if weight.ndim < 2:
            raise ValueError(f"spectral norm needs a weight of two or more dimensions, not {tuple(weight.shape)}")
        self.dim, self.eps = dim % weight.ndim, eps
        h, w = as_matrix(weight, self.dim).shape
        self.register_buffer("_u", F.normalize(weight.new_empty(h).normal_(0, 1), dim=0, eps=eps))
        self.register_buffer("_v", F.normalize(weight.new_empty(w).normal_(0, 1), dim=0, eps=eps))
        for _ in range(15):   # torch's start: fifteen iterations from random vectors
            self.power_iteration(weight)

    @torch.no_grad()
    def power_iteration(self, weight: torch.Tensor) -> tuple:
        """One step of the power method from the stored v; stores the new u and v and returns (u, v, σ = uᵀWv), as
        fresh tensors that autograd may keep while the buffers move on. σ is |Wᵀu|, the norm that normalises v:
        uᵀWv = uᵀWWᵀu / |Wᵀu| = |Wᵀu|, which saves torch's third product and its dot product."""
        matrix = as_matrix(weight, self.dim)
        u = F.normalize(torch.mv(matrix, self._v), dim=0, eps=self.eps)
        along_v = torch.mv(matrix.H, u)
        sigma = torch.linalg.vector_norm(along_v)
        v = along_v / sigma.clamp_min(self.eps)
        torch._foreach_copy_([self._u, self._v], [u, v])
        return u, v, sigma

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if self.training:
            u, v, sigma = self.power_iteration(weight)
        else:
            u, v = self._u, self._v
            with torch.no_grad():
                sigma = torch.vdot(u, torch.mv(as_matrix(weight, self.dim), v))
        return DividedBySigma.apply(weight, u, v, sigma, self.dim)


def spectral_norm(module: nn.Module, dim: int = None) -> nn.Module:
    """`module` with its weight under spectral norm; dim as torch's (1 for transposed convolutions, else 0)."""
    if dim is None:
        dim = 1 if isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)) else 0
    parametrize.register_parametrization(module, "weight", SpectralNorm(module.weight, dim))
    return module
'''

SOURCES['kit/package.py'] = r'''"""Write the competition's zip (10,000 PNG 64×64 RGB) and check any zip against the rules; `kit zip` / make_zip."""
import hashlib
import struct
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from kit.errors import UserError
from kit.files import atomic_path, refuse_overwrite
from kit.images import PNG_MAGIC, read_images, read_members, summarise, workers
from kit.sample import add_sampling_arguments

N_IMAGES = 10000
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member timestamps: the same images give the same zip bytes


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _encode_png(hwc: np.ndarray) -> bytes:
    """H×W×3 uint8 -> PNG bytes: 8-bit RGB, every row Sub-filtered, zlib level 1 (twice PIL's speed, smaller)."""
    h, w, _ = hwc.shape
    flat = hwc.reshape(h, w * 3)
    rows = np.empty((h, w * 3 + 1), np.uint8)
    rows[:, 0] = 1                                            # filter type 1: each byte minus the one 3 to its left
    rows[:, 1:4] = flat[:, :3]
    np.subtract(flat[:, 3:], flat[:, :-3], out=rows[:, 4:])   # uint8 wraps modulo 256, as PNG wants
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)     # bit depth 8, colour type 2 (RGB)
    return (PNG_MAGIC + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), 1))
            + _png_chunk(b"IEND", b""))


def _as_nhwc_rgb(images) -> np.ndarray:
    """N×C×H×W uint8 (numpy or torch, C 1 or 3) -> contiguous N×H×W×3 uint8."""
    if hasattr(images, "detach"):
        images = images.detach().cpu().numpy()
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"write_zip needs uint8 N×C×H×W images with C 1 or 3, got {images.dtype} {images.shape}")
    if images.shape[1] == 1:
        images = np.repeat(images, 3, axis=1)
    return np.ascontiguousarray(images.transpose(0, 2, 3, 1))


def write_zip(images, path, force=False, progress=True) -> Path:
    """Write images as 0.png..N-1.png, encoded in parallel, straight into an uncompressed zip, atomically."""
    path = Path(path)
    refuse_overwrite(path, force)
    hwc = _as_nhwc_rgb(images)
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        with ThreadPoolExecutor(workers()) as pool:
            pngs = pool.map(_encode_png, hwc)
            for i, png in enumerate(tqdm(pngs, total=len(hwc), desc=f"zip {path.name}", unit="img",
                                         disable=not progress, leave=False)):
                info = zipfile.ZipInfo(f"{i}.png", date_time=ZIP_DATE)
                info.external_attr = 0o644 << 16
                zf.writestr(info, png)
    return path


def inspect_zip(path, n_images=N_IMAGES) -> tuple:
    """(problems, warnings): each problem breaks the rules; a warning (repeated images) is legal but costs score."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder: --check takes a zip file (pack a folder with --from-dir)")
    if path.is_file() and not zipfile.is_zipfile(path):
        return [f"{path} is not a zip file"], []
    names, arrays, problems, n_files = read_members(path, lenient=False)
    count = [] if n_files == n_images else [f"{path.name} holds {n_files:,} files; exactly {n_images:,} are needed"]
    first_seen, repeats = {}, []
    for name, array in zip(names, arrays):
        digest = hashlib.blake2b(array.tobytes(), digest_size=16).digest()
        if digest in first_seen:
            repeats.append(("images identical to an earlier one (legal, but they only lower the score)",
                            f"{name} (= {first_seen[digest]})"))
        else:
            first_seen[digest] = name
    return count + summarise(problems), summarise(repeats)


def check_zip(path, n_images=N_IMAGES, strict=False) -> list:
    """Every way the zip breaks the rules, one line each (repeated images too when strict); empty: accepted."""
    problems, warnings = inspect_zip(path, n_images)
    return problems + (warnings if strict else [])


def add_arguments(parser):
    """Flags of `python -m kit zip` and submit/make_zip.py."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="last.pt or best.pt of a run: generate the images from it")
    source.add_argument("--from-dir", metavar="DIR", help="pack a folder of images (converted to 64×64 RGB PNG)")
    source.add_argument("--check", metavar="ZIP", help="only check ZIP against the rules; exit 0 when it passes")
    parser.add_argument("--out", default="images.zip", help="zip to write (default images.zip)")
    parser.add_argument("--n", type=int, default=N_IMAGES, help="images to generate (default 10000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--truncation", type=float, default=0.0, help="truncated sampling; 0 is off")
    add_sampling_arguments(parser)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--real", help="real data (cache or archive) for the memorisation guard")
    parser.add_argument("--inception-weights", help="FID Inception weights file (default: the torch hub cache)")
    parser.add_argument("--nasnet-weights", help="NASNet-A Large weights for the private leaderboard's guard "
                                                 "(default: $DOGKIT_NASNET_WEIGHTS, then timm's cache)")
    parser.add_argument("--guard-n", type=int, default=1000, help="images the memorisation guard scores (default 1000)")
    parser.add_argument("--tune", action="store_true",
                        help="with --checkpoint and --real: draw the zip under the sampling setting (truncation, "
                             "standing statistics, EMA or raw G, class balance) with the lowest estimated MiFID of a "
                             "small grid around the one asked for, each scored on --eval-n images")
    parser.add_argument("--eval-n", type=int, default=2000, help="--tune: images each setting is scored on")
    parser.add_argument("--select", default="", help="--tune: the leaderboard whose MiFID decides (private or "
                                                     "public; default private when its weights are at hand)")
    parser.add_argument("--strict", action="store_true", help="treat repeated images as a problem (Kaggle accepts them)")
    parser.add_argument("--force", action="store_true", help="overwrite --out")


def tuned_setting(state, default, args):
    """The setting of kit.tune's grid around `default` with the lowest estimated MiFID on --select's leaderboard for
    this checkpoint, each setting and the choice printed."""
    from kit import tune
    from kit.jobs import EVAL_SEED
    from kit.metrics.evaluate import Evaluator
    evaluator = Evaluator(args.real, args.device, args.eval_n,
                          weights={"public": args.inception_weights, "private": args.nasnet_weights})
    board = args.select or next((name for name in ("private", "public") if name in evaluator.leaderboards), "")
    if board not in evaluator.leaderboards:
        missing = "; ".join(evaluator.skipped.values()) or f"--select {board} is not private or public"
        raise UserError(f"--tune needs the {board or 'leaderboards'}' network: {missing}")
    scored = tune.tune(state, evaluator, tune.settings(state, default), args.seed + EVAL_SEED, args.device)
    for line in tune.table(scored, board):
        print(f"sampling: {line}")
    setting, scores = tune.choose(scored, board)
    print(f"sampling: the zip is drawn with {setting.words()}: {board} MiFID {scores[board]['mifid']:.2f}, the "
          f"default's {scored[0][1][board]['mifid']:.2f} ({len(scored)} settings, {args.eval_n} images each)")
    return setting


def print_check(name, problems, warnings) -> None:
    """Each problem and each warning on its own line; warnings framed so they cannot be missed."""
    for line in problems:
        print(f"problem: {line}")
    for line in warnings:
        print(f"{'!' * 72}\nWARNING: {line}\n{'!' * 72}")


def main(args) -> int:
    """Generate or pack the images, write the zip, check it; exit 1 when the check finds problems."""
    if args.check:
        problems, warnings = inspect_zip(args.check)
        problems += warnings if args.strict else []
        print_check(args.check, problems, [] if args.strict else warnings)
        verdict = f"REJECTED, {len(problems)} kind(s) of problem" if problems else "OK, would be accepted"
        print(f"{args.check}: {verdict}")
        return 1 if problems else 0
    refuse_overwrite(args.out, args.force)
    if args.tune and not (args.checkpoint and args.real):
        raise UserError("--tune needs --checkpoint (the run to sample) and --real DATA (the competition's images, to "
                        "score each setting against)")
    if args.checkpoint:
        from kit.checkpoint import load
        from kit.sample import generate, sampling_options
        from kit.tune import Sampling
        state = load(args.checkpoint)
        options = sampling_options(state, args.standing_stats, args.class_balance)
        setting = Sampling(args.truncation, max(0, options["standing_stats"]), options["class_balance"])
        if args.tune:
            setting = tuned_setting(state, setting, args)
        images, _ = generate(state, args.n, seed=args.seed, device=args.device, **setting.options())
    else:
        if not Path(args.from_dir).is_dir():
            raise UserError(f"--from-dir {args.from_dir} is not a folder: pass the folder holding your images")
        images, notes = read_images(args.from_dir, lenient=True)
        for line in notes:
            print(f"converted or skipped: {line}")
    if args.real:
        from kit.metrics.guard import memorisation_guard
        memorisation_guard(images, args.real, {"public": args.inception_weights, "private": args.nasnet_weights},
                           device=args.device, n=args.guard_n)
    else:
        print("memorisation guard off: pass --real DATA to estimate d (MiFID's penalty starts below 0.1 on the "
              "public leaderboard, 0.25 on the private one)")
    write_zip(images, args.out, force=args.force)
    problems, warnings = inspect_zip(args.out)
    problems += warnings if args.strict else []
    print_check(args.out, problems, [] if args.strict else warnings)
    size_mb = Path(args.out).stat().st_size / 1e6
    print(f"wrote {args.out}: {len(images):,} images, {size_mb:.1f} MB, "
          f"{'REJECTED by the check' if problems else 'passes the check'}")
    return 1 if problems else 0
'''

SOURCES['kit/plot.py'] = r'''"""PNG pictures: sample grids (torchvision's make_grid) and line charts (matplotlib, drawn off-screen)."""
import math

import numpy as np
import torch
from PIL import Image

from kit.files import atomic_path

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]   # matplotlib's tab10
SMOOTH_FROM = 20      # series with at least this many points get a smoothed line over the faint raw one


def save_grid(images, path, nrow=8, pad=2):
    """Write uint8 images N×C×H×W (numpy or torch, C 1 or 3) as one PNG grid, `nrow` images per row."""
    from torchvision.utils import make_grid
    images = torch.as_tensor(np.asarray(images.cpu() if hasattr(images, "cpu") else images))
    channels = images.shape[1]
    grid = make_grid(images, nrow=nrow, padding=pad, pad_value=0).permute(1, 2, 0).numpy()
    with atomic_path(path) as tmp:
        Image.fromarray(grid[:, :, 0] if channels == 1 else grid).save(tmp, format="PNG")


def smoothed(ys, weight):
    """Exponential moving average of ys with the start-up bias removed (as TensorBoard smooths its curves)."""
    out, average = [], 0.0
    for i, y in enumerate(ys, 1):
        average = weight * average + (1 - weight) * y
        out.append(average / (1 - weight ** i))
    return out


def save_line_chart(series, path, xlabel="", ylabel="", title="", size=(800, 500), log_x=False, log_y=False):
    """Write {name: (xs, ys)} as a line chart PNG (grid, legend; long series smoothed); non-finite points skipped."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    figure = Figure(figsize=(size[0] / 100, size[1] / 100), dpi=100)
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for i, (name, (xs, ys)) in enumerate(series.items()):
        points = [(float(x), float(y)) for x, y in zip(xs, ys) if math.isfinite(x) and math.isfinite(y)
                  and (x > 0 or not log_x) and (y > 0 or not log_y)]
        if not points:
            continue
        colour = tuple(c / 255 for c in COLOURS[i % len(COLOURS)])
        style = "-" if i < len(COLOURS) else "--"    # past ten series the colours repeat, dashed
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        if len(points) >= SMOOTH_FROM:
            axes.plot(xs, ys, color=colour, alpha=0.3, linewidth=1)
            axes.plot(xs, smoothed(ys, 1 - 10 / len(ys)), color=colour, linestyle=style, linewidth=2, label=name)
        else:
            axes.plot(xs, ys, color=colour, linestyle=style, linewidth=2, marker="o", markersize=4, label=name)
    axes.set_xscale("log" if log_x else "linear")
    axes.set_yscale("log" if log_y else "linear")
    axes.grid(True, which="major", alpha=0.4)
    if log_x or log_y:
        axes.grid(True, which="minor", alpha=0.15)
    axes.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if axes.lines:
        axes.legend(fontsize="small")
    figure.tight_layout()
    canvas.draw()
    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(canvas.buffer_rgba())[:, :, :3]).save(tmp, format="PNG")


def save_progress_chart(history, selected_step, path, title=""):
    """Write a run's evaluation rows ({"step", LEADERBOARD: {mifid, fid, d, threshold}}) as one PNG: estimated MiFID,
    FID and d of each leaderboard over steps (one panel each), each leaderboard's memorisation threshold on d's
    panel, and the selected checkpoint's step marked (None: none)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    boards = list(dict.fromkeys(name for row in history for name, value in row.items()
                                if isinstance(value, dict) and "mifid" in value))
    thresholds = {board: next(row[board]["threshold"] for row in history if board in row) for board in boards}
    figure = Figure(figsize=(8, 9), dpi=100)
    canvas = FigureCanvasAgg(figure)
    panels = figure.subplots(3, 1, sharex=True)
    for axes, (key, label) in zip(panels, (("mifid", "estimated MiFID"), ("fid", "FID"), ("d", "d (1 - |cos|)"))):
        for i, board in enumerate(boards):
            colour = tuple(c / 255 for c in COLOURS[i % len(COLOURS)])
            rows = [row for row in history if board in row and math.isfinite(row[board][key])]
            axes.plot([row["step"] for row in rows], [row[board][key] for row in rows], color=colour, marker="o",
                      markersize=4, linewidth=2, label=board)
            if key == "d":
                axes.axhline(thresholds[board], color=colour, linestyle="--", linewidth=1,
                             label=f"{board} threshold {thresholds[board]:g}")
        if selected_step is not None:
            axes.axvline(selected_step, color="black", linestyle=":", linewidth=1.5, label="selected")
        axes.set_ylabel(label)
        axes.grid(True, alpha=0.4)
        if axes.lines:
            axes.legend(fontsize="small")
    panels[0].set_title(title)
    panels[-1].set_xlabel("step")
    figure.tight_layout()
    canvas.draw()
    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(canvas.buffer_rgba())[:, :, :3]).save(tmp, format="PNG")
'''

SOURCES['kit/progress.py'] = r'''"""What a person sees of a run: a tqdm bar on a terminal; in a log file (a Kaggle kernel) one line a minute."""
import sys
import time

from tqdm import tqdm

LINE_EVERY_S = 60.0   # seconds between progress lines when stderr is not a terminal


def clock(seconds: float) -> str:
    """Seconds as H:MM:SS."""
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """Steps done, with the latest losses, images/s and budget left; quiet on every rank but the first."""

    def __init__(self, total, initial, enabled=True, stream=None, interval=LINE_EVERY_S):
        self.stream = stream or sys.stderr
        self.enabled, self.interval = enabled, interval
        self.terminal = enabled and self.stream.isatty()
        self.step, self.total, self.stats, self.last_line = initial, total, {}, time.monotonic()
        self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, file=self.stream,
                        disable=not self.terminal)

    def update(self, steps: int, **stats) -> None:
        """Count `steps` more; stats (d, g, img_s, left in seconds) replace the shown ones when given."""
        self.step += steps
        self.stats.update(stats)
        self.bar.update(steps)
        if stats and self.terminal:
            self.bar.set_postfix(d=f"{self.stats['d']:.3f}", g=f"{self.stats['g']:.3f}",
                                 img_s=f"{self.stats['img_s']:.0f}", left=clock(self.stats["left"]))
        now = time.monotonic()
        if self.enabled and not self.terminal and self.stats and now - self.last_line >= self.interval:
            self.last_line = now
            of = f"/{self.total}" if self.total else ""
            print(f"step {self.step}{of}  loss D {self.stats['d']:.4f}  G {self.stats['g']:.4f}  "
                  f"{self.stats['img_s']:.0f} images/s  budget left {clock(self.stats['left'])}",
                  file=self.stream, flush=True)

    def restart_at(self, step: int) -> None:
        """After a rollback: count again from `step`."""
        self.step = step
        self.bar.reset(total=self.total)
        self.bar.update(step)

    def close(self) -> None:
        self.bar.close()
'''

SOURCES['kit/sample.py'] = r'''"""Generate images from a checkpoint (EMA weights) and write them as one PNG grid."""
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
'''

SOURCES['kit/train.py'] = r'''"""Train a GAN on a prepared cache within a hard wall-clock budget, read top to bottom: open the run, build the
Trainer (kit.trainer: the step) and the Run (kit.jobs: periodic work and the record), reserve the end's time
(kit.budget), loop, then write the images and the zip from the selected checkpoint, and score it."""
import json
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from kit import checkpoint, losses, models, tune
from kit.budget import Budget
from kit.config import TrainConfig, add_arguments as add_config_arguments, asdict, for_device, from_args, from_dict
from kit.data import cache
from kit.device import resolve_device
from kit.errors import UserError
from kit.files import refuse_overwrite
from kit.package import write_zip
from kit.jobs import EVAL_SEED, Run, optional
from kit.metrics.ranks import from_rank_0
from kit.plot import save_line_chart
from kit.progress import Progress
from kit.sample import STATS_BATCH, generate, load_generator
from kit.trainer import Trainer, fused_optimisers, set_rng_state

# Fields a resumed run takes from the command line; every other field comes from the checkpoint.
RUN_FIELDS = ("data", "out", "budget", "budget_from", "device", "threads", "compile", "cuda_graph", "checkpoint_every",
              "sample_every", "log_every", "n_images", "zip", "truncation", "standing_stats", "class_balance", "tune", "resume",
              "max_steps", "force", "eval_every", "eval_n", "select", "score_n", "real")
MAX_ROLLBACKS = 5       # NaN rollbacks in a row before giving up
FP16_ROLLBACKS = 2      # rollbacks in a row under fp16 before the run goes on in fp32 (bf16 where the GPU has it)
FIRST_STEPS = 100       # steps after the start in which a compile/capture failure or an OOM falls back
TAIL_SAFETY = 1.5       # the measured costs of the end are multiplied by this ...
TAIL_MARGIN_S = 3.0     # ... and this is added
TAIL_PROBES = (8, 32, 256)   # images generated and zipped at the start: a warm-up, then two timed probes
SELECTIONS = ("private", "public", "last")


def pick_precision(name, device):
    """The autocast dtype (None is fp32): auto is bf16 on GPUs that have it, fp16 on older GPUs, fp32 on CPU;
    fp16 runs on the CPU too (with a grad scaler), which is how the T4 path is tested without a GPU."""
    if name == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.get_device_capability(device) >= (8, 0) else torch.float16  # T4, P100: fp16
    table = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if name not in table:
        raise UserError(f"--precision {name} is not known: use auto, fp32, bf16 or fp16")
    return table[name]


def graph_allowed(cfg, device, dtype, world):
    """Whether the step is captured in a CUDA graph: asked for (the default), one CUDA process, no torch.compile
    (whose graphs are its own), and fp16 only with Adam, fused on a GPU: its grad scaler's inf check and skipped step
    stay on the device there, where RMSprop's (wgan) read the inf check on the host."""
    fp16_on_device = dtype is not torch.float16 or fused_optimisers(losses.get(cfg.loss).optimizer, device)
    return cfg.cuda_graph and device.type == "cuda" and fp16_on_device and world == 1 and not cfg.compile


def setup_distributed(device_name):
    """(rank, world size, device); under torchrun one process per GPU (gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device_name)
    if world == 1:
        return 0, 1, device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return torch.distributed.get_rank(), world, device


def open_data(cfg, rank, world):
    """The training Dataset; under DDP rank 0 prepares it first so the others only read the cache."""
    if not cfg.data:
        raise UserError("no --data given: pass a cache made by `kit prepare`, or a folder/archive to prepare")
    if world > 1 and rank > 0:
        torch.distributed.barrier()   # wait until rank 0 has prepared the cache
    dataset = cache.load_or_prepare(cfg.data, crop=cfg.crop)
    if world > 1 and rank == 0:
        torch.distributed.barrier()
    if len(dataset) == 0:
        raise UserError(f"{cfg.data} holds no images: check the path, or prepare it again with `kit prepare`")
    return dataset


def measure_tail(state, cfg, device):
    """(fixed seconds, seconds per image) of the end's images, on warm probes in a temporary folder: building G is
    timed on its own, then, after a warm-up (thread start-up, first allocations, matplotlib's import by the loss
    chart), two sizes generated and zipped with that G separate the per-image cost from the rest."""
    warm, small, large = (min(k, max(1, cfg.n_images)) for k in TAIL_PROBES)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.monotonic()
        built = load_generator(state, device)
        build_s = time.monotonic() - t

        def seconds(k):
            t = time.monotonic()
            images, _ = generate(state, k, device=device, class_balance=cfg.class_balance, built=built)
            write_zip(images, Path(tmp) / "probe.zip", force=True, progress=False)
            return time.monotonic() - t

        optional("the loss chart's warm-up", save_line_chart, {}, Path(tmp) / "chart.png")
        seconds(warm)
        t_small, t_large = seconds(small), seconds(large)
    per_image = max(t_large - t_small, 0.0) / max(large - small, 1)
    return build_s + max(t_small - per_image * small, 0.0), per_image


def tail_seconds(fixed, per_image, cfg):
    """The images' share of the end's reserve: the fixed cost, n_images generated and zipped, plus the standing
    statistics' batches (generated, not zipped), times the safety factor, plus the margin."""
    images = cfg.n_images + (max(0, cfg.standing_stats) * STATS_BATCH if cfg.n_images else 0)
    return (fixed + per_image * images) * TAIL_SAFETY + TAIL_MARGIN_S


def read_metrics(path):
    """The loss lines of metrics.jsonl as {name: (steps, values)}."""
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "loss_d" in r]
    return {name: ([r["step"] for r in rows], [r[key] for r in rows])
            for name, key in (("D", "loss_d"), ("G", "loss_g"))}


def open_run(cfg, device):
    """(cfg with the checkpoint's fields when resuming and device defaults filled, the resumed checkpoint or None)."""
    last = Path(cfg.out) / "last.pt"
    resumed = None
    if cfg.resume:
        if not last.exists():
            raise UserError(f"--resume given but {last} does not exist: leave out --resume to start a new run")
        resumed = checkpoint.load(last)
        cfg = from_dict({**resumed["config"], **{k: getattr(cfg, k) for k in RUN_FIELDS}})
    elif last.exists() and not cfg.force:
        raise UserError(f"{last} exists: pass --resume to continue that run, or --force to start a new one over it")
    cfg = for_device(cfg, device.type)   # the checkpoint stores the concrete widths, learning rates, loss and betas
    if cfg.zip and not cfg.resume:
        refuse_overwrite(cfg.zip, cfg.force)
    if cfg.batch_size < 1 or cfg.n_critic < 0:
        raise UserError(f"--batch-size {cfg.batch_size} must be at least 1 and --n-critic {cfg.n_critic} at least 0")
    if cfg.select not in ("",) + SELECTIONS:
        raise UserError(f"--select {cfg.select} is not known: use private, public or last")
    if cfg.lecam < 0 or cfg.cr < 0:
        raise UserError(f"--lecam {cfg.lecam:g} and --cr {cfg.cr:g} must be at least 0 (0 turns each off; -1 leaves "
                        f"--lecam to the model)")
    if cfg.r1 < 0 or cfg.r2 < 0:
        raise UserError(f"--r1 {cfg.r1:g} and --r2 {cfg.r2:g} must be at least 0 (0 turns each off; -1 leaves them to "
                        f"the model)")
    if cfg.eval_n < 2:
        raise UserError(f"--eval-n {cfg.eval_n} must be at least 2 (FID needs two images)")
    return cfg, resumed


def synced(losses, flags, world):
    """(D loss sum, G loss sum, flags) with one host sync; under DDP rank 0's flags decide for everyone."""
    values = torch.cat([losses, torch.tensor([float(f) for f in flags], device=losses.device)])
    if world > 1:
        torch.distributed.broadcast(values[2:], 0)
        torch.distributed.all_reduce(values[:2])
    d_sum, g_sum, *rest = values.tolist()
    return d_sum, g_sum, [bool(f) for f in rest]


def real_images(cfg, dataset):
    """Where the real images for evaluation are: --real, else what DATA was prepared from; "" when unknown."""
    if cfg.real:
        return cfg.real
    source = dataset.report.get("data", "")
    return source if source and Path(source).exists() else ("" if cache.is_cache(cfg.data) else cfg.data)


def open_evaluator(cfg, real, device, rank, world):
    """(the Evaluator or None, the selection: private, public or last, and a line on what is not evaluated)."""
    wanted = cfg.eval_every not in ("0", "") or cfg.score_n > 0
    evaluator, why = None, ""
    if wanted and not real:
        why = f"no real images to evaluate against ({cfg.data} does not say where it was prepared from): pass --real"
    elif wanted:
        from kit.metrics.evaluate import Evaluator
        evaluator = Evaluator(real, device, cfg.eval_n, rank=rank, world=world)   # the ranks share its feature work
        skipped = "; ".join(f"{name}: {reason}" for name, reason in evaluator.skipped.items())
        if not evaluator.leaderboards:
            evaluator, why = None, f"no leaderboard weights at hand, so no evaluation ({skipped})"
        elif skipped:
            why = f"evaluating {', '.join(evaluator.leaderboards)} only ({skipped})"
        else:
            why = ""
    at_hand = evaluator.leaderboards if evaluator else ()
    select = cfg.select or next((name for name in ("private", "public") if name in at_hand), "last")
    if select != "last" and select not in at_hand:
        raise UserError(f"--select {select} needs that leaderboard's network, which is not at hand ({why}): "
                        f"attach its weights or pass --select last")
    return evaluator, select, why


def train(cfg: TrainConfig) -> Path:
    """Train until cfg.max_steps or the budget's end, then checkpoint, zip cfg.n_images from the selected checkpoint
    and score the zip when the leaderboards' weights are at hand; returns OUT/last.pt."""
    start = time.monotonic() - (max(0.0, time.time() - cfg.budget_from) if cfg.budget_from else 0.0)
    rank, world, device = setup_distributed(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    main = rank == 0
    cfg, resumed = open_run(cfg, device)
    out, last = Path(cfg.out), Path(cfg.out) / "last.pt"
    zip_path = Path(cfg.zip) if cfg.zip else out / "images.zip"
    dtype = pick_precision(cfg.precision, device)
    use_graph = graph_allowed(cfg, device, dtype, world)
    if cfg.cuda_graph and not use_graph and main and device.type == "cuda":
        tqdm.write("the CUDA graph is off: it needs one GPU process, bf16 or fp32 precision and no --compile")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True

    # --- data on the device, the trainer (models, optimisers, scalers, EMA), the evaluator ---
    dataset = open_data(cfg, rank, world)
    classes, family = list(dataset.classes), models.family(cfg.model)
    if family.needs_breeds and len(classes) < 2:
        raise UserError(f"--model {cfg.model} needs breed labels, but {cfg.data} has {len(classes)} class: "
                        "use --model dcgan or biggan")
    images = torch.from_numpy(dataset.images).to(device)   # uint8 N×C×H×W, resident
    trainer = Trainer(cfg, images, torch.from_numpy(dataset.labels).to(device), len(classes), device, dtype,
                      use_graph, rank, world)
    record = {"classes": classes, "image_shape": tuple(images.shape[1:]),
              "label_counts": np.bincount(dataset.labels, minlength=len(classes)).tolist()}
    if resumed:
        if tuple(resumed["image_shape"]) != record["image_shape"] or list(resumed["classes"]) != classes:
            raise UserError(f"{last} was trained on other data (images {tuple(resumed['image_shape'])}, "
                            f"{len(resumed['classes'])} classes): pass the same --data, or start a new --out")
        trainer.restore(resumed)
        if world == 1:
            set_rng_state(resumed["rng"])
        else:  # one saved RNG state cannot serve every rank: reseed each from the step
            torch.manual_seed(cfg.seed + rank + 1000003 * trainer.step_count)
    real = real_images(cfg, dataset)
    evaluator, select, why = open_evaluator(cfg, real, device, rank, world)
    if why and main:
        tqdm.write(why)

    # --- the budget: measure what the end needs (images, zip, checkpoint, evaluation, score) before training ---
    budget = Budget(cfg, start, device.type)
    out.mkdir(parents=True, exist_ok=True)
    run = Run(trainer, budget, out, record, resumed, start, main, world, rank, evaluator, select)
    fixed, per_image = measure_tail(run.good, cfg, device) if main else (0.0, 0.0)
    reserve = tail_seconds(fixed, per_image, cfg)
    if main and not budget.training_only and time.monotonic() + reserve >= start + budget.seconds:
        raise UserError(f"--budget {cfg.budget} leaves no time to train: writing {cfg.n_images} images needs "
                        f"about {reserve:.0f} s; raise --budget or lower --n-images")
    t = time.monotonic()
    run.save()
    checkpoint_s = time.monotonic() - t
    reserve += 2 * checkpoint_s   # the final checkpoint, twice over
    precision = str(dtype or "fp32").replace("torch.", "")
    run.log({"event": "start", "step": trainer.step_count, "resumed": bool(resumed), "world_size": world,
             "device": str(device), "precision": precision, "cuda_graph": use_graph, "select": select,
             "evaluating": list(evaluator.leaderboards) if evaluator else [], "tail_fixed_s": round(fixed, 3),
             "tail_per_image_s": round(per_image, 6), "checkpoint_s": round(checkpoint_s, 3)})
    run.say(f"training {cfg.model} ({cfg.loss}) on {device}, {precision}, {world} process(es); batch "
            f"{cfg.batch_size} per process ({cfg.batch_size * world} in all); lr G {cfg.lr_g:g} D {cfg.lr_d:g}; "
            f"{trainer.n_critic} D step(s) per G step")
    tuning = False
    if evaluator:
        if not run.history:
            run.evaluate(time.monotonic())   # the first row, and what an evaluation costs
        settings = len(tune.settings(run.good, sampling_of(cfg))) - 1 if cfg.tune and select != "last" else 0
        tuning = settings > 0 and world == 1   # the tuning's evaluations run on rank 0 alone
        for tuned in ((settings, 0) if tuning else (0,)):   # the last evaluation, the score, the settings' evaluations
            evaluating = TAIL_SAFETY * run.evaluation_seconds() * (1 + cfg.score_n / evaluator.n + tuned)
            fits = from_rank_0(budget.training_only or time.monotonic() + reserve + evaluating < start + budget.seconds,
                               world, device)
            if fits:
                break
        tuning = tuning and tuned > 0
        if fits:
            reserve += evaluating
        else:
            run.stop_evaluating(f"evaluation off: the last evaluation and the score need about {evaluating:.0f} s "
                                f"more than the budget holds; the zip comes from the last checkpoint")
        if cfg.tune and settings and not tuning and fits:
            run.say("sampling not tuned: " + ("its evaluations run in one process" if world > 1 else
                                               "its evaluations need more time than the budget holds"))
    budget.reserve(reserve)

    # --- the loop: a step, and every budget.check_every steps one host sync, the NaN check and the due jobs ---
    progress = Progress(cfg.max_steps or None, trainer.step_count, enabled=main)
    jobs, first_step, since_check = run.jobs(), trainer.step_count, 0
    try:
        while True:
            if budget.check_due(since_check):
                now = time.monotonic()
                budget.checked(since_check, now)
                stop = trainer.step_count >= cfg.max_steps > 0 or budget.out_of_time(now)
                due = [stop] + [job.due(now) or (stop and job.at_stop) for job in jobs]
                d_sum, g_sum, (stop, *due) = synced(trainer.take_losses(), due, world)
                if not (math.isfinite(d_sum) and math.isfinite(g_sum)):
                    progress.restart_at(after_nan(trainer, run))
                    run.restart_window(time.monotonic())
                    since_check = 0
                    budget.checked(0, time.monotonic())
                    continue
                run.add_losses(d_sum, g_sum, since_check)
                for job, is_due in zip(jobs, due):
                    if is_due:
                        job.run(now)
                progress.update(since_check, **run.shown)
                since_check = 0
                if stop:
                    break
            try:
                trainer.step()
            except Exception as error:   # noqa: BLE001 - fall_back re-raises what it cannot recover from
                fall_back(error, trainer, run, trainer.step_count - first_step < FIRST_STEPS and world == 1)
                since_check = 0
                continue
            since_check += 1
    finally:
        progress.close()

    # --- the end: loss curve, images and zip from the selected checkpoint, the score (all inside the budget) ---
    if main:
        finish(run, zip_path, real, start, tuning)
    if world > 1:
        torch.distributed.destroy_process_group()
    return last


def sampling_of(cfg) -> tune.Sampling:
    """The sampling setting the run's flags ask for."""
    return tune.Sampling(cfg.truncation, max(0, cfg.standing_stats), cfg.class_balance)


def tuned_sampling(run, chosen) -> tuple:
    """(the setting the zip is drawn with, what the end row says of it): with tuning on, the best of kit.tune's grid
    for the chosen checkpoint on the selected leaderboard (the default's scores are its evaluation's: same noise),
    each setting a line and the choice beside the default's; else the run's own."""
    cfg, board = run.trainer.cfg, run.select
    default = sampling_of(cfg)
    if not (run.best and run.evaluator and chosen["step"] == run.best["step"]):
        return default, {}
    scored = tune.tune(chosen, run.evaluator, tune.settings(chosen, default), cfg.seed + EVAL_SEED,
                       run.trainer.device, run.best["scores"])
    for line in tune.table(scored, board):
        run.say(f"sampling: {line}")
    setting, scores = tune.choose(scored, board)
    said = {"sampling": asdict(setting), "sampling_mifid": scores[board]["mifid"],
            "default_mifid": scored[0][1][board]["mifid"], "settings": len(scored)}
    run.log({"event": "tuning", "step": chosen["step"], "leaderboard": board,
             "settings": [{**asdict(s), **{name: r[name] for name in r}} for s, r in scored]})
    run.say(f"sampling: the zip is drawn with {setting.words()}: {board} MiFID {said['sampling_mifid']:.2f}, the "
            f"default's {said['default_mifid']:.2f} (the lowest of {len(scored)} settings whose d is not under the "
            f"threshold where any is not)")
    return setting, said


def finish(run, zip_path, real, start, tuning=False):
    """The end of a run: the loss chart, the sampling setting (tuned when asked), the zip from the selected
    checkpoint, the score, the end row and line."""
    trainer, budget, out = run.trainer, run.budget, run.out
    cfg, t = trainer.cfg, time.monotonic()
    optional("the loss chart", save_line_chart, read_metrics(out / "metrics.jsonl"), out / "losses.png", "step",
             "loss", f"{cfg.model} {cfg.loss}")
    chosen = run.chosen()
    setting, said = tuned_sampling(run, chosen) if tuning else (sampling_of(cfg), {})
    images, _ = generate(chosen, cfg.n_images, seed=cfg.seed, device=trainer.device, **setting.options())
    write_zip(images, zip_path, force=True)
    end = {"event": "end", "step": trainer.step_count, "zip_step": chosen["step"],
           "tail_s": round(time.monotonic() - t, 2), "tail_reserved_s": round(budget.tail, 1),
           "budget_s": round(budget.seconds, 1), "zip": str(zip_path), **said}
    if run.best and run.select != "last":
        end.update(selected=run.best, last=run.history[-1])
        run.say(f"the zip comes from step {chosen['step']} ({run.select} MiFID {run.best['mifid']:.2f}, the lowest "
                f"of {len(run.history)} evaluations); the last evaluated step, {run.history[-1]['step']}, had "
                f"{run.select} MiFID {run.history[-1][run.select]['mifid']:.2f}")
    if run.evaluator and cfg.score_n > 0:
        end["score"] = final_score(zip_path, real, cfg, run, budget, trainer.device, said)
    run.log({**end, "wall_s": round(time.monotonic() - start, 2)})
    run.close()
    tqdm.write(f"{trainer.step_count} steps; wrote {out / 'last.pt'} and {cfg.n_images} images from step "
               f"{chosen['step']} to {zip_path} ({time.monotonic() - start:.0f} s of the {budget.seconds:.0f} s budget)")


def final_score(zip_path, real, cfg, run, budget, device, sampling=None):
    """Score the zip's first score_n images with each leaderboard at hand into score.json beside it, when the budget
    still has the time; the path written, or why not."""
    from kit.metrics.evaluate import score_zip, write_score_json
    need = TAIL_SAFETY * run.evaluation_seconds() * cfg.score_n / run.evaluator.n
    left = budget.start + budget.seconds - time.monotonic()
    if need > left:
        run.say(f"score skipped: scoring {cfg.score_n} images needs about {need:.0f} s and {left:.0f} s are left")
        return f"skipped: needs about {need:.0f} s, {left:.0f} s left"
    result = score_zip(zip_path, real, n=cfg.score_n, device=device)
    path = Path(zip_path).parent / "score.json"
    write_score_json(path, {**result, **({"sampling": sampling} if sampling else {})})
    for name, scores in result.items():
        run.say(f"score: {name} MiFID {scores['mifid']:.2f} (FID {scores['fid']:.2f}, d {scores['distance']:.4f}) "
                f"on {scores['n_generated']} images of {zip_path}")
    return str(path)


def after_nan(trainer, run):
    """After NaN/inf losses: back to the last good state with halved learning rates, or, after FP16_ROLLBACKS in a
    row under fp16, at the same learning rates in fp32 (bf16 where the GPU has it); the step it went back to."""
    run.rollbacks += 1
    if trainer.dtype is torch.float16 and run.rollbacks >= FP16_ROLLBACKS:
        trainer.leave_fp16()
        bad_step, step = trainer.step_count, trainer.rollback(run.good, 0)
        run.fell_back("precision", f"fp16 gave NaN/inf losses {run.rollbacks} times in a row (last near step "
                                   f"{bad_step}): back to step {step}, going on in {trainer.cfg.precision}")
        run.rollbacks = 0
        return step
    if run.rollbacks > MAX_ROLLBACKS:
        raise UserError(f"training diverged: {MAX_ROLLBACKS} rollbacks in a row after NaN/inf losses; "
                        "lower --lr-g/--lr-d or try another --loss")
    bad_step, step = trainer.step_count, trainer.rollback(run.good, run.rollbacks)
    opt_G, opt_D = trainer.optimisers()
    message = (f"NaN/inf loss near step {bad_step}: rolled back to step {step}, learning rates "
               f"×{0.5 ** run.rollbacks:g} (now G {opt_G.param_groups[0]['lr']:.2e}, D "
               f"{opt_D.param_groups[0]['lr']:.2e})")
    run.say(message)
    run.log({"event": "rollback", "step": step, "bad_step": bad_step, "message": message})
    return step


def fall_back(error, trainer, run, early):
    """Recover from a step that raised in the first steps of one process: an out-of-memory error halves the batch,
    a torch.compile or CUDA-graph failure goes on eagerly; both from the last good state. Anything else is raised."""
    what = f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0][:200]}"
    if isinstance(error, torch.cuda.OutOfMemoryError):
        batch = trainer.cfg.batch_size
        if not early or batch < 2:
            raise UserError(f"--batch-size {batch} does not fit in the GPU's memory: pass a smaller --batch-size "
                            "(or --no-compile / --no-cuda-graph)") from None
        if trainer.device.type == "cuda":
            torch.cuda.empty_cache()
        step = trainer.rollback(run.good, 0)
        trainer.set_batch_size(batch // 2)
        run.fell_back("batch", f"out of memory at batch {batch} ({what}): back to step {step}, going on with "
                               f"batch {batch // 2} per process")
    elif early and (trainer.compiled or trainer.use_graph):
        how = " and ".join(n for n, on in (("torch.compile", trainer.compiled), ("the CUDA graph", trainer.use_graph))
                           if on)
        trainer.go_eager()
        step = trainer.rollback(run.good, 0)
        run.fell_back("eager", f"{how} failed ({what}): back to step {step}, going on eagerly")
    else:
        raise error

def add_arguments(parser):
    """Flags of `kit train`: one per TrainConfig field."""
    add_config_arguments(parser)


def main(args):
    """Run `kit train`."""
    train(from_args(args))
'''

SOURCES['kit/trainer.py'] = r'''"""The training step as an object: models, optimisers, grad scalers and EMA of one run, with state, restore and
rollback. What a step does comes from the model family and the loss, never from `if cfg.loss == ...`."""
import copy
import dataclasses
import inspect
import random

import numpy as np
import torch

from kit import losses, models
from kit.data import augment


def to_cpu(obj):
    """A deep copy of nested dicts/lists of tensors with every tensor copied to the CPU."""
    if torch.is_tensor(obj):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return copy.deepcopy(obj)


def rng_state():
    """Every random generator the loop reads: torch CPU and CUDA, numpy, python."""
    return {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_state(state):
    """Restore what rng_state() returned."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def power_iteration_vector(name):
    """Whether a buffer is spectral norm's u or v: a unit vector that an average would shorten."""
    parts = name.split(".")
    return "parametrizations" in parts and parts[-1] in ("_u", "_v")


@torch.no_grad()
def ema_update(ema, model, weight):
    """ema ← ema + weight·(model - ema) for parameters and floating-point buffers (batch-norm statistics); other
    buffers are copied, and so are spectral norm's power-iteration vectors: in eval mode sigma is uᵀWv with the
    stored u and v, and an average of unit vectors is shorter than 1, which inflated every weight of the EMA G.
    `weight` is a 0-d device tensor read on the device (a CUDA graph replays it), never turned into a Python number.
    A handful of multi-tensor operations, not a few per tensor: on a GPU the step is bound by its count of kernels."""
    averaged, sources, copied, originals = list(ema.parameters()), [p.detach() for p in model.parameters()], [], []
    for (name, e), b in zip(ema.named_buffers(), model.buffers()):
        if e.is_floating_point() and not power_iteration_vector(name):
            averaged.append(e)
            sources.append(b)
        else:
            copied.append(e)
            originals.append(b)
    steps = torch._foreach_sub(sources, averaged)
    torch._foreach_mul_(steps, weight)
    torch._foreach_add_(averaged, steps)
    if copied:
        torch._foreach_copy_(copied, originals)


def distributed(module, device_ids):
    """DDP that does not re-send rank 0's buffers before every forward: that wrote in place into tensors autograd had
    saved (a version error with 2 processes on torch 2.3.1); each rank keeps its batch-norm statistics, rank 0's are
    saved and sampled from. Newer torch names the switch forward_sync_buffers, older broadcast_buffers."""
    ddp = torch.nn.parallel.DistributedDataParallel
    newer = "forward_sync_buffers" in inspect.signature(ddp.__init__).parameters
    return ddp(module, device_ids=device_ids, **{"forward_sync_buffers" if newer else "broadcast_buffers": False})


class GraphedStep:
    """Runs `step` eagerly on a side stream for a few calls, then captures it once and replays the CUDA graph."""

    def __init__(self, step, warmup=3):
        self.step, self.warmup, self.calls, self.graph = step, warmup, 0, None

    def __call__(self):
        if self.graph is None and self.calls < self.warmup:
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                self.step()
            torch.cuda.current_stream().wait_stream(stream)
            self.calls += 1
            return
        if self.graph is None:
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.step()
        self.graph.replay()

    def reset(self):
        """Forget the graph (after optimiser states were replaced): warm up and capture again."""
        self.calls, self.graph = 0, None


def optimiser(kind, parameters, lr, betas, capturable, fused):
    """Adam with the config's betas, or RMSprop (WGAN with clipping wants no momentum). A fused Adam is one kernel a
    step and takes a grad scaler's scale and inf check as device tensors: the fp16 step needs no host sync."""
    if kind == "rmsprop":
        return torch.optim.RMSprop(parameters, lr, capturable=capturable)
    return torch.optim.Adam(parameters, lr, betas, capturable=capturable, fused=fused or None)


def fused_optimisers(kind, device) -> bool:
    """Whether the trainer's optimisers are fused: Adam on a GPU (the same update as torch's default, in one kernel
    instead of a few dozen; on a CPU the per-tensor Adam every benchmark ran stays)."""
    return kind == "adam" and device.type == "cuda"


class Trainer:
    """One run's G, D, EMA of G, optimisers and scalers on a device, and the step: n_critic D steps, one G step."""

    def __init__(self, cfg, images, labels, n_classes, device, dtype, use_graph, rank=0, world=1):
        self.cfg, self.device, self.dtype, self.use_graph = cfg, device, dtype, use_graph
        self.images, self.labels = images, labels                # uint8 N×C×H×W and labels, resident on the device
        self.loss = losses.get(cfg.loss, cfg.real_label)
        self.n_critic = cfg.n_critic or self.loss.n_critic
        self.conditional = models.family(cfg.model).conditional and n_classes > 1
        self.augmentation = augment.Augmentation(cfg.augment, device, cfg.ada_target, cfg.ada_kimg)
        self.memory_format = (torch.channels_last if cfg.channels_last and device.type == "cuda"
                              else torch.contiguous_format)
        torch.manual_seed(cfg.seed)   # the same initial weights on every rank (G_ema is copied before DDP syncs)
        G, D = models.build(cfg, tuple(images.shape[1:]), n_classes)
        torch.manual_seed(cfg.seed + rank)   # different batches and noise on every rank
        np.random.seed(cfg.seed + rank)
        random.seed(cfg.seed + rank)
        self.G = G.to(device, memory_format=self.memory_format)
        self.D = D.to(device, memory_format=self.memory_format)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False) if cfg.ema else None
        betas, self.fused = (cfg.beta1, cfg.beta2), fused_optimisers(self.loss.optimizer, device)
        self.opt_G = optimiser(self.loss.optimizer, self.G.parameters(), cfg.lr_g, betas, use_graph, self.fused)
        self.opt_D = optimiser(self.loss.optimizer, self.D.parameters(), cfg.lr_d, betas, use_graph, self.fused)
        self.set_precision(dtype)
        self.step_count = 0
        self.nan_at_step = 0                           # tests: make the losses NaN once at this step
        self.acc = torch.zeros(2, device=device)       # summed D and G losses since the last check
        self.ema_weight = torch.zeros((), device=device)
        self.anchors = torch.zeros(2, device=device)       # LeCam: moving averages of D's mean output, real and fake
        self.anchor_decay = torch.zeros((), device=device)
        self.world = world
        self.wrap(cfg.compile, use_graph)

    def wrap(self, compiled, graphed):
        """The modules a step runs (compiled or not, under DDP when world > 1) and the step (CUDA graph or not)."""
        self.compiled, self.use_graph = compiled, graphed
        Gc, self.Dc = (torch.compile(self.G), torch.compile(self.D)) if compiled else (self.G, self.D)
        self.G_train, self.D_train = Gc, self.Dc
        if self.world > 1:
            ids = [self.device] if self.device.type == "cuda" else None
            self.G_train, self.D_train = distributed(Gc, ids), distributed(self.Dc, ids)
        self.run_step = GraphedStep(self.one_step) if graphed else self.one_step
        self.set_optimiser_modes()

    def set_optimiser_modes(self):
        """Every group capturable under the CUDA graph and fused as the trainer fuses, with its step counters on the
        parameters' device where those modes read them there: a loaded state may come from another device or mode."""
        for opt in self.optimisers():
            for group in opt.param_groups:
                group["capturable"] = self.use_graph
                if "fused" in group:
                    group["fused"] = self.fused or None
                for p in group["params"]:
                    state = opt.state.get(p, {})
                    if (self.use_graph or self.fused) and torch.is_tensor(state.get("step")):
                        state["step"] = state["step"].to(p.device, torch.float32)

    def go_eager(self):
        """Fallback: no torch.compile, no CUDA graph."""
        self.cfg = dataclasses.replace(self.cfg, compile=False, cuda_graph=False)
        self.wrap(False, False)

    def set_precision(self, dtype):
        """Autocast to `dtype` (None: fp32), with fresh grad scalers enabled for fp16 only."""
        self.dtype = dtype
        self.scalers = {k: torch.amp.GradScaler(self.device.type, enabled=dtype is torch.float16) for k in "GD"}

    def leave_fp16(self):
        """Fallback after fp16 NaN/inf losses: bf16 where the GPU has it, else fp32; the config says which. A captured
        step is captured again (it held the old scalers and precision)."""
        bf16 = self.device.type == "cuda" and torch.cuda.is_bf16_supported()
        self.set_precision(torch.bfloat16 if bf16 else None)
        self.cfg = dataclasses.replace(self.cfg, precision="bf16" if bf16 else "fp32")
        if self.use_graph:
            self.run_step.reset()

    def set_batch_size(self, batch_size):
        """Fallback after an out-of-memory error: a smaller batch per process (a captured graph is captured again)."""
        self.cfg = dataclasses.replace(self.cfg, batch_size=batch_size)
        if self.use_graph:
            self.run_step.reset()

    def optimisers(self):
        """(G's, D's)."""
        return self.opt_G, self.opt_D

    def state(self) -> dict:
        """Models, EMA, optimisers, scalers, step and RNG (references to live tensors)."""
        return {"G": self.G.state_dict(), "D": self.D.state_dict(),
                "G_ema": self.G_ema.state_dict() if self.G_ema else None,
                "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
                "scaler": {k: s.state_dict() for k, s in self.scalers.items()}, "step": self.step_count,
                "rng": rng_state(), "regularisers": {"anchors": self.anchors, "ada": self.augmentation.state()}}

    def restore(self, saved) -> int:
        """Load models, EMA, optimisers and scalers from a checkpoint dict; returns its step."""
        self.G.load_state_dict(saved["G"])
        self.D.load_state_dict(saved["D"])
        if self.G_ema:
            self.G_ema.load_state_dict(saved["G_ema"] or saved["G"])
        for opt, key in ((self.opt_G, "opt_G"), (self.opt_D, "opt_D")):
            opt.load_state_dict(saved[key])
        self.set_optimiser_modes()   # the saved run may have used another device or mode
        for k, s in self.scalers.items():
            if s.is_enabled() and saved["scaler"][k]:   # a scaler saved disabled (or before a precision fallback)
                s.load_state_dict(saved["scaler"][k])
        if "regularisers" in saved:   # checkpoints from before LeCam and ADA start them afresh
            self.anchors.copy_(saved["regularisers"]["anchors"])
            self.augmentation.load(saved["regularisers"]["ada"])
        self.step_count = saved["step"]
        return self.step_count

    def rollback(self, good, rollbacks) -> int:
        """Back to `good` (a CPU state) with learning rates × 0.5^rollbacks; returns the step it went back to."""
        step = self.restore(to_cpu(good))     # a copy: optimisers may alias what they load
        for opt in self.optimisers():
            for group in opt.param_groups:
                group["lr"] *= 0.5 ** rollbacks
        if self.use_graph:
            self.run_step.reset()
        return step

    def autocast(self):
        """Mixed precision as chosen (bf16 or fp16), off for fp32."""
        return torch.autocast(self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None,
                              cache_enabled=not self.use_graph)

    def augmented(self, x):
        """x through the run's per-batch augmentation (adaptive with ADA)."""
        return self.augmentation(x)

    def real_batch(self):
        """A random batch of real images in [-1, 1] and their labels (None unless conditional)."""
        idx = torch.randint(len(self.images), (self.cfg.batch_size,), device=self.device)
        x = self.images[idx].float().div_(127.5).sub_(1).contiguous(memory_format=self.memory_format)
        return x, self.labels[idx] if self.conditional else None

    def optimiser_step(self, key, opt, loss):
        """Backward through the scaler, step, update the scale."""
        opt.zero_grad(set_to_none=True)
        self.scalers[key].scale(loss).backward()
        self.scalers[key].step(opt)
        self.scalers[key].update()

    def regularisation(self, real, fake, y, real_logits, fake_logits):
        """LeCam and balanced consistency terms of D's loss as configured (their anchors move after LeCam's)."""
        cfg, total = self.cfg, 0.0
        if cfg.lecam:
            total = cfg.lecam * losses.lecam(real_logits, fake_logits, self.anchors[0], self.anchors[1])
            means = torch.stack([real_logits.detach().mean(), fake_logits.detach().mean()])
            self.anchors.mul_(self.anchor_decay).add_(means * (1 - self.anchor_decay))
        if cfg.cr:
            again = self.D_train(self.augmented(real), y).float(), self.D_train(self.augmented(fake.detach()), y).float()
            total = total + cfg.cr * (losses.consistency(real_logits, again[0]) +
                                      losses.consistency(fake_logits, again[1]))
        return total

    def one_step(self):
        """n_critic D steps then one G step; no host syncs (CUDA-graph safe)."""
        cfg, batch = self.cfg, self.cfg.batch_size
        for i in range(self.n_critic):
            real, y = self.real_batch()
            z = torch.randn(batch, cfg.z_dim, device=self.device)
            with self.autocast():
                with torch.set_grad_enabled(i == self.n_critic - 1):
                    fake = self.G_train(z, y)
                real_aug, fake_aug = self.augmented(real), self.augmented(fake.detach())
                real_aug.requires_grad_(bool(cfg.r1))    # R1 and R2 differentiate D's outputs by its inputs
                fake_aug.requires_grad_(bool(cfg.r2))
                real_logits, fake_logits = self.D_train(real_aug, y).float(), self.D_train(fake_aug, y).float()
                loss_d = self.loss.d(real_logits, fake_logits) + self.regularisation(real, fake, y, real_logits,
                                                                                      fake_logits)
                for gamma, logits, inputs in ((cfg.r1, real_logits, real_aug), (cfg.r2, fake_logits, fake_aug)):
                    if gamma:
                        loss_d = loss_d + gamma / 2 * losses.zero_centred_penalty(logits, inputs)
                if self.loss.gradient_penalty:
                    scale = self.scalers["D"].scale(torch.ones((), device=self.device))   # on the device: no sync
                    loss_d = loss_d + cfg.gp_weight * losses.gradient_penalty(self.D_train, real_aug, fake_aug, y,
                                                                              scale)
            self.augmentation.observe(real_logits)
            self.optimiser_step("D", self.opt_D, loss_d)
            if self.loss.clip:
                with torch.no_grad():
                    for parameter in self.D.parameters():
                        parameter.clamp_(-cfg.clip, cfg.clip)
        self.D.requires_grad_(False)   # the G step reads D without DDP and without D gradients
        with self.autocast():
            real_logits = self.Dc(real_aug.detach(), y).float() if self.loss.g_needs_real else None
            loss_g = self.loss.g(real_logits, self.Dc(self.augmented(fake), y).float())
        self.optimiser_step("G", self.opt_G, loss_g)
        self.D.requires_grad_(True)
        if self.G_ema:
            ema_update(self.G_ema, self.G, self.ema_weight)
        self.acc.add_(torch.stack([loss_d.detach(), loss_g.detach()]))

    def step(self):
        """One training step (through the CUDA graph when captured)."""
        if self.G_ema:
            self.ema_weight.fill_(1 - min(self.cfg.ema, (1 + self.step_count) / (10 + self.step_count)))
        self.anchor_decay.fill_(self.cfg.lecam_decay if self.step_count >= self.cfg.lecam_start else 0.0)
        self.run_step()
        self.step_count += 1
        if self.step_count % augment.ADA_INTERVAL == 0:
            self.augmentation.adjust(self.cfg.batch_size * self.n_critic, self.world)
        if self.nan_at_step and self.step_count >= self.nan_at_step:
            self.acc.fill_(float("nan"))
            self.nan_at_step = 0

    def take_losses(self):
        """The summed D and G losses since the last call (a device tensor of 2), and reset them."""
        summed = self.acc.clone()
        self.acc.zero_()
        return summed
'''

SOURCES['kit/tune.py'] = r'''"""The sampling setting the final zip is drawn with, chosen by the score that ranks: the run's own setting and each
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
'''

SOURCES['kit/weights.py'] = r'''"""The leaderboard networks' weights for a Kaggle kernel. `python -m kit weights pack DIR` writes a Kaggle dataset
folder (pytorch-fid's FID Inception file, timm's nasnetalarge file, pytorch-fid itself as a wheel, a SHA-256
manifest, dataset-metadata.json) and can upload it; inside a kernel export_found finds that dataset under the input
folder, checks every file and points the kit at it."""
import base64
import hashlib
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from kit.errors import UserError
from kit.files import atomic_path, file_hash, refuse_overwrite

MANIFEST = "dogkit-weights.json"
METADATA = "dataset-metadata.json"
DEFAULT_ID = "your-kaggle-username/dogkit-weights"
TITLE = "dogkit leaderboard weights"            # kaggle datasets create: 6 to 50 characters
LICENSE = "apache-2.0"   # the TF FID Inception and TF-slim NASNet weights and pytorch-fid are all Apache-2.0
# dataset id as kaggle-cli checks it (owner/slug, the slug 6 to 50 characters); Kaggle's slugs are lowercase words
DATASET_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*/[a-z0-9][a-z0-9-]{4,48}[a-z0-9]")
NETWORKS = {"inception": ("public", "DOGKIT_INCEPTION_WEIGHTS"), "nasnet": ("private", "DOGKIT_NASNET_WEIGHTS")}
WHEEL = "pytorch-fid-wheel"
REPACK = "run `python -m kit weights pack DIR --upload OWNER/SLUG --force` again and attach the new version"


def sha256(path) -> str:
    """Hex SHA-256 of a file."""
    return file_hash(path, hashlib.sha256())


# ---------------------------------------------------------------- pack (the user's machine)

def checked_networks(inception=None, nasnet=None) -> dict:
    """{kind: weights file} found as `kit score` finds them (downloading where there is internet), each loaded
    into its network; a missing, corrupt or wrong file is one line naming it."""
    from kit.metrics.features import (InceptionFeatures, NASNetFeatures, find_inception_weights,
                                      find_nasnet_weights)
    found = {"inception": find_inception_weights(inception), "nasnet": find_nasnet_weights(nasnet, download=True)}
    InceptionFeatures(found["inception"], device="cpu")
    NASNetFeatures(found["nasnet"], device="cpu")
    return found


def record_hash(data: bytes) -> str:
    """A wheel RECORD's hash field: sha256= and the urlsafe base64 digest without padding."""
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def write_pytorch_fid_wheel(folder: Path) -> Path:
    """The installed pytorch-fid (its modules, metadata and licence) as a pure-Python wheel in `folder`: importable
    from sys.path as it is, installable with pip --no-index."""
    from importlib import metadata
    try:
        dist = metadata.distribution("pytorch-fid")
    except metadata.PackageNotFoundError:
        raise UserError("pytorch-fid is not installed: pip install pytorch-fid (its FID Inception code ships in "
                        "the weights dataset for kernels whose image lacks it)") from None
    info = f"pytorch_fid-{dist.version}.dist-info"
    members = {}
    for file in dist.files or ():
        name = file.as_posix()
        installer_files = ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")   # written by pip, not shipped
        if (name.startswith("pytorch_fid/") and name.endswith(".py")) or (
                name.startswith(f"{info}/") and file.name not in installer_files):
            members[name] = file.locate().read_bytes()
    if not any(file.split("/")[-1].upper().startswith(("LICENSE", "LICENCE")) for file in members):
        raise UserError(f"the installed pytorch-fid {dist.version} has no licence file: reinstall it with "
                        "pip install --force-reinstall pytorch-fid")
    record = "".join(f"{name},{record_hash(data)},{len(data)}\n" for name, data in members.items())
    members[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    path = folder / f"pytorch_fid-{dist.version}-py3-none-any.whl"
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            for name, data in members.items():
                z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return path


def check_dataset_id(dataset_id: str) -> str:
    """OWNER/SLUG as the kaggle CLI accepts it, or one line saying what it must look like."""
    if not DATASET_ID.fullmatch(dataset_id):
        raise UserError(f"--upload {dataset_id!r} is not a Kaggle dataset id: OWNER/SLUG, the slug 6 to 50 lowercase "
                        "letters, digits and hyphens (e.g. alice/dogkit-weights)")
    return dataset_id


def pack(folder, inception=None, nasnet=None, upload="", force=False) -> Path:
    """Write the weights dataset into `folder` (refusing to overwrite without force) and, given OWNER/SLUG in
    `upload`, create or version it on Kaggle; returns the folder."""
    dataset_id = check_dataset_id(upload) if upload else DEFAULT_ID
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} is a file: pass a folder to write the weights dataset into")
    for name in (MANIFEST, METADATA):                   # before the slow part: an earlier pack is there
        refuse_overwrite(folder / name, force)
    networks = checked_networks(inception, nasnet)
    names = {"inception": "fid-inception" + networks["inception"].suffix,
             "nasnet": "nasnetalarge" + networks["nasnet"].suffix}
    for name in names.values():
        refuse_overwrite(folder / name, force)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for kind, source in networks.items():
        with atomic_path(folder / names[kind]) as tmp:
            shutil.copyfile(source, tmp)
        files.append((names[kind], kind))
    files.append((write_pytorch_fid_wheel(folder).name, WHEEL))
    manifest = {"dogkit_weights": 1, "files": [{"name": name, "kind": kind, "sha256": sha256(folder / name),
                                                "size": (folder / name).stat().st_size} for name, kind in files]}
    metadata = {"title": TITLE, "id": dataset_id, "licenses": [{"name": LICENSE}],
                "description": "pytorch-fid's FID Inception (public leaderboard) and timm's nasnetalarge (private "
                               "leaderboard) weights with pytorch-fid as a wheel, for dogkit's kernels; "
                               f"{MANIFEST} holds each file's SHA-256."}
    for name, content in ((MANIFEST, manifest), (METADATA, metadata)):
        with atomic_path(folder / name) as tmp:
            tmp.write_text(json.dumps(content, indent=2) + "\n")
    if upload:
        upload_dataset(folder, dataset_id)
    return folder


def upload_dataset(folder: Path, dataset_id: str) -> None:
    """kaggle datasets create -p folder, or kaggle datasets version when dataset_id exists already."""
    exe = shutil.which("kaggle") or shutil.which("kaggle", path=str(Path(sys.executable).parent))
    if not exe:
        raise UserError("the kaggle command is not installed: pip install kaggle, then pass --upload again")
    exists = subprocess.run([exe, "datasets", "status", dataset_id], capture_output=True).returncode == 0
    command = ([exe, "datasets", "version", "-p", str(folder), "-m", "dogkit weights"] if exists
               else [exe, "datasets", "create", "-p", str(folder)])
    if subprocess.run(command).returncode != 0:
        raise UserError(f"`{' '.join(command[1:])}` failed (its message is above): check your Kaggle credentials "
                        f"(~/.kaggle/kaggle.json) and that {dataset_id} is yours")


# ---------------------------------------------------------------- export_found (inside a kernel)

def manifest_entries(manifest: Path) -> list:
    """The file entries of a dogkit weights manifest; an unreadable one is one line naming it."""
    try:
        entries = json.loads(manifest.read_text())["files"]
        return [(str(e["name"]), str(e["kind"]), str(e["sha256"]), int(e["size"])) for e in entries]
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{manifest} is not a dogkit weights manifest: {REPACK}") from None


def export_found(input_dir) -> dict:
    """Find a dogkit weights dataset anywhere under input_dir, check each file against its SHA-256, set
    DOGKIT_INCEPTION_WEIGHTS / DOGKIT_NASNET_WEIGHTS, put the shipped pytorch-fid on sys.path when it cannot be
    imported; {"public": Path or None, "private": Path or None} (all None when there is no dataset)."""
    found = {leaderboard: None for leaderboard, _ in NETWORKS.values()}
    manifests = sorted(Path(input_dir).rglob(MANIFEST)) if Path(input_dir).is_dir() else []
    if not manifests:
        return found
    for name, kind, digest, size in manifest_entries(manifests[0]):
        path = manifests[0].parent / name
        if not path.is_file():
            raise UserError(f"{path} is listed in {manifests[0]} but missing: {REPACK}")
        if path.stat().st_size != size or sha256(path) != digest:
            raise UserError(f"{path} does not match its SHA-256 in {manifests[0].name}: the file is corrupt or was "
                            f"replaced; {REPACK}")
        if kind in NETWORKS:
            leaderboard, variable = NETWORKS[kind]
            os.environ[variable] = str(path)
            found[leaderboard] = path
        elif kind == WHEEL and not importable("pytorch_fid"):
            sys.path.insert(0, str(path))
    return found


def importable(module: str) -> bool:
    """Whether `import module` works here."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------- CLI

def add_arguments(parser):
    """Flags of `python -m kit weights pack`."""
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    packer = actions.add_parser("pack", help="write (and upload) the Kaggle dataset that kernels score with",
                                description="Gather both leaderboards' weights, check they load, write a Kaggle "
                                            "dataset folder; attach it to a kernel to score inside it.")
    packer.add_argument("folder", metavar="DIR", help="the dataset folder to write")
    packer.add_argument("--inception", metavar="FILE",
                        help="pytorch-fid's FID Inception weights (default: $DOGKIT_INCEPTION_WEIGHTS, the torch hub "
                             "cache, or a download)")
    packer.add_argument("--nasnet", metavar="FILE",
                        help="timm's nasnetalarge weights (default: $DOGKIT_NASNET_WEIGHTS, then timm's caches)")
    packer.add_argument("--upload", metavar="OWNER/SLUG", default="",
                        help="create the Kaggle dataset OWNER/SLUG from DIR (or a new version when it exists)")
    packer.add_argument("--force", action="store_true", help="overwrite the files of an earlier pack in DIR")


def main(args) -> int:
    """Pack the weights, then say what was written and how a kernel uses it."""
    folder = pack(args.folder, args.inception, args.nasnet, args.upload, args.force)
    for entry in json.loads((folder / MANIFEST).read_text())["files"]:
        print(f"{folder / entry['name']}  {entry['size']:,} bytes  sha256 {entry['sha256'][:16]}…  ({entry['kind']})")
    dataset_id = json.loads((folder / METADATA).read_text())["id"]
    if not args.upload:
        print(f"upload it with --upload OWNER/SLUG, or set the id in {folder / METADATA} and run "
              f"kaggle datasets create -p {folder}")
    print(f"then build a kernel with it: python -m kit kernel build NAME --weights {dataset_id}")
    return 0
'''


def install(sources, manifest):
    """Write the inlined kit/ into a fresh temporary folder, each file checked against the manifest; import it."""
    root = tempfile.mkdtemp(prefix="dogkit-src-")
    for name, digest in manifest.items():
        text = sources[name]
        if hashlib.sha256(text.encode("utf-8")).hexdigest() != digest:
            sys.exit(f"error: {name} does not match its SHA-256 in MANIFEST: this script was edited; rebuild it")
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    sys.path.insert(0, root)


if __name__ == "__main__":
    sys.dont_write_bytecode = True
    install(SOURCES, MANIFEST)
    from kit.kernel.runtime import main
    sys.exit(main(KERNEL, START, sys.argv[1:]))
