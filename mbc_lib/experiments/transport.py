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
   bridge-mass floor; smooth maps lie above it. :func:`bridge_floor` is the floor for K modes
   that chapter 6 holds trained policies to.

Units: base noise in standard-normal units; actions in task units; a Lipschitz constant
is action units per base unit; Δ is the *gap* between mode regions unless stated otherwise.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Circle
from scipy.stats import chi2, norm
from torch import Tensor

from .. import policies, tasks, theory
from ..diagnostics import (
    assign_modes,
    empirical_mode_count,
    jacobian_spectral_norm,
    segment_profile,
)
from ..plotting import OFF_SUPPORT_COLOR, mode_color
from ..profiles import budget
from ..train import History, on_compute_device, train

__all__ = [
    "MapStats", "measure_map", "TrainedMap", "trained_map", "plot_trained_maps",
    "linear_tightness", "staircase", "staircase_table", "plot_staircase", "plot_staircase_check",
    "lattice_counterexample", "plot_counterexample", "mass_counterexample",
    "multi_mode_bridge_floor", "bridge_floor", "clipped_linear_map", "isoperimetry_check", "plot_isoperimetry",
    "summary",
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
    policy = policies.make(family, obs_dim=1, action_dim=1, chunk_len=1, width=b["width"], depth=b["depth"], seed=seed)
    history = train(policy, data, steps=b["steps"], batch_size=b["batch_size"], lr=b["lr"], seed=seed,
                    progress=progress, desc=f"{family} K={K} Δc={delta:g}")
    policy.cpu()  # returned on the CPU; measured on CUDA when present (the grid is the cost)
    steps = steps if steps is not None else policy.config.steps
    obs = torch.zeros(1, 1)
    ms = task.modes(obs)

    def f(eps: Tensor) -> Tensor:  # [N, 1] -> [N, 1], on the CPU
        return policy.transport(obs.expand(len(eps), -1), eps.float().reshape(-1, 1, 1), steps=steps).reshape(-1, 1).cpu()

    with on_compute_device(policy):
        stats = measure_map(f, ms.centers[0], task.radius, delta - 2 * task.radius, tau, n_grid=b["n_grid"])
    return TrainedMap(family, K, float(delta), steps, task, policy, history, stats)


def plot_trained_maps(maps: Sequence[TrainedMap]) -> plt.Figure:
    """One panel per policy: the map ε ↦ G_θ(0, ε) coloured by the mode it lands in (red: in no mode),
    the mode regions as bands, the central 1 − τ interval C, and the counts against the bounds."""
    fig, axes = plt.subplots(1, len(maps), figsize=(4.6 * len(maps), 3.4), squeeze=False, sharey=True)
    for ax, m in zip(axes[0], maps):
        st = m.stats
        _draw_map(ax, st, m.task.modes(torch.zeros(1, 1)).centers[0].reshape(m.K).numpy(), m.task.radius)
        ax.set_title(f"{m.family} ({m.steps} steps), fork K={m.K}\n"
                     rf"$N^\tau$ = {st.n_hit}, $1+\lfloor\mathrm{{len}}/\Delta\rfloor$ = {st.bound_length}, "
                     rf"$1+\lfloor 2r\hat L/\Delta\rfloor$ = {st.bound_tight}; bridge $b$ = {st.bridge:.3f}", fontsize=9)
        ax.text(0.02, 0.97, rf"$\hat L$ = {st.L:.1f}" "\n" rf"$\mathrm{{len}}$ = {st.length:.2f}" "\n"
                rf"$\Delta$ = {st.delta:.2f}", transform=ax.transAxes,
                va="top", fontsize=8, bbox=dict(fc="white", ec="0.8", alpha=0.9))
    axes[0, 0].set_ylabel(r"action $a = G_\theta(s, \varepsilon)$ (task units)")
    fig.tight_layout()
    return fig


def _draw_map(ax: plt.Axes, st: MapStats, centers: np.ndarray, radius: float, xlim: float = 3.5) -> None:
    """The curve ε ↦ G(ε) coloured by label, mode bands, and the central interval [−r, r]."""
    sel = np.abs(st.eps) <= xlim
    x, y, lab = st.eps[sel], st.image[sel, 0], st.labels[sel]
    for k, c in enumerate(centers):
        ax.axhspan(c - radius, c + radius, color=mode_color(k), alpha=0.12, lw=0)
    ax.plot(x, y, color="0.75", lw=1, zorder=1)
    for k in np.unique(lab):
        pts = lab == k
        ax.scatter(x[pts], y[pts], s=2, color=mode_color(int(k)), zorder=2, label="off-support" if k < 0 else None)
    for s in (-st.r_tau, st.r_tau):
        ax.axvline(s, color="k", ls=":", lw=1)
    ax.set_xlim(-xlim, xlim)
    ax.set_xlabel(r"base noise $\varepsilon$  (dotted: central set $C = [-r, r]$)")


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


def staircase_table(
    widths: Sequence[float] = (2.0, 1.0, 0.4, 0.1, 0.05), K: int = 5, radius: float = 0.25, tau: float = 0.05,
    n_grid: int = 200_001,
) -> list[dict[str, float]]:
    """The staircases measured (the appendix's numerical check, app-transport-check): for each
    transition width w, the staircase's L, N^τ (regions of ``radius`` around the centres 0..K−1
    hit by G(C)), the image length len (key ``length``), the three bounds with Δ = Δ_c = 1
    (they count centres; regions hit are the same here), the lightest mode's mass, the bridge
    mass, and two predictions for it: the 1-D transition estimate (gap/L)·Σ_j φ(c_j) and the
    dimension-free K-mode floor (:func:`multi_mode_bridge_floor`) with the gap Δ = 1 − 2·radius."""
    centers = np.arange(K, dtype=float)[:, None]
    gap = 1.0 - 2 * radius
    phi_sum = float(norm.pdf(norm.ppf(np.arange(1, K) / K)).sum())
    rows = []
    for w in widths:
        st = measure_map(staircase(w, K), centers, radius, delta=1.0, tau=tau, n_grid=n_grid)
        rows.append({"w": float(w), **st.row(), "bridge_1d": gap / st.L * phi_sum,
                     "bridge_floor": multi_mode_bridge_floor(st.mass, gap, st.L)})
    return rows


def plot_staircase(width: float, K: int = 5, radius: float = 0.25, tau: float = 0.05) -> plt.Figure:
    """The staircase of transition width ``width``: the map (left) and where its base mass goes
    (right: φ(ε) shaded by the mode ε lands in; the red area is the bridge mass)."""
    st = measure_map(staircase(width, K), np.arange(K, dtype=float)[:, None], radius, delta=1.0, tau=tau, n_grid=20_001)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2), gridspec_kw={"width_ratios": [1.2, 1]})
    _draw_map(ax1, st, np.arange(K, dtype=float), radius)
    ax1.set_ylabel(r"$G(\varepsilon)$")
    ax1.set_title(rf"$w$ = {width:g}: $L$ = {st.L:.2f}, $N^\tau$ = {st.n_hit}; bounds: length {st.bound_length}, "
                  rf"$1+\lfloor 2rL\rfloor$ = {st.bound_tight}, paper {st.bound_paper}", fontsize=9)
    x, dens = st.eps, norm.pdf(st.eps)
    for k in np.unique(st.labels):
        ax2.fill_between(x, 0, np.where(st.labels == k, dens, 0), color=mode_color(int(k)), alpha=0.8 if k < 0 else 0.35,
                         lw=0, label="bridge (off-support)" if k < 0 else None)
    ax2.plot(x, dens, color="k", lw=0.8)
    ax2.set(xlim=(-3.5, 3.5), ylim=(0, 0.42), xlabel=r"base noise $\varepsilon$", ylabel=r"$\varphi(\varepsilon)$",
            title=rf"smallest mode mass {st.mass.min():.3f}; bridge mass $b$ = {st.bridge:.3f}")
    ax2.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


