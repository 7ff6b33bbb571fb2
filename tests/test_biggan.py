"""BigGAN: shapes, spectral norm on every weight, orthogonal init, attention, standing statistics, balanced breeds,
exact resume and sampling. The trainer's other promises (learns colours and breeds, rolls back on NaN, keeps its
budget) run for biggan in tests/test_train.py, parametrised beside the DCGAN-class models."""
import json

import numpy as np
import pytest
import torch
from torch import nn

from kit import checkpoint, models
from kit.config import TrainConfig
from kit.models import biggan
from kit.sample import balanced_labels, collect_standing_stats, generate
from kit.train import train


def tiny(**changes):
    """A BigGAN config small enough for a CPU test."""
    return TrainConfig(**{**dict(model="biggan", g_width=4, d_width=4, z_dim=20, shared_dim=8, loss="hinge"),
                          **changes})


@pytest.mark.parametrize("size,channels,n_classes", [(32, 3, 5), (64, 3, 5), (32, 1, 1), (64, 1, 1)])
def test_shapes(size, channels, n_classes):
    G, D = models.build(tiny(), (channels, size, size), n_classes)
    z = torch.randn(3, 20)
    y = torch.randint(0, n_classes, (3,))
    x = G(z, y)
    assert x.shape == (3, channels, size, size) and x.abs().max() <= 1
    assert D(x, y).shape == (3,)
    assert G(z).shape == x.shape and D(x).shape == (3,)       # unconditional: no labels needed


def test_spectral_norm_on_every_weight_and_orthogonal_init():
    G, D = models.build(tiny(), (3, 64, 64), 5)
    layers = [m for net in (G, D) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding))]
    sn = [m for m in layers if hasattr(m, "parametrizations") and "weight" in m.parametrizations]
    assert len(layers) > 30
    assert set(map(id, sn)) >= {id(m) for m in layers if m is not G.shared}   # G's shared embedding feeds SN'd linears
    for m in sn:
        w = m.parametrizations.weight.original.detach().flatten(1)
        rows, cols = w.shape
        gram = w @ w.T if rows <= cols else w.T @ w
        torch.testing.assert_close(gram, torch.eye(min(rows, cols)), atol=1e-4, rtol=0)


def test_power_iteration_updates_u_in_place_only_in_training():
    """CUDA-graph safety: spectral norm's u and v keep their storage (a captured graph replays into it)."""
    _, D = models.build(tiny(), (3, 32, 32), 2)
    norm = D.blocks[1].conv1.parametrizations.weight[0]
    address, before = norm._u.data_ptr(), norm._u.clone()
    D.eval()
    D(torch.randn(2, 3, 32, 32))
    assert torch.equal(norm._u, before)
    D.train()
    D(torch.randn(2, 3, 32, 32))
    assert norm._u.data_ptr() == address and not torch.equal(norm._u, before)


def test_attention_is_the_identity_at_init_and_placed_by_resolution():
    attention = biggan.SelfAttention(16)
    x = torch.randn(2, 16, 8, 8)
    assert attention(x).shape == x.shape and torch.equal(attention(x), x)      # gamma starts at 0
    with torch.no_grad():
        attention.gamma.fill_(1.0)
    assert not torch.equal(attention(x), x)
    G, D = models.build(tiny(attn_g=32, attn_d=16), (3, 64, 64), 2)
    assert len(G.attention) == 1 and len(D.attention) == 1
    assert D.attention["1"].theta.in_channels == 8                               # D's 16×16 stage: width 4 × 2
    _, D_none = models.build(tiny(attn_d=0), (3, 64, 64), 2)
    assert len(D_none.attention) == 0


def test_hierarchical_latent_reaches_every_block():
    G, _ = models.build(tiny(), (3, 64, 64), 3)
    assert sum(G.chunks) == 20 and len(G.chunks) == len(G.blocks) + 1
    G.eval()
    z, y = torch.randn(2, 20), torch.tensor([0, 1])
    base = G(z, y)
    last = z.clone()
    last[:, -G.chunks[-1]:] += 1.0                                                # only the last block's chunk
    assert not torch.allclose(G(last, y), base)
    assert not torch.allclose(G(z, torch.tensor([2, 2])), base)                   # the breed matters too


def test_standing_stats_change_batch_norm_buffers_and_no_weights():
    G, _ = models.build(tiny(), (3, 32, 32), 3)
    weights = {k: v.clone() for k, v in G.state_dict().items() if "running" not in k and "num_batches" not in k}
    before = G.out_bn.running_var.clone()
    generator = torch.Generator().manual_seed(0)
    collect_standing_stats(G, 3, 8, lambda k: torch.randint(0, 3, (k,), generator=generator), generator, "cpu")
    assert not torch.allclose(G.out_bn.running_var, before) and not G.training
    assert all(torch.equal(v, G.state_dict()[k]) for k, v in weights.items())


def test_class_balanced_labels_are_even_to_within_one():
    for n_classes, n in ((120, 10000), (7, 50), (3, 2)):
        counts = np.bincount(balanced_labels(n_classes, n, torch.Generator().manual_seed(1)).numpy(),
                             minlength=n_classes)
        assert counts.sum() == n and counts.max() - counts.min() <= 1


