"""Model shapes, conditioning, spectral norm, initialisation, and the device/size errors."""
import pytest
import torch

from kit import models
from kit.config import TrainConfig
from kit.device import resolve_device
from kit.errors import UserError


@pytest.mark.parametrize("model,shape", [("dcgan", (3, 64, 64)), ("dcgan", (1, 32, 32)), ("cgan", (3, 64, 64)),
                                         ("cgan", (1, 32, 32)), ("mlp", (1, 32, 32)), ("mlp", (3, 64, 64))])
def test_shapes(model, shape):
    cfg = TrainConfig(model=model, z_dim=16, g_width=4, d_width=4)
    G, D = models.build(cfg, shape, n_classes=5)
    y = torch.tensor([0, 4, 2])
    x = G(torch.randn(3, 16), y)
    assert x.shape == (3, *shape)
    assert x.min() >= -1 and x.max() <= 1
    assert D(x, y).shape == (3,)


def test_generator_widths_follow_the_config():
    G, D = models.build(TrainConfig(g_width=8, d_width=6, z_dim=20), (3, 64, 64))
    assert G.convs[0].in_channels == 20 and G.convs[0].out_channels == 64 and G.to_image.in_channels == 8
    assert [c.out_channels for c in D.convs] == [6, 12, 24, 48]


def test_conditional_batch_norm_by_hand():
    """Output = batchnorm(x) · gamma[y] + beta[y]."""
    norm = models.CondBatchNorm(2, n_classes=3)
    with torch.no_grad():
        norm.gamma.weight.copy_(torch.tensor([[1.0, 1.0], [2.0, 3.0], [0.0, 0.0]]))
        norm.beta.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, -1.0], [5.0, 5.0]]))
    x = torch.randn(4, 2, 3, 3)
    y = torch.tensor([0, 1, 2, 1])
    plain = (x - x.mean((0, 2, 3), keepdim=True)) / torch.sqrt(x.var((0, 2, 3), unbiased=False, keepdim=True) + 1e-5)
    out = norm(x, y)
    torch.testing.assert_close(out[0], plain[0])
    torch.testing.assert_close(out[1, 0], plain[1, 0] * 2 + 1)
    torch.testing.assert_close(out[1, 1], plain[1, 1] * 3 - 1)
    torch.testing.assert_close(out[2], torch.full_like(out[2], 5.0))


def test_conditioning_changes_the_output():
    G, D = models.build(TrainConfig(model="cgan", z_dim=8, g_width=4, d_width=4), (3, 32, 32), n_classes=4)
    G.eval()
    with torch.no_grad():
        G.norms[0].beta.weight[1] += 1.0  # so that the label matters from the start
        z = torch.randn(2, 8)
        assert not torch.allclose(G(z, torch.tensor([0, 0])), G(z, torch.tensor([1, 1])))
        x = torch.randn(2, 3, 32, 32)
        assert not torch.allclose(D(x, torch.tensor([0, 0])), D(x, torch.tensor([1, 1])))


def test_projection_term_by_hand():
    """Projection D: logit(x, y) - logit(x, y') = <embed(y) - embed(y'), sum of last features>."""
    D = models.Discriminator(3, 32, 4, n_classes=3, batch_norm=False)
    x = torch.randn(1, 3, 32, 32)
    h = x
    for conv in D.convs:
        h = torch.nn.functional.leaky_relu(conv(h), 0.2)
    expected = ((D.embed.weight[2] - D.embed.weight[0]) * h.sum((2, 3))[0]).sum()
    torch.testing.assert_close(D(x, torch.tensor([2])) - D(x, torch.tensor([0])), expected.view(1))


def test_spectral_norm_bounds_every_layer():
    torch.manual_seed(0)   # the power iteration's convergence in 30 steps depends on its start: not left to order
    cfg = TrainConfig(spectral_norm=True, d_width=4)
    _, D = models.build(cfg, (3, 32, 32))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())
    for _ in range(30):  # power iterations run in training-mode forwards
        D(torch.randn(2, 3, 32, 32))
    for conv in [*D.convs, D.to_logit]:
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), 2)
        assert sigma.item() == pytest.approx(1.0, abs=0.02)


def test_wgan_gp_discriminator_has_no_batch_norm():
    _, D = models.build(TrainConfig(loss="wgan-gp", d_width=4), (3, 32, 32))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())
    _, D = models.build(TrainConfig(loss="hinge", d_width=4), (3, 32, 32))
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())


def test_dcgan_initialisation():
    G, _ = models.build(TrainConfig(g_width=16), (3, 64, 64))
    w = G.convs[1].weight
    assert w.mean().abs() < 0.002 and w.std().item() == pytest.approx(0.02, rel=0.05)


def test_bad_inputs_are_user_errors():
    with pytest.raises(UserError, match="48"):
        models.build(TrainConfig(), (3, 48, 48))
    with pytest.raises(UserError, match="--model"):
        models.build(TrainConfig(model="stylegan"), (3, 64, 64))
    with pytest.raises(UserError, match="--device"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="--device cpu"):
            resolve_device("cuda")
    assert resolve_device("cpu") == torch.device("cpu")


def test_families_say_what_each_model_needs():
    assert models.MODELS == ("dcgan", "cgan", "mlp", "biggan", "r3gan")
    assert [models.family(m).conditional for m in models.MODELS] == [False, True, False, True, True]
    with pytest.raises(AttributeError):
        models.family("dcgan").conditional = True                     # frozen
    with pytest.raises(UserError, match="biggan"):
        models.family("stylegan")
    G, _ = models.build(TrainConfig(model="dcgan", g_width=4, d_width=4), (3, 32, 32), 5)
    assert G.n_classes == 0                                           # an unconditional family ignores the breeds
