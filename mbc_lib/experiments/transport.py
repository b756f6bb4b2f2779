"""Chapter 5: diffusion and flow policies as transport maps, and what a Lipschitz map can do with modes.

A flow-matching policy (ODE, Euler/Heun) or a diffusion policy sampled with DDIM (η = 0) is a
deterministic map ``a = G_θ(s, ε)`` from base noise ``ε ~ N(0, I_n)`` (n = H·d_a, the chunk
dimension) to an action chunk: ``policy.transport(obs, base_noise)``. Chapter 5 bounds what such
a map can do when it is L-Lipschitz (proofs and corrections to the paper: the book's appendix,
app-counting, app-counting-d and app-isoperimetry); this module measures each statement on maps
whose answers we know:

1. **Trained 1-D maps** (:func:`trained_map`): flow and diffusion policies on the fork with
   H = d_a = 1, so the base is one-dimensional and ``G`` is a curve we can draw.
2. **The 1-D counting bound, checked** (:func:`staircase_table`): monotone C² staircases with
   smootherstep transitions of width ``w`` (the appendix's numerical check, app-transport-check)
   — N^τ against the length form 1 + ⌊len/Δ⌋, the Lipschitz form 1 + ⌊2rL/Δ⌋ and the paper's
   ceiling form.
3. **The paper's formula fails for base dimension n > 1**: G = L·Id on R² with modes on the
   integer grid (:func:`lattice_counterexample`), against the valid packing and path bounds;
   and six modes that each receive mass > τ in R⁶ where the formula allows five
   (:func:`mass_counterexample`).
4. **Gaussian isoperimetry** (:func:`isoperimetry_check`): the clipped-linear map attains the
   bridge-mass floor; smooth maps lie above it. :func:`mbc_lib.theory.bridge_floor` is the floor for
   K modes that chapter 6 holds trained policies to.

The figures are in :mod:`mbc_lib.figures.transport`. Units: base noise in standard-normal units; actions in task units; a Lipschitz constant
is action units per base unit; Δ is the *gap* between mode regions unless stated otherwise.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.stats import chi2, norm
from torch import Tensor

from .. import policies, tasks, theory
from ..diagnostics import (
    assign_modes,
    empirical_mode_count,
    jacobian_spectral_norm,
    segment_profile,
)
from ..fitting import fit
from ..profiles import budget
from ..runtime import on_compute_device
from ..train import History
from ..validation import check_real

__all__ = [
    "MapStats", "measure_map", "TrainedMap", "trained_map", "linear_tightness", "staircase", "staircase_stats",
    "staircase_table", "lattice_in_disc", "lattice_counterexample", "mass_counterexample", "clipped_linear_map",
    "isoperimetry_check", "summary",
]

Map = Callable[[Tensor], Tensor]


# ---------------------------------------------------------------------------------------
# measuring a 1-D map exactly: quadrature over the base, not sampling
# ---------------------------------------------------------------------------------------
@dataclass
class MapStats:
    """What a 1-D transport map ``G: R -> R^m`` does with the modes (chapter 5; app-counting,
    app-transport-check in the book's appendix).

    eps ``[P]``: base grid on [−6, 6]; image ``[P, m]``; labels ``[P]`` (−1 off-support).
    mass ``[K]``: P(G(ε) ∈ M_k) and bridge b: P(G(ε) in no mode), both by quadrature against φ.
    n_hit: N^τ, modes the image of C = [−r_τ, r_τ] touches; length: len, the image length of C;
    L: max |G′| (the Lipschitz constant, up to the grid resolution); delta: Δ used in the bounds;
    bound_length 1 + ⌊len/Δ⌋ ≤ bound_tight 1 + ⌊2r_τL/Δ⌋ ≤ bound_paper 1 + ⌈2r_τL/Δ⌉.
    """

    eps: np.ndarray
    image: np.ndarray
    labels: np.ndarray
    mass: np.ndarray
    bridge: float
    n_hit: int
    length: float
    L: float
    delta: float
    tau: float
    r_tau: float
    bound_length: int
    bound_tight: int
    bound_paper: int

    def row(self) -> dict[str, float]:
        return {"L": self.L, "N_tau": self.n_hit, "length": self.length, "bound_length": self.bound_length,
                "bound_tight": self.bound_tight, "bound_paper": self.bound_paper,
                "min_mass": float(self.mass.min()), "bridge": self.bridge}


def measure_map(f: Map, centers, radius: float, delta: float, tau: float = 0.05, n_grid: int = 20_001) -> MapStats:
    """Measure a 1-D map ``f(ε [N, 1]) -> [N, ...]`` against modes (balls of ``radius`` at ``centers [K, ...]``).

    Everything is deterministic: N^τ and len from :func:`~mbc_lib.diagnostics.empirical_mode_count` and
    :func:`~mbc_lib.diagnostics.segment_profile` on a grid of C = [−r_τ, r_τ]; L from
    :func:`~mbc_lib.diagnostics.jacobian_spectral_norm` (|G′| in 1-D) on a grid of [−6, 6]; the
    masses by quadrature of φ over that grid. ``delta`` is the Δ of the bounds (the gap between mode
    regions, or the centre distance when counting centres).
    """
    r = float(norm.ppf(1 - tau / 2))
    eps = torch.linspace(-6.0, 6.0, n_grid, dtype=torch.float64)[:, None]  # [G, 1]
    with torch.no_grad():
        image = f(eps).reshape(n_grid, -1).double()  # [G, n]
    flat = lambda e: f(e).reshape(len(e), -1)  # noqa: E731
    L = max(float(jacobian_spectral_norm(flat, eps[i:i + 2048], n_iter=1).max())  # in batches: memory stays small
            for i in range(0, n_grid, 2048))
    labels = assign_modes(image, centers, radius)
    w = norm.pdf(eps[:, 0].numpy()) * float(eps[1, 0] - eps[0, 0])  # quadrature weights, Σ ≈ 1
    w /= w.sum()
    K = np.asarray(centers).reshape(len(centers), -1).shape[0]
    mass = np.array([w[labels == k].sum() for k in range(K)])
    count = empirical_mode_count(f, 1, tau, centers, radius, n_points=n_grid)
    C = torch.tensor([[-r]], dtype=torch.float64), torch.tensor([[r]], dtype=torch.float64)
    length = float(segment_profile(f, *C, n_points=n_grid).length[0])
    return MapStats(
        eps=eps[:, 0].numpy(), image=image.numpy(), labels=labels, mass=mass, bridge=float(w[labels < 0].sum()),
        n_hit=count.n_hit, length=length, L=L, delta=float(delta), tau=tau, r_tau=r,
        bound_length=theory.path_mode_count_bound(length, delta),
        bound_tight=theory.mode_count_bound(L, delta, tau, form="tight"),
        bound_paper=theory.mode_count_bound(L, delta, tau, form="paper"),
    )


# ---------------------------------------------------------------------------------------
# 1. trained transport maps on the 1-D fork
# ---------------------------------------------------------------------------------------
@dataclass
class TrainedMap:
    """A flow or diffusion policy trained on the fork with H = d_a = 1, and its map at s = 0."""

    family: str
    K: int
    delta_c: float
    steps: int
    task: tasks.Task = field(repr=False)
    policy: policies.Policy = field(repr=False)
    history: History = field(repr=False)
    stats: MapStats = field(repr=False)

    @property
    def gap(self) -> float:
        """Δ = Δ_c − 2ρ, the gap between mode regions (task units)."""
        return self.delta_c - 2 * self.task.radius


def trained_map(
    family: str = "flow", K: int = 3, delta: float = 2.0, sigma: float = 0.1, steps: int | None = None,
    tau: float = 0.05, seed: int = 0, profile: str | None = None, progress: bool | None = None,
) -> TrainedMap:
    """Train ``family`` ("flow" or "diffusion") on ``fork(K, delta, sigma, chunk_len=1)`` with the
    profile's budget and measure its transport at s = 0 with ``steps`` sampler steps (default: the
    policy's own, 10 Euler steps for flow, 20 DDIM steps for diffusion)."""
    if family not in ("flow", "diffusion"):
        raise ValueError(f"family must be 'flow' or 'diffusion' (the transport policies), got {family!r}")
    b = budget("transport", profile)
    task = tasks.make("fork", K=K, delta=delta, sigma=sigma, chunk_len=1)
    data = task.dataset(b["n_demos"], seed=seed)
    # returned on the CPU; measured on CUDA when present (the grid is the cost)
    policy, history = fit(family, data, budget=b, seed=seed, progress=progress, desc=f"{family} K={K} Δc={delta:g}")
    steps = steps if steps is not None else policy.config.steps
    obs = torch.zeros(1, 1)
    ms = task.modes(obs)

    def f(eps: Tensor) -> Tensor:  # [N, 1] -> [N, 1], on the CPU
        return policy.transport(obs.expand(len(eps), -1), eps.float().reshape(-1, 1, 1), steps=steps).reshape(-1, 1).cpu()

    with on_compute_device(policy):
        stats = measure_map(f, ms.centers[0], task.radius, delta - 2 * task.radius, tau, n_grid=b["n_grid"])
    return TrainedMap(family, K, float(delta), steps, task, policy, history, stats)


# ---------------------------------------------------------------------------------------
# 2. the 1-D counting bound on maps we know: linear maps and monotone staircases
# ---------------------------------------------------------------------------------------
def linear_tightness(Ls: Sequence[float] = (0.3, 0.6, 1.0, 2.0, 3.0), tau: float = 0.05) -> list[dict[str, float]]:
    """The bound 1 + ⌊2r_τL/Δ⌋ is attained: G(ε) = L(ε + r_τ) maps C = [−r_τ, r_τ] onto [0, 2r_τL],
    which holds the centres 0, 1, …, ⌊2r_τL⌋ (Δ = 1). Mode regions: radius 10⁻³ around the integers.
    Rows: L, N_tau (measured), bound_tight, bound_paper."""
    r = float(norm.ppf(1 - tau / 2))
    rows = []
    for L in Ls:
        st = measure_map(lambda e, L=L: L * (e + r), np.arange(0.0, 2 * r * L + 3)[:, None], 1e-3, 1.0, tau, n_grid=20_001)
        rows.append({"L": float(L), "N_tau": st.n_hit, "bound_tight": st.bound_tight, "bound_paper": st.bound_paper})
    return rows


def staircase(width: float, K: int = 5) -> Map:
    """A monotone staircase (chapter 5; app-transport-check): G(ε) = Σ_j S((ε − c_j)/w + ½),
    c_j = Φ⁻¹(j/K), j = 1..K−1, with the
    smootherstep S(u) = 6u⁵ − 15u⁴ + 10u³ on [0, 1] (C², slope 15/8 at its middle). Levels 0..K−1,
    each reached with probability ≈ 1/K; ``f(ε [N, 1]) -> [N, 1]``."""
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width}")
    if not isinstance(K, int) or K < 2:
        raise ValueError(f"K must be an integer >= 2, got {K!r}")
    c = torch.tensor(norm.ppf(np.arange(1, K) / K), dtype=torch.float64)  # [K-1]

    def f(eps: Tensor) -> Tensor:
        u = ((eps.reshape(-1, 1).double() - c) / width + 0.5).clamp(0, 1)  # [N, K-1]
        return (u**3 * (10 - 15 * u + 6 * u**2)).sum(-1, keepdim=True)  # [N, 1]

    return f


