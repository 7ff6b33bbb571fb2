"""Spectral norm (Miyato et al. 2018) with torch's arithmetic, state-dict keys and initialisation, in fewer kernels:
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
