"""How sharply does a transport map stretch base noise? (book appendix: app-counting, app-isoperimetry; app-diagnostics, items 4–5)

A push-forward policy samples a = T(ε), ε ~ N(0, I_D); with the observation fixed,
``f = lambda eps: policy.transport(obs.expand(len(eps), -1), eps)`` is that map. Every
function here takes such a callable ``f(base [N, D]) -> [N, ...]`` whose row i depends on
base row i only, so nothing depends on a policy class.

* :func:`jacobian_spectral_norm` — ‖J_T(ε)‖₂ per base point by power iteration on JᵀJ
  with forward- and reverse-mode products (JVP, VJP); its max lower-bounds L;
* :func:`segment_profile` — along base segments (or slerps): finite-difference stretch
  ‖Δa‖/‖Δε‖, its max L̂_seg, the image path length ℓ̂, modes visited (≤ 1 + ⌊ℓ̂/Δ⌋), and
  the transition width: base length and Gaussian mass of the off-support portion of
  segments whose endpoints land in different modes;
* :func:`empirical_mode_count` — N̂^τ: push the central (1−τ) base set (the interval
  [−r_τ, r_τ] for D = 1, the ball of radius R_τ, R_τ² = χ²_D quantile, for D > 1)
  through the map and count the modes its image touches.

All sample-based quantities are *lower* bounds on their suprema (L, N^τ): the map is
only seen where it is evaluated.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import chi2, norm
from torch import Tensor

from .modes import Array, _centers_radius, assign_modes

__all__ = [
    "jacobian_spectral_norm",
    "SegmentProfile",
    "segment_profile",
    "random_segments",
    "ModeCount",
    "empirical_mode_count",
]

Transport = Callable[[Tensor], Tensor]


def _check_base(base: Tensor) -> Tensor:
    base = torch.as_tensor(base)
    if base.ndim != 2 or not base.is_floating_point():
        raise ValueError(f"base must be a float tensor [N, D], got {tuple(base.shape)} {base.dtype}")
    return base


def _rownorm(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1).norm(dim=1)


def jacobian_spectral_norm(f: Transport, base: Tensor, n_iter: int = 30, generator: torch.Generator | None = None) -> Tensor:
    """Largest singular value of the Jacobian of ``f`` at each base point, ``[N]`` (app-diagnostics, item 4).

    Power iteration on JᵀJ: v ← Jᵀ(Jv)/‖Jᵀ(Jv)‖, σ̂ = ‖Jv‖ after ``n_iter`` steps. Jv comes
    from forward-mode AD (``torch.func.jvp``; double-backward ``torch.autograd.functional.jvp``
    if an op lacks a forward rule) and Jᵀu from one reverse-mode linearisation
    (``torch.func.vjp``), so no Jacobian is ever formed: cost ≈ 2·n_iter passes through
    ``f``. Because row i of ``f`` depends on row i of the base only, one batched product
    gives every row's J_i v_i. σ̂ converges from below at rate (σ₂/σ₁)^{2·n_iter}.
    ``max()`` of the result is a lower bound on the Lipschitz constant L (action units
    per base unit). ``f`` must be differentiable (no ``torch.no_grad`` inside).
    """
    base = _check_base(base).detach()
    if not isinstance(n_iter, int) or n_iter < 1:
        raise ValueError(f"n_iter must be an integer >= 1, got {n_iter!r}")
    out, vjp_fn = torch.func.vjp(f, base)

    def jvp(v: Tensor) -> Tensor:
        try:
            with warnings.catch_warnings():  # torch's first forward-AD call scripts decompositions and warns
                warnings.filterwarnings("ignore", message=".*torch.jit.script.*deprecated", category=DeprecationWarning)
                return torch.func.jvp(f, (base,), (v,))[1]
        except (RuntimeError, NotImplementedError):
            return torch.autograd.functional.jvp(f, base, v)[1]

    v = torch.randn(base.shape, generator=generator, dtype=base.dtype).to(base.device)
    v = v / _rownorm(v).clamp_min(1e-30)[:, None]
    for _ in range(n_iter):
        w = vjp_fn(jvp(v))[0]  # JᵀJv, [N, D]
        v = w / _rownorm(w).clamp_min(1e-30)[:, None]
    return _rownorm(jvp(v)).detach()


# ---------------------------------------------------------------------------------------
# segments
# ---------------------------------------------------------------------------------------
def random_segments(dim: int, n_segments: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """Endpoints of ``n_segments`` base segments for app-diagnostics, item 4: two independent N(0, I_dim)
    draws each, ``[M, D]`` twice (seeded)."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn((n_segments, dim), generator=g, dtype=dtype),
            torch.randn((n_segments, dim), generator=g, dtype=dtype))