def staircase_stats(width: float, K: int = 5, radius: float = 0.25, tau: float = 0.05, n_grid: int = 20_001) -> MapStats:
    """:func:`measure_map` of the staircase of transition width ``width`` against regions of ``radius``
    around its levels 0..K−1 (Δ = Δ_c = 1)."""
    return measure_map(staircase(width, K), np.arange(K, dtype=float)[:, None], radius, delta=1.0, tau=tau,
                       n_grid=n_grid)


def staircase_table(
    widths: Sequence[float] = (2.0, 1.0, 0.4, 0.1, 0.05), K: int = 5, radius: float = 0.25, tau: float = 0.05,
    n_grid: int = 200_001,
) -> list[dict[str, float]]:
    """The staircases measured (the appendix's numerical check, app-transport-check): for each
    transition width w, the staircase's L, N^τ (regions of ``radius`` around the centres 0..K−1
    hit by G(C)), the image length len (key ``length``), the three bounds with Δ = Δ_c = 1
    (they count centres; regions hit are the same here), the lightest mode's mass, the bridge
    mass, and two predictions for it: the 1-D transition estimate (gap/L)·Σ_j φ(c_j) and the
    dimension-free K-mode floor (:func:`mbc_lib.theory.multi_mode_bridge_floor`) with the gap Δ = 1 − 2·radius."""
    centers = np.arange(K, dtype=float)[:, None]
    gap = 1.0 - 2 * radius
    phi_sum = float(norm.pdf(norm.ppf(np.arange(1, K) / K)).sum())
    rows = []
    for w in widths:
        st = measure_map(staircase(w, K), centers, radius, delta=1.0, tau=tau, n_grid=n_grid)
        rows.append({"w": float(w), **st.row(), "bridge_1d": gap / st.L * phi_sum,
                     "bridge_floor": theory.multi_mode_bridge_floor(st.mass, gap, st.L)})
    return rows


