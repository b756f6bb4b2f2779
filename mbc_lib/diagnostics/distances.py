"""Distribution match between policy samples and demonstrations (app-diagnostics, item 9).

* :func:`sinkhorn_divergence` — the debiased entropic OT divergence
  S_ε(α, β) = OT_ε(α, β) − ½ OT_ε(α, α) − ½ OT_ε(β, β), solved by POT (stabilised Sinkhorn, ε-scaling);
* :func:`mmd2` — the squared maximum mean discrepancy with a Gaussian kernel and the
  median-heuristic bandwidth.

Both see only weak-topology closeness: a small value does not rule out bridge mass
(book appendix, app-aggregate), so report them next to :func:`mbc_lib.diagnostics.modes.mode_coverage`.
Sample sets are ``[N, H, d]`` or ``[N, n]`` (torch or numpy), compared as points of R^n.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..pot import import_pot
from .modes import Array, flatten_chunks

ot = import_pot()

__all__ = ["sinkhorn_divergence", "entropic_ot", "mmd2", "median_bandwidth"]


def _pair(x: Array, y: Array) -> tuple[np.ndarray, np.ndarray]:
    a, b = flatten_chunks(x, "x"), flatten_chunks(y, "y")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x and y have different chunk sizes: {a.shape[1]} vs {b.shape[1]}")
    return a, b


def entropic_ot(x: Array, y: Array, eps: float, max_iter: int = 20_000, tol: float = 1e-6) -> float:
    """OT_ε(α, β) = min_P ⟨P, C⟩ + ε KL(P ‖ α⊗β) between the uniform empirical measures on x and y
    (the building block of app-diagnostics, item 9).

    C_ij = ‖x_i − y_j‖² (squared Euclidean, action units²); ε in the same units.
    Solver: POT's stabilised Sinkhorn (``ot.bregman.sinkhorn_stabilized``, large scalings
    absorbed into the dual potentials) with ε-scaling — ten iterations at each of
    ε_k = 2^k ε from the cost's scale down, warm-started with the previous level's dual
    potentials (which live in cost units, so they carry over), then iterations at ε until
    ‖Pᵀ1 − β‖₂ ≤ ``tol`` (a RuntimeWarning says when ``max_iter`` ran out first). Plain
    Sinkhorn needs ~ max C/ε iterations to converge; the schedule needs a few per level.

    Returned: the dual value ⟨α, f⟩ + ⟨β, g⟩ − ε(Σ P − 1) with P_ij = α_i β_j e^{(f_i + g_j − C_ij)/ε}
    — equal to the full regularised objective at the optimum (ε KL term included, which
    is what makes the debiased divergence ≥ 0; ``ot.sinkhorn2`` returns ⟨P, C⟩ only) and,
    being a concave dual, off by only second order in the potentials' error.
    """
    a, b = _pair(x, y)
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    eps = float(eps)
    cost = ot.dist(a, b)
    wa, wb = np.full(len(a), 1 / len(a)), np.full(len(b), 1 / len(b))
    levels = [eps]
    while levels[-1] < cost.max():  # coarse to fine: ε, 2ε, 4ε, … up to the cost's scale
        levels.append(2 * levels[-1])
    warm = None
    for k, e in enumerate(reversed(levels)):
        final = k == len(levels) - 1
        plan, log = ot.bregman.sinkhorn_stabilized(wa, wb, cost, e, numItermax=max_iter if final else 10, tau=1e6,
                                                   stopThr=tol, warmstart=warm, log=True, warn=False)
        warm = log["warmstart"]  # (α, β) with P_ij = exp((α_i + β_j − C_ij)/ε)
    if log["err"][-1] > tol:
        warnings.warn(f"Sinkhorn did not converge (marginal error {log['err'][-1]:.2e} > tol {tol:.1e}); "
                      "increase eps or max_iter", RuntimeWarning, stacklevel=2)
    f, g = warm[0] - eps * np.log(wa), warm[1] - eps * np.log(wb)  # potentials relative to α⊗β
    return float(wa @ f + wb @ g - eps * (plan.sum() - 1))


def sinkhorn_divergence(x: Array, y: Array, eps: float | None = None, max_iter: int = 20_000, tol: float = 1e-6) -> float:
    """Debiased Sinkhorn divergence between two sample sets (app-diagnostics, item 9), action units²:

        S_ε(α, β) = OT_ε(α, β) − ½ OT_ε(α, α) − ½ OT_ε(β, β)        (:func:`entropic_ot`)

    S_ε ≥ 0, = 0 iff α = β, and interpolates between W₂² (ε → 0) and an MMD (ε → ∞); a
    pure translation by v gives exactly ‖v‖². Default ε = 0.01 × median squared distance
    between x and y points (blur √ε ≈ a tenth of a typical distance), so the value is
    comparable across tasks up to the units of a². x ``[N, ...]``, y ``[M, ...]``.
    Cost: O(N·M) memory and per iteration, and more iterations as ε shrinks relative to
    the spread of the data — subsample to a few hundred points per set on a laptop CPU.
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


def median_bandwidth(x: Array, y: Array, max_points: int = 1000) -> float:
    """Median heuristic for the MMD of app-diagnostics, item 9: h = median pairwise Euclidean distance in the pooled sample.

    Uses the first ``max_points`` of each set (deterministic); zero distances (duplicates)
    are ignored.
    """
    a, b = _pair(x, y)
    pooled = np.concatenate([a[:max_points], b[:max_points]])
    d = np.sqrt(ot.dist(pooled, pooled))[np.triu_indices(len(pooled), k=1)]
    d = d[d > 0]
    return float(np.median(d)) if d.size else 1.0


def mmd2(x: Array, y: Array, bandwidth: float | None = None, unbiased: bool = True) -> float:
    """Squared maximum mean discrepancy with a Gaussian kernel (app-diagnostics, item 9), dimensionless:

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