def plot_staircase_check(rows: list[dict[str, float]], K: int = 5, radius: float = 0.25, tau: float = 0.05) -> plt.Figure:
    """Left: N^τ and the bounds against L. Right: bridge mass against L with the 1-D transition
    prediction (gap/L)·Σφ(c_j) (line) and the dimension-free K-mode floor (open markers)."""
    L = np.array([r["L"] for r in rows])
    Lf = np.geomspace(L.min() * 0.8, L.max() * 1.25, 400)
    r = float(norm.ppf(1 - tau / 2))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax1.step(Lf, 1 + np.ceil(2 * r * Lf), where="post", color="C3", lw=1.2, label=r"paper: $1+\lceil 2rL/\Delta\rceil$")
    ax1.step(Lf, 1 + np.floor(2 * r * Lf), where="post", color="C0", lw=1.2, ls="--", label=r"$1+\lfloor 2rL/\Delta\rfloor$")
    ax1.plot(L, [x["bound_length"] for x in rows], "s", ms=9, mfc="none", color="C2",
             label=r"length form $1+\lfloor\mathrm{len}/\Delta\rfloor$")
    ax1.plot(L, [x["N_tau"] for x in rows], "ko", ms=4, label=r"measured $N^\tau$")
    ax1.set(xscale="log", yscale="log", xlabel="Lipschitz constant $L$", ylabel="modes",
            title=rf"{K}-level staircases ($\Delta = \Delta_c = 1$, $\tau$ = {tau:g})")
    ax1.legend(fontsize=8)
    _log_ticks(ax1, [2, 5, 10, 20, 50], "x")
    _log_ticks(ax1, [5, 10, 20, 50, 100, 200], "y")
    gap = 1.0 - 2 * radius
    phi_sum = float(norm.pdf(norm.ppf(np.arange(1, K) / K)).sum())
    ax2.plot(Lf, gap / Lf * phi_sum, "k-", lw=1,
             label=rf"1-D prediction $(\mathrm{{gap}}/L)\sum_j\varphi(c_j)$ = {gap * phi_sum:.2f}$/L$")
    ax2.plot(L, [x["bridge"] for x in rows], "o", color=OFF_SUPPORT_COLOR, label="measured bridge mass")
    ax2.plot(L, [x["bridge_floor"] for x in rows], "v", mfc="none", color="C0", ms=8,
             label="isoperimetric K-mode floor")
    ax2.set(xscale="log", yscale="log", xlabel="Lipschitz constant $L$", ylabel="mass in no mode",
            title=f"bridge mass (mode regions: radius {radius:g}, gap {gap:g})")
    ax2.legend(fontsize=8)
    _log_ticks(ax2, [2, 5, 10, 20, 50], "x")
    fig.tight_layout()
    return fig