# ---------------------------------------------------------------------------------------
# 3. base dimension n > 1: the paper's formula is false
# ---------------------------------------------------------------------------------------
def lattice_in_disc(radius: float) -> np.ndarray:
    """Integer points z ∈ Z² with ‖z‖ ≤ radius, ``[N, 2]``."""
    n = int(math.floor(radius))
    i, j = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1))
    pts = np.stack([i.ravel(), j.ravel()], 1)
    return pts[(pts**2).sum(1) <= radius**2 + 1e-9]


def lattice_counterexample(Ls: Sequence[float] = (1.0, 2.0, 4.0), tau: float = 0.05) -> list[dict[str, float]]:
    """G = L·Id on R², modes = the points of Z² (pairwise ≥ Δ = 1 apart), C = the ball of mass 1 − τ.

    G(C) is the disc of radius L·R_τ, R_τ² = χ²₂ quantile at 1 − τ, so it hits every lattice point
    in that disc (counted exactly). Columns: L, R_tau, hit (the true N^τ), paper (1 + ⌈2r_τL/Δ⌉ with
    the 1-D radius r_τ), paper_chi (the same with R_τ), packing ((1 + 2R_τL/Δ)^2, valid), path_hit
    (modes on a diameter of C, what one base direction sees) and path_bound (1 + ⌊2R_τL/Δ⌋, valid)."""
    R = math.sqrt(float(chi2.ppf(1 - tau, 2)))
    rows = []
    for L in Ls:
        rows.append({
            "L": float(L), "R_tau": R, "hit": len(lattice_in_disc(L * R)),
            "paper": theory.mode_count_bound(L, 1.0, tau, dim=1, form="paper"),
            "paper_chi": 1 + math.ceil(2 * R * L),
            "packing": theory.mode_count_bound(L, 1.0, tau, dim=2, form="packing"),
            "path_hit": 2 * math.floor(L * R) + 1,
            "path_bound": theory.path_mode_count_bound(2 * R * L, 1.0),
        })
    return rows


