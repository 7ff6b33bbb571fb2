"""BigGAN-class networks (Brock et al.), as the competition's winners used them: residual G and D, spectral norm on
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