def _log_ticks(ax: plt.Axes, ticks: Sequence[float], axis: str) -> None:
    """Plain-number major ticks on a log axis, no minor labels."""
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(FixedLocator(list(ticks)))
    target.set_major_formatter(ScalarFormatter())
    target.set_minor_formatter(NullFormatter())


# ---------------------------------------------------------------------------------------
# 3. base dimension n > 1: the paper's formula is false
# ---------------------------------------------------------------------------------------
def _lattice_in_disc(radius: float) -> np.ndarray:
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
    r1 = float(norm.ppf(1 - tau / 2))
    R = math.sqrt(float(chi2.ppf(1 - tau, 2)))
    rows = []
    for L in Ls:
        rows.append({
            "L": float(L), "R_tau": R, "hit": len(_lattice_in_disc(L * R)),
            "paper": theory.mode_count_bound(L, 1.0, tau, dim=1, form="paper"),
            "paper_chi": 1 + math.ceil(2 * R * L),
            "packing": theory.mode_count_bound(L, 1.0, tau, dim=2, form="packing"),
            "path_hit": 2 * math.floor(L * R) + 1,
            "path_bound": theory.path_mode_count_bound(2 * R * L, 1.0),
        })
    return rows


def plot_counterexample(rows: list[dict[str, float]]) -> plt.Figure:
    """One panel per L: the image G(C) (disc), the lattice modes it hits (blue), those on one
    diameter (black: what the 1-D argument sees), and the paper's count."""
    fig, axes = plt.subplots(1, len(rows), figsize=(3.4 * len(rows), 4.0))
    for ax, r in zip(np.atleast_1d(axes), rows):
        rad = r["L"] * r["R_tau"]
        n = int(rad) + 2
        i, j = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1))
        ax.scatter(i.ravel(), j.ravel(), s=3, color="0.75")
        hit = _lattice_in_disc(rad)
        ax.scatter(hit[:, 0], hit[:, 1], s=10, color=mode_color(0), label=f"hit: {r['hit']}")
        diam = hit[hit[:, 1] == 0]
        ax.scatter(diam[:, 0], diam[:, 1], s=14, color="k", label=f"on a diameter: {r['path_hit']}")
        ax.add_patch(Circle((0, 0), rad, fill=False, color="C0", lw=1.2))
        ax.set(xlim=(-n, n), ylim=(-n, n), aspect="equal", xticks=[], yticks=[])
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_title(rf"$G = {r['L']:g}\cdot\mathrm{{Id}}$: {r['hit']} modes hit" "\n"
                     f"(paper's formula: {r['paper']}; on a diameter: {r['path_hit']})", fontsize=9)
    fig.legend(handles=[plt.Line2D([], [], marker="o", ls="", color=mode_color(0), label="mode hit by $G(C)$"),
                        plt.Line2D([], [], marker="o", ls="", color="k", label="hit along one diameter"),
                        plt.Line2D([], [], color="C0", label=r"$G(C)$: disc of radius $L R_\tau$")],
               loc="lower center", ncol=3, fontsize=8)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


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
    margin, tau = theory._positive("margin", margin), theory._tau(tau)
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
def multi_mode_bridge_floor(masses, delta: float, L: float) -> float:
    """Dimension-free floor on the mass in no mode for K modes pairwise ≥ Δ apart (chapter 5):

        b ≥ Σ_k [Φ(Φ⁻¹(p_k) + Δ/(2L)) − p_k]        (sum over modes with p_k > 0)

    The preimages A_k are Δ/L apart, so their Δ/2L-enlargements are disjoint and every added
    point maps to no mode; Gaussian isoperimetry gives each enlargement mass ≥ Φ(Φ⁻¹(p_k) + Δ/2L).
    ``masses`` ``[K]`` are the p_k; returns a probability."""
    p = np.asarray(masses, dtype=float).reshape(-1)
    if np.any(p < 0) or p.sum() > 1 + 1e-9:
        raise ValueError(f"masses must be >= 0 and sum to at most 1, got {p}")
    p = p[p > 0]
    step = theory._positive("delta", delta) / (2 * theory._positive("L", L))
    return float(np.clip(norm.cdf(norm.ppf(np.minimum(p, 1.0)) + step) - p, 0, None).sum())