@torch.no_grad()
def _evaluate(f: Transport, points: Tensor, batch_size: int) -> np.ndarray:
    """f on ``[P, D]`` in batches, as float64 numpy ``[P, n]``."""
    outs = [f(points[i:i + batch_size]).reshape(min(batch_size, len(points) - i), -1) for i in range(0, len(points), batch_size)]
    return torch.cat(outs).detach().cpu().double().numpy()


@dataclass
class SegmentProfile:
    """Stretch and mode transitions of ``f`` along M base paths sampled at P points (app-diagnostics, items 4–5).

    max_stretch ``[M]``: L̂_seg = max over steps of ‖f(ε_{i+1}) − f(ε_i)‖ / ‖ε_{i+1} − ε_i‖.
    length ``[M]``: ℓ̂ = Σ ‖f(ε_{i+1}) − f(ε_i)‖, the image path length (action units).
    base_length ``[M]``: Σ ‖ε_{i+1} − ε_i‖. With modes given (else None):
    labels ``[M, P]`` (−1 off-support); modes_visited ``[M]``; crosses ``[M]`` bool —
    endpoints in two different modes; off_length ``[M]``: base length of the off-support
    part (NaN where not ``crosses``); off_mass ``[M]``: its Gaussian mass, measured along
    the segment direction u (Σ over off-support cells of Φ(uᵀε_end) − Φ(uᵀε_start)) —
    the bridge mass if T depends on ε through uᵀε only (line paths; NaN for slerps).
    """

    max_stretch: np.ndarray
    length: np.ndarray
    base_length: np.ndarray
    labels: np.ndarray | None = None
    modes_visited: np.ndarray | None = None
    crosses: np.ndarray | None = None
    off_length: np.ndarray | None = None
    off_mass: np.ndarray | None = None


def _paths(start: Tensor, end: Tensor, t: Tensor, path: str) -> Tensor:
    """Base points along each path, ``[M, P, D]``."""
    if path == "line":
        return start[:, None] + t[None, :, None] * (end - start)[:, None]
    if path == "slerp":  # great-circle interpolation of the directions, radii interpolated linearly
        ra, rb = start.norm(dim=1, keepdim=True), end.norm(dim=1, keepdim=True)
        ua, ub = start / ra.clamp_min(1e-30), end / rb.clamp_min(1e-30)
        theta = torch.arccos((ua * ub).sum(1, keepdim=True).clamp(-1, 1))  # [M, 1]
        s = torch.sin(theta).clamp_min(1e-12)
        wa = torch.where(theta > 1e-6, torch.sin((1 - t)[None] * theta) / s, (1 - t)[None].expand(len(theta), -1))
        wb = torch.where(theta > 1e-6, torch.sin(t[None] * theta) / s, t[None].expand(len(theta), -1))
        u = wa[..., None] * ua[:, None] + wb[..., None] * ub[:, None]
        u = u / u.norm(dim=-1, keepdim=True).clamp_min(1e-30)
        return u * (ra + t[None] * (rb - ra))[..., None]
    raise ValueError(f"path must be 'line' or 'slerp', got {path!r}")


