"""Chapter 6: sharp transitions and bridges in trained flow and diffusion policies.

A trained transport policy is a map ``a = G_s(ε)`` from base noise to chunks (chapter 5). To
put little mass between K modes it must be *sharp*: Gaussian isoperimetry (chapter 5; the book's
appendix, app-isoperimetry) ties the mass in no mode — the *bridge* b — to the Lipschitz constant L
of the whole sampler. We train flow and diffusion policies on the K-branch fork and measure, at a
few observations (the diagnostics of the book's appendix, app-diagnostics):

* **Lipschitz estimates**: the Jacobian spectral norm by power iteration at random base points, at
  base points whose sample fell in the bridge and inside the transitions, and the largest
  finite-difference stretch along random base segments. All are *lower* bounds on L; L̂ is
  their maximum.
* **Bridge mass** b̂: the fraction of samples in no mode, against the isoperimetric floor at L̂
  (:func:`mbc_lib.experiments.transport.bridge_floor`: the two-mode floor, or its K-mode corollary)
  and the smallest L consistent with b̂.
* **Transition width** (:func:`transitions`): where a base segment passes from one mode to another,
  the base length between a point in one and a point in the other, located by bisection, against
  Δ/J with J the largest Jacobian norm measured inside the transition. A map whose stretch there is
  at most J needs at least Δ/J of base length to cross a gap Δ; since J is measured at finitely many
  points, the check could fail if they missed the steepest one.

…as the number of integration steps, K and the gap Δ = Δ_c − 2ρ vary (:func:`sweep`).
Units: base noise in standard-normal units; chunks in task units; L in task units per base unit.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy import optimize
from torch import Tensor
from tqdm.auto import tqdm

from .. import policies, tasks
from ..diagnostics import assign_modes, jacobian_spectral_norm, random_segments, segment_profile, wilson_interval
from ..plotting import OFF_SUPPORT_COLOR, log_scale, mode_color, plot_chunks
from ..profiles import budget
from ..train import History, on_compute_device, progress_enabled, train
from .transport import bridge_floor

__all__ = [
    "Model", "fit", "BridgeStats", "transitions", "measure", "implied_lipschitz", "MODELS", "sweep", "summary",
    "plot_crossing", "plot_steps", "plot_modes_sweep", "plot_floor_check", "plot_widths",
]

#: the models chapter 6 trains: (family, K, Δ_c) — a K sweep and a Δ sweep through (flow, 2, 3.0)
MODELS: tuple[tuple[str, int, float], ...] = (
    ("flow", 2, 3.0), ("diffusion", 2, 3.0), ("flow", 3, 3.0), ("flow", 4, 3.0), ("flow", 2, 1.5), ("flow", 2, 6.0),
)


@dataclass
class Model:
    """A transport policy trained on the fork or the ring (``K`` modes, neighbouring centres ``delta_c`` = Δ_c apart as chunks)."""

    family: str
    K: int
    delta_c: float
    task: tasks.Task = field(repr=False)
    policy: policies.Policy = field(repr=False)
    history: History = field(repr=False)

    @property
    def gap(self) -> float:
        """Δ = Δ_c − 2ρ, the gap between mode regions (task units)."""
        return self.delta_c - 2 * self.task.radius

    @property
    def label(self) -> str:
        return f"{self.family} K={self.K} Δc={self.delta_c:g}"


def fit(
    family: str = "flow", K: int = 2, delta: float = 3.0, sigma: float = 0.1, chunk_len: int = 8, seed: int = 0,
    profile: str | None = None, progress: bool | None = None, task: str = "fork",
) -> Model:
    """Train ``family`` ("flow" | "diffusion") with the profile's budget on ``task``: the K-branch
    ``"fork"`` or K modes on the ``"ring"``, with neighbouring mode centres ``delta`` apart as chunks
    (for the ring this sets the ring radius), within-mode noise ``sigma`` and chunk length ``chunk_len``."""
    if family not in ("flow", "diffusion"):
        raise ValueError(f"family must be 'flow' or 'diffusion' (the transport policies), got {family!r}")
    b = budget("bridges", profile)
    if task == "fork":
        task = tasks.make("fork", K=K, delta=delta, sigma=sigma, chunk_len=chunk_len)
    elif task == "ring":
        ramp_norm = math.sqrt(sum((t / chunk_len) ** 2 for t in range(1, chunk_len + 1)))
        radius = delta / (2 * math.sin(math.pi / K) * ramp_norm)  # Δ_c = 2R·sin(π/K)·‖r‖
        task = tasks.make("ring", K=K, ring_radius=radius, sigma=sigma, chunk_len=chunk_len)
    else:
        raise ValueError(f"task must be 'fork' or 'ring', got {task!r}")
    data = task.dataset(b["n_demos"], seed=seed)
    policy = policies.make(family, obs_dim=task.obs_dim, action_dim=task.action_dim, chunk_len=chunk_len,
                           width=b["width"], depth=b["depth"], seed=seed)
    history = train(policy, data, steps=b["steps"], batch_size=b["batch_size"], lr=b["lr"], seed=seed,
                    progress=progress, desc=f"{family} K={K} Δc={delta:g}")
    policy.cpu()  # measured on the CPU (the full profile trains on CUDA when present)
    return Model(family, K, float(delta), task, policy, history)


# ---------------------------------------------------------------------------------------
# measuring one (model, steps)
# ---------------------------------------------------------------------------------------
def implied_lipschitz(masses, delta: float, bridge: float) -> float:
    """The smallest L for which the isoperimetric floor (:func:`~mbc_lib.experiments.transport.bridge_floor`)
    allows bridge mass ``bridge`` with these mode ``masses`` — a derivative-free lower bound on the
    sampler's L. +inf when ``bridge`` is 0 (only a discontinuous map puts nothing between modes),
    NaN with fewer than two modes holding mass."""
    p = np.asarray(masses, dtype=float)
    if (p > 0).sum() < 2:
        return math.nan
    if bridge <= 0:
        return math.inf

    def g(log_L: float) -> float:  # floor − bridge, decreasing in L; NaN (L cannot carry p) counts as floor 1
        floor = bridge_floor(p, delta, math.exp(log_L))
        return (floor if np.isfinite(floor) else 1.0) - bridge

    lo, hi = math.log(delta) - 12, math.log(delta) + 12
    if g(lo) <= 0:
        return math.exp(lo)
    if g(hi) > 0:
        return math.inf
    return math.exp(optimize.brentq(g, lo, hi, xtol=1e-10))


@dataclass
class BridgeStats:
    """One model sampled with ``steps`` steps, measured at ``n_obs`` observations (arrays ``[n_obs]``).

    mass ``[n_obs, K]`` and bridge: fractions of samples per mode and in no mode; bridge_hi: the
    upper end of the bridge's 95% Wilson interval; floor: the isoperimetric floor at L̂ (NaN if L̂
    is too small to carry those masses); implied_L: the smallest L consistent with the measured
    bridge; L_jac_median, L_jac_max: Jacobian spectral norm at random base points; L_jac_bridge:
    its max at base points in the bridge (samples that landed there, the off-support points of
    crossing segments and the points inside the measured transitions); L_seg: largest segment
    stretch; L_hat: the max of all estimates. width: median over the measured transitions
    (:func:`transitions`) of the base length between a point in one mode and a point in the next;
    width_floor: median of Δ/J, J the largest Jacobian norm measured inside that transition;
    width_margin: the smallest width/(Δ/J) (the lemma says ≥ 1 when J is the transition's true
    steepest stretch); crossing: fraction of segments whose ends land in two modes.
    seg_width, seg_floor: per measured transition (all observations). For plots, at the first
    observation: samples ``[n, H, d]``, labels ``[n]``, and one crossing segment's images
    ``path [P, H, d]``, labels ``path_labels [P]`` and stretch ``path_stretch [P−1]``.
    """

    family: str
    K: int
    delta_c: float
    gap: float
    steps: int
    obs: Tensor = field(repr=False)
    mass: np.ndarray = field(repr=False)
    bridge: np.ndarray = field(repr=False)
    bridge_hi: np.ndarray = field(repr=False)
    floor: np.ndarray = field(repr=False)
    implied_L: np.ndarray = field(repr=False)
    L_jac_median: np.ndarray = field(repr=False)
    L_jac_max: np.ndarray = field(repr=False)
    L_jac_bridge: np.ndarray = field(repr=False)
    L_seg: np.ndarray = field(repr=False)
    L_hat: np.ndarray = field(repr=False)
    width: np.ndarray = field(repr=False)
    width_floor: np.ndarray = field(repr=False)
    width_margin: np.ndarray = field(repr=False)
    crossing: np.ndarray = field(repr=False)
    seg_width: np.ndarray = field(repr=False)
    seg_floor: np.ndarray = field(repr=False)
    samples: Tensor = field(repr=False)
    labels: np.ndarray = field(repr=False)
    path: np.ndarray | None = field(default=None, repr=False)
    path_labels: np.ndarray | None = field(default=None, repr=False)
    path_stretch: np.ndarray | None = field(default=None, repr=False)

    def above_floor(self) -> np.ndarray:
        """Per observation: is the measured bridge at or above the floor at L̂ — outright (``2``), only
        within its 95% confidence interval (``1``), or not (``0``: L̂ underestimates L, or the floor is
        NaN because L̂ cannot carry the measured masses)? Observations with fewer than two modes
        holding mass have no floor and count as ``2``."""
        has = (self.mass > 0).sum(1) >= 2
        f = np.where(has, self.floor, 0.0)
        return np.where(~np.isfinite(f), 0, np.where(self.bridge >= f, 2, np.where(self.bridge_hi >= f, 1, 0)))

    def row(self) -> dict[str, float]:
        """Averages over the observations (tidy, for tables and tests)."""
        mean = lambda x: float(np.nanmean(x)) if np.any(np.isfinite(x)) else math.nan  # noqa: E731
        return {
            "family": self.family, "K": self.K, "delta_c": self.delta_c, "gap": self.gap, "steps": self.steps,
            "bridge": mean(self.bridge), "bridge_hi": mean(self.bridge_hi), "floor": mean(self.floor),
            "min_mass": float(self.mass.min(1).mean()),
            "modes_covered": float((self.mass > 0.05).sum(1).mean()),
            "L_hat": mean(self.L_hat), "L_jac_median": mean(self.L_jac_median), "L_jac_max": mean(self.L_jac_max),
            "L_jac_bridge": mean(self.L_jac_bridge), "L_seg": mean(self.L_seg), "implied_L": mean(self.implied_L),
            "width": mean(self.width), "width_floor": mean(self.width_floor),
            "width_margin": float(np.nanmin(self.width_margin)) if np.any(np.isfinite(self.width_margin)) else math.nan,
            "crossing": mean(self.crossing),
        }


def _eval_obs(task: tasks.Task, n_obs: int) -> Tensor:
    """Fixed evaluation observations: for the fork, lateral positions evenly spread in [−½, ½]."""
    if task.obs_dim == 1:
        return torch.linspace(-0.5, 0.5, n_obs)[:, None] if n_obs > 1 else torch.zeros(1, 1)
    arc = getattr(task, "arc", math.pi)  # the ring: evenly spread rotations, inside the trained arc
    if arc >= math.pi:
        phi = torch.arange(n_obs) * 2 * math.pi / n_obs
    else:
        phi = (torch.arange(n_obs) - (n_obs - 1) / 2) / n_obs * arc  # centred in [−arc/2, arc/2]
    return torch.stack([phi.cos(), phi.sin()], -1)


def transitions(
    f, start: Tensor, end: Tensor, labels: np.ndarray, centers, radius: float, n_max: int,
    n_bisect: int = 12, n_jac_points: int = 17, n_iter: int = 4, generator: torch.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Width of each transition between two modes along base segments, and the largest Jacobian norm inside it.

    A *transition* is a pair of consecutive grid points of a segment that land in two *different* modes
    (``labels [M, P]`` from :func:`~mbc_lib.diagnostics.segment_profile`), with only off-support points
    between them. Up to ``n_max`` of them (evenly picked) are measured on a finer scale, independently of
    the grid's finite differences:

    * the **width**: both ends are located by ``n_bisect`` bisections of a grid step (on the mode labels),
      giving a base point known to lie in the first mode and one known to lie in the second; the width is
      the base length between them (at most 2·step/2^n_bisect more than the true width);
    * the **Jacobian** ‖J_G‖₂ (power iteration, ``n_iter`` steps) at ``n_jac_points`` evenly spaced base
      points between them; its max J.

    The image of that base interval joins two modes, so it is at least Δ long; it is at most
    width · sup‖J‖ long. Hence width ≥ Δ/sup‖J‖ (the transition-width lemma of chapter 6). The measured J
    is at most the sup, so width ≥ Δ/J *can* fail: when the Jacobian samples miss the steepest point.
    Returns ``(width [T], jac [T])`` in base units and task units per base unit.
    """
    P = labels.shape[1]
    pairs = []  # (segment, grid index in the first mode, grid index in the second)
    for m, row in enumerate(labels):
        idx = np.flatnonzero(row >= 0)
        for p, q in zip(idx[:-1], idx[1:]):
            if row[p] != row[q]:
                pairs.append((m, p, q))
    if not pairs or n_max < 1:
        return np.zeros(0), np.zeros(0)
    pick = np.unique(np.linspace(0, len(pairs) - 1, min(len(pairs), n_max)).round().astype(int))
    seg, p, q = (np.array(x) for x in zip(*(pairs[i] for i in pick)))
    lab_a, lab_b = labels[seg, p], labels[seg, q]
    t = np.arange(P) / (P - 1)
    s0, d0 = start[seg].double(), (end[seg] - start[seg]).double()  # [T, D]

    def at(tt: np.ndarray) -> Tensor:  # base points ε(t) on each transition's segment, [T, D]
        return (s0 + torch.as_tensor(tt)[:, None] * d0).float()

    a_lo, a_hi = t[p], t[p + 1]  # the first mode's exit: a_lo in mode A, a_hi not
    b_lo, b_hi = t[q - 1], t[q]  # the second mode's entry: b_hi in mode B, b_lo not
    for _ in range(n_bisect):
        a_mid, b_mid = (a_lo + a_hi) / 2, (b_lo + b_hi) / 2
        with torch.no_grad():
            img = f(torch.cat([at(a_mid), at(b_mid)]))
        lab = assign_modes(img, centers, radius)
        in_a, in_b = lab[: len(seg)] == lab_a, lab[len(seg):] == lab_b
        a_lo, a_hi = np.where(in_a, a_mid, a_lo), np.where(in_a, a_hi, a_mid)
        b_lo, b_hi = np.where(in_b, b_lo, b_mid), np.where(in_b, b_mid, b_hi)
    lo, hi = np.minimum(a_lo, b_hi), np.maximum(a_lo, b_hi)
    width = (hi - lo) * d0.norm(dim=1).numpy()
    u = np.linspace(0, 1, n_jac_points)
    pts = torch.cat([at(lo + (hi - lo) * ui) for ui in u])  # [n_jac_points·T, D], point-major
    jac = jacobian_spectral_norm(f, pts, n_iter=n_iter, generator=generator).cpu().numpy()
    return width, jac.reshape(n_jac_points, len(seg)).max(0)


