"""FID, the memorisation distance d and MiFID as pure tensor functions (float64 where it matters)."""
import math

import torch

MIFID_EPSILON = 1e-15   # the organisers' scorer: fid / (d_thr + 1e-15)


def statistics(features: torch.Tensor):
    """Mean and covariance (ddof=1, like np.cov) of N×D features, in float64 on their device."""
    x = features.double()
    mu = x.mean(0)
    xc = x - mu
    return mu, xc.T @ xc / (len(x) - 1)


def sqrt_psd(sigma: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a covariance via its eigendecomposition (negative round-off clamped to 0)."""
    w, v = torch.linalg.eigh(sigma)
    return (v * w.clamp(min=0).sqrt()) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2, sqrt_sigma2=None, centred1=None) -> float:
    """|mu1-mu2|² + tr S1 + tr S2 - 2 tr sqrt(S1 S2).

    centred1 (the N×D features behind S1, minus mu1), when N <= D: S1 = Xᵀ X / (N-1) has rank < N, and S1 S2 shares
    its non-zero eigenvalues with the N×N matrix X S2 Xᵀ / (N-1), so tr sqrt(S1 S2) costs an N×N eigenvalue problem.
    Otherwise tr sqrt(S1 S2) = sum sqrt(eig(R S1 R)) with R = sqrt(S2) (sqrt_sigma2 when given).
    """
    if centred1 is not None and len(centred1) <= len(mu1):
        m = centred1 @ sigma2 @ centred1.T / (len(centred1) - 1)
    else:
        r = sqrt_psd(sigma2) if sqrt_sigma2 is None else sqrt_sigma2
        m = r @ sigma1 @ r                    # similar to S2 S1, but symmetric PSD: stable eigvalsh
    tr_covmean = torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0).sqrt().sum()
    diff = mu1 - mu2
    # A squared distance: identical statistics give round-off either side of 0, and a negative FID would make MiFID
    # negative (the best score there is) for a memorised set.
    return max(0.0, float(diff @ diff + sigma1.trace() + sigma2.trace() - 2 * tr_covmean))


def frechet_distance_of(features: torch.Tensor, real: dict) -> float:
    """FID of N×D features against real statistics {mu, sigma}; R = sqrt(sigma) is computed once, into `real`, when
    N > D needs it."""
    mu, sigma = statistics(features)
    if len(features) > len(mu) and "sqrt_sigma" not in real:
        real["sqrt_sigma"] = sqrt_psd(real["sigma"])
    return frechet_distance(mu, sigma, real["mu"], real["sigma"], real.get("sqrt_sigma"), features.double() - mu)


def nearest_real(gen, real, chunk=1024, candidates=4):
    """For each generated row whose sum is not 0: min over real rows (sum not 0) of 1 - |cos| (>= 0), and where.

    Searches in float32 a chunk of generated rows at a time (the N×M matrix never exists whole), then
    recomputes the best `candidates` pairs in float64, so the result is the float64 value up to float32 near-ties.
    Returns (distance float64 [K], generated row index [K], real row index [K]).
    """
    gen_index = torch.nonzero(gen.double().sum(1) != 0).squeeze(1)
    real_index = torch.nonzero(real.double().sum(1) != 0).squeeze(1)
    g64 = unit_rows(gen[gen_index])
    r64 = unit_rows(real[real_index])
    r32 = r64.float()
    k = min(candidates, len(r64))
    distances, nearest = [], []
    precision = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")     # true float32 even after kit.train turned TF32 on
    try:
        for start in range(0, len(g64), chunk):
            g = g64[start:start + chunk]
            top = (g.float() @ r32.T).abs_().topk(k, dim=1).indices
            best, which = one_minus_abs_cos(g[:, None, :], r64[top]).min(1)
            distances.append(best)
            nearest.append(top.gather(1, which[:, None]).squeeze(1))
    finally:
        torch.set_float32_matmul_precision(precision)
    if not distances:
        return torch.empty(0, dtype=torch.float64), gen_index, real_index[:0]
    return torch.cat(distances), gen_index, real_index[torch.cat(nearest)]


def one_minus_abs_cos(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """1 - |cos| of unit rows as min(|u - v|², |u + v|²) / 2: never below 0, exactly 0 for equal rows."""
    return torch.minimum((u - v).square().sum(-1), (u + v).square().sum(-1)) / 2


def unit_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit L2 norm in float64."""
    x = x.double()
    return x / x.norm(dim=1, keepdim=True)


def memorisation_distance(nearest_distances: torch.Tensor) -> float:
    """The competition's d from nearest_real's distances: their mean over generated images (nan when there are none)."""
    return float(nearest_distances.mean()) if len(nearest_distances) else math.nan


def thresholded(d: float, threshold: float) -> float:
    """d_thr: d itself when d < threshold, else 1 (nan counts as not below)."""
    return d if d < threshold else 1.0


def mifid(fid: float, d_thr: float) -> float:
    """MiFID = FID / (d_thr + 1e-15), as the organisers compute it."""
    return fid / (d_thr + MIFID_EPSILON)
