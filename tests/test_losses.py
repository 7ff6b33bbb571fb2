"""GAN losses against values worked out by hand; the gradient penalty against hand-computable critics."""
import math

import pytest
import torch

from kit import losses
from kit.errors import UserError

R, F = torch.tensor([1.0, 3.0]), torch.tensor([0.0, 2.0])  # mean(R) = 2, mean(F) = 1


def test_bce_by_hand():
    r, f = torch.tensor([0.0, math.log(3)]), torch.tensor([0.0, -math.log(3)])
    # softplus(0) = ln 2, softplus(-ln 3) = ln(4/3), softplus(ln 3) = ln 4
    assert losses.bce_d(r, f).item() == pytest.approx(math.log(2) + math.log(4 / 3))
    assert losses.bce_g(r, f).item() == pytest.approx((math.log(2) + math.log(4)) / 2)


def test_lsgan_by_hand():
    assert losses.lsgan_d(R, F).item() == pytest.approx(0.5 * (0 + 4) / 2 + 0.5 * (0 + 4) / 2)
    assert losses.lsgan_g(R, F).item() == pytest.approx(0.5 * (1 + 1) / 2)


def test_wgan_by_hand():
    assert losses.wgan_d(R, F).item() == pytest.approx(1 - 2)
    assert losses.wgan_g(R, F).item() == pytest.approx(-1)


def test_hinge_by_hand():
    r, f = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.5])
    assert losses.hinge_d(r, f).item() == pytest.approx((0 + 0.5) / 2 + (0 + 1.5) / 2)
    assert losses.hinge_g(r, f).item() == pytest.approx(0.75)


def test_ralsgan_by_hand():
    # D: ½[mean((R - 1 - 1)²) + mean((F - 2 + 1)²)] = ½[1 + 1]
    # G: ½[mean((F - 2 - 1)²) + mean((R - 1 + 1)²)] = ½[5 + 5]
    assert losses.ralsgan_d(R, F).item() == pytest.approx(1.0)
    assert losses.ralsgan_g(R, F).item() == pytest.approx(5.0)


def test_rpgan_by_hand():
    """Pairs (1, 0) and (3, 2) both differ by 1: D pays softplus(-1) = ln(1 + e⁻¹), G softplus(1) = ln(1 + e)."""
    assert losses.rpgan_d(R, F).item() == pytest.approx(math.log(1 + math.exp(-1)))
    assert losses.rpgan_g(R, F).item() == pytest.approx(math.log(1 + math.e))
    unpaired = (math.log(1 + math.exp(1)) + math.log(1 + math.exp(-3))) / 2     # pairs (1, 2) and (3, 0)
    assert losses.rpgan_d(R, F.flip(0)).item() == pytest.approx(unpaired)


def test_losses_pull_the_right_way():
    """From undecided logits (all 0), raising the fake ones lowers every G loss, raising the real ones every D loss."""
    zero = torch.zeros(4)
    for loss in losses.LOSSES.values():
        assert loss.g(zero, zero + 0.5) < loss.g(zero, zero)
        assert loss.d(zero + 0.5, zero) < loss.d(zero, zero)


def test_unknown_loss_is_a_user_error():
    with pytest.raises(UserError, match="--loss"):
        losses.get("wgan-lp")


def test_gradient_penalty_linear_critic():
    """D(x) = <w, x> has gradient w everywhere: the penalty is (‖w‖ - 1)²."""
    w = torch.zeros(1, 3, 4, 4)
    w[0, 0, 0, :2] = torch.tensor([3.0, 4.0])  # ‖w‖ = 5
    D = lambda x, y=None: (x * w).flatten(1).sum(1)  # noqa: E731
    real, fake = torch.randn(6, 3, 4, 4), torch.randn(6, 3, 4, 4)
    assert losses.gradient_penalty(D, real, fake).item() == pytest.approx(16.0)


def test_gradient_penalty_quadratic_critic_and_loss_scale():
    """D(x) = ½‖x‖² has gradient x; real = fake = x0, ‖x0‖ = 3: penalty (3 - 1)² = 4, at any fp16 scale."""
    x0 = torch.zeros(4, 1, 2, 2)
    x0[:, 0, 0, 0] = 3.0
    D = lambda x, y=None: 0.5 * (x ** 2).flatten(1).sum(1)  # noqa: E731
    assert losses.gradient_penalty(D, x0, x0.clone()).item() == pytest.approx(4.0)
    assert losses.gradient_penalty(D, x0, x0.clone(), scale=1024.0).item() == pytest.approx(4.0)