def bridge_floor(masses, delta: float, L: float) -> float:
    """The isoperimetric floor on the off-support mass given mode masses ``[K]``, the gap Δ and L.

    Two modes with mass: the larger of the two-mode floor (chapter 5, theorem "Bridge-mass floor" (2);
    app-isoperimetry), Φ(Φ⁻¹(p_min) + Δ/L) − p_min with p_min the smaller mass, and
    :func:`multi_mode_bridge_floor`; more modes: the latter. NaN when part (1) of that theorem says
    no L-Lipschitz map can put these masses on two modes (p_min > Φ(−Δ/2L)) — for a measured L that means
    the estimate is too small. 0 with fewer than two modes."""
    p = np.asarray(masses, dtype=float).reshape(-1)
    p = p[p > 0]
    if p.size < 2:
        return 0.0
    floor = multi_mode_bridge_floor(p, delta, L)
    if p.size == 2:
        try:
            floor = max(floor, theory.bridge_mass_bound(L, delta, min(float(p.min()), 0.5)))
        except ValueError:
            return math.nan
    return floor


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


def plot_isoperimetry(rows: list[dict[str, float]]) -> plt.Figure:
    """Bridge mass against Δ/L: the floors of chapter 5's bridge-mass theorem as curves, the extremal map on them
    (filled markers), smooth maps above them (open circles)."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    x = np.linspace(1e-3, 3.3, 400)
    ax.plot(x, 2 * norm.cdf(x / 2) - 1, "k-", lw=1.2, label=r"balanced floor $2\Phi(\Delta/2L)-1$")
    ms = sorted({r["m"] for r in rows if r["kind"] == "extremal" and r.get("target", True)})
    styles = {m: (c, ls, mk) for m, c, ls, mk in zip(ms, ("C0", "C2", "C4"), ("--", "-.", ":"), ("s", "^", "D"))}
    for m, (c, ls, mk) in styles.items():
        xs = x[x <= -2 * norm.ppf(m)]
        ax.plot(xs, norm.cdf(norm.ppf(m) + xs) - m, color=c, ls=ls, lw=1.2,
                label=rf"floor $\Phi(\Phi^{{-1}}(p_{{\min}})+\Delta/L)-p_{{\min}}$, $p_{{\min}}$ = {m:g}")
    for r in rows:
        if r["kind"] != "extremal":
            continue
        c, mk = next(((cc, mm) for mv, (cc, _, mm) in styles.items() if abs(r["m"] - mv) < 1e-9), ("k", "o"))
        ax.plot(r["ratio"], r["bridge"], mk, color=c, ms=7)
    sm = [r for r in rows if r["kind"] == "smooth"]
    ax.plot([r["ratio"] for r in sm], [r["bridge"] for r in sm], "o", mfc="none", mec=OFF_SUPPORT_COLOR, ms=9, mew=1.5,
            label=f"smooth logistic maps ($n$ = {sm[0]['dim'] if sm else '?'}), measured")
    ax.plot([], [], "ko", label="clipped-linear map, measured (filled)")
    ax.set(xlabel=r"$\Delta / L$  (base distance between the preimages)", ylabel="bridge mass $b$", xlim=(0, 3.3),
           ylim=(0, 1))
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Gaussian isoperimetry: no $L$-Lipschitz map puts less mass between two modes", fontsize=9)
    fig.tight_layout()
    return fig


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
