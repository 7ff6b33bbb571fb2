"""kit's spectral norm against torch's parametrisation: the same start, updates, weights and gradients, checkpoints that
load either way, fewer kernels."""
import collections

import pytest
import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as torch_spectral_norm
from torch.utils._python_dispatch import TorchDispatchMode

from kit.models.spectral import DividedBySigma, spectral_norm

VIEWS = {"detach", "expand", "transpose", "view", "t", "unsqueeze", "squeeze", "permute", "_unsafe_view", "alias",
         "as_strided", "movedim"}

LAYERS = {"conv": (lambda: nn.Conv2d(6, 10, 3), (4, 6, 8, 8)),
          "transposed conv": (lambda: nn.ConvTranspose2d(6, 10, 4), (4, 6, 5, 5)),
          "linear": (lambda: nn.Linear(12, 7), (4, 12)),
          "embedding": (lambda: nn.Embedding(9, 5), None)}


class Kernels(TorchDispatchMode):
    """Counts the operations that run arithmetic (views excluded: they launch nothing on a GPU)."""

    def __init__(self):
        super().__init__()
        self.counts = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket.__name__ not in VIEWS:
            self.counts[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def pair(kind):
    """(torch's, kit's) spectral-normed copies of one freshly initialised layer, built from the same seed."""
    make, _ = LAYERS[kind]
    torch.manual_seed(0)
    theirs = torch_spectral_norm(make())
    torch.manual_seed(0)
    return theirs, spectral_norm(make())


def two_pass_loss(layer, kind):
    """A GAN-shaped loss: the layer applied twice (D on real, D on fake) before one backward."""
    _, shape = LAYERS[kind]
    if shape is None:
        return layer(torch.tensor([1, 4, 4])).square().sum() - layer(torch.tensor([2, 8])).sum()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    return layer(x).square().sum() - layer(2 * x).sum()


@pytest.mark.parametrize("kind", LAYERS)
def test_same_start_updates_and_gradients_as_torch(kind):
    theirs, ours = pair(kind)
    assert theirs.state_dict().keys() == ours.state_dict().keys()
    for key, value in theirs.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value, rtol=0, atol=1e-6)
    for _ in range(4):
        for layer in (theirs, ours):
            layer.zero_grad()
            two_pass_loss(layer, kind).backward()
        expected = theirs.parametrizations.weight.original.grad
        torch.testing.assert_close(ours.parametrizations.weight.original.grad, expected,
                                   rtol=1e-5, atol=1e-6 * expected.abs().max().item())
        for name in ("_u", "_v"):
            torch.testing.assert_close(getattr(ours.parametrizations.weight[0], name),
                                       getattr(theirs.parametrizations.weight[0], name), rtol=1e-5, atol=1e-6)
    theirs.eval(), ours.eval()
    torch.testing.assert_close(ours.weight, theirs.weight, rtol=1e-5, atol=1e-6)


def test_a_checkpoint_of_torchs_spectral_norm_loads_and_gives_the_same_weight():
    theirs, _ = pair("conv")
    for _ in range(3):
        two_pass_loss(theirs, "conv").backward()
    torch.manual_seed(5)
    ours = spectral_norm(nn.Conv2d(6, 10, 3))
    ours.load_state_dict(theirs.state_dict())
    theirs.eval(), ours.eval()
    torch.testing.assert_close(ours.weight, theirs.weight, rtol=1e-6, atol=1e-7)


def test_the_closed_form_gradient_matches_finite_differences():
    torch.manual_seed(0)
    weight = torch.randn(5, 3, 2, dtype=torch.double, requires_grad=True)
    for dim in (0, 1):
        rows, columns = weight.shape[dim], weight.numel() // weight.shape[dim]
        u = torch.nn.functional.normalize(torch.randn(rows, dtype=torch.double), dim=0)
        v = torch.nn.functional.normalize(torch.randn(columns, dtype=torch.double), dim=0)
        def divided(w, u=u, v=v, dim=dim):
            """W / σ(W), σ = uᵀWv at the weight gradcheck moves (its gradient is DividedBySigma's to check)."""
            return DividedBySigma.apply(w, u, v, torch.vdot(u, torch.mv(w.detach().movedim(dim, 0).flatten(1), v)), dim)
        assert torch.autograd.gradcheck(divided, (weight,))


def test_the_weight_it_gives_has_spectral_norm_one_after_iterating():
    _, ours = pair("linear")
    for _ in range(50):
        ours(torch.randn(2, 12))
    assert torch.linalg.matrix_norm(ours.weight.detach(), 2).item() == pytest.approx(1.0, abs=1e-4)


def test_it_runs_fewer_kernels_than_torchs_a_forward_and_backward():
    counts = []
    for layer in pair("conv"):
        two_pass_loss(layer, "conv").backward()      # the warm-up: gradients exist from here on
        with Kernels() as kernels:
            two_pass_loss(layer, "conv").backward()
        counts.append(sum(kernels.counts.values()))
    assert counts[1] <= counts[0] - 2 * 5, counts     # five fewer a forward and backward


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_under_autocast_it_gives_torchs_outputs(dtype):
    theirs, ours = pair("conv")
    x = torch.randn(4, 6, 8, 8)
    with torch.autocast("cpu", dtype=dtype):
        expected, got = theirs(x), ours(x)
    assert got.dtype == expected.dtype
    torch.testing.assert_close(got.float(), expected.float(), rtol=2e-2, atol=2e-2)


def test_a_vector_weight_is_refused():
    with pytest.raises(ValueError, match="two or more dimensions"):
        spectral_norm(nn.LayerNorm(4))
