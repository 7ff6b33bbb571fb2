"""DCGAN-class networks: DCGAN, breed-conditioned DCGAN (conditional BN in G, projection D), fully connected MLP."""
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
