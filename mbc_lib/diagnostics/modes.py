"""Which modes do samples land in? Mode membership, coverage and demo mode structure (app-diagnostics, items 1–3).

Works on plain arrays, so any policy's samples (or any dataset) can be measured:

* known modes (synthetic tasks): :func:`assign_modes`, :func:`mode_coverage` — per-mode
  mass p̂_k with Wilson intervals, the count N̂^τ = #{k : p̂_k > τ}, the missing-mode
  rate, off-support ("bridge") mass b̂ and TV to the demonstrated weights;
* unknown modes (robot demos): :func:`cluster_modes` (and :func:`cluster_modes_by_obs`
  for kNN neighbourhoods in observation space) — modes per observation, centres, radii
  ρ_k, inter-mode distances, the gap Δ(s) = min_{j≠k}(‖μ_j − μ_k‖ − ρ_j − ρ_k) and a
  separation regime;
* :func:`bridge_check` holds the measured bridge mass to the isoperimetric floor of the book's appendix (app-isoperimetry).

Shapes: a sample set is ``[N, H, d]`` (or ``[N, n]``), torch or numpy; a chunk is a point
of R^n, n = H·d, and distances are Euclidean over the flattened chunk (task units).
Mode centres are ``[K, H, d]``; a mode is the closed ball of radius ρ_k around its centre.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial import cKDTree
from scipy.stats import norm

from .. import theory
from ..data import label_modes

__all__ = [
    "as_array",
    "flatten_chunks",
    "wilson_interval",
    "assign_modes",
    "ModeCoverage",
    "mode_coverage",
    "mode_coverage_per_obs",
    "summarize_coverage",
    "bridge_check",
    "ClusteredModes",
    "cluster_modes",
    "cluster_modes_by_obs",
    "neighbourhoods",
    "separation_regime",
]


#: what the diagnostics accept for arrays: torch tensors (any device) or numpy arrays
Array = np.ndarray | torch.Tensor


# ---------------------------------------------------------------------------------------
# plain-array plumbing (shared by the other diagnostics modules)
# ---------------------------------------------------------------------------------------
def as_array(x: Array | float | Sequence, name: str = "input") -> np.ndarray:
    """A float64 numpy copy of a tensor (any device, grad or not) or array-like."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    out = np.asarray(x, dtype=float)
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name} contains NaN or inf")
    return out


def flatten_chunks(x: Array, name: str = "samples") -> np.ndarray:
    """``[N, H, d]`` / ``[N, n]`` / ``[N]`` → ``[N, n]`` (one row per chunk)."""
    a = as_array(x, name)
    if a.ndim == 1:
        return a[:, None]
    if a.ndim in (2, 3):
        return a.reshape(a.shape[0], -1)
    raise ValueError(f"{name} must be [N, H, d] or [N, n] (one set of chunks); got shape {a.shape}. "
                     "For [B, n, H, d] per observation use the *_per_obs functions.")


