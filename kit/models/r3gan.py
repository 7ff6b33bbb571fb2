"""The R3GAN pair (Huang, Gokaslan, Kuleshov, Tompkin, NeurIPS 2024) at 32 or 64 px: plain residual networks without
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