def mass_counterexample(
    dim: int = 6, margin: float = 1 / math.sqrt(2), tau: float = 0.05, n: int = 1_000_000, seed: int = 0,
    n_pairs: int = 1000,
) -> dict[str, object]:
    """The paper's formula fails for modes *with mass* too (chapter 5; app-counting-d), by Monte Carlo.

    The cells C_i = {ε ∈ R^dim : ε_i ≥ ε_j + margin for all j ≠ i}, i = 1..dim, are pairwise at least
    √2·margin apart (for x ∈ C_i, y ∈ C_j project x − y on (e_i − e_j)/√2). Sending C_i to the i-th of
    dim points pairwise Δ apart is therefore (Δ/(√2·margin))-Lipschitz on their union, and by
    Kirszbraun's theorem it extends to all of R^dim with the same constant. With margin = 1/√2 that
    is L = Δ, and each point (mode) receives at least the standard-Gaussian mass of its cell.

    Estimated from ``n`` draws ε ~ N(0, I_dim) (seeded; drawn in blocks, so memory stays small):
    ``counts`` / ``mass`` / ``low`` / ``high`` per cell ``[dim]`` (Wilson 95% intervals); ``pooled``,
    ``pooled_low``, ``pooled_high``: the cells have equal mass by symmetry, so the number of draws in
    any cell is Binomial(n, dim·p) and its Wilson interval divided by dim is an interval for p;
    ``exact``: the same mass as a 1-D integral, ∫ φ(x) Φ(x − margin)^(dim−1) dx (an independent check);
    ``min_distance``: the smallest distance between sampled points of different cells (up to
    ``n_pairs`` per cell; at least ``separation`` = √2·margin by the projection argument);
    ``L_over_delta`` = 1/separation; ``heavy``: cells whose lower Wilson bound exceeds τ;
    ``paper``: the paper's 1 + ⌈2 r_τ L/Δ⌉ with r_τ = Φ⁻¹(1 − τ/2); ``isoperimetric``: the
    dimension-free bound 1/Φ(Φ⁻¹(p_min) + Δ/2L) on the modes of mass ≥ p_min, with p_min the smallest
    lower Wilson bound (which the construction must, and does, respect).
    """
    from scipy.integrate import quad

    from ..diagnostics import wilson_interval

    if not isinstance(dim, (int, np.integer)) or dim < 2:
        raise ValueError(f"dim must be an integer >= 2, got {dim!r}")
    margin = check_real(margin, "margin", low=0.0, low_open=True)
    tau = check_real(tau, "tau", low=0.0, high=1.0, low_open=True, high_open=True, what="the base mass left outside the central set")
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    g = torch.Generator().manual_seed(seed)
    counts = np.zeros(dim, dtype=np.int64)
    kept: list[list[Tensor]] = [[] for _ in range(dim)]
    block = 200_000
    for start in range(0, n, block):
        eps = torch.randn((min(block, n - start), dim), generator=g, dtype=torch.float64)
        top2 = eps.topk(2, dim=1)
        inside = (top2.values[:, 0] - top2.values[:, 1]) >= margin  # the largest coordinate leads by the margin
        cell = top2.indices[:, 0]
        counts += np.bincount(cell[inside].numpy(), minlength=dim)
        for i in range(dim):
            have = sum(len(k) for k in kept[i])
            if have < n_pairs:
                kept[i].append(eps[inside & (cell == i)][: n_pairs - have])
    ci = wilson_interval(counts, int(n))  # [dim, 2]
    total = int(counts.sum())
    pooled_ci = wilson_interval(total, int(n)) / dim
    exact = quad(lambda x: norm.pdf(x) * norm.cdf(x - margin) ** (dim - 1), -np.inf, np.inf)[0]
    pts = [torch.cat(k) if k else torch.zeros(0, dim, dtype=torch.float64) for k in kept]
    min_dist = min((float(torch.cdist(pts[i], pts[j]).min()) for i in range(dim) for j in range(i + 1, dim)
                    if len(pts[i]) and len(pts[j])), default=math.nan)
    separation = math.sqrt(2) * margin
    L_over_delta = 1 / separation
    low = ci[:, 0]
    return {
        "dim": int(dim), "margin": float(margin), "separation": separation, "n": int(n), "tau": tau,
        "r_tau": float(norm.ppf(1 - tau / 2)), "counts": counts, "mass": counts / n, "low": low, "high": ci[:, 1],
        "pooled": total / (dim * n), "pooled_low": float(pooled_ci[0]), "pooled_high": float(pooled_ci[1]),
        "exact": float(exact), "min_distance": min_dist, "L_over_delta": L_over_delta,
        "heavy": int((low > tau).sum()),
        "paper": theory.mode_count_bound(L_over_delta, 1.0, tau, dim=1, form="paper"),
        "isoperimetric": theory.max_modes_with_mass(L_over_delta, 1.0, float(low.min())),
    }


