"""kit.metrics.fid against a plain numpy/scipy version of the competition's formula and against torchmetrics."""
import numpy as np
import pytest
import scipy.linalg
import torch

from kit.metrics import fid as F


def reference_fid(f1, f2):
    """FID the textbook way: float64 statistics, scipy.linalg.sqrtm, real part."""
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def reference_distance(gen, real):
    """The competition's d: drop rows summing to 0, normalise, mean over gen of min over real of 1-|cos|."""
    g = gen[gen.sum(1) != 0]
    r = real[real.sum(1) != 0]
    g = g / np.linalg.norm(g, axis=1, keepdims=True)
    r = r / np.linalg.norm(r, axis=1, keepdims=True)
    return float(np.mean(np.min(1.0 - np.abs(g @ r.T), axis=1)))


def reference_mifid(gen, real, threshold):
    """FID / (d_thr + 1e-15) with d_thr = d if d < threshold else 1."""
    d = reference_distance(gen, real)
    return reference_fid(gen, real) / ((d if d < threshold else 1) + 1e-15)


def features(n, dim, seed, shift=0.0):
    """Non-negative float32 features like pool3 activations (ReLU then average), with some structure."""
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(dim // 2, dim))
    x = np.maximum(rng.normal(size=(n, dim // 2)) @ basis + shift, 0) / dim ** 0.5
    return x.astype(np.float32)


def kit_scores(gen, real, threshold, chunk=7):
    """The kit's FID, d, d_thr and MiFID on numpy features (small chunks to exercise the chunking)."""
    g, r = torch.from_numpy(gen), torch.from_numpy(real)
    mu2, s2 = F.statistics(r)
    fid = F.frechet_distance_of(g, {"mu": mu2, "sigma": s2})      # fewer rows than dims: the N×N trace path
    assert fid == pytest.approx(F.frechet_distance(*F.statistics(g), mu2, s2), rel=1e-6)   # R path: sqrt of round-off
    d = F.memorisation_distance(F.nearest_real(g, r, chunk=chunk)[0])
    d_thr = F.thresholded(d, threshold)
    return fid, d, d_thr, F.mifid(fid, d_thr)


@pytest.mark.parametrize("n_gen,n_real,dim", [(40, 60, 8), (300, 500, 64), (600, 300, 160), (50, 300, 160)])
def test_matches_numpy_competition_formula(n_gen, n_real, dim):
    gen, real = features(n_gen, dim, 1, shift=0.3), features(n_real, dim, 2)
    gen[[0, 5]] = 0                       # rows of zeros are dropped from d (and kept in FID)
    real[3] = 0
    fid, d, d_thr, score = kit_scores(gen, real, threshold=0.1)
    g64, r64 = gen.astype(np.float64), real.astype(np.float64)
    assert fid == pytest.approx(reference_fid(g64, r64), rel=1e-7, abs=1e-9)
    assert d == pytest.approx(reference_distance(g64, r64), rel=1e-12, abs=1e-14)
    assert d > 0.1 and d_thr == 1.0
    assert score == pytest.approx(reference_mifid(g64, r64, 0.1), rel=1e-7)


def test_memorised_copies_trip_the_threshold():
    real = features(400, 64, 3)
    gen = real[:300].copy()                       # memorised: every generated image is a training image
    gen[:30] += features(30, 64, 4) * 0.05        # a few near-copies
    fid, d, d_thr, score = kit_scores(gen, real, threshold=0.1)
    ref_d = reference_distance(gen.astype(np.float64), real.astype(np.float64))
    assert d == pytest.approx(ref_d, rel=1e-9, abs=1e-15)
    assert 0 < d < 0.1 and d_thr == d               # below the threshold: d itself divides FID
    assert score == pytest.approx(reference_mifid(gen.astype(np.float64), real.astype(np.float64), 0.1), rel=1e-7)
    assert score > fid * 10
    _, _, d_thr_strict, _ = kit_scores(gen, real, threshold=d / 2)
    assert d_thr_strict == 1.0                      # the threshold is a parameter (NASNet used 0.25)


def test_nearest_real_reports_rows_of_the_original_arrays():
    real = features(50, 16, 5)
    real[0] = 0
    gen = np.concatenate([np.zeros((1, 16), np.float32), real[[7, 20, 33]] * 2.0])   # scaled copies: cos = 1
    dist, gen_index, real_index = F.nearest_real(torch.from_numpy(gen), torch.from_numpy(real), chunk=2)
    assert gen_index.tolist() == [1, 2, 3]
    assert real_index.tolist() == [7, 20, 33]
    assert dist.abs().max() < 1e-14


def test_all_zero_generated_features_give_nan_then_threshold_one():
    d = F.memorisation_distance(F.nearest_real(torch.zeros(5, 8), torch.rand(10, 8))[0])
    assert np.isnan(d) and F.thresholded(d, 0.1) == 1.0


def test_fid_of_rank_deficient_covariances_matches_scipy():
    gen, real = features(30, 64, 6, shift=0.2), features(40, 64, 7)   # fewer samples than dimensions
    fid = kit_scores(gen, real, 0.1)[0]
    assert fid == pytest.approx(reference_fid(gen.astype(np.float64), real.astype(np.float64)), rel=1e-5)


def test_agrees_with_torchmetrics_where_definitions_meet():
    """torchmetrics takes min per *real* image over generated ones: feeding the sets swapped gives the
    competition's d; FID is symmetric; it divides by d + 1e-14, so MiFID agrees to ~1e-13 relative."""
    from torchmetrics.image.fid import _compute_fid
    from torchmetrics.image.mifid import MemorizationInformedFrechetInceptionDistance
    gen, real = features(300, 64, 8, shift=0.1), features(500, 64, 9)
    real[:40] = gen[:40]                                 # partial memorisation, still above 0.1
    fid, d, d_thr, score = kit_scores(gen, real, threshold=0.5)
    metric = MemorizationInformedFrechetInceptionDistance(feature=torch.nn.Identity(), cosine_distance_eps=0.5)
    metric.update(torch.from_numpy(gen).double(), real=True)     # swapped on purpose (see docstring)
    metric.update(torch.from_numpy(real).double(), real=False)
    assert 0 < d < 0.5
    assert score == pytest.approx(float(metric.compute()), rel=1e-9)
    assert fid == pytest.approx(float(_compute_fid(*F.statistics(torch.from_numpy(real)),
                                                   *F.statistics(torch.from_numpy(gen)))), rel=1e-9)
    unswapped = MemorizationInformedFrechetInceptionDistance(feature=torch.nn.Identity(), cosine_distance_eps=0.5)
    unswapped.update(torch.from_numpy(real).double(), real=True)
    unswapped.update(torch.from_numpy(gen).double(), real=False)
    assert float(unswapped.compute()) != pytest.approx(score, rel=1e-3)   # the definitions do differ


def test_identical_feature_sets_give_d_exactly_zero_and_a_huge_positive_mifid():
    real = features(200, 64, 6, shift=0.2)
    fid, d, d_thr, score = kit_scores(real.copy(), real, threshold=0.1)
    assert d == 0.0 and d_thr == 0.0                # exactly, not merely close: no negative round-off
    assert 0.0 <= fid < 1e-9 and score == fid / 1e-15 and score >= 0   # FID's round-off is never below 0 either
    fid, d, d_thr, score = kit_scores(real[:120].copy(), real, threshold=0.1)   # copies of part of the real set
    assert d == 0.0 and fid > 1e-3 and score == fid / 1e-15 and score > 1e12
    negated = F.nearest_real(torch.from_numpy(-real), torch.from_numpy(real))[0]
    assert (negated == 0).all()                     # 1 - |cos|: a sign flip is a copy too


def test_distances_are_never_negative_on_scaled_copies():
    real = torch.from_numpy(features(300, 32, 7, shift=0.1)).double()
    scales = torch.logspace(-3, 3, len(real), dtype=torch.float64)[:, None]
    dist = F.nearest_real(real * scales, real)[0]   # cos = 1 up to round-off for every row
    assert dist.min() >= 0 and dist.max() < 1e-15


def test_one_near_copy_gives_a_small_positive_d():
    real = features(100, 32, 8)
    gen = real[:1] + features(1, 32, 9) * 0.01
    d = F.memorisation_distance(F.nearest_real(torch.from_numpy(gen), torch.from_numpy(real))[0])
    assert 0 < d < 1e-3
    assert d == pytest.approx(reference_distance(gen.astype(np.float64), real.astype(np.float64)), rel=1e-6)


def test_private_threshold_penalises_what_the_public_one_lets_pass():
    """A d between 0.1 and 0.25: no penalty at the public threshold, d itself at the private one (numpy reference)."""
    real = features(300, 64, 10)
    gen = real[:200] + features(200, 64, 11) * 0.6            # loose copies: d lands between the thresholds
    g64, r64 = gen.astype(np.float64), real.astype(np.float64)
    public, private = kit_scores(gen, real, threshold=0.1), kit_scores(gen, real, threshold=0.25)
    d = reference_distance(g64, r64)
    assert 0.1 <= d < 0.25 and public[1] == pytest.approx(d, rel=1e-9)
    assert public[2] == 1.0 and private[2] == pytest.approx(d, rel=1e-9)
    assert public[3] == pytest.approx(reference_mifid(g64, r64, 0.1), rel=1e-7)
    assert private[3] == pytest.approx(reference_mifid(g64, r64, 0.25), rel=1e-7)
