"""GAN losses, each declared with what its step needs: D and G terms of (real_logits, fake_logits), whether G's term
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
