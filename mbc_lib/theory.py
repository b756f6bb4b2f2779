"""Closed-form bounds and predictions of the course — the numbers the measurements are held to.

Each group is derived in a chapter and proved in the book's appendix ("Proofs, corrections to the
paper, and numerical checks"); the appendix's section labels are given in brackets:

* the Fano bound B(P_e) on the information a latent must carry (:func:`fano_bound`; chapter 3,
  app-fano);
* the exact collapse threshold of the analytic CVAE toy: the collapse criterion Λ(T) ≤ 0
  (:func:`collapse_criterion`), the sub-Gaussian variance proxy v′, β* for the L2 and L1
  losses (:func:`critical_beta`), its closed form for equal, equally spaced modes, the
  weaker "hard-code" heuristic β_hard, ACT's loss scaling, and a Blahut–Arimoto
  rate–distortion solver that checks all of them by brute force (chapter 3; app-collapse,
  app-collapse-l2, app-collapse-l1, app-beta-hard, app-act, app-collapse-check);
* the mode-count bounds for push-forward policies (:func:`mode_count_bound`), with the
  correction for base dimension n > 1 (the paper's formula is false there; chapter 5,
  app-counting, app-counting-d);
* the Gaussian-isoperimetry results: minimum Lipschitz constant for two modes, the
  bridge-mass floor for two and for K modes (:func:`bridge_floor`), the Lipschitz constant a
  measured bridge implies, and the dimension-free bound on the number of heavy modes (chapter 5,
  app-isoperimetry).

Conventions: natural logarithms, so information is in nats; action chunks are points of
R^n (n = H·d_a) with the Euclidean norm of the flattened chunk; a mixture is given by
``centers`` ``[K]`` (1-D) or ``[K, n]``, ``weights`` ``[K]`` (non-negative, summing to 1;
zero weights mark absent modes) and the within-mode standard deviation ``sigma`` per
coordinate (the toy's ``a ~ Σ_k π_k N(μ_k, σ² I)``). Everything is numpy/scipy and
deterministic; only :func:`blahut_arimoto` draws random numbers, from its ``seed``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import linalg, optimize
from scipy.special import log_ndtr, logsumexp, ndtr
from scipy.stats import chi2, norm

from .validation import check_real, check_seed

__all__ = [
    # Fano bound (app-fano)
    "entropy",
    "binary_entropy",
    "fano_bound",
    # collapse threshold (app-collapse)
    "collapse_point",
    "subgaussian_variance_proxy",
    "collapse_criterion",
    "CollapseCriterion",
    "critical_beta",
    "local_critical_beta",
    "critical_beta_equal_spacing",
    "critical_beta_from_clusters",
    "beta_hard",
    "act_loss_scaling",
    "LossScaling",
    "blahut_arimoto",
    "RateDistortionPoint",
    "blahut_arimoto_line",
    "collapse_gain",
    "beta_at_rate",
    "beta_nearest_label",
    # counting bounds (app-counting)
    "mode_count_bound",
    "path_mode_count_bound",
    "min_lipschitz_to_reach",
    # isoperimetry (app-isoperimetry)
    "min_lipschitz_two_modes",
    "bridge_mass_bound",
    "balanced_bridge_mass_bound",
    "max_modes_with_mass",
    "multi_mode_bridge_floor",
    "bridge_floor",
    "implied_min_lipschitz",
]

Loss = Literal["l2", "l1"]


# ---------------------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------------------
def _real(name: str, value: float) -> float:
    """``value`` as a float; a ``TypeError`` naming ``name`` for a string, a bool or an array of several numbers."""
    return check_real(value, name, finite=False) if not isinstance(value, float) else value


def _count(name: str, value: int, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``: a whole number (Python or numpy integer), not a bool."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _positive(name: str, value: float) -> float:
    value = _real(name, value)
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def _nonnegative(name: str, value: float) -> float:
    value = _real(name, value)
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def _tau(tau: float) -> float:
    tau = _real("tau", tau)
    if not 0 < tau < 1:
        raise ValueError(f"tau must lie in (0, 1) (the base mass left outside the central set), got {tau}")
    return tau


def _weights(weights: ArrayLike, K: int | None = None) -> np.ndarray:
    """π as a float array ``[..., K]``; each row non-negative and summing to 1 (to 1e-6)."""
    w = np.asarray(weights, dtype=float)
    if w.ndim == 0 or w.shape[-1] == 0:
        raise ValueError(f"weights must be a non-empty array [K] (or [S, K]), got shape {w.shape}")
    if K is not None and w.shape[-1] != K:
        raise ValueError(f"got {w.shape[-1]} weights for K={K} modes")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"weights must be finite and >= 0, got {w}")
    if not np.allclose(w.sum(-1), 1.0, atol=1e-6):
        raise ValueError(f"weights must sum to 1, got sums {w.sum(-1)}")
    return w


def _loss(loss: str) -> str:
    if loss not in ("l2", "l1"):
        raise ValueError(f"loss must be 'l2' or 'l1', got {loss!r}")
    return loss


def _mixture(centers: ArrayLike, weights: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """``(mu [K, n], pi [K])`` with absent (zero-weight) modes dropped."""
    mu = np.asarray(centers, dtype=float)
    if mu.ndim == 1:
        mu = mu[:, None]
    if mu.ndim != 2 or mu.shape[0] == 0:
        raise ValueError(f"centers must be [K] or [K, n], got shape {mu.shape}")
    if not np.all(np.isfinite(mu)):
        raise ValueError("centers must be finite")
    pi = _weights(weights, mu.shape[0])
    if pi.ndim != 1:
        raise ValueError(f"weights must be [K] here, got shape {pi.shape}")
    keep = pi > 0
    return mu[keep], pi[keep] / pi[keep].sum()


# ---------------------------------------------------------------------------------------
# Fano bound (app-fano)
# ---------------------------------------------------------------------------------------
def entropy(weights: ArrayLike) -> float:
    """Shannon entropy H(π) = −Σ_k π_k log π_k in nats (0 log 0 = 0), book appendix app-fano. ``weights`` ``[K]``."""
    w = _weights(weights)
    nz = w[w > 0]
    return float(-(nz * np.log(nz)).sum())


def binary_entropy(rho: float) -> float:
    """Binary entropy h(x) = −x log x − (1−x) log(1−x) in nats, x ∈ [0, 1] (book appendix, app-fano)."""
    rho = _real("rho", rho)
    if not 0 <= rho <= 1:
        raise ValueError(f"rho must lie in [0, 1], got {rho}")
    return float(-sum(p * math.log(p) for p in (rho, 1 - rho) if p > 0))


def fano_bound(weights: ArrayLike, rho: float) -> float:
    """Fano lower bound on the information the latent carries about the mode (book appendix, app-fano).

        I_q(A;Z|S) ≥ I(M;Z|S) ≥ B(P_e) = E_s ℋ(π(s)) − h(P_e) − P_e log(K − 1)      [nats]

    Args:
        weights: mode weights π ``[K]``, or ``[S, K]`` for S equally likely states (then the
            entropy is averaged over rows: E_s H(π(s))).
        rho: the mode-identification error P_e = P(ĝ(s, z) ≠ M) of a mode identifier, in [0, (K−1)/K]; beyond
            (K−1)/K Fano's inequality is not monotone and the bound is not used.

    Returns B(P_e) in nats. It can be negative when P_e is large and π unbalanced: the bound is
    then vacuous (the information is ≥ max(0, B(P_e))). K = 1 gives 0 (P_e must be 0).
    Caveats (app-fano): P_e is measured with z from the *posterior*, and the bound chains
    to the objective only for the expected per-sample KL, never for MMD/Sinkhorn.
    """
    w = _weights(weights)
    K = w.shape[-1]
    rho = _real("rho", rho)
    if not 0 <= rho <= (K - 1) / K + 1e-12:
        raise ValueError(f"rho must lie in [0, (K-1)/K] = [0, {(K - 1) / K:.4g}] for K={K} modes, got {rho}")
    rows = w.reshape(-1, K)
    mean_entropy = float(np.mean([entropy(r) for r in rows]))
    penalty = binary_entropy(rho) + (rho * math.log(K - 1) if K > 1 else 0.0)
    return mean_entropy - penalty


# ---------------------------------------------------------------------------------------
# the analytic CVAE toy: exact collapse threshold (app-collapse)
# ---------------------------------------------------------------------------------------
def _mixture_median(mu: np.ndarray, pi: np.ndarray, sigma: float) -> np.ndarray:
    """Coordinate-wise median of Σ π_k N(μ_k, σ²I), ``[n]`` (the L1-optimal collapsed output)."""
    out = np.empty(mu.shape[1])
    for j in range(mu.shape[1]):
        lo, hi = mu[:, j].min() - 10 * sigma, mu[:, j].max() + 10 * sigma
        out[j] = optimize.brentq(lambda m: float(pi @ norm.cdf((m - mu[:, j]) / sigma)) - 0.5, lo, hi, xtol=1e-13)
    return out


def collapse_point(centers: ArrayLike, weights: ArrayLike, sigma: float, loss: Loss = "l2") -> np.ndarray:
    """y_P = argmin_y E d(A, y): the output of a fully collapsed decoder (app-collapse), ``[n]``.

    L2: the mixture mean Σ π_k μ_k. L1 (d = ‖·‖_1): the coordinate-wise median of the
    mixture — for an even number of symmetric modes it lies *in the gap* between them.
    Needs sigma > 0 for L1 (with point masses the median is not unique).
    """
    mu, pi = _mixture(centers, weights)
    if _loss(loss) == "l2":
        _nonnegative("sigma", sigma)
        return pi @ mu
    return _mixture_median(mu, pi, _positive("sigma (L1 needs a within-mode spread)", sigma))


def _span(mu: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """Centred centres in an orthonormal basis of their span: ``[K, r]`` (r ≤ K−1)."""
    c = mu - pi @ mu  # [K, n]
    if c.shape[0] < 2:
        return np.zeros((c.shape[0], 0))
    _, s, vt = np.linalg.svd(c, full_matrices=False)
    rank = int((s > 1e-12 * max(1.0, s.max())).sum())
    return c @ vt[:rank].T  # [K, r]


def _directions(coords: np.ndarray, pi: np.ndarray) -> list[np.ndarray]:
    """Unit directions worth scanning, both signs, without repeats: the principal axes of
    the offsets and the 16 farthest offsets (in 1-D that is just ±1)."""
    cov = coords.T @ (pi[:, None] * coords)
    _, vecs = np.linalg.eigh(cov)
    norms = np.linalg.norm(coords, axis=1)
    candidates = [vecs[:, -1], *vecs.T[:-1][::-1][:3]]
    candidates += [coords[k] / norms[k] for k in np.argsort(-norms)[:16] if norms[k] > 0]
    dirs: list[np.ndarray] = []
    for d in candidates:
        for signed in (d, -d):
            if all(signed @ e < 1 - 1e-9 for e in dirs):
                dirs.append(signed)
    return dirs


def _maximise_in_span(f, coords: np.ndarray, pi: np.ndarray, r_min: float, r_max: float) -> tuple[float, np.ndarray]:
    """max of f(w) over w in R^r with r_min ≤ ‖w‖ ≤ r_max: a log-spaced radial scan along
    :func:`_directions`, then a bounded quasi-Newton polish in polar form (log-radius,
    unnormalised direction). ``f`` maps ``[G, r]`` to ``[G]``."""
    radii = np.geomspace(r_min, r_max, 61)
    best_val, best_w = -np.inf, np.zeros(coords.shape[1])
    for d in _directions(coords, pi):
        vals = f(radii[:, None] * d[None, :])
        i = int(np.argmax(vals))
        x0 = np.concatenate([[math.log(radii[i])], d])

        def neg(x: np.ndarray) -> float:
            u = x[1:] / max(np.linalg.norm(x[1:]), 1e-300)
            return -float(f((math.exp(x[0]) * u)[None, :])[0])

        bounds = [(math.log(r_min), math.log(r_max))] + [(None, None)] * len(d)
        res = optimize.minimize(neg, x0, method="L-BFGS-B", bounds=bounds)
        for val, w in ((vals[i], radii[i] * d), (-res.fun, math.exp(res.x[0]) * res.x[1:] / np.linalg.norm(res.x[1:]))):
            if np.isfinite(val) and val > best_val:
                best_val, best_w = float(val), w
    return best_val, best_w


def _cgf_offsets(w: np.ndarray, coords: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """ψ_B(w) = log Σ_k π_k exp(wᵀc_k), the cumulant generating function of the mode offsets, ``[G]``."""
    return logsumexp(w @ coords.T + np.log(pi), axis=1)


def subgaussian_variance_proxy(centers: ArrayLike, weights: ArrayLike, sigma: float = 0.0) -> float:
    """Optimal sub-Gaussian variance proxy v′ of A ~ Σ_k π_k N(μ_k, σ² I) (app-collapse-l2).

        v′ = sup_{‖u‖=1, λ≠0} 2 ψ_u(λ)/λ²,   ψ_u(λ) = log E exp(λ uᵀ(A − EA))
           = σ² + sup_w 2 log Σ_k π_k exp(wᵀ(μ_k − μ̄)) / ‖w‖²          [action units²]

    v′ ≥ λ_max(Cov A) (the λ → 0 limit), with equality when A is strictly sub-Gaussian —
    e.g. equal weights on equally spaced 1-D modes; for weights (1−p, p) at distance Δ,
    v′ = σ² + Δ²(1−2p)/(2 log((1−p)/p)). σ = 0 is allowed (an empirical distribution).
    Computed in the span of the centred centres: the λ → 0 limit exactly, plus a radial
    scan and bounded polish for ‖w‖ ∈ [10⁻², 10³]/max|c_k| (below that the ratio is within
    10⁻⁴ relative of the limit and floating point would swamp it).
    """
    mu, pi = _mixture(centers, weights)
    sigma = _nonnegative("sigma", sigma)
    coords = _span(mu, pi)  # [K, r]
    if coords.shape[1] == 0:
        return sigma**2
    limit = float(np.linalg.eigvalsh(coords.T @ (pi[:, None] * coords)).max())  # λ_max(Cov) of the offsets
    scale = float(np.abs(coords).max())
    ratio = lambda w: 2 * _cgf_offsets(w, coords, pi) / (w**2).sum(1)  # noqa: E731
    best, _ = _maximise_in_span(ratio, coords, pi, 1e-2 / scale, 1e3 / scale)
    return sigma**2 + max(limit, best)


# -- the L1 moment generating function, in closed form --------------------------------
def _log_ndtr_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log(Φ(b) − Φ(a)) for a ≤ b, stable in both tails (−inf where a = b)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        upper = log_ndtr(-a) + np.log1p(-np.exp(log_ndtr(-b) - log_ndtr(-a)))  # Φ(−a) − Φ(−b), a > 0
        lower = log_ndtr(b) + np.log1p(-np.exp(log_ndtr(a) - log_ndtr(b)))
    return np.where(a > 0, upper, lower)


def _l1_log_mgf(s: np.ndarray, y: np.ndarray, mu: np.ndarray, sigma: float, m: np.ndarray) -> np.ndarray:
    """log E_k exp{s·Σ_j (|A_j − m_j| − |A_j − y_j|)} for each mode k, ``[G, K]``.

    ``s`` ``[G]`` (= 1/T), ``y`` ``[G, n]``, ``mu`` ``[K, n]``, ``m`` ``[n]``. Within a mode
    the coordinates are independent Gaussians, so the expectation is a product over j of
    one-dimensional ones; h(x) = |x − m| − |x − y| is piecewise linear, so each is three
    Gaussian integrals (exact, no quadrature). For y < m reflect x → −x.
    """
    s = s[:, None, None]  # [G, 1, 1]
    flip = (y < m)[:, None, :]  # [G, 1, n]
    yy = np.where(flip, -y[:, None, :], y[:, None, :])
    mm = np.where(flip, -m, m)
    uu = np.where(flip, -mu[None], mu[None])  # [G, K, n]
    delta = yy - mm  # ≥ 0
    a, b = (mm - uu) / sigma, (yy - uu) / sigma
    t1 = -s * delta + log_ndtr(a)  # x ≤ m: h = −δ
    t2 = s * delta + log_ndtr(-b)  # x ≥ y: h = +δ
    shift = 2 * s * sigma  # tilting N(μ, σ²) by e^{2sx} moves its mean by 2sσ²
    t3 = s * (2 * uu - mm - yy) + 2 * (s * sigma) ** 2 + _log_ndtr_diff(a - shift, b - shift)  # m < x < y
    return logsumexp(np.stack([t1, t2, t3]), axis=0).sum(-1)  # [G, K]


def _l1_cgf(s: np.ndarray, y: np.ndarray, mu: np.ndarray, pi: np.ndarray, sigma: float, m: np.ndarray) -> np.ndarray:
    """K_y(s) = log E_P exp{s [d(A, y_P) − d(A, y)]} for the L1 distance, ``[G]``."""
    return logsumexp(_l1_log_mgf(s, y, mu, sigma, m) + np.log(pi), axis=1)


def _l1_root(y: np.ndarray, mu: np.ndarray, pi: np.ndarray, sigma: float, m: np.ndarray) -> np.ndarray:
    """λ(y): the positive root of s ↦ K_y(s), ``[G]``.

    K_y is convex with K_y(0) = 0 and K_y′(0) = E g_y < 0 (y ≠ y_P), so it is negative on
    (0, λ(y)) and positive after: Λ(T) > 0 iff 1/T > inf_y λ(y). A doubling/halving search
    brackets the root in [s, 2s]; then Brent's method (few points) or a vectorised
    bisection (many points) closes it to ~1e-12 relative.
    """
    cgf = lambda s, yy: _l1_cgf(s, yy, mu, pi, sigma, m)  # noqa: E731
    hi = 1.0 / (sigma + np.abs(y - m).sum(-1))  # [G]
    for _ in range(200):  # grow until K_y(hi) > 0
        pos = cgf(hi, y) > 0
        if pos.all():
            break
        hi = np.where(pos, hi, 2 * hi)
    lo = hi / 2
    for _ in range(200):  # shrink until K_y(lo) < 0
        neg = cgf(lo, y) < 0
        if neg.all():
            break
        hi, lo = np.where(neg, hi, lo), np.where(neg, lo, lo / 2)
    if len(y) <= 4:
        return np.array([optimize.brentq(lambda s: float(cgf(np.array([s]), y[i:i + 1])[0]), lo[i], hi[i],
                                         xtol=1e-14, rtol=1e-12) for i in range(len(y))])
    for _ in range(42):  # the bracket [lo, 2lo] shrinks to 2^-42 relative
        mid = 0.5 * (lo + hi)
        pos = cgf(mid, y) > 0
        hi, lo = np.where(pos, mid, hi), np.where(pos, lo, mid)
    return 0.5 * (lo + hi)


def _l1_local_temperature(mu: np.ndarray, pi: np.ndarray, sigma: float, m: np.ndarray) -> float:
    """Second-order (y → y_P) L1 threshold: T_loc = max_u uᵀCu / (2 uᵀFu).

    For y = y_P + t u and small t, E g ≈ −t² Σ_j u_j² f_j(m_j) and Var g ≈ t² uᵀCu with
    C = Cov(sign(A − m)) and F = diag(f_j(m_j)) the marginal densities at the median. In
    1-D this is 1/(2 f(y_P)).
    """
    z = (m[None, :] - mu) / sigma  # [K, n]
    f = (pi[:, None] * norm.pdf(z)).sum(0) / sigma  # marginal density at the median, [n]
    e = 1 - 2 * norm.cdf(z)  # E_k sign(A_j − m_j), [K, n]
    C = (pi[:, None, None] * e[:, :, None] * e[:, None, :]).sum(0)
    np.fill_diagonal(C, 1.0)
    return float(linalg.eigh(C, 2 * np.diag(f), eigvals_only=True).max())


def _maximise_over_y(objective, starts: list[np.ndarray], lo: np.ndarray, hi: np.ndarray, n: int):
    """max of a function of y ∈ R^n: a fine scan in 1-D, multi-start Nelder–Mead beyond."""
    if n == 1:
        grid = np.linspace(lo[0], hi[0], 801)[:, None]
        vals = objective(grid)
        i = int(np.nanargmax(vals))
        a, b = grid[max(i - 1, 0), 0], grid[min(i + 1, 800), 0]
        res = optimize.minimize_scalar(lambda t: -objective(np.array([[t]]))[0], bounds=(a, b), method="bounded",
                                       options={"xatol": 1e-10})
        if -res.fun > vals[i]:
            return float(-res.fun), np.array([res.x])
        return float(vals[i]), grid[i]
    vals = objective(np.stack(starts))
    order = np.argsort(-vals)[:2]
    best_val, best_y = float(vals[order[0]]), starts[order[0]]
    for i in order:
        res = optimize.minimize(lambda y: -objective(y[None])[0], starts[i], method="Nelder-Mead",
                                options={"xatol": 1e-6, "fatol": 1e-11, "maxiter": 2000})
        if -res.fun > best_val:
            best_val, best_y = float(-res.fun), res.x
    return best_val, np.asarray(best_y)


def _y_starts(mu: np.ndarray, m: np.ndarray) -> list[np.ndarray]:
    return [m + t * (c - m) for c in mu for t in (0.25, 0.5, 1.0, 1.5)]


@dataclass
class CollapseCriterion:
    """Λ(T) of the collapse criterion (app-collapse) and where the supremum is attained.

    value: Λ(T) ≥ 0 (nats; +inf for L2 when T < 2σ²); collapse is optimal iff value ≤ 0.
    y_star: the maximising output y ``[n]`` — what a rare code would decode to.
    y_collapsed: y_P ``[n]``, the collapsed decoder's output.
    """

    value: float
    y_star: np.ndarray
    y_collapsed: np.ndarray

    @property
    def collapses(self) -> bool:
        return self.value <= 1e-9


def collapse_criterion(
    temperature: float, centers: ArrayLike, weights: ArrayLike, sigma: float, loss: Loss = "l2"
) -> CollapseCriterion:
    """The collapse criterion (chapter 3; app-collapse) at temperature T = cβ:

        Λ(T) = sup_y log E_P exp{[d(A, y_P) − d(A, y)] / T}     [nats];  collapse optimal ⇔ Λ(T) ≤ 0

    with A ~ Σ_k π_k N(μ_k, σ²I), y_P the mean (L2, d = ‖·‖²) or the coordinate median
    (L1, d = ‖·‖_1). Λ ≥ 0 always (y = y_P gives 0), so "≤ 0" is tested as ≤ 1e-9.

    L2: with λ = 2(y − y_P)/T, Λ(T) = sup_λ [log Σ π_k e^{λᵀc_k} − (T/4 − σ²/2)‖λ‖²]
    (c_k = μ_k − μ̄), +inf below T = 2σ². L1: the expectation is exact (piecewise-linear
    exponent against Gaussians) and the supremum over y is numerical (a fine scan in 1-D,
    multi-start Nelder–Mead in n-D), so in n-D the value is a lower bound on Λ.
    """
    T = _positive("temperature T = c·beta", temperature)
    mu, pi = _mixture(centers, weights)
    if _loss(loss) == "l2":
        sigma = _nonnegative("sigma", sigma)
        y_p = pi @ mu
        coords = _span(mu, pi)
        r = coords.shape[1]
        curvature = T / 4 - sigma**2 / 2
        if curvature < 0 or (curvature == 0 and r > 0):
            return CollapseCriterion(math.inf, np.full_like(y_p, np.nan), y_p)
        if r == 0:
            return CollapseCriterion(0.0, y_p, y_p)
        scale = float(np.abs(coords).max())
        gain = lambda w: _cgf_offsets(w, coords, pi) - curvature * (w**2).sum(1)  # noqa: E731
        best, best_w = _maximise_in_span(gain, coords, pi, 1e-3 / scale, 1e3 / scale)
        if best <= 0:
            best, best_w = 0.0, np.zeros(r)
        # back to action space: y − y_P = (T/2) λ, λ expressed in the span basis
        basis = np.linalg.lstsq(coords, mu - y_p, rcond=None)[0]  # [r, n]
        return CollapseCriterion(best, y_p + T / 2 * best_w @ basis, y_p)
    sigma = _positive("sigma (L1 needs a within-mode spread)", sigma)
    m = _mixture_median(mu, pi, sigma)
    lo, hi = mu.min(0) - 4 * sigma, mu.max(0) + 4 * sigma
    value, y = _maximise_over_y(lambda ys: _l1_cgf(np.full(len(ys), 1 / T), ys, mu, pi, sigma, m),
                                _y_starts(mu, m), lo, hi, mu.shape[1])
    return CollapseCriterion(max(value, 0.0), y, m)


def _l1_temperature(mu: np.ndarray, pi: np.ndarray, sigma: float) -> float:
    """T*_{L1} = max(T_loc, sup_y 1/λ(y)): the smallest T with Λ(T) ≤ 0."""
    m = _mixture_median(mu, pi, sigma)
    t_local = _l1_local_temperature(mu, pi, sigma, m)
    if mu.shape[0] == 1:
        return t_local

    def inv_root(ys: np.ndarray) -> np.ndarray:
        # λ(y) → 0/0 at y_P and loses digits within ~1e-3σ of it; T_loc is that limit exactly
        far = np.abs(ys - m).sum(-1) > 1e-3 * sigma
        out = np.full(len(ys), -np.inf)
        if far.any():
            out[far] = 1.0 / _l1_root(ys[far], mu, pi, sigma, m)
        return out

    lo, hi = mu.min(0) - 4 * sigma, mu.max(0) + 4 * sigma
    t_global, _ = _maximise_over_y(inv_root, _y_starts(mu, m), lo, hi, mu.shape[1])
    return max(t_local, t_global)


def critical_beta(
    centers: ArrayLike, weights: ArrayLike, sigma: float, loss: Loss = "l2", scale: float = 1.0
) -> float:
    """β*: the smallest β at which a collapsed CVAE (q = p, D ≡ y_P) is globally optimal (chapter 3; app-collapse).

    The toy objective is J = E d(a, D(z))/c + β E KL, with c = 2σ_d² for L2 (d = ‖·‖²) and
    c = b for L1 (d = ‖·‖_1); T = cβ. Collapse is optimal iff Λ(T) ≤ 0 (the collapse criterion), so

        L2:  β* = v′ / σ_d²      (v′ = :func:`subgaussian_variance_proxy`, exact)
        L1:  β* = T* / b,   T* = min{T : Λ(T) ≤ 0} = max(T_loc, sup_{y≠y_P} 1/λ(y))

    where λ(y) is the positive root of s ↦ log E exp{s[d(A, y_P) − d(A, y)]}
    (Λ(T) > 0 ⇔ 1/T > inf_y λ(y)) and T_loc the second-order limit y → y_P
    (:func:`local_critical_beta`). Dimensionless (β multiplies nats).

    Args:
        centers: mode centres ``[K]`` or ``[K, n]`` (action units, flattened chunks).
        weights: π ``[K]``.
        sigma: within-mode standard deviation per coordinate (> 0 for L1).
        loss: "l2" or "l1".
        scale: σ_d for L2, b for L1 (action units); see :func:`act_loss_scaling` for
            mean-reduced losses such as ACT's.
    """
    mu, pi = _mixture(centers, weights)
    scale = _positive("scale (sigma_d for L2, b for L1)", scale)
    if _loss(loss) == "l2":
        return subgaussian_variance_proxy(mu, pi, sigma) / scale**2
    return _l1_temperature(mu, pi, _positive("sigma (L1 needs a within-mode spread)", sigma)) / scale


def local_critical_beta(
    centers: ArrayLike, weights: ArrayLike, sigma: float, loss: Loss = "l2", scale: float = 1.0
) -> float:
    """The second-order (local) collapse threshold — a lower bound on β* (app-collapse-l2, app-collapse-l1).

        L2:  λ_max(Cov A) / σ_d²       (instability of collapse to a small linear code)
        L1:  T_loc / b,  T_loc = max_u uᵀCu / (2 uᵀ diag(f) u)   — in 1-D 1/(2 f(y_P) b)

    with f the marginal densities at the median and C = Cov(sign(A − y_P)). Between this
    value and :func:`critical_beta` collapse is a local but not a global optimum.
    """
    mu, pi = _mixture(centers, weights)
    scale = _positive("scale (sigma_d for L2, b for L1)", scale)
    if _loss(loss) == "l2":
        sigma = _nonnegative("sigma", sigma)
        c = mu - pi @ mu
        return float(np.linalg.eigvalsh(c.T @ (pi[:, None] * c)).max() + sigma**2) / scale**2
    sigma = _positive("sigma (L1 needs a within-mode spread)", sigma)
    return _l1_local_temperature(mu, pi, sigma, _mixture_median(mu, pi, sigma)) / scale


def critical_beta_equal_spacing(K: int, delta: float, sigma: float, sigma_d: float) -> float:
    """Closed-form β* for K equally weighted, equally spaced 1-D modes, L2 loss (app-collapse-l2):

        β* = (σ² + Δ_c²(K² − 1)/12) / σ_d²

    (such mixtures are strictly sub-Gaussian, so v′ = Var A). Δ_c (``delta``): centre spacing, σ:
    within-mode std, σ_d: decoder std — all in action units. K = 2, Δ = 4, σ = σ_d = 1: 5.
    """
    K = _count("K", K)
    delta, sigma = _positive("delta", delta), _nonnegative("sigma", sigma)
    return (sigma**2 + delta**2 * (K**2 - 1) / 12) / _positive("sigma_d", sigma_d) ** 2


def critical_beta_from_clusters(chunks: ArrayLike, labels: ArrayLike, scale: float = 1.0) -> float:
    """β* (L2) of measured modes: chunks ``[k, H, d]`` or ``[k, n]`` with cluster ``labels [k]`` (app-collapse,
    app-collapse-l2, applied at one state — e.g. the demonstrations near one observation).

    The clusters are read as the criterion's mixture: Gaussian modes at the cluster means with the
    clusters' shares as weights π̂_k, and an isotropic within-mode variance σ̂² set to the *largest*
    eigenvalue of the pooled within-cluster covariance (conservative: β* grows with σ²); then
    β* = v′/σ_d² with ``scale`` = σ_d (:func:`critical_beta`). With one cluster it equals the local
    threshold λ_max(Cov)/σ_d². Units: chunks in the loss's units (normalised, for a trained policy)."""
    x = np.asarray(chunks, dtype=float)
    x = x.reshape(len(x), -1)
    labels = np.asarray(labels).reshape(-1)
    if len(x) == 0 or labels.shape != (len(x),):
        raise ValueError(f"need k >= 1 chunks and one label each, got {len(x)} chunks and labels of shape {labels.shape}")
    ks = np.unique(labels)
    centers = np.stack([x[labels == k].mean(0) for k in ks])
    weights = np.array([(labels == k).mean() for k in ks])
    resid = x - centers[np.searchsorted(ks, labels)]  # [k, n]
    sigma = math.sqrt(max(float(np.linalg.eigvalsh(resid.T @ resid / len(x)).max()), 0.0))
    return critical_beta(centers, weights, sigma, "l2", scale)