def wilson_interval(successes: int | np.ndarray, n: int, confidence: float = 0.95) -> np.ndarray:
    """Wilson score interval for a binomial proportion (app-diagnostics, item 2): ``[..., 2]`` (lower, upper).

        (p̂ + z²/2n ± z sqrt(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n),   z = Φ⁻¹((1+confidence)/2)

    Unlike p̂ ± z·SE it stays inside [0, 1] and is sensible at p̂ = 0 or 1 (a mode the
    policy never reached still gets an upper bound, ≈ 3.8/n at 95%).
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    k = np.asarray(successes, dtype=float)
    if np.any(k < 0) or np.any(k > n):
        raise ValueError("successes must lie in [0, n]")
    z = float(norm.ppf(0.5 + confidence / 2))
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    # the interval contains p̂ exactly; the min/max only undo rounding (at p̂ = 1 the upper end came out 1 − 1e-16)
    lo, hi = np.minimum(np.clip(centre - half, 0, 1), p), np.maximum(np.clip(centre + half, 0, 1), p)
    return np.stack([lo, hi], axis=-1)


def _centers_radius(centers: Array, radius: float | Array, weights: Array | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    mu = flatten_chunks(centers, "centers")
    K = mu.shape[0]
    rho = np.broadcast_to(as_array(radius, "radius"), (K,)).astype(float)
    if np.any(rho < 0):
        raise ValueError(f"mode radius must be >= 0, got {rho}")
    w = None
    if weights is not None:
        w = as_array(weights, "weights").reshape(-1)
        if w.shape[0] != K or np.any(w < 0) or not np.isclose(w.sum(), 1.0, atol=1e-4):
            raise ValueError(f"weights must be [K={K}], >= 0 and sum to 1; got {w}")
    return mu, rho, w


def assign_modes(samples: Array, centers: Array, radius: float | Array, weights: Array | None = None) -> np.ndarray:
    """Label each chunk with its mode, or −1 if it is off-support (app-diagnostics, item 2).

    A chunk belongs to the nearest *present* centre μ_k (weights > 0, or all when
    ``weights`` is None) if it lies within that mode's radius ρ_k, else it is off-support.

    Args:
        samples: ``[N, H, d]`` or ``[N, n]``.
        centers: ``[K, H, d]`` or ``[K, n]`` (same units).
        radius: ρ, a scalar or ``[K]``.
        weights: optional ``[K]``; zero marks an absent mode (padded tasks).
    Returns: int labels ``[N]`` in {−1, 0, …, K−1}.
    """
    x = flatten_chunks(samples)
    mu, rho, w = _centers_radius(centers, radius, weights)
    if x.shape[1] != mu.shape[1]:
        raise ValueError(f"samples have {x.shape[1]} features per chunk but centers have {mu.shape[1]}")
    present = torch.tensor(w > 0) if w is not None else None
    return label_modes(torch.tensor(x), torch.tensor(mu), torch.tensor(rho), present).numpy()


# ---------------------------------------------------------------------------------------
# coverage of known modes
# ---------------------------------------------------------------------------------------
@dataclass
class ModeCoverage:
    """Where a policy's samples at one observation land (app-diagnostics, items 2–3).

    mass ``[K]``: p̂_k, fraction of samples in mode k; mass_ci ``[K, 2]``: Wilson intervals.
    off_support: b̂, fraction in no mode (the bridge / averaging failure), off_support_ci.
    n_covered: N̂^τ = #{k : p̂_k > τ}. covered ``[K]`` bool.
    missing_mode_rate: fraction of the modes the policy should reach (π_k > τ, or all
        modes when no weights are given) that it covers with p̂_k ≤ τ.
    tv: total variation between (p̂_1..p̂_K, b̂) and (π_1..π_K, 0) — off-support counted
        as its own outcome that the demonstrations never produce; None without weights.
    """

    n_samples: int
    tau: float
    mass: np.ndarray
    mass_ci: np.ndarray
    off_support: float
    off_support_ci: np.ndarray
    covered: np.ndarray
    n_covered: int
    missing_mode_rate: float
    tv: float | None
    weights: np.ndarray | None

    def as_dict(self) -> dict[str, float]:
        """Scalar summary (floats) for tables and logs."""
        out = {k: float(v) for k, v in asdict(self).items() if np.ndim(v) == 0 and v is not None}
        out["min_mass"] = float(self.mass.min()) if self.mass.size else math.nan
        return out


def mode_coverage(
    samples: Array, centers: Array, radius: float | Array, weights: Array | None = None, tau: float = 0.05,
    confidence: float = 0.95,
) -> ModeCoverage:
    """Per-mode mass, coverage count N̂^τ, missing-mode rate, off-support mass and TV (app-diagnostics, items 2–3).

    Args: as :func:`assign_modes`, plus ``tau`` (a mode is covered when p̂_k > τ) and the
    Wilson ``confidence``. Absent modes (weight 0) get mass 0 and are not counted.
    """
    if not 0 <= tau < 1:
        raise ValueError(f"tau must lie in [0, 1), got {tau}")
    n_samples = getattr(samples, "shape", (len(samples),) if hasattr(samples, "__len__") else (None,))[0]
    if n_samples == 0:
        raise ValueError("samples is empty: mode_coverage needs at least one sampled chunk ([N, H, d] with N >= 1; "
                         "draw some with policy.sample(obs, n))")
    labels = assign_modes(samples, centers, radius, weights)
    mu, _, w = _centers_radius(centers, radius, weights)
    K, N = mu.shape[0], labels.shape[0]
    counts = np.bincount(labels[labels >= 0], minlength=K).astype(float)
    mass = counts / N
    off = float((labels < 0).mean())
    covered = mass > tau
    should = (w > tau) if w is not None else np.ones(K, bool)
    missing = float((~covered & should).sum() / max(should.sum(), 1))
    tv = None if w is None else float(0.5 * (np.abs(mass - w).sum() + off))
    return ModeCoverage(
        n_samples=N, tau=float(tau), mass=mass, mass_ci=wilson_interval(counts, N, confidence),
        off_support=off, off_support_ci=wilson_interval((labels < 0).sum(), N, confidence),
        covered=covered, n_covered=int(covered.sum()), missing_mode_rate=missing, tv=tv, weights=w,
    )


def mode_coverage_per_obs(
    samples: Array, centers: Array | Sequence[Array], radius: float | Array | Sequence,
    weights: Array | Sequence[Array] | None = None, tau: float = 0.05, confidence: float = 0.95,
) -> list[ModeCoverage]:
    """:func:`mode_coverage` at each of B observations (app-diagnostics: measurements are per state s).

    samples ``[B, n, H, d]`` (``policy.sample(obs, n)``). Each of centers / radius / weights
    is either shared by all observations (``[K, H, d]``; scalar or ``[K]``; ``[K]``) or given
    per observation as a batched array (``[B, K, H, d]``; ``[B, K]``; ``[B, K]``) or as a
    length-B list (e.g. :class:`ClusteredModes` fields, whose K varies with s).
    """
    x = as_array(samples, "samples")
    if x.ndim < 3:
        raise ValueError(f"samples must be [B, n, H, d] (or [B, n, D]), got shape {x.shape}")
    B = x.shape[0]

    def pick(value, b: int, batched_ndim: int):
        """A list/tuple is per observation; an array is per observation iff it has the batched ndim."""
        if value is None:
            return None
        if isinstance(value, (list, tuple)):
            if len(value) != B:
                raise ValueError(f"got {len(value)} per-observation entries for B={B} observations")
            return value[b]
        arr = as_array(value)
        return arr[b] if arr.ndim == batched_ndim else arr

    return [
        mode_coverage(x[b], pick(centers, b, x.ndim), pick(radius, b, 2), pick(weights, b, 2), tau, confidence)
        for b in range(B)
    ]


def summarize_coverage(coverages: Sequence[ModeCoverage]) -> dict[str, float]:
    """Items 2–3 of app-diagnostics averaged over observations: mean N̂^τ, off-support mass, missing-mode rate, TV, and the
    fraction of observations where every mode that should be reached is covered."""
    if not coverages:
        raise ValueError("no coverages to summarise")
    tvs = [c.tv for c in coverages if c.tv is not None]
    return {
        "n_covered": float(np.mean([c.n_covered for c in coverages])),
        "off_support": float(np.mean([c.off_support for c in coverages])),
        "missing_mode_rate": float(np.mean([c.missing_mode_rate for c in coverages])),
        "all_modes_covered": float(np.mean([c.missing_mode_rate == 0 for c in coverages])),
        "tv": float(np.mean(tvs)) if tvs else math.nan,
    }


def bridge_check(coverage: ModeCoverage, separation: float, lipschitz: float) -> dict[str, float]:
    """Hold a measured bridge mass to Gaussian isoperimetry (app-diagnostics, item 3; app-isoperimetry, part 2).

    Takes the two heaviest modes (p̂_(1) ≥ p̂_(2) = m̂), b̂ = 1 − p̂_(1) − p̂_(2), the gap Δ
    between mode regions and a Lipschitz estimate L̂, and returns

        floor = Φ(Φ⁻¹(m̂) + Δ/L̂) − m̂,   implied_min_L = Δ / (Φ⁻¹(b̂ + m̂) − Φ⁻¹(m̂)).

    Estimates of L from samples (Jacobians, segments) are *lower* bounds on the sampler's
    L, and the floor decreases in L, so b̂ < floor is no contradiction: it says the true L
    is at least implied_min_L. ``floor`` is NaN when L̂ cannot carry mass m̂ to both modes.
    """
    mass = np.sort(coverage.mass)[::-1]
    if mass.size < 2 or mass[1] <= 0:
        raise ValueError("bridge_check needs two modes with positive mass")
    m, b = float(mass[1]), float(1 - mass[0] - mass[1])
    try:
        floor = theory.bridge_mass_bound(lipschitz, separation, m)
    except ValueError:
        floor = math.nan
    return {"m": m, "bridge": b, "floor": floor,
            "implied_min_L": theory.implied_min_lipschitz(b, min(m, 0.5), separation)}


# ---------------------------------------------------------------------------------------
# unknown modes: clustering demonstrations
# ---------------------------------------------------------------------------------------
def separation_regime(separation: float, spread: float, n_modes: int) -> str:
    """Name the regime of Δ(s) against the within-mode spread s_w (RMS distance to the centre), app-diagnostics, item 1:

    "unimodal" (one mode), "overlapping" (Δ ≤ 0: the mode regions touch), "close"
    (0 < Δ < s_w: the gap is narrower than a mode), "separated" (Δ ≥ s_w).
    """
    if n_modes <= 1:
        return "unimodal"
    if separation <= 0:
        return "overlapping"
    return "close" if separation < spread else "separated"


@dataclass
class ClusteredModes:
    """Mode structure recovered from demonstration chunks at one observation (app-diagnostics, item 1).

    labels ``[N]``; n_modes K; weights ``[K]`` (π̂_k); centers ``[K, *chunk]`` (cluster
    means); radii ``[K]`` (ρ_k, the ``radius_quantile`` of member distances to the centre);
    spread ``[K]`` (RMS member distance to the centre); center_distances ``[K, K]``;
    min_center_distance Δ_c; separation Δ = min_{j≠k}(‖μ_j−μ_k‖ − ρ_j − ρ_k) (inf for K = 1);
    separation_ratio Δ / s_w with s_w the pooled RMS spread; regime (:func:`separation_regime`).
    Feed ``centers``, ``radii``, ``weights`` to :func:`mode_coverage` to score a policy.
    """

    labels: np.ndarray
    n_modes: int
    weights: np.ndarray
    centers: np.ndarray
    radii: np.ndarray
    spread: np.ndarray
    center_distances: np.ndarray
    min_center_distance: float
    separation: float
    separation_ratio: float
    regime: str

    def as_dict(self) -> dict[str, float | str]:
        return {"n_modes": self.n_modes, "min_center_distance": self.min_center_distance,
                "separation": self.separation, "separation_ratio": self.separation_ratio,
                "spread": float(np.sqrt(self.weights @ self.spread**2)), "regime": self.regime}


def _bic_isotropic(x: np.ndarray, labels: np.ndarray) -> float:
    """BIC of a K-component isotropic Gaussian mixture with shared variance, hard assignments.

        log L = Σ_k N_k log(N_k/N) − (N n/2)(log(2π σ̂²) + 1),  σ̂² = SSE/(N n)
        BIC = −2 log L + [(K−1) + K n + 1] log N
    """
    N, n = x.shape
    ks, counts = np.unique(labels, return_counts=True)
    sse = sum(((x[labels == k] - x[labels == k].mean(0)) ** 2).sum() for k in ks)
    var = max(sse / (N * n), 1e-12 * (x.var(0).sum() / n + 1e-300))
    loglik = float((counts * np.log(counts / N)).sum()) - 0.5 * N * n * (math.log(2 * math.pi * var) + 1)
    return -2 * loglik + ((len(ks) - 1) + len(ks) * n + 1) * math.log(N)


def cluster_modes(
    chunks: Array,
    method: str = "bic",
    max_modes: int = 8,
    threshold: float | None = None,
    radius_quantile: float = 0.95,
    min_weight: float = 0.02,
) -> ClusteredModes:
    """Cluster demonstration chunks at one observation into modes (app-diagnostics, item 1).

    method="bic" (default): Ward agglomerative clustering, cut at each K = 1..max_modes,
    and keep the K with the smallest BIC of an isotropic shared-variance Gaussian mixture
    (:func:`_bic_isotropic`); cuts leaving a cluster with fewer than max(2, min_weight·N)
    chunks are skipped (outliers are not modes). Deterministic. Suits compact modes; for
    elongated ones (the mode is a curve of chunks) the isotropic model over-splits — use
    method="threshold": single linkage cut at distance ``threshold`` (task units), which
    follows chains and needs the gap between modes to exceed the spacing within them.

    Returns a :class:`ClusteredModes`. chunks: ``[N, H, d]`` or ``[N, n]``.
    """
    raw = as_array(chunks, "chunks")
    x = flatten_chunks(raw, "chunks")
    N = x.shape[0]
    if N < 2:
        raise ValueError("need at least 2 chunks to cluster")
    if not 0 < radius_quantile <= 1:
        raise ValueError(f"radius_quantile must lie in (0, 1], got {radius_quantile}")
    if method == "bic":
        if not isinstance(max_modes, int) or max_modes < 1:
            raise ValueError(f"max_modes must be an integer >= 1, got {max_modes!r}")
        tree = linkage(x, method="ward")
        min_size = max(2, math.ceil(min_weight * N))
        best = (math.inf, np.zeros(N, int))
        for K in range(1, min(max_modes, N) + 1):
            labels = fcluster(tree, K, criterion="maxclust") - 1
            if K > 1 and np.bincount(labels).min() < min_size:
                continue
            bic = _bic_isotropic(x, labels)
            if bic < best[0]:
                best = (bic, labels)
        labels = best[1]
    elif method == "threshold":
        if threshold is None or not threshold > 0:
            raise ValueError("method='threshold' needs a distance threshold > 0 (task units)")
        labels = fcluster(linkage(x, method="single"), threshold, criterion="distance") - 1
    else:
        raise ValueError(f"method must be 'bic' or 'threshold', got {method!r}")
    # relabel by decreasing weight so that mode 0 is the most common
    ks, counts = np.unique(labels, return_counts=True)
    order = ks[np.argsort(-counts, kind="stable")]
    labels = np.argsort(order)[np.searchsorted(ks, labels)]
    K = len(order)
    centers = np.stack([x[labels == k].mean(0) for k in range(K)])  # [K, n]
    dists = [np.linalg.norm(x[labels == k] - centers[k], axis=1) for k in range(K)]
    radii = np.array([np.quantile(d, radius_quantile) for d in dists])
    spread = np.array([np.sqrt((d**2).mean()) for d in dists])
    weights = np.array([(labels == k).mean() for k in range(K)])
    cd = np.linalg.norm(centers[:, None] - centers[None], axis=-1)
    off = ~np.eye(K, dtype=bool)
    gaps = cd - radii[:, None] - radii[None, :]
    separation = float(gaps[off].min()) if K > 1 else math.inf
    pooled = float(np.sqrt(weights @ spread**2))
    ratio = separation / pooled if pooled > 0 else math.inf
    return ClusteredModes(
        labels=labels, n_modes=K, weights=weights, centers=centers.reshape((K,) + raw.shape[1:]) if raw.ndim > 1
        else centers[:, 0], radii=radii, spread=spread, center_distances=cd,
        min_center_distance=float(cd[off].min()) if K > 1 else math.inf, separation=separation,
        separation_ratio=ratio, regime=separation_regime(separation, pooled, K),
    )


def cluster_modes_by_obs(
    obs: Array, chunks: Array, query: Array, k: int = 64, standardize: bool = True, **cluster_kwargs
) -> list[ClusteredModes]:
    """Modes per observation for demonstrations with continuous states (app-diagnostics, item 1).

    With one demonstration per state the empirical H(M|S) is 0 (the third caution of app-fano), so
    the conditional is smoothed over a neighbourhood: for each query observation take the
    ``k`` nearest demonstrations in observation space (each feature scaled to unit standard
    deviation when ``standardize``) and :func:`cluster_modes` their chunks.

    obs ``[N, obs_dim]``, chunks ``[N, H, d]``, query ``[Q, obs_dim]``; returns Q results
    (``[r.n_modes for r in result]`` is K̂(s)). Keyword arguments go to :func:`cluster_modes`.
    """
    o = as_array(obs, "obs")
    o = o[:, None] if o.ndim == 1 else o
    q = as_array(query, "query")
    q = q[:, None] if q.ndim == 1 else q
    c = as_array(chunks, "chunks")
    if o.shape[0] != c.shape[0]:
        raise ValueError(f"obs and chunks disagree on N: {o.shape[0]} vs {c.shape[0]}")
    return [cluster_modes(c[i], **cluster_kwargs) for i in neighbourhoods(o, q, k, standardize)]


def neighbourhoods(obs: Array, query: Array, k: int = 64, standardize: bool = True) -> np.ndarray:
    """Indices ``[Q, k]`` of the ``k`` demonstrations nearest to each query observation — the
    neighbourhoods :func:`cluster_modes_by_obs` clusters (each feature scaled to unit standard
    deviation when ``standardize``). obs ``[N, obs_dim]``, query ``[Q, obs_dim]``."""
    o = as_array(obs, "obs")
    o = o[:, None] if o.ndim == 1 else o
    q = as_array(query, "query")
    q = q[:, None] if q.ndim == 1 else q
    if not isinstance(k, int) or not 2 <= k <= o.shape[0]:
        raise ValueError(f"k must be an integer in [2, N={o.shape[0]}], got {k!r}")
    scale = o.std(0) if standardize else np.ones(o.shape[1])
    scale = np.where(scale > 0, scale, 1.0)
    _, idx = cKDTree(o / scale).query(q / scale, k=k)
    return np.atleast_2d(idx)