def measure(model: Model, steps: int, seed: int = 0, profile: str | None = None,
            n_transitions: int | None = None) -> BridgeStats:
    """Measure ``model`` sampled with ``steps`` steps (bridge mass, Lipschitz estimates, transition
    widths) at the profile's ``n_obs`` observations, with ``n_samples`` samples, ``n_segments`` base
    segments of ``n_points`` points, ``n_jac`` random Jacobian points and up to ``n_transitions``
    transitions (default ``n_jac``/8; 0 skips them, and L̂ then comes from the other estimates) each.
    Deterministic given ``seed``."""
    b = budget("bridges", profile)
    n_transitions = max(1, b["n_jac"] // 8) if n_transitions is None else int(n_transitions)
    task, pol = model.task, model.policy
    H, d = task.chunk_len, task.action_dim
    D = H * d
    obs_all = _eval_obs(task, b["n_obs"])
    ms = task.modes(obs_all)
    keys = ("mass", "bridge", "bridge_hi", "floor", "implied_L", "L_jac_median", "L_jac_max", "L_jac_bridge", "L_seg", "L_hat",
            "width", "width_floor", "width_margin", "crossing")
    out: dict[str, list] = {k: [] for k in keys}
    seg_width, seg_floor = [], []
    plot: dict[str, object] = {}
    g = torch.Generator().manual_seed(seed)
    with on_compute_device(pol):  # CUDA when present: the segments and Jacobians are the cost
        for i in range(len(obs_all)):
            obs = obs_all[i:i + 1]
            centers, radius = ms.centers[i], task.radius  # [K, H, d]

            def f(eps: Tensor) -> Tensor:  # base [N, D] -> chunk [N, D], on the CPU
                return pol.transport(obs.expand(len(eps), -1), eps.float().reshape(-1, H, d),
                                     steps=steps).reshape(len(eps), D).cpu()

            eps = torch.randn((b["n_samples"], D), generator=g)
            with torch.no_grad():
                a = f(eps)
            lab = assign_modes(a, centers, radius)
            mass = np.bincount(lab[lab >= 0], minlength=model.K)[: model.K] / len(lab)
            bridge = float((lab < 0).mean())
            start, end = random_segments(D, b["n_segments"], seed=seed + 1 + i)
            prof = segment_profile(f, start, end, n_points=b["n_points"], centers=centers, radius=radius)
            cross = prof.crosses
            # where the map is steep: samples that landed in the bridge, and the off-support points of
            # crossing segments (inside the transitions); up to n_jac of each
            seg_idx, pt_idx = np.nonzero((prof.labels < 0) & cross[:, None])
            pick = np.linspace(0, len(seg_idx) - 1, min(len(seg_idx), b["n_jac"])).round().astype(int)
            t = torch.linspace(0, 1, b["n_points"])[pt_idx[pick]][:, None]
            on_segments = start[seg_idx[pick]] + t * (end[seg_idx[pick]] - start[seg_idx[pick]])
            steep = torch.cat([eps[np.flatnonzero(lab < 0)[: b["n_jac"]]], on_segments])
            # power iteration at n_jac random base points and at the steep ones, in one batched call
            # (3 iterations: the stretch is dominated by one direction)
            both = jacobian_spectral_norm(f, torch.cat([eps[: b["n_jac"]], steep]), n_iter=3, generator=g).numpy()
            jac, jac_b = both[: b["n_jac"]], (both[b["n_jac"]:] if len(steep) else np.zeros(1))
            # the transitions between two modes, located to 1/2^12 of a grid step, and ‖J‖ inside each
            # (up to n_transitions of them): an estimate of the stretch independent of the grid's finite differences
            widths, jac_t = transitions(f, start, end, prof.labels, centers, radius, n_max=n_transitions, generator=g)
            floors = model.gap / np.maximum(jac_t, 1e-30)
            jac_b = np.concatenate([jac_b, jac_t])
            L_hat = float(max(jac.max(), jac_b.max(), prof.max_stretch.max()))
            seg_width.append(widths)
            seg_floor.append(floors)
            hi = float(wilson_interval(int((lab < 0).sum()), len(lab))[1])
            for k, v in (("mass", mass), ("bridge", bridge), ("bridge_hi", hi), ("floor", bridge_floor(mass, model.gap, L_hat)),
                         ("implied_L", implied_lipschitz(mass, model.gap, bridge)),
                         ("L_jac_median", float(np.median(jac))), ("L_jac_max", float(jac.max())),
                         ("L_jac_bridge", float(jac_b.max())), ("L_seg", float(prof.max_stretch.max())),
                         ("L_hat", L_hat), ("width", float(np.median(widths)) if len(widths) else math.nan),
                         ("width_floor", float(np.median(floors)) if len(floors) else math.nan),
                         ("width_margin", float((widths / floors).min()) if len(floors) else math.nan),
                         ("crossing", float(cross.mean()))):
                out[k].append(v)
            if i == 0:
                plot["samples"], plot["labels"] = a.reshape(-1, H, d), lab
                if cross.any():
                    j = int(np.flatnonzero(cross)[0])
                    t = torch.linspace(0, 1, b["n_points"])[:, None]
                    with torch.no_grad():
                        path = f(start[j] + t * (end[j] - start[j])).double().numpy()  # [P, D]
                    step = float((end[j] - start[j]).norm()) / (b["n_points"] - 1)
                    plot["path"] = path.reshape(-1, H, d)
                    plot["path_labels"] = prof.labels[j]
                    plot["path_stretch"] = np.linalg.norm(np.diff(path, axis=0), axis=1) / step
    arr = {k: np.array(v, dtype=float) for k, v in out.items()}
    return BridgeStats(model.family, model.K, model.delta_c, model.gap, steps, obs_all, seg_width=np.concatenate(seg_width),
                       seg_floor=np.concatenate(seg_floor), **arr, **plot)


# ---------------------------------------------------------------------------------------
# the chapter's sweep
# ---------------------------------------------------------------------------------------
def sweep(
    models: Sequence[tuple[str, int, float]] = MODELS, steps: Sequence[int] | None = None, seed: int = 0,
    profile: str | None = None, progress: bool | None = None,
) -> tuple[dict[tuple[str, int, float], Model], dict[tuple[str, int, float, int], BridgeStats]]:
    """Train every ``(family, K, Δ_c)`` in ``models`` and measure it at every sampler step count
    (default: the profile's ``sampler_steps``; Euler steps for flow, DDIM steps for diffusion).

    Returns ``(trained, stats)``: ``trained[(family, K, Δ_c)]`` is the :class:`Model`,
    ``stats[(family, K, Δ_c, steps)]`` its :class:`BridgeStats`."""
    steps = budget("bridges", profile)["sampler_steps"] if steps is None else steps
    trained, stats = {}, {}
    bar = tqdm(list(models), desc="bridges sweep", disable=not progress_enabled(progress))
    for family, K, delta in bar:
        key = (family, int(K), float(delta))
        trained[key] = fit(family, K, delta, seed=seed, profile=profile, progress=False)
        for s in steps:
            stats[(*key, int(s))] = measure(trained[key], int(s), seed=seed, profile=profile)
    return trained, stats


def summary(stats: dict[tuple[str, int, float, int], BridgeStats]) -> list[dict[str, float]]:
    """One tidy row per (model, steps): averages over the observations."""
    return [s.row() for s in stats.values()]


# ---------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------
def plot_crossing(st: BridgeStats) -> plt.Figure:
    """Left: samples at the first observation (colour: mode; red: in no mode). Middle: one base
    segment whose ends land in two modes — the image's lateral position at the last chunk step,
    coloured by mode. Right: the stretch ‖Δa‖/‖Δε‖ along it, with L̂ and the median Jacobian norm."""
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(11.5, 3.2), gridspec_kw={"width_ratios": [1.1, 1, 1]})
    fork = st.obs.shape[1] == 1  # fork: draw chunks relative to the observation; ring: the y coordinate
    plot_chunks(ax1, st.samples, st.labels, offset=st.obs[:1, 0].expand(len(st.samples)) if fork else None, alpha=0.25)
    ax1.set_ylabel("lateral position − s" if fork else "y")
    ax1.set_title(f"{st.family}, {st.steps} steps: bridge {st.bridge[0]:.1%} (floor {st.floor[0]:.1%})", fontsize=9)
    if st.path is not None:
        t = np.linspace(0, 1, len(st.path_labels))
        y = st.path[:, -1, -1] - (float(st.obs[0, 0]) if fork else 0.0)
        ax2.plot(t, y, color="0.7", lw=1)
        for k in np.unique(st.path_labels):
            sel = st.path_labels == k
            ax2.scatter(t[sel], y[sel], s=6, color=mode_color(int(k)), zorder=2)
        ax2.set(xlabel="position along the base segment", ylabel="last step − s" if fork else "last step, y",
                title="one base segment between two modes")
        tm = 0.5 * (t[1:] + t[:-1])
        ax3.semilogy(tm, np.maximum(st.path_stretch, 1e-3), color="k", lw=1)
        ax3.axhline(st.L_hat[0], color=OFF_SUPPORT_COLOR, ls="--", lw=1, label=rf"$\hat L$ = {st.L_hat[0]:.1f}")
        ax3.axhline(st.L_jac_median[0], color="C0", ls=":", lw=1.2, label=rf"median $\|J\|$ = {st.L_jac_median[0]:.2f}")
        ax3.set(xlabel="position along the base segment", ylabel=r"stretch $\|\Delta a\|/\|\Delta\varepsilon\|$", title="where the map stretches")
        ax3.legend(fontsize=8, loc="upper right")
    else:
        for ax in (ax2, ax3):
            ax.text(0.5, 0.5, "no segment crossed between two modes", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
    fig.tight_layout()
    return fig


def _pos(values) -> list[float]:
    """Values for a log axis: non-positive or undefined ones become gaps (NaN)."""
    return [v if (v is not None and np.isfinite(v) and v > 0) else math.nan for v in values]


def _select(stats, family: str, K: int, delta: float) -> list[BridgeStats]:
    return sorted((s for (f, k, dl, _), s in stats.items() if (f, k, dl) == (family, K, float(delta))),
                  key=lambda s: s.steps)


def plot_steps(stats: dict, K: int = 2, delta: float = 3.0, families: Sequence[str] = ("flow", "diffusion")) -> plt.Figure:
    """The chapter's main figure, against the number of sampler steps: (a) Lipschitz estimates,
    (b) bridge mass with the isoperimetric floor at L̂, (c) transition width against Δ/J, J the largest
    Jacobian norm measured inside the transition (medians over the measured transitions)."""
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(12, 3.5))
    marks = {"flow": ("o", "-"), "diffusion": ("s", "--")}
    for fam in families:
        rows = [s.row() for s in _select(stats, fam, K, delta)]
        if not rows:
            continue
        S = [r["steps"] for r in rows]
        mk, ls = marks.get(fam, ("^", ":"))
        ax1.plot(S, _pos(r["L_hat"] for r in rows), mk + ls, color="k", label=rf"{fam}: $\hat L$ (max of all)")
        ax1.plot(S, _pos(r["L_jac_median"] for r in rows), mk + ls, color="C0", mfc="none", label=rf"{fam}: median $\|J\|$")
        ax1.plot(S, _pos(r["implied_L"] for r in rows), mk, color=OFF_SUPPORT_COLOR, mfc="none", ms=9,
                 label=rf"{fam}: $L$ implied by $\hat b$")
        ax2.plot(S, _pos(r["bridge"] for r in rows), mk + ls, color=OFF_SUPPORT_COLOR, label=rf"{fam}: bridge $\hat b$")
        ax2.plot(S, _pos(r["floor"] for r in rows), mk + ls, color="C0", mfc="none", label=rf"{fam}: floor at $\hat L$")
        ax3.plot(S, _pos(r["width"] for r in rows), mk + ls, color="k", label=f"{fam}: width")
        ax3.plot(S, _pos(r["width_floor"] for r in rows), mk + ls, color="C0", mfc="none", label=rf"{fam}: $\Delta/J$")
    for ax in (ax1, ax2, ax3):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sampler steps")
    ax1.set(ylabel="task units per base unit", title=rf"(a) Lipschitz estimates (fork $K$={K}, $\Delta_c$={delta:g})")
    ax2.set(ylabel="mass in no mode", title="(b) bridge mass and its floor")
    ax3.set(ylabel="base length (median)", title="(c) transition width and its floor")
    for ax in (ax1, ax2, ax3):
        log_scale(ax, "y")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_modes_sweep(stats: dict, family: str = "flow", base: tuple[int, float] = (2, 3.0)) -> plt.Figure:
    """Bridge mass (filled) and its floor at L̂ (open, dashed) against sampler steps, one colour per
    K at Δc = base Δc (left) and per Δc at K = base K (right)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
    models = {(k, dl) for (f, k, dl, _) in stats if f == family}
    groups = [("$K$", sorted({k for k, dl in models if dl == base[1]}), lambda v: (v, base[1]), rf"$\Delta_c$ = {base[1]:g}"),
              (r"$\Delta_c$", sorted({dl for k, dl in models if k == base[0]}), lambda v: (base[0], v), f"$K$ = {base[0]}")]
    for ax, (name, values, key, fixed) in zip(axes, groups):
        for i, v in enumerate(values):
            rows = [s.row() for s in _select(stats, family, *key(v))]
            S = [r["steps"] for r in rows]
            c = f"C{i}"
            ax.plot(S, _pos(r["bridge"] for r in rows), "o-", color=c, ms=7 - i, label=f"{name} = {v:g}: bridge")
            ax.plot(S, _pos(r["floor"] for r in rows), "v--", color=c, mfc="none", ms=8, label=rf"{name} = {v:g}: floor at $\hat L$")
        ax.set(xlabel="sampler steps", title=f"{family}, {fixed}")
        log_scale(ax, "y")
        ax.set_xscale("log", base=2)
        ax.legend(fontsize=7, ncol=1)
    axes[0].set_ylabel("mass in no mode")
    fig.tight_layout()
    return fig


def plot_floor_check(stats: dict) -> plt.Figure:
    """Every (model, sampler steps): the measured bridge mass (with the 95% Wilson interval, averaged
    over the observations) against the isoperimetric floor at L̂. Gaussian isoperimetry says every
    point lies on or above the diagonal — up to sampling error, and as long as L̂ is close to L."""
    fig, ax = plt.subplots(figsize=(5.8, 3.9))
    marks = {"flow": "o", "diffusion": "s"}
    settings = sorted({(s.K, s.delta_c) for s in stats.values()})
    seen, lo = set(), 1.0
    for s in stats.values():
        r = s.row()
        if not (np.isfinite(r["floor"]) and r["floor"] > 0):
            continue
        lo = min(lo, r["floor"], r["bridge"] if r["bridge"] > 0 else r["floor"])
        lab = rf"{r['family']} $K$={r['K']}, $\Delta_c$={r['delta_c']:g}"
        color = f"C{settings.index((s.K, s.delta_c))}"
        ax.errorbar(r["floor"], r["bridge"], yerr=[[0.0], [r["bridge_hi"] - r["bridge"]]], fmt="none", ecolor=color,
                    alpha=0.6, lw=1)
        ax.scatter(r["floor"], max(r["bridge"], lo / 2), marker=marks.get(r["family"], "^"),
                   s=16 + 4 * np.log2(r["steps"]) ** 2, color=color, alpha=0.85, label=None if lab in seen else lab,
                   facecolors="none" if r["family"] == "diffusion" else color)
        seen.add(lab)
    lim = (lo / 2, 1.5)
    ax.plot(lim, lim, "k-", lw=1, label="bridge = floor")
    ax.set(xlim=lim, ylim=lim, xscale="log", yscale="log", xlabel=r"isoperimetric floor at $\hat L$",
           ylabel=r"measured bridge mass $\hat b$", title="trained maps against their floor (size: steps; bar: 95% upper)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def plot_widths(stats: dict, family: str = "flow", K: int = 2, delta: float = 3.0) -> plt.Figure:
    """Every measured transition of one model, all step counts: its width (the base length between a
    point in one mode and a point in the next) against Δ/J, J the largest Jacobian norm measured inside
    it. The transition-width lemma puts every point on or above the diagonal when J is the
    transition's steepest stretch; a point below it would mean the Jacobian samples missed that."""
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    sel = _select(stats, family, K, delta)
    lo, hi = np.inf, 0.0
    for i, s in enumerate(sel):
        if len(s.seg_width) == 0:
            continue
        ax.scatter(s.seg_floor, s.seg_width, s=14, color=plt.cm.viridis(i / max(1, len(sel) - 1)), label=f"{s.steps} steps",
                   alpha=0.8)
        pos = s.seg_width[s.seg_width > 0]
        lo, hi = min(lo, s.seg_floor.min(), pos.min() if len(pos) else np.inf), max(hi, s.seg_floor.max(), s.seg_width.max())
    if np.isfinite(lo):
        x = np.geomspace(lo / 2, hi * 2, 50)
        ax.plot(x, x, "k-", lw=1, label=r"width = $\Delta/J$")
    ax.set(xscale="log", yscale="log", xlabel=r"$\Delta/J$  (gap over the largest $\|J\|$ in the transition)",
           ylabel="transition width (base length)",
           title=rf"{family} $K$={K}, $\Delta_c$={delta:g}: transition widths")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