def _expected_abs(mu: np.ndarray, sigma: float, y: np.ndarray) -> np.ndarray:
    """E|X − y| for X ~ N(μ, σ²): σ[2φ(z) + z(2Φ(z) − 1)], z = (y − μ)/σ."""
    z = (y - mu) / sigma
    return sigma * (2 * norm.pdf(z) + z * (2 * norm.cdf(z) - 1))


def beta_hard(
    centers: ArrayLike, weights: ArrayLike, sigma: float, loss: Loss = "l2", scale: float = 1.0
) -> float:
    """The "hard-code" heuristic: β below which exact mode coding beats collapse (app-beta-hard).

        β_hard = [E d(A, y_P) − E d(A, y_M)] / (c H(π));   L2: V_B / (2σ_d² H(π)),
        V_B = Σ_k π_k ‖μ_k − μ̄‖² (between-mode variance); K = 2, equal weights: Δ²/(8σ_d² ln 2).

    Only *sufficient* for non-collapse: β*/β_hard = 2H(π)v′/V_B ≥ 1 (> 1.38 for equal
    weights), so the naive estimate is too small — between the two, the optimum keeps
    partial, soft mode information. For L1, y_M = μ_M (each mode's median) and c = b.
    Returns +inf for a single mode (H = 0).
    """
    mu, pi = _mixture(centers, weights)
    scale = _positive("scale (sigma_d for L2, b for L1)", scale)
    H = entropy(pi)
    if _loss(loss) == "l2":
        _nonnegative("sigma", sigma)
        gain, c = float(pi @ ((mu - pi @ mu) ** 2).sum(1)), 2 * scale**2
    else:
        sigma = _positive("sigma (L1 needs a within-mode spread)", sigma)
        m = _mixture_median(mu, pi, sigma)
        collapsed = float(pi @ _expected_abs(mu, sigma, m[None, :]).sum(1))
        gain, c = collapsed - mu.shape[1] * sigma * math.sqrt(2 / math.pi), scale
    return math.inf if H == 0 else gain / (c * H)