# ---------------------------------------------------------------------------------------
# 4. Gaussian isoperimetry
# ---------------------------------------------------------------------------------------
def clipped_linear_map(L: float, delta: float, m: float) -> Map:
    """The extremal map of the bridge-mass floor (chapter 5; app-isoperimetry): G(ε) = clip(L(ε₁ − a), 0, Δ)
    with a = Φ⁻¹(m), so that P(G = 0) = m and P(G = Δ) = 1 − Φ(a + Δ/L). ``f(ε [N, D]) -> [N, 1]``; only ε₁ matters."""
    a = float(norm.ppf(m))
    return lambda eps: (L * (eps[:, :1] - a)).clamp(0.0, delta)


def _logistic_map(kappa: float, delta_c: float, dim: int) -> Map:
    """A smooth map R^dim → R: G(ε) = Δ_c·σ(κ·vᵀε), v = (1, …, 1)/√dim, σ the logistic function."""
    v = torch.full((dim, 1), 1 / math.sqrt(dim), dtype=torch.float64)
    return lambda eps: delta_c * torch.sigmoid(kappa * (eps.double() @ v))


def isoperimetry_check(
    ratios: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 3.0), ms: Sequence[float] = (0.05, 0.15),
    kappas: Sequence[float] = (1.0, 2.0, 4.0, 8.0, 16.0), dim: int = 3, n: int = 200_000, seed: int = 0,
) -> list[dict[str, float]]:
    """Bridge mass against the isoperimetric floor, by Monte Carlo in ``dim`` base dimensions.

    * ``kind="extremal"``: the clipped-linear map with Δ = 1, L = 1/ratio and P(G = 0) = m, for
      each m in ``ms`` (``target`` True) and the balanced m = Φ(−ratio/2) (``target`` False);
      skipped where m > Φ(−ratio/2): no L-Lipschitz map can do it. Modes: the points 0 and Δ.
      Floor: part (2) of chapter 5's bridge-mass floor (app-isoperimetry) with p_min = m; the map
      attains it exactly, the measurement to Monte Carlo error.
    * ``kind="smooth"``: G = Δ_c·σ(κ·vᵀε) with Δ_c = 2 and modes the balls of radius ½ at 0 and Δ_c
      (gap Δ = 1); L measured by Jacobian power iteration. Floor: part (3), balanced.

    Rows: kind, m (p_min), target, ratio Δ/L, L, delta, p1, p2, bridge (measured), floor; smooth rows
    also dim."""
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn((n, dim), generator=g, dtype=torch.float64)
    rows = []
    for ratio in ratios:
        L = 1.0 / ratio
        for m, target in [*((m, True) for m in ms), (float(norm.cdf(-ratio / 2)), False)]:
            if m > norm.cdf(-ratio / 2) + 1e-12:
                continue
            a = clipped_linear_map(L, 1.0, m)(eps)
            lab = assign_modes(a, np.array([[0.0], [1.0]]), 0.0)
            p1, p2 = float((lab == 0).mean()), float((lab == 1).mean())
            rows.append({"kind": "extremal", "m": float(m), "target": target, "ratio": float(ratio), "L": L,
                         "delta": 1.0, "p1": p1, "p2": p2, "bridge": 1 - p1 - p2,
                         "floor": theory.bridge_mass_bound(L, 1.0, min(m, 0.5))})
    delta_c, rho = 2.0, 0.5
    for kappa in kappas:
        f = _logistic_map(kappa, delta_c, dim)
        L = float(jacobian_spectral_norm(f, eps[:4096], n_iter=2, generator=g).max())
        lab = assign_modes(f(eps), np.array([[0.0], [delta_c]]), rho)
        p1, p2 = float((lab == 0).mean()), float((lab == 1).mean())
        gap = delta_c - 2 * rho
        rows.append({"kind": "smooth", "m": min(p1, p2), "target": False, "ratio": gap / L, "L": L, "delta": gap, "p1": p1, "p2": p2,
                     "bridge": 1 - p1 - p2, "floor": theory.balanced_bridge_mass_bound(L, gap), "dim": dim})
    return rows


# ---------------------------------------------------------------------------------------
def summary(profile: str | None = None, seed: int = 0) -> list[dict[str, float]]:
    """Rows for ``python -m mbc_lib run transport``: the staircase table, the counterexample, and
    the trained 1-D flow and diffusion maps."""
    rows: list[dict[str, float]] = [{"part": "staircase", **r} for r in staircase_table()]
    rows += [{"part": "lattice", **r} for r in lattice_counterexample()]
    for family in ("flow", "diffusion"):
        m = trained_map(family, seed=seed, profile=profile, progress=False)
        rows.append({"part": f"trained {family}", "steps": m.steps, **m.stats.row()})
    keys = list(dict.fromkeys(k for r in rows for k in r))  # one table: every row gets every column
    return [{k: r.get(k, math.nan) for k in keys} for r in rows]
