"""The model families: which networks a `--model` name builds and what its training and sampling need."""
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