@dataclass
class LossScaling:
    """How a mean-reduced reconstruction loss + β·(summed KL) maps onto the collapse criterion (app-act).

    n: k·d_a, elements the loss averages over. loss: "l1" or "l2".
    scale: the ``scale`` to pass to :func:`critical_beta` (b = n for L1, σ_d = √(n/2) for
        L2), so that its β* is directly comparable with ``beta``.
    beta: the KL weight (ACT's kl_weight). temperature: T = c·β in units of the *summed*
        distortion (‖·‖_1 or ‖·‖²) — equivalently T = β for the mean-reduced one.
    """

    n: int
    loss: str
    scale: float
    beta: float
    temperature: float


def act_loss_scaling(chunk_size: int, action_dim: int, kl_weight: float = 10.0, loss: Loss = "l1") -> LossScaling:
    """ACT's loss on the scale of the collapse criterion (chapter 3; app-act).

    ACT minimises mean_{k·d_a elements}|a − â| + kl_weight · Σ_latent-dims KL. Writing the
    mean as ‖a − â‖_1 / n (n = k·d_a) puts it in the form d/c + β KL with d = ‖·‖_1,
    c = b = n and β = kl_weight, so T = n·kl_weight (equivalently d = ‖·‖_1/n, T = β).
    For a mean-reduced MSE, c = n = 2σ_d², i.e. σ_d = √(n/2). Then collapse is predicted
    iff ``kl_weight ≥ critical_beta(centers, weights, sigma, loss, scale=result.scale)``,
    with centres and σ in the units the loss sees (ACT normalises actions per dimension).
    The KL summed over latent dimensions is the ordinary KL and needs no rescaling.
    """
    for name, v in (("chunk_size", chunk_size), ("action_dim", action_dim)):
        _count(name, v)
    beta = _nonnegative("kl_weight", kl_weight)
    n = int(chunk_size * action_dim)
    scale = float(n) if _loss(loss) == "l1" else math.sqrt(n / 2)
    c = n  # b for L1, 2σ_d² for L2: both equal n
    return LossScaling(n=n, loss=loss, scale=scale, beta=beta, temperature=c * beta)


