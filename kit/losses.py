"""GAN losses, a pair each: d_loss(real_logits, fake_logits), g_loss(real_logits, fake_logits); gradient penalty."""
import torch
from torch.nn import functional as F

from kit.errors import UserError


def bce_d(real, fake):
    """Non-saturating GAN, discriminator: -log sigmoid(real) - log(1 - sigmoid(fake))."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


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
    """Wasserstein critic: fake - real (add the gradient penalty)."""
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


LOSSES = {"bce": (bce_d, bce_g), "lsgan": (lsgan_d, lsgan_g), "wgan-gp": (wgan_d, wgan_g),
          "hinge": (hinge_d, hinge_g), "ralsgan": (ralsgan_d, ralsgan_g)}
G_NEEDS_REAL = {"ralsgan"}  # losses whose generator term reads D(real)


def get(name):
    """The (d_loss, g_loss) pair called `name`."""
    if name not in LOSSES:
        raise UserError(f"--loss {name} is not known: use one of {', '.join(LOSSES)}")
    return LOSSES[name]


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
