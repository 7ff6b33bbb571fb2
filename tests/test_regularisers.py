"""The limited-data regularisers: LeCam from its anchors by hand, balanced consistency zero under the identity, ADA's
probability rising when D separates real from fake and falling otherwise, and their state resuming exactly."""
import pytest
import torch

from kit import checkpoint, losses
from kit.data.augment import ADA_INTERVAL, Augmentation
from kit.errors import UserError
from kit.train import train
from test_train import config, demo32, keep_torch_threads, metrics  # noqa: F401 - fixtures

pytestmark = pytest.mark.usefixtures("keep_torch_threads")


def test_lecam_from_its_anchors_by_hand():
    real, fake = torch.tensor([0.5, 2.0, -1.0]), torch.tensor([-0.5, 0.3, -2.0])
    anchor_real, anchor_fake = torch.tensor(0.8), torch.tensor(-0.2)
    # real above the fake anchor: 0.7², 2.2², 0; fake below the real anchor: 1.3², 0.5², 2.8²
    expected = (0.7 ** 2 + 2.2 ** 2) / 3 + (1.3 ** 2 + 0.5 ** 2 + 2.8 ** 2) / 3
    assert losses.lecam(real, fake, anchor_real, anchor_fake).item() == pytest.approx(expected)
    assert losses.lecam(real, fake, torch.tensor(-5.0), torch.tensor(5.0)).item() == 0   # all inside: no penalty


def test_balanced_consistency_is_zero_when_the_augmentation_is_the_identity():
    torch.manual_seed(0)
    D = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(1))
    x = torch.rand(6, 3, 8, 8) * 2 - 1
    identity, shifting = Augmentation("none", "cpu"), Augmentation("translation", "cpu")
    assert losses.consistency(D(identity(x)), D(identity(x))).item() == 0
    assert losses.consistency(D(shifting(x)), D(shifting(x))).item() > 0


def ada_after(real_logits, adjustments, target=0.6, p=0.5):
    """ADA's p after `adjustments` intervals in which D's real outputs were `real_logits` at every step."""
    ada = Augmentation("translation,color", "cpu", target=target, kimg=1)
    ada.p.fill_(p)
    for _ in range(adjustments):
        for _ in range(ADA_INTERVAL):
            ada.observe(real_logits)
        ada.adjust(images_per_step=25)
    return ada.p.item()


def test_ada_probability_rises_when_d_separates_perfectly_and_falls_otherwise():
    step = 25 * ADA_INTERVAL / 1000            # kimg=1: each adjustment moves p by 0.1
    assert ada_after(torch.full((25,), 3.0), 1) == pytest.approx(0.5 + step)          # every sign +1 > 0.6
    assert ada_after(torch.full((25,), 3.0), 9) == 1.0                                 # clamped at 1
    assert ada_after(torch.tensor([1.0] * 10 + [-1.0] * 15), 2) == pytest.approx(0.5 - 2 * step)   # mean -0.2
    assert ada_after(torch.full((25,), -3.0), 9) == 0.0                                # clamped at 0
    off = Augmentation("translation", "cpu")
    x = torch.rand(4, 3, 8, 8)
    assert off.p.item() == 1.0 and not torch.equal(off(x), x)    # ADA off: every image augmented, always
    with pytest.raises(UserError, match="--ada-target"):
        Augmentation("translation", "cpu", target=1.5)


def test_an_adaptive_probability_of_zero_leaves_images_alone():
    ada = Augmentation("translation,color,cutout", "cpu", target=0.6)
    x = torch.rand(8, 3, 8, 8)
    assert ada.p.item() == 0.0 and torch.equal(ada(x), x)


def test_every_regulariser_resumes_exactly_and_logs_p(demo32, tmp_path):
    """9 steps in one go == 5 steps, then --resume for 4: the same weights, LeCam anchors, ADA p and statistic (R1 and
    R2 on too: they keep no state, but take gradients inside the step)."""
    changes = dict(batch_size=16, lecam=0.3, lecam_start=2, cr=10.0, ada_target=0.6, ada_kimg=1, log_every=3, r1=1.0,
                   r2=1.0)
    whole = checkpoint.load(train(config(tmp_path / "whole", demo32, max_steps=9, **changes)))
    train(config(tmp_path / "split", demo32, max_steps=5, **changes))
    split = checkpoint.load(train(config(tmp_path / "split", demo32, max_steps=9, resume=True, **changes)))
    for key in ("G", "D", "G_ema"):
        for name, tensor in whole[key].items():
            assert torch.equal(tensor, split[key][name]), (key, name)
    assert torch.equal(whole["regularisers"]["anchors"], split["regularisers"]["anchors"])
    assert whole["regularisers"]["anchors"].abs().sum() > 0
    for name in ("p", "signs"):
        assert torch.equal(whole["regularisers"]["ada"][name], split["regularisers"]["ada"][name]), name
    p = [r["ada_p"] for r in metrics(tmp_path / "whole") if "ada_p" in r]
    assert len(p) == 3 and p[-1] == pytest.approx(whole["regularisers"]["ada"]["p"].item(), abs=1e-5) and max(p) > 0