def test_zero_centred_penalty_by_hand():
    """D(x) = ½‖x‖² has gradient x: the penalty is the mean of ‖x‖², here (9 + 25) / 2; D(x) = <w, x> gives ‖w‖²."""
    x = torch.zeros(2, 1, 2, 2)
    x[0, 0, 0, 0], x[1, 0, 1, :] = 3.0, torch.tensor([3.0, 4.0])
    inputs = x.requires_grad_(True)
    assert losses.zero_centred_penalty(0.5 * inputs.square().flatten(1).sum(1), inputs).item() == pytest.approx(17.0)
    w = torch.tensor([[1.0, 2.0, 2.0]])
    inputs = torch.randn(5, 3, requires_grad=True)
    assert losses.zero_centred_penalty((inputs * w).sum(1), inputs).item() == pytest.approx(9.0)


def test_zero_centred_penalty_reaches_the_critic():
    """Differentiable with respect to D's weights: for D(x) = <w, x>, d‖w‖²/dw = 2w."""
    D = torch.nn.Linear(3, 1, bias=False)
    inputs = torch.randn(4, 3, requires_grad=True)
    losses.zero_centred_penalty(D(inputs).view(-1), inputs).backward()
    torch.testing.assert_close(D.weight.grad, 2 * D.weight.detach())


def test_gradient_penalty_reaches_the_critic():
    """The penalty is differentiable with respect to the critic's weights (create_graph)."""
    D = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 1))
    gp = losses.gradient_penalty(lambda x, y=None: D(x).view(-1), torch.randn(5, 3, 2, 2), torch.randn(5, 3, 2, 2))
    gp.backward()
    assert D[1].weight.grad is not None and D[1].weight.grad.abs().sum() > 0


def test_bce_real_label_smoothing_by_hand():
    """Target 0.8 on real: 0.8·(-log σ(r)) + 0.2·(-log(1 - σ(r))) + (-log(1 - σ(f)))."""
    r, f = torch.tensor([0.0, math.log(3)]), torch.tensor([0.0])
    smoothed = losses.get("bce", real_label=0.8)
    expected = (0.8 * (math.log(2) + math.log(4 / 3)) + 0.2 * (math.log(2) + math.log(4))) / 2 + math.log(2)
    assert smoothed.d(r, f).item() == pytest.approx(expected)
    assert smoothed.g(r, f).item() == pytest.approx(losses.bce_g(r, f).item())      # G's term is unchanged
    assert losses.get("bce").d(r, f).item() == pytest.approx(losses.bce_d(r, f).item())
    with pytest.raises(UserError, match="--real-label 0.8 applies to --loss bce only"):
        losses.get("hinge", real_label=0.8)
    with pytest.raises(UserError, match="must be in"):
        losses.get("bce", real_label=1.5)


def test_losses_declare_what_their_step_needs():
    wgan, gp, ral = losses.get("wgan"), losses.get("wgan-gp"), losses.get("ralsgan")
    assert (wgan.clip, wgan.optimizer, wgan.n_critic, wgan.gradient_penalty) == (True, "rmsprop", 5, False)
    assert (gp.gradient_penalty, gp.clip, gp.optimizer) == (True, False, "adam")
    assert ral.g_needs_real and not losses.get("hinge").g_needs_real
    assert not wgan.batch_norm_in_d and losses.get("bce").batch_norm_in_d


def wgan_trainer(**changes):
    """A tiny DCGAN Trainer with --loss wgan on 16 random 32×32 images."""
    from kit.config import TrainConfig, for_device
    from kit.trainer import Trainer
    options = dict(model="dcgan", loss="wgan", g_width=4, d_width=4, z_dim=8, batch_size=4, ema=0, augment="none")
    cfg = for_device(TrainConfig(**{**options, **changes}), "cpu")
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    return Trainer(cfg, images, torch.zeros(16, dtype=torch.long), 1, torch.device("cpu"), None, use_graph=False)


def test_wgan_step_clips_every_critic_weight_with_rmsprop_and_five_critic_steps():
    trainer = wgan_trainer(clip=0.005)
    assert isinstance(trainer.opt_D, torch.optim.RMSprop) and isinstance(trainer.opt_G, torch.optim.RMSprop)
    assert trainer.n_critic == 5 and wgan_trainer(n_critic=2).n_critic == 2      # --n-critic still wins
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in trainer.D.modules())
    before = max(p.abs().max().item() for p in trainer.D.parameters())
    assert before > 0.005                                # the initial weights do go past the bound
    trainer.step()
    assert all(p.abs().max().item() <= 0.005 for p in trainer.D.parameters())
    assert any(p.abs().max().item() == pytest.approx(0.005) for p in trainer.D.parameters())
    assert isinstance(wgan_trainer(loss="bce").opt_D, torch.optim.Adam)
