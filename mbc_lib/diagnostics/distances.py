"""Distribution match between policy samples and demonstrations (THEORY §3 item 9).

* :func:`sinkhorn_divergence` — the debiased entropic OT divergence
  S_ε(α, β) = OT_ε(α, β) − ½ OT_ε(α, α) − ½ OT_ε(β, β), solved by POT (log-domain Sinkhorn, ε-scaling);
* :func:`mmd2` — the squared maximum mean discrepancy with a Gaussian kernel and the
  median-heuristic bandwidth.

Both see only weak-topology closeness: a small value does not rule out bridge mass
(THEORY §1d), so report them next to :func:`mbc_lib.diagnostics.modes.mode_coverage`.
Sample sets are ``[N, H, d]`` or ``[N, n]`` (torch or numpy), compared as points of R^n.
"""
from __future__ import annotations

import warnings

import numpy as np
import ot

from .modes import flatten_chunks

__all__ = ["sinkhorn_divergence", "entropic_ot", "mmd2", "median_bandwidth"]


def _pair(x, y) -> tuple[np.ndarray, np.ndarray]:
    a, b = flatten_chunks(x, "x"), flatten_chunks(y, "y")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x and y have different chunk sizes: {a.shape[1]} vs {b.shape[1]}")
    return a, b


def entropic_ot(x, y, eps: float, max_iter: int = 2000, tol: float = 1e-9, scaling: float = 0.5) -> float:
    """OT_ε(α, β) = min_P ⟨P, C⟩ + ε KL(P ‖ α⊗β) between the uniform empirical measures on x and y.

    C_ij = ‖x_i − y_j‖² (squared Euclidean, action units²); ε in the same units. Solved by
    POT's log-domain Sinkhorn (``ot.bregman.sinkhorn_log``) with ε-scaling: a few
    iterations at ε_k = max(ε, max C · scaling^k), each level warm-started from the last
    (dual potentials f = ε log u carried over), then iterations at ε until the marginal
    violation is below ``tol`` (a RuntimeWarning says when ``max_iter`` ran out first).
    Plain Sinkhorn needs ~ max C/ε iterations; the schedule needs a few per halving of ε.
    Returns the *full* regularised objective, including the ε KL term, which is what
    makes the debiased divergence ≥ 0 (``ot.sinkhorn2`` returns ⟨P, C⟩ only).
    """
    a, b = _pair(x, y)
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    if not 0 < scaling < 1:
        raise ValueError(f"scaling must lie in (0, 1), got {scaling}")
    cost = ot.dist(a, b)
    wa, wb = np.full(len(a), 1 / len(a)), np.full(len(b), 1 / len(b))
    levels = [float(eps)]
    while levels[-1] < cost.max():  # coarse-to-fine: ε_k = ε / scaling^k up to the cost's scale
        levels.append(levels[-1] / scaling)
    log_u = log_v = None
    for k, e in enumerate(reversed(levels)):
        final = k == len(levels) - 1
        warm = None if log_u is None else (log_u * previous / e, log_v * previous / e)
        plan, log = ot.bregman.sinkhorn_log(wa, wb, cost, e, numItermax=max_iter if final else 10,
                                            stopThr=tol, warmstart=warm, log=True, warn=False)
        log_u, log_v, previous = log["log_u"], log["log_v"], e
    violation = np.abs(plan.sum(1) - wa).sum() + np.abs(plan.sum(0) - wb).sum()
    if violation > max(10 * tol, 1e-7):
        warnings.warn(f"Sinkhorn did not converge (marginal violation {violation:.2e}); increase eps or max_iter",
                      RuntimeWarning, stacklevel=2)
    nz = plan > 0
    kl = float((plan[nz] * np.log(plan[nz] * len(a) * len(b))).sum())  # KL(P ‖ α⊗β), α⊗β = 1/(NM)
    return float((plan * cost).sum()) + float(eps) * kl


def sinkhorn_divergence(x, y, eps: float | None = None, max_iter: int = 2000, tol: float = 1e-9) -> float:
    """Debiased Sinkhorn divergence between two sample sets (THEORY §3 item 9), action units²:

        S_ε(α, β) = OT_ε(α, β) − ½ OT_ε(α, α) − ½ OT_ε(β, β)        (:func:`entropic_ot`)

    S_ε ≥ 0, = 0 iff α = β, and interpolates between W₂² (ε → 0) and an MMD (ε → ∞); a
    pure translation by v gives exactly ‖v‖². Default ε = 0.01 × median squared distance
    between x and y points (blur √ε ≈ a tenth of a typical distance), so the value is
    comparable across tasks up to the units of a². x ``[N, ...]``, y ``[M, ...]``.
    """
    a, b = _pair(x, y)
    if eps is None:
        eps = 0.01 * float(np.median(ot.dist(a, b)))
        if eps <= 0:  # identical point clouds collapsed to one point
            return 0.0
    ab = entropic_ot(a, b, eps, max_iter, tol)
    aa = entropic_ot(a, a, eps, max_iter, tol)
    bb = entropic_ot(b, b, eps, max_iter, tol)
    return max(ab - 0.5 * aa - 0.5 * bb, 0.0)


def median_bandwidth(x, y, max_points: int = 1000) -> float:
    """Median heuristic: h = median of the pairwise Euclidean distances in the pooled sample.

    Uses the first ``max_points`` of each set (deterministic); zero distances (duplicates)
    are ignored.
    """
    a, b = _pair(x, y)
    pooled = np.concatenate([a[:max_points], b[:max_points]])
    d = np.sqrt(ot.dist(pooled, pooled))[np.triu_indices(len(pooled), k=1)]
    d = d[d > 0]
    return float(np.median(d)) if d.size else 1.0


def mmd2(x, y, bandwidth: float | None = None, unbiased: bool = True) -> float:
    """Squared maximum mean discrepancy with a Gaussian kernel (THEORY §3 item 9), dimensionless:

        k(u, v) = exp(−‖u − v‖² / (2h²)),   MMD² = E k(X, X′) + E k(Y, Y′) − 2 E k(X, Y)

    with h = ``bandwidth`` or the median heuristic (:func:`median_bandwidth`). ``unbiased``:
    the U-statistic (diagonal terms dropped; can be slightly negative when x and y come
    from the same law), else the V-statistic (≥ 0). For N(0, s²) vs N(m, s²) in 1-D the
    population value is 2h/√(h² + 2s²) · (1 − exp(−m²/(2(h² + 2s²)))).
    """
    a, b = _pair(x, y)
    h = median_bandwidth(a, b) if bandwidth is None else float(bandwidth)
    if not h > 0:
        raise ValueError(f"bandwidth must be > 0, got {h}")
    n, m = len(a), len(b)
    if unbiased and (n < 2 or m < 2):
        raise ValueError("the unbiased MMD needs at least 2 samples in each set")

    def k(u, v):
        return np.exp(-ot.dist(u, v) / (2 * h * h))

    kxx, kyy, kxy = k(a, a), k(b, b), k(a, b)
    if unbiased:
        xx = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
        yy = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    else:
        xx, yy = kxx.mean(), kyy.mean()
    return float(xx + yy - 2 * kxy.mean())

