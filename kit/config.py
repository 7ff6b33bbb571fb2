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