# -- brute force: rate–distortion by Blahut–Arimoto ------------------------------------
@dataclass
class RateDistortionPoint:
    """One point of the toy's optimum with a discrete latent and a learned prior.

    rate: I(A;Z) in nats (= E KL at the optimum, since the prior is the aggregate).
    distortion: E d(A, y_Z) / c (dimensionless, the reconstruction term of J).
    objective: J = distortion + β·rate. mode_error: ρ = P(nearest mode to y_Z ≠ M).
    codes ``[J]`` and code_probs ``[J]``: the codevectors y_j and the prior p(j).
    """

    beta: float
    rate: float
    distortion: float
    objective: float
    mode_error: float
    codes: np.ndarray
    code_probs: np.ndarray


def blahut_arimoto(
    centers: ArrayLike,
    weights: ArrayLike,
    sigma: float,
    beta: float,
    loss: Loss = "l2",
    scale: float = 1.0,
    n_codes: int = 24,
    n_grid: int = 601,
    n_init: int = 3,
    max_iter: int = 5000,
    tol: float = 1e-10,
    seed: int = 0,
) -> RateDistortionPoint:
    """Reference solver: the rate–distortion optimum of the 1-D toy (app-collapse-check).

    Minimises J = E d(A, y_Z)/c + β I(A;Z) over encoders q(j|a), a learned prior p(j) and
    codevectors y_j — the CVAE toy with a flexible discrete latent (Rose's mass-constrained
    deterministic annealing). A is discretised on ``n_grid`` points over μ ± 6σ; each sweep

        q(j|a) ∝ p(j) exp(−d(a, y_j)/T),   p(j) = Σ_a p(a) q(j|a),
        y_j = argmin_y Σ_a p(a) q(j|a) d(a, y)   (weighted mean for L2, median for L1),

    with T = cβ, until J changes by < ``tol``. ``n_init`` starts (codes at quantiles, at the
    mode centres, at random points drawn with ``seed``) keep the best J, so first-order
    transitions (unequal weights) are found too. Iterations slow down near β* (critical
    slowing down); ``max_iter`` caps them. Only 1-D mixtures (centres ``[K]``).
    """
    mu, pi = _mixture(centers, weights)
    if mu.shape[1] != 1:
        raise ValueError("blahut_arimoto handles 1-D mixtures only (centers [K])")
    sigma = _positive("sigma", sigma)
    beta = _positive("beta", beta)
    scale = _positive("scale", scale)
    n_codes, n_init, max_iter = _count("n_codes", n_codes), _count("n_init", n_init), _count("max_iter", max_iter)
    tol, seed = _nonnegative("tol", tol), check_seed(seed)
    c = 2 * scale**2 if _loss(loss) == "l2" else scale
    T = c * beta
    mu = mu[:, 0]
    needed = math.ceil((mu.max() - mu.min()) / sigma + 12) + 1  # grid spacing at most σ over μ ± 6σ
    if isinstance(n_grid, (bool, np.bool_)) or not isinstance(n_grid, (int, np.integer)) or n_grid < needed:
        raise ValueError(f"n_grid must be an integer >= {needed} here (grid points over the mode centres ± 6σ; a grid "
                         f"coarser than σ cannot resolve the modes), got {n_grid!r}; the default 601 suits centres "
                         "up to ~580σ apart")
    x = np.linspace(mu.min() - 6 * sigma, mu.max() + 6 * sigma, n_grid)  # [G]
    joint = pi[None, :] * norm.pdf((x[:, None] - mu[None, :]) / sigma)  # p(a, k) on the grid, [G, K]
    joint /= joint.sum()
    px = joint.sum(1)  # [G]
    posterior = joint / np.maximum(px, 1e-300)[:, None]  # p(k | a), [G, K]
    rng = np.random.default_rng(seed)
    inits = [np.interp((np.arange(n_codes) + 0.5) / n_codes, np.cumsum(px), x),  # quantiles
             np.resize(mu, n_codes) + 0.01 * sigma * np.arange(n_codes) / n_codes,  # on the modes
             rng.choice(x, size=n_codes, p=px)][: max(1, n_init)]  # random
    y = np.sort(np.stack(inits), axis=1)  # [P, J]: all starts iterate together
    logp = np.full(y.shape, -math.log(n_codes))  # log p(j), [P, J]
    prev = np.full(len(y), np.inf)
    for _ in range(max_iter):
        diff = x[None, :, None] - y[:, None, :]  # [P, G, J]
        d = diff**2 if loss == "l2" else np.abs(diff)
        logq = logp[:, None, :] - d / T
        logq -= logq.max(2, keepdims=True)
        logq -= np.log(np.exp(logq).sum(2, keepdims=True))  # log q(j|a)
        w = px[None, :, None] * np.exp(logq)  # p(a, j), [P, G, J]
        pj = w.sum(1)  # [P, J]
        alive = pj > 1e-300
        with np.errstate(divide="ignore"):
            logp = np.log(pj)
        rate = np.where(alive[:, None, :], w * (logq - np.where(alive, logp, 0)[:, None, :]), 0).sum((1, 2))
        J = (w * d).sum((1, 2)) / c + beta * rate  # [P]
        if loss == "l2":  # codevector update: the weighted mean of what each code receives ...
            new = (w * x[None, :, None]).sum(1) / np.where(alive, pj, 1)
        else:  # ... or its weighted median (x is sorted: where the cumulative weight crosses half)
            new = x[np.argmax(np.cumsum(w, axis=1) >= 0.5 * pj[:, None, :], axis=1)]
        y = np.where(alive, new, y)
        if np.all(prev - J < tol):
            break
        prev = J
    i = int(np.argmin(J))
    nearest = np.abs(y[i][:, None] - mu[None, :]).argmin(1)  # [J]: the mode each code decodes to
    mode_error = 1 - float((w[i] * posterior[:, nearest]).sum())
    return RateDistortionPoint(beta, max(float(rate[i]), 0.0), float(J[i] - beta * rate[i]), float(J[i]),
                               mode_error, y[i], pj[i])


