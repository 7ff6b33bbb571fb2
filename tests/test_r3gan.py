"""R3GAN's pair: fix-up initialisation (every residual block starts as the identity), shapes at 32 and 64 px, breeds
through the embedding, and its recipe (RpGAN, R1, R2) training exactly resumed, in fp16 and over two DDP processes."""
import math

import pytest
import torch
import torch.multiprocessing as mp

from kit import checkpoint
from kit.config import TrainConfig, for_device
from kit.models import r3gan
from kit.train import train

from test_ddp import free_port, worker
from test_train import config, demo32, keep_torch_threads  # noqa: F401 - fixtures


def test_every_residual_block_starts_as_the_identity_with_fixup_gains():
    torch.manual_seed(0)
    G = r3gan.Generator(z_dim=16, size=64, width=32, n_classes=3, embed_dim=8)
    blocks = [m for m in G.modules() if isinstance(m, r3gan.ResidualBlock)]
    assert len(blocks) == r3gan.BLOCKS * 5                      # 4, 8, 16, 32 and 64 px
    x = torch.randn(2, 64, 8, 8)
    assert torch.equal(blocks[0](x), x)
    first, grouped, last = (m for m in blocks[0].branch if isinstance(m, torch.nn.Conv2d))
    assert grouped.groups == 128 // 16 and not last.weight.any()
    expected = math.sqrt(2 / 1.04) * len(blocks) ** -0.25 / math.sqrt(64)   # He's leaky gain, fix-up over 10 blocks
    assert first.weight.std().item() == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize("size", [32, 64])
def test_shapes_and_breeds(size):
    torch.manual_seed(0)
    cfg = for_device(TrainConfig(model="r3gan", z_dim=16, shared_dim=8), "cpu")
    G, D = r3gan.build(cfg, 3, size, 4)
    z = torch.randn(3, 16)
    images = G(z, torch.tensor([0, 1, 2]))
    assert images.shape == (3, 3, size, size) and D(images, torch.tensor([0, 1, 2])).shape == (3,)
    assert not torch.allclose(G(z, torch.zeros(3, dtype=torch.long)), G(z, torch.full((3,), 3)))
    assert not torch.allclose(D(images, torch.zeros(3, dtype=torch.long)), D(images, torch.full((3,), 3)))
    unconditional = r3gan.Generator(16, 3, size, 8, 0, 8)
    assert unconditional(z).shape == (3, 3, size, size)


def test_the_defaults_are_the_papers_recipe():
    cpu, gpu = (for_device(TrainConfig(model="r3gan"), device) for device in ("cpu", "cuda"))
    assert (cpu.loss, cpu.r1, cpu.r2, cpu.beta1, cpu.beta2, cpu.standing_stats) == ("rpgan", 1.0, 1.0, 0.0, 0.9, 0)
    assert (gpu.g_width, gpu.batch_size) == (128, 64) and cpu.g_width == 8
    assert for_device(TrainConfig(model="r3gan", r1=0.0), "cpu").r1 == 0.0          # --r1 0 turns it off
    assert for_device(TrainConfig(model="biggan"), "cpu").r1 == 0.0


R3GAN = dict(model="r3gan", batch_size=16, log_every=3)


def test_it_trains_and_resumes_exactly(demo32, tmp_path):
    whole = checkpoint.load(train(config(tmp_path / "whole", demo32, max_steps=6, **R3GAN)))
    train(config(tmp_path / "split", demo32, max_steps=3, **R3GAN))
    split = checkpoint.load(train(config(tmp_path / "split", demo32, max_steps=6, resume=True, **R3GAN)))
    assert whole["config"]["loss"] == "rpgan" and whole["config"]["r1"] == whole["config"]["r2"] == 1.0
    for key in ("G", "D", "G_ema"):
        for name, tensor in whole[key].items():
            assert torch.equal(tensor, split[key][name]), (key, name)
    start = checkpoint.load(train(config(tmp_path / "start", demo32, max_steps=1, **R3GAN)))
    moved = [name for name, tensor in whole["G"].items() if not torch.equal(tensor, start["G"][name])]
    assert any(name.endswith("branch.4.weight") for name in moved)   # the zero-started layers learn


def test_it_trains_in_fp16_with_the_grad_scaler(demo32, tmp_path):
    last = checkpoint.load(train(config(tmp_path / "run", demo32, max_steps=4, precision="fp16", **R3GAN)))
    assert last["step"] == 4 and last["config"]["precision"] == "fp16"
    assert all(scaler["scale"] > 0 for scaler in last["scaler"].values()) and last["scaler"]   # the scalers were on
    assert all(torch.isfinite(tensor).all() for tensor in last["G"].values())


def test_two_ddp_processes_with_r1_and_r2_stay_in_step(demo32, tmp_path):
    cfg = config(tmp_path / "run", demo32, max_steps=3, device="cpu", z_dim=16, g_width=4, d_width=4, n_images=10,
                 **{**R3GAN, "batch_size": 8})
    mp.spawn(worker, args=(free_port(), cfg, tmp_path), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    assert ranks[0]["step"] == ranks[1]["step"] == 3
    for key in ("G", "D", "G_ema"):   # the ranks draw different batches: only DDP keeps them equal
        for name, tensor in ranks[0][key].items():
            assert torch.equal(tensor, ranks[1][key][name]), (key, name)