def test_biggan_trains_resumes_exactly_and_samples(demo_cache, tmp_path):
    from test_train import config
    changes = dict(model="biggan", g_width=4, d_width=4, z_dim=20, shared_dim=8, batch_size=8, loss="hinge",
                   lr_g=1e-3, lr_d=1e-3, beta1=0.0, beta2=0.999, augment="none", standing_stats=2, class_balance=True)
    whole = checkpoint.load(train(config(tmp_path / "whole", demo_cache, max_steps=9, log_every=3, **changes)))
    train(config(tmp_path / "split", demo_cache, max_steps=5, **changes))
    split = checkpoint.load(train(config(tmp_path / "split", demo_cache, max_steps=9, resume=True, **changes)))
    for key in ("G", "D", "G_ema"):
        for name, tensor in whole[key].items():
            assert torch.equal(tensor, split[key][name]), (key, name)
    rows = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    losses = np.array([(r["loss_d"], r["loss_g"]) for r in rows if "loss_d" in r])
    assert losses.shape == (3, 2) and np.isfinite(losses).all() and (losses.std(0) > 0).all()   # finite, moving
    images, labels = generate(tmp_path / "whole" / "last.pt", 6, standing_stats=2, class_balance=True)
    assert images.shape == (6, 3, 64, 64) and images.dtype == torch.uint8 and images.float().std() > 0
    assert np.bincount(labels.numpy()).max() - np.bincount(labels.numpy(), minlength=6).min() <= 1


def test_sampling_options_come_from_the_run_unless_given():
    from kit.sample import sampling_options
    state = {"config": {"standing_stats": 50, "class_balance": True}}
    assert sampling_options(state) == {"standing_stats": 50, "class_balance": True}
    assert sampling_options(state, 0, False) == {"standing_stats": 0, "class_balance": False}
    assert sampling_options({"config": {}}) == {"standing_stats": 0, "class_balance": False}   # older checkpoints


def test_attention_resolutions_come_by_device_unless_given():
    from kit.config import MODEL_DEFAULTS, for_device, from_dict
    cuda = for_device(TrainConfig(model="biggan"), "cuda")
    assert (cuda.attn_g, cuda.attn_d) == (32, 32)                                  # what biggan is on a GPU
    cpu = for_device(TrainConfig(model="biggan"), "cpu")
    assert (cpu.attn_g, cpu.attn_d) == (MODEL_DEFAULTS["biggan"]["cpu"].get("attn_g", -1),
                                        MODEL_DEFAULTS["biggan"]["cpu"].get("attn_d", -1))
    given = for_device(TrainConfig(model="biggan", attn_g=0, attn_d=16), "cuda")
    assert (given.attn_g, given.attn_d) == (0, 16)                                 # 0 (none) is a choice, not unset
    old = for_device(from_dict({"model": "biggan", "attn_g": 32, "attn_d": 32}), "cpu")
    assert (old.attn_g, old.attn_d) == (32, 32)                                    # older checkpoints stored 32
    G, D = models.build(tiny(attn_g=-1, attn_d=-1), (3, 64, 64), 2)                # never resolved: as before, 32
    assert list(G.attention) == ["2"] and list(D.attention) == ["0"]


def test_standing_stats_come_by_model_and_device_unless_given():
    from kit.config import for_device
    assert [for_device(TrainConfig(model=m), "cpu").standing_stats for m in models.MODELS] == [0, 0, 0, 4, 0]
    assert [for_device(TrainConfig(model=m), "cuda").standing_stats for m in models.MODELS] == [0, 0, 0, 16, 0]
    assert for_device(TrainConfig(model="biggan", standing_stats=0), "cuda").standing_stats == 0   # off is a choice
    assert for_device(TrainConfig(model="dcgan", standing_stats=3), "cpu").standing_stats == 3


def test_the_tail_reserve_counts_standing_stats_once_not_per_image():
    from kit.sample import STATS_BATCH
    from kit.train import TAIL_MARGIN_S, TAIL_SAFETY, tail_seconds
    plain = tail_seconds(0.5, 0.01, TrainConfig(n_images=10000, standing_stats=0))
    assert plain == pytest.approx((0.5 + 0.01 * 10000) * TAIL_SAFETY + TAIL_MARGIN_S)
    with_stats = tail_seconds(0.5, 0.01, TrainConfig(n_images=10000, standing_stats=16))
    assert with_stats - plain == pytest.approx(0.01 * 16 * STATS_BATCH * TAIL_SAFETY)
    assert tail_seconds(0, 0.01, TrainConfig(n_images=0, standing_stats=16)) == TAIL_MARGIN_S   # nothing generated


def test_unresolved_standing_stats_leave_the_statistics_alone(tmp_path):
    """-1 (unset, never resolved) is no standing statistics, not a reset with zero batches."""
    G, _ = models.build(tiny(), (3, 32, 32), 3)
    G.out_bn.running_mean.fill_(0.5)
    state = {"config": vars(tiny(standing_stats=-1)), "G": G.state_dict(), "image_shape": (3, 32, 32),
             "classes": ["a", "b", "c"], "label_counts": [1, 1, 1]}
    images_unset, _ = generate(state, 4, standing_stats=-1)
    images_off, _ = generate(state, 4, standing_stats=0)
    assert torch.equal(images_unset, images_off)