def segment_profile(
    f: Transport, start: Tensor, end: Tensor, n_points: int = 513, path: str = "line",
    centers: Array | None = None, radius: float | Array | None = None, weights: Array | None = None,
    batch_size: int = 8192,
) -> SegmentProfile:
    """Finite-difference stretch, image length and mode transitions along base paths (app-diagnostics, items 4–5).

    Args:
        f: the transport, ``[N, D] -> [N, ...]``.
        start, end: path endpoints ``[M, D]`` (e.g. :func:`random_segments`).
        n_points: P points per path, endpoints included (the stretch is resolved at this scale).
        path: "line" (ε(t) = (1−t)ε₀ + tε₁) or "slerp" (stays near the typical radius √D).
        centers, radius, weights: optional modes (as in :func:`~mbc_lib.diagnostics.modes.assign_modes`)
            to label the image points. With them, modes_visited ≤ 1 + ⌊ℓ̂/Δ⌋ holds exactly
            (:func:`mbc_lib.theory.path_mode_count_bound`): consecutive visits are ≥ Δ apart.
    """
    start, end = _check_base(start), _check_base(end)
    if start.shape != end.shape:
        raise ValueError(f"start and end must have the same shape, got {tuple(start.shape)} and {tuple(end.shape)}")
    if not isinstance(n_points, int) or n_points < 2:
        raise ValueError(f"n_points must be an integer >= 2, got {n_points!r}")
    M, D = start.shape
    t = torch.linspace(0, 1, n_points, dtype=start.dtype, device=start.device)
    eps = _paths(start, end, t, path)  # [M, P, D]
    a = _evaluate(f, eps.reshape(-1, D), batch_size).reshape(M, n_points, -1)  # [M, P, n]
    eps_np = eps.detach().cpu().double().numpy()
    da = np.linalg.norm(np.diff(a, axis=1), axis=-1)  # [M, P-1]
    de = np.linalg.norm(np.diff(eps_np, axis=1), axis=-1)
    stretch = np.where(de > 0, da / np.where(de > 0, de, 1), 0.0)
    prof = SegmentProfile(max_stretch=stretch.max(1), length=da.sum(1), base_length=de.sum(1))
    if centers is None:
        return prof
    labels = assign_modes(a.reshape(M * n_points, -1), centers, radius, weights).reshape(M, n_points)
    prof.labels = labels
    prof.modes_visited = np.array([len(set(row[row >= 0].tolist())) for row in labels])
    prof.crosses = (labels[:, 0] >= 0) & (labels[:, -1] >= 0) & (labels[:, 0] != labels[:, -1])
    # each point stands for the half-cells on either side of it
    cell = np.zeros((M, n_points))
    cell[:, :-1] += de / 2
    cell[:, 1:] += de / 2
    off = labels < 0
    prof.off_length = np.where(prof.crosses, (cell * off).sum(1), np.nan)
    if path == "line":
        u = (end - start).detach().cpu().double().numpy()
        u /= np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-30)
        c = np.einsum("mpd,md->mp", eps_np, u)  # coordinate along the segment, [M, P]
        mid = np.concatenate([c[:, :1], 0.5 * (c[:, 1:] + c[:, :-1]), c[:, -1:]], axis=1)  # cell edges, [M, P+1]
        cell_mass = norm.cdf(mid[:, 1:]) - norm.cdf(mid[:, :-1])
        prof.off_mass = np.where(prof.crosses, (cell_mass * off).sum(1), np.nan)
    else:
        prof.off_mass = np.full(M, np.nan)
    return prof


# ---------------------------------------------------------------------------------------
# the empirical mode count N^τ
# ---------------------------------------------------------------------------------------
@dataclass
class ModeCount:
    """N̂^τ: modes touched by the image of the central (1−τ) base set (app-counting).

    n_hit: the count; hit ``[K]`` bool; base_radius: r_τ (D = 1) or R_τ (D > 1);
    n_points: base points pushed through; grid: whether they were a deterministic grid (D = 1).
    """

    n_hit: int
    hit: np.ndarray
    base_radius: float
    n_points: int
    grid: bool


def empirical_mode_count(
    f: Transport, dim: int, tau: float, centers: Array, radius: float | Array, weights: Array | None = None,
    n_points: int = 100_001,
    seed: int = 0, batch_size: int = 65_536, dtype: torch.dtype = torch.float64,
) -> ModeCount:
    """Count the modes the image of the central (1−τ) base set touches (app-counting; app-diagnostics, item 2).

    D = 1: ``n_points`` on a uniform grid of C = [−r_τ, r_τ], r_τ = Φ⁻¹(1 − τ/2), endpoints
    included (deterministic). D > 1: ``n_points`` uniform draws from the ball C of radius
    R_τ, R_τ² = F⁻¹_{χ²_D}(1 − τ) (direction ~ N(0, I), radius R_τ·U^{1/D}; seeded), so
    that γ_D(C) = 1 − τ. A mode is hit if some image point lies within its radius; the
    count lower-bounds N^τ and converges to it as the points fill C (mode radius ≳ L ×
    base spacing). Compare with :func:`mbc_lib.theory.mode_count_bound`.
    """
    if not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim must be an integer >= 1, got {dim!r}")
    if not 0 < tau < 1:
        raise ValueError(f"tau must lie in (0, 1), got {tau}")
    if not isinstance(n_points, int) or n_points < 2:
        raise ValueError(f"n_points must be an integer >= 2, got {n_points!r}")
    K = _centers_radius(centers, radius, weights)[0].shape[0]
    if dim == 1:
        r = float(norm.ppf(1 - tau / 2))
        base = torch.linspace(-r, r, n_points, dtype=dtype)[:, None]
    else:
        r = math.sqrt(float(chi2.ppf(1 - tau, dim)))
        g = torch.Generator().manual_seed(seed)
        direction = torch.randn((n_points, dim), generator=g, dtype=dtype)
        direction /= direction.norm(dim=1, keepdim=True).clamp_min(1e-30)
        base = direction * (r * torch.rand((n_points, 1), generator=g, dtype=dtype) ** (1 / dim))
    hit = np.zeros(K, bool)
    for i in range(0, n_points, batch_size):  # batch the images so memory stays O(batch)
        labels = assign_modes(_evaluate(f, base[i:i + batch_size], batch_size), centers, radius, weights)
        hit[labels[labels >= 0]] = True
    return ModeCount(n_hit=int(hit.sum()), hit=hit, base_radius=r, n_points=n_points, grid=dim == 1)
