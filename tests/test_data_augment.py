"""Per-batch augmentation: each op does exactly its job, keeps gradients, and bad policies are one-line errors."""
import pytest
import torch

from kit.data.augment import Augmentation
from kit.errors import UserError


def augment(x, policy):
    """x through a run's augmentation of `policy` with ADA off (every op on every image)."""
    return Augmentation(policy, x.device)(x)


@pytest.fixture
def batch():
    torch.manual_seed(0)
    return torch.rand(64, 3, 16, 16) * 2 - 1


def test_none_is_identity(batch):
    assert augment(batch, "none") is batch and augment(batch, "") is batch


def test_flip_mirrors_about_half(batch):
    out = augment(batch, "flip")
    flipped = torch.tensor([torch.equal(o, b.flip(2)) for o, b in zip(out, batch)])
    kept = torch.tensor([torch.equal(o, b) for o, b in zip(out, batch)])
    assert (flipped ^ kept).all() and 16 < flipped.sum() < 48


def test_translation_shifts_with_zero_fill(batch):
    out = augment(batch, "translation")
    shifts = set()
    for o, b in zip(out, batch):
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if torch.equal(o, torch.nn.functional.pad(b, (2, 2, 2, 2))[:, 2 - dy:18 - dy, 2 - dx:18 - dx])]
        assert len(found) == 1                                  # each image is exactly one shift of itself
        shifts.add(found[0])
    assert len(shifts) > 10                                     # shifts up to 1/8 of 16 px = 2 px, varied


def test_cutout_zeroes_one_square_of_half_the_size(batch):
    out = augment(batch, "cutout")
    zero = (out == 0).all(dim=1)
    assert (zero.sum(dim=(1, 2)) == 64).all()                   # an 8x8 square
    for z, o, b in zip(zero, out, batch):
        rows, cols = z.any(1).nonzero(), z.any(0).nonzero()
        assert rows.max() - rows.min() == 7 and cols.max() - cols.min() == 7
        assert torch.equal(o[:, ~z], b[:, ~z])


def test_color_changes_each_image_differently_but_keeps_structure(batch):
    out = augment(batch, "color")
    assert not torch.allclose(out, batch)
    for o, b in zip(out[:8], batch[:8]):                        # brightness/contrast/saturation are smooth maps
        assert torch.corrcoef(torch.stack([o.flatten(), b.flatten()]))[0, 1] > 0.5
    assert out.mean(dim=(1, 2, 3)).std() > 0.1


def test_gradients_reach_the_input_on_any_device(batch):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    x = batch.to(device).requires_grad_()
    out = augment(x, "flip,translation,color,cutout")
    out.square().sum().backward()
    assert out.device == x.device and out.shape == x.shape and x.grad.abs().sum() > 0


def test_unknown_policy(batch):
    with pytest.raises(UserError, match="unknown blur.*flip, translation, color, cutout"):
        augment(batch, "flip,blur")