# -- the optimum's gain over collapse, and where trained models stop --------------------
def _folded_normal_mean(diff: np.ndarray, s: np.ndarray) -> np.ndarray:
    """E|diff + s·Z| for Z ~ N(0, 1), elementwise (``s`` broadcasts; s = 0 gives |diff|)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = diff / s
        smooth = s * (2 * np.exp(-0.5 * z**2) / math.sqrt(2 * math.pi) + z * (2 * ndtr(z) - 1))
    return np.where(s > 0, smooth, np.abs(diff))


def blahut_arimoto_line(
    centers: ArrayLike,
    weights: ArrayLike,
    sigma: float,
    beta: float,
    loss: Loss = "l2",
    scale: float = 1.0,
    n_codes: int = 4,
    n_grid: int = 201,
    max_iter: int = 3000,
    tol: float = 1e-10,
) -> RateDistortionPoint:
    """The toy's optimum over encoders that see where a chunk lies along the line of the modes.

    For modes on a line, μ_k = m + t_k v (centres ``[K, n]``, ‖v‖ = 1) and A = μ_M + σε, the
    coordinate T = vᵀ(A − m) carries everything A says about the mode. This solver runs
    :func:`blahut_arimoto` over encoders q(j | T) on a grid of T, with codevectors y_j in R^n
    and the distortion averaged *exactly* over the noise across the line: given T = t,
    A_i = m_i + v_i t + s_i Z_i with s_i = σ√(1 − v_i²) and Z_i ~ N(0, 1), so

        L2:  E[(A_i − y_i)² | t] = (m_i + v_i t − y_i)² + s_i²
        L1:  E[|A_i − y_i| | t] = E|m_i + v_i t − y_i + s_i Z|       (a folded normal mean)

    and each codevector is the weighted mean (L2) or coordinate-wise weighted median (L1) of
    what its code receives. The result is a feasible code, so ``J_col − objective`` is a
    lower bound on the optimum's gain over collapse. For L2 it is the optimum whenever
    β ≥ σ²/σ_d² (the noise across the line is then not worth coding); for L1 compare it
    with the upper bound β·Λ(T) of :func:`collapse_criterion`. ``codes`` are ``[J, n]``;
    ``mode_error`` is P(nearest centre to y_Z ≠ M). ``n_codes = 1`` gives collapse.
    """
    mu, pi = _mixture(centers, weights)
    sigma, beta = _positive("sigma", sigma), _positive("beta", beta)
    scale = _positive("scale", scale)
    if not isinstance(n_codes, (int, np.integer)) or n_codes < 1:
        raise ValueError(f"n_codes must be an integer >= 1, got {n_codes!r}")
    c = 2 * scale**2 if _loss(loss) == "l2" else scale
    T = c * beta
    m = pi @ mu
    offsets = mu - m  # [K, n]
    _, sv, vt = np.linalg.svd(offsets, full_matrices=True)
    if int((sv > 1e-9 * max(1.0, float(sv.max(initial=0.0)))).sum()) > 1:
        raise ValueError("blahut_arimoto_line needs mode centres on one line (their offsets have rank > 1)")
    v = vt[0]  # [n], unit
    tk = offsets @ v  # [K]: the modes' positions along the line
    t = np.linspace(tk.min() - 6 * sigma, tk.max() + 6 * sigma, n_grid)  # [G]
    joint = pi[None, :] * norm.pdf((t[:, None] - tk[None, :]) / sigma)  # [G, K]
    joint /= joint.sum()
    pt = joint.sum(1)  # [G]
    posterior = joint / np.maximum(pt, 1e-300)[:, None]  # p(k | t)
    s = sigma * np.sqrt(np.clip(1 - v**2, 0, None))  # [n]: noise across the line, per coordinate
    base = m[None, :] + t[:, None] * v[None, :]  # [G, n]: E[A | t]

    def distortion(y: np.ndarray) -> np.ndarray:  # codes [P, J, n] -> d(t, y_j) [P, G, J]
        diff = base[None, :, None, :] - y[:, None, :, :]
        if loss == "l2":
            return (diff**2).sum(-1) + float((s**2).sum())
        return _folded_normal_mean(diff, s).sum(-1)

    def update(y: np.ndarray, w: np.ndarray, pj: np.ndarray) -> np.ndarray:  # w [P, G, J]
        if loss == "l2":
            return np.einsum("pgj,gn->pjn", w, base) / np.where(pj > 0, pj, 1)[..., None]
        # the weighted median of a monotone function of t is that function of t's median ...
        k = np.argmax(np.cumsum(w, axis=1) >= 0.5 * pj[:, None, :], axis=1)  # [P, J]
        y = base[k]  # [P, J, n]
        for _ in range(3):  # ... then a few Newton steps on the smoothed (s_i > 0) objective
            with np.errstate(divide="ignore", invalid="ignore"):
                z = (y[:, None] - base[None, :, None, :]) / s  # [P, G, J, n]
                grad = (w[..., None] * (2 * ndtr(z) - 1)).sum(1)
                hess = (w[..., None] * 2 * np.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)).sum(1) / s
                step = np.clip(grad / np.maximum(hess, 1e-300), -2 * s, 2 * s)
            y = y - np.where(s > 0, np.nan_to_num(step), 0.0)
        return y

    q = (np.arange(n_codes) + 0.5) / n_codes
    on_modes = np.resize(tk, n_codes) + 0.01 * sigma * np.arange(n_codes) / n_codes
    inits = [np.interp(q, np.cumsum(pt), t), np.sort(on_modes)]  # along the line: quantiles, on the modes
    y = m[None, None, :] + np.stack(inits)[:, :, None] * v[None, None, :]  # [P, J, n]
    logp = np.full(y.shape[:2], -math.log(n_codes))
    prev = np.full(len(y), np.inf)
    for _ in range(max_iter):
        d = distortion(y)  # [P, G, J]
        logq = logp[:, None, :] - d / T
        logq -= logq.max(2, keepdims=True)
        logq -= np.log(np.exp(logq).sum(2, keepdims=True))
        w = pt[None, :, None] * np.exp(logq)
        pj = w.sum(1)
        alive = pj > 1e-300
        with np.errstate(divide="ignore"):
            logp = np.log(pj)
        rate = np.where(alive[:, None, :], w * (logq - np.where(alive, logp, 0)[:, None, :]), 0).sum((1, 2))
        J = (w * d).sum((1, 2)) / c + beta * rate
        y = np.where(alive[..., None], update(y, w, pj), y)
        if np.all(prev - J < tol):
            break
        prev = J
    i = int(np.argmin(J))
    nearest = np.linalg.norm(y[i][:, None, :] - mu[None], axis=-1).argmin(1)  # [J]
    mode_error = 1 - float((w[i] * posterior[:, nearest]).sum())
    return RateDistortionPoint(beta, max(float(rate[i]), 0.0), float(J[i] - beta * rate[i]), float(J[i]),
                               mode_error, y[i], pj[i])


def collapse_gain(
    centers: ArrayLike, weights: ArrayLike, sigma: float, beta: float, loss: Loss = "l2", scale: float = 1.0,
    **solver,
) -> float:
    """How much the optimum beats collapse: J_col − J_opt ≥ 0, in the units of J = E d/c + β E KL.

    J_opt comes from :func:`blahut_arimoto` (1-D centres ``[K]``) or :func:`blahut_arimoto_line`
    (centres ``[K, n]`` on a line), and J_col from the same solver with one code, on the same
    grid (so discretisation cancels). For L2 the gain is exactly 0 at and above β*
    (:func:`critical_beta`); below it, it vanishes continuously for strictly sub-Gaussian
    mixtures — like (β* − β)² — which is why trained models stop short of β* (the book's
    appendix, app-trained-collapse). For L1 with the median in a gap between modes, β* is
    astronomically large and the gain decays only like 1/β. ``solver`` passes grid and code
    counts on (``n_grid`` is shared by both runs).
    """
    mu, pi = _mixture(centers, weights)
    beta = _positive("beta", beta)
    if _loss(loss) == "l2" and beta >= critical_beta(mu, pi, sigma, "l2", scale):
        return 0.0
    solve = blahut_arimoto if mu.shape[1] == 1 else blahut_arimoto_line
    grid = {k: solver[k] for k in ("n_grid",) if k in solver}
    collapsed = solve(mu[:, 0] if mu.shape[1] == 1 else mu, pi, sigma, beta, loss, scale, n_codes=1, **grid)
    best = solve(mu[:, 0] if mu.shape[1] == 1 else mu, pi, sigma, beta, loss, scale, **solver)
    return max(collapsed.objective - best.objective, 0.0)


def beta_at_rate(
    centers: ArrayLike, weights: ArrayLike, sigma: float, rate: float, loss: Loss = "l2", scale: float = 1.0,
    bracket: tuple[float, float] | None = None, xtol: float = 1e-4, **solver,
) -> float:
    """The KL weight β at which the toy's optimal rate I(A;Z) equals ``rate`` nats (1-D centres).

    The optimal rate (:func:`blahut_arimoto`) falls with β; Brent's method finds the crossing in
    ``bracket`` (default, L2 only: [β*/1000, β*], since the rate is 0 at β*). Example: two equal
    modes ±2, σ = σ_d = 1 (β* = 5): the rate crosses ln 2 below β = 1 = σ²/σ_d², where the
    optimum starts to code the noise within each mode as well as the mode.
    """
    rate = _positive("rate", rate)
    if bracket is None:
        if _loss(loss) != "l2":
            raise ValueError("beta_at_rate needs a bracket for L1 (its β* can be astronomically large)")
        star = critical_beta(centers, weights, sigma, "l2", scale)
        bracket = (star / 1000, star)
    lo, hi = (_positive("bracket", b) for b in bracket)

    def excess(beta: float) -> float:
        return blahut_arimoto(centers, weights, sigma, beta, loss, scale, **solver).rate - rate

    f_lo, f_hi = excess(lo), excess(hi)
    if not f_lo > 0 > f_hi:
        raise ValueError(f"the optimal rate does not cross {rate:.4g} nats in [{lo:.4g}, {hi:.4g}] "
                         f"(rates {f_lo + rate:.4g} and {f_hi + rate:.4g})")
    return float(optimize.brentq(excess, lo, hi, xtol=xtol))


def beta_nearest_label(centers: ArrayLike, weights: ArrayLike, sigma: float, scale: float = 1.0) -> float:
    """L2, 1-D: the β below which coding the *nearest-mode label* beats collapse.

    An encoder sees the chunk, not its mode, so with overlapping (Gaussian) modes it cannot
    name the mode exactly; it can name the nearest centre, C = ĝ(A). That code costs H(C) nats,
    is decoded to E[A | C] and removes the between-cell variance V_C from the distortion, so it
    beats collapse iff β < V_C / (2σ_d² H(C)). Every such β lies below β* (collapse is not
    optimal there), and as σ/Δ_c → 0 it tends to :func:`beta_hard`. ``centers`` ``[K]``, distinct.
    """
    mu, pi = _mixture(centers, weights)
    if mu.shape[1] != 1:
        raise ValueError("beta_nearest_label handles 1-D mixtures only (centers [K])")
    sigma, scale = _nonnegative("sigma", sigma), _positive("scale (sigma_d)", scale)
    if sigma == 0:
        return beta_hard(mu, pi, 0.0, "l2", scale)
    order = np.argsort(mu[:, 0])
    mu, pi = mu[order, 0], pi[order]
    if np.any(np.diff(mu) <= 0):
        raise ValueError("beta_nearest_label needs distinct centres")
    edges = np.concatenate([[-np.inf], (mu[1:] + mu[:-1]) / 2, [np.inf]])  # the cells of the nearest centre
    a = (edges[None, :-1] - mu[:, None]) / sigma  # [K modes, K cells]
    b = (edges[None, 1:] - mu[:, None]) / sigma
    mass = ndtr(b) - ndtr(a)  # P(cell | mode)
    first = mu[:, None] * mass + sigma * (norm.pdf(a) - norm.pdf(b))  # E[A 1{cell} | mode]
    p_cell = pi @ mass
    mean_cell = (pi @ first) / p_cell
    v_c = float(p_cell @ (mean_cell - pi @ mu) ** 2)
    h_c = entropy(p_cell / p_cell.sum())
    return math.inf if h_c == 0 else v_c / (2 * scale**2 * h_c)


# ---------------------------------------------------------------------------------------
# counting bounds for push-forward policies (app-counting, app-counting-d)
# ---------------------------------------------------------------------------------------
def _base_radius(tau: float, dim: int) -> float:
    """Radius of the central base set of mass 1 − τ: r = Φ⁻¹(1−τ/2) (d=1), R = sqrt(χ²_d quantile) (d>1)."""
    return float(norm.ppf(1 - tau / 2)) if dim == 1 else float(math.sqrt(chi2.ppf(1 - tau, dim)))


def mode_count_bound(L: float, delta: float, tau: float, dim: int = 1, form: str = "auto") -> int:
    """Bound on N^τ, the number of modes the image of the central (1−τ) base set touches (chapter 5; app-counting).

    For an L-Lipschitz transport map G (the whole sampler) from N(0, I_dim), mode regions
    pairwise ≥ Δ apart (the *gap* between regions, Δ_c − 2ρ for balls):

        "tight"   (dim = 1):  1 + ⌊2 r_τ L / Δ⌋,     r_τ = Φ⁻¹(1 − τ/2)   — attained by a linear map
        "paper"   (dim = 1):  1 + ⌈2 r_τ L / Δ⌉      — valid, can overshoot by one
        "packing" (any dim):  ⌊(1 + 2 R_τ L / Δ)^dim⌋, R_τ² = χ²_dim quantile at 1 − τ
        "auto":   "tight" for dim = 1, "packing" for dim > 1.

    Asking for "tight" or "paper" with dim > 1 raises: the paper's formula is *false* there
    (G = L·Id on R², modes on the integer grid, τ = .05: 21/69/293 modes for L = 1/2/4
    against 5/9/17; app-counting-d), and the χ radius does not fix it. A mode with mass > τ is always
    among those counted, so the bound also caps the number of modes with mass > τ.
    L: Lipschitz constant (action units per base unit); Δ: action units; returns a count.
    """
    L, delta, tau = _positive("L", L), _positive("delta", delta), _tau(tau)
    dim = _count("dim", dim)
    if form == "auto":
        form = "tight" if dim == 1 else "packing"
    if form in ("tight", "paper") and dim > 1:
        raise ValueError(
            f"form={form!r} is the 1-D bound 1 + floor/ceil(2 r L / Delta); for base dimension {dim} > 1 it is "
            "false (see the book's appendix, app-counting-d: G = L*Id on R^2 with modes on the integer grid hits 21, 69, 293 modes for "
            "L = 1, 2, 4 at tau = .05). Use form='packing' (or 'auto'), or path_mode_count_bound along a segment."
        )
    ratio = 2 * _base_radius(tau, dim) * L / delta
    if form == "tight":
        return 1 + math.floor(ratio)
    if form == "paper":
        return 1 + math.ceil(ratio)
    if form == "packing":
        return math.floor((1 + ratio) ** dim)
    raise ValueError(f"form must be 'auto', 'tight', 'paper' or 'packing', got {form!r}")


def path_mode_count_bound(length: float, delta: float) -> int:
    """Modes a path of image length ℓ can visit: 1 + ⌊ℓ/Δ⌋ (app-counting, app-counting-d: the length and path forms).

    ℓ is the length of the image curve in action space (units of Δ): ℓ = ∫‖G′‖ over the
    central interval in 1-D (the form that is exact on the staircases of app-transport-check), or at most L·ℓ_ε for a
    base segment of length ℓ_ε in any dimension. Consecutive visited modes are ≥ Δ apart
    along the curve.
    """
    return 1 + math.floor(_nonnegative("length", length) / _positive("delta", delta))


def min_lipschitz_to_reach(n_modes: int, delta: float, tau: float) -> float:
    """Smallest L for which the 1-D tight bound (app-counting) allows ``n_modes`` modes: (n − 1)Δ / (2 r_τ).

    Two modes from the central 95% set need only L ≥ 0.255 Δ — compare
    :func:`min_lipschitz_two_modes` (7.97 Δ for two modes holding 95% of the mass).
    """
    n_modes = _count("n_modes", n_modes)
    return (n_modes - 1) * _positive("delta", delta) / (2 * _base_radius(_tau(tau), 1))


# ---------------------------------------------------------------------------------------
# Gaussian isoperimetry: mass, not just contact (app-isoperimetry)
# ---------------------------------------------------------------------------------------
def _mass(m: float, upper: float = 0.5) -> float:
    m = _real("m", m)
    if not 0 < m <= upper:
        raise ValueError(f"the mode mass m must lie in (0, {upper:g}], got {m}")
    return m


def min_lipschitz_two_modes(delta: float, m: float) -> float:
    """Smallest L with two modes of mass ≥ m each, Δ apart (app-isoperimetry, part 1):

        Φ⁻¹(p_1) + Φ⁻¹(p_2) ≤ −Δ/L   ⇒   L ≥ Δ / (2 Φ⁻¹(1 − m))       [action units per base unit]

    Dimension-free; tight (clipped linear map). Two balanced modes with 95% of the mass
    (m = .475): L ≥ 7.97Δ; 99%: 39.9Δ. m = 1/2 gives +inf.
    """
    delta, m = _positive("delta", delta), _mass(m)
    q = float(norm.ppf(1 - m))
    return math.inf if q <= 0 else delta / (2 * q)


def bridge_mass_bound(L: float, delta: float, m: float) -> float:
    """Floor on the bridge (off-mode) mass of an L-Lipschitz push-forward of N(0, I_n) (app-isoperimetry, part 2):

        b = 1 − p_1 − p_2 ≥ Φ(Φ⁻¹(m) + Δ/L) − m,     if p_1, p_2 ≥ m

    for two modes at distance ≥ Δ (gap between mode regions). Dimension-free and tight:
    T(ε) = clip(L(ε_1 − a), 0, Δ) attains it (Δ/L = 1: .2095 at m = .05, .3828 at m = .30).
    The premise needs m ≤ Φ(−Δ/2L) (part (i)); a larger m raises ValueError — with an
    *estimated* L (a lower bound on the true one) that signals the estimate is too small.
    m = 0 gives 0. Returns a probability.
    """
    L, delta, m = _positive("L", L), _positive("delta", delta), _real("m", m)
    if m == 0:
        return 0.0
    cap = float(norm.cdf(-delta / (2 * L)))
    if not 0 < m <= cap * (1 + 1e-12):
        raise ValueError(
            f"m must lie in [0, Phi(-Delta/2L)] = [0, {cap:.4g}]: an {L:g}-Lipschitz map cannot put mass {m} on two "
            f"modes {delta:g} apart (book appendix, app-isoperimetry part 1; see min_lipschitz_two_modes)"
        )
    return float(norm.cdf(norm.ppf(m) + delta / L) - m)


def balanced_bridge_mass_bound(L: float, delta: float) -> float:
    """Bridge-mass floor when the two modes are equally heavy (app-isoperimetry, part 3): b ≥ 2Φ(Δ/2L) − 1.

    Decays like Δ/(L√(2π)) for large L. Dimension-free, tight. Returns a probability.
    """
    return float(2 * norm.cdf(_positive("delta", delta) / (2 * _positive("L", L))) - 1)


def max_modes_with_mass(L: float, delta: float, m: float) -> int:
    """Dimension-free bound on #{k : p_k ≥ m} for modes pairwise ≥ Δ apart (app-isoperimetry):

        #{k : p_k ≥ m} ≤ 1 / Φ(Φ⁻¹(m) + Δ/(2L))

    (the Δ/2L-enlargements of the preimages are disjoint, and each has mass at least
    Φ(Φ⁻¹(m) + Δ/2L) by Gaussian isoperimetry). m ∈ (0, 1]. Returns a count.
    """
    L, delta, m = _positive("L", L), _positive("delta", delta), _mass(m, 1.0)
    return math.floor(1.0 / float(norm.cdf(norm.ppf(m) + delta / (2 * L))) + 1e-9)


def multi_mode_bridge_floor(masses: ArrayLike, delta: float, L: float) -> float:
    """Dimension-free floor on the mass in no mode for K modes pairwise ≥ Δ apart (app-isoperimetry):

        b ≥ Σ_k [Φ(Φ⁻¹(p_k) + Δ/(2L)) − p_k]        (sum over modes with p_k > 0)

    The preimages A_k are Δ/L apart, so their Δ/2L-enlargements are disjoint and every added
    point maps to no mode; Gaussian isoperimetry gives each enlargement mass ≥ Φ(Φ⁻¹(p_k) + Δ/2L).
    ``masses`` ``[K]`` are the p_k; returns a probability."""
    p = np.asarray(masses, dtype=float).reshape(-1)
    if np.any(p < 0) or p.sum() > 1 + 1e-9:
        raise ValueError(f"masses must be >= 0 and sum to at most 1, got {p}")
    p = p[p > 0]
    step = _positive("delta", delta) / (2 * _positive("L", L))
    return float(np.clip(norm.cdf(norm.ppf(np.minimum(p, 1.0)) + step) - p, 0, None).sum())


def bridge_floor(masses: ArrayLike, delta: float, L: float) -> float:
    """The isoperimetric floor on the off-support mass given mode masses ``[K]``, the gap Δ and L
    (app-isoperimetry).

    Two modes with mass: the larger of the two-mode floor (:func:`bridge_mass_bound`, part 2),
    Φ(Φ⁻¹(p_min) + Δ/L) − p_min with p_min the smaller mass, and :func:`multi_mode_bridge_floor`;
    more modes: the latter. NaN when part 1 says no L-Lipschitz map can put these masses on two
    modes (p_min > Φ(−Δ/2L)) — for a measured L that means the estimate is too small. 0 with
    fewer than two modes."""
    p = np.asarray(masses, dtype=float).reshape(-1)
    p = p[p > 0]
    if p.size < 2:
        return 0.0
    floor = multi_mode_bridge_floor(p, delta, L)
    if p.size == 2:
        try:
            floor = max(floor, bridge_mass_bound(L, delta, min(float(p.min()), 0.5)))
        except ValueError:
            return math.nan
    return floor


def implied_min_lipschitz(bridge: float, m: float | ArrayLike, delta: float) -> float:
    """The smallest Lipschitz constant consistent with a measured bridge mass — a lower bound on the whole
    sampler's L that needs no derivatives (compare with the Jacobian and segment estimates, which also
    lower-bound L). Units: Δ's units per base unit. ``bridge`` = 0 gives +inf (only a discontinuous map
    puts no mass between modes).

    ``m`` a number: two modes of mass ≥ m each at distance ≥ Δ, with b = 1 − p_1 − p_2 — part 2 of the
    bridge-mass floor (app-isoperimetry) inverted in closed form:

        b ≥ Φ(Φ⁻¹(m) + Δ/L) − m   ⇔   L ≥ Δ / (Φ⁻¹(b + m) − Φ⁻¹(m))

    ``m`` the measured mode masses ``[K]``: the smallest L at which :func:`bridge_floor` (which adds the
    K-mode floor) allows ``bridge`` — at least the closed form with m = the smaller mass; NaN with fewer
    than two modes holding mass.
    """
    if np.ndim(m) > 0:
        return _implied_from_masses(np.asarray(m, dtype=float).reshape(-1), _positive("delta", delta),
                                    _real("bridge", bridge))
    delta, m, bridge = _positive("delta", delta), _mass(m), _real("bridge", bridge)
    if not 0 <= bridge <= 1 - m:
        raise ValueError(f"bridge must lie in [0, 1 - m] = [0, {1 - m:.4g}], got {bridge}")
    gap = float(norm.ppf(min(bridge + m, 1.0)) - norm.ppf(m))
    return math.inf if gap <= 0 else delta / gap


def _implied_from_masses(p: np.ndarray, delta: float, bridge: float) -> float:
    """The smallest L with :func:`bridge_floor` (p, Δ, L) ≤ ``bridge``, by bisection on log L."""
    if (p > 0).sum() < 2:
        return math.nan
    if bridge <= 0:
        return math.inf

    def excess(log_L: float) -> float:  # floor − bridge, decreasing in L; NaN (L cannot carry p) counts as floor 1
        floor = bridge_floor(p, delta, math.exp(log_L))
        return (floor if np.isfinite(floor) else 1.0) - bridge

    lo, hi = math.log(delta) - 12, math.log(delta) + 12
    if excess(lo) <= 0:
        return math.exp(lo)
    if excess(hi) > 0:
        return math.inf
    return math.exp(optimize.brentq(excess, lo, hi, xtol=1e-10))
