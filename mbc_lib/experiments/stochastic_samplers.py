"""Stochastic samplers: does the noise DDPM injects at every step buy anything against the bridge floor?

Chapters 5–6 analyse deterministic samplers — DDIM (η = 0) and the flow ODE — as maps ε ↦ a from the base
noise to the chunk. DDPM (η = 1) and DDIM with 0 < η < 1 add fresh Gaussian noise at each step, so they are
not maps of x_T alone. They are maps of *all* their noise: with S steps,

    ξ = (x_T, z_1, …, z_{S−1}) ~ N(0, I_{S·n}),    a = F_η(s, ξ)     (:meth:`DiffusionPolicy.stochastic_map`),

n = H·d_a, deterministic and Lipschitz (z_i enters the update scaled by σ_i, η = 0 ignores it).

**The floor for that map.** Gaussian isoperimetry (chapter 5; the book's appendix, app-isoperimetry) holds for
a Lipschitz push-forward of a standard Gaussian of *any* dimension, and its bound does not depend on the
dimension. So with L_F the Lipschitz constant of F_η with respect to all of ξ, mode masses p_k and the gap Δ
between mode regions, the mass in no mode obeys the same floor as for a deterministic sampler,

    b ≥ Φ(Φ⁻¹(p_min) + Δ/L_F) − p_min    (two modes; the K-mode form sums Φ(Φ⁻¹(p_k) + Δ/2L_F) − p_k).

Injected noise therefore cannot beat the floor *by itself*: a larger base does not lower it, only a larger
L_F does — a map that is steep with respect to some direction of its noise, as steep as a deterministic
sampler would have to be for the same bridge. What the noise changes is (i) *which* steepness counts:
L_F is at least the stretch with respect to x_T at fixed injected noise and at least the stretch with respect
to the injected noise at fixed x_T, so the mode can be decided by a draw at an early step instead of by x_T
alone; and (ii) where the samples sit inside a mode: noise injected at late steps enters almost additively
and spreads the samples within their mode (and, if it spreads them past the mode radius ρ, out of it — mass
counted in b although it lies at a mode's fringe, not between two modes).

**What this module measures** (:func:`run`): one diffusion policy per setting — the fork with K = 2 and K = 3
and the ring with K = 4 (Δ_c = 3, σ = 0.1, H = 8: chapter 6's and 7's tasks) — sampled with η ∈ ``etas`` at
each step count of ``sampler_steps`` (the same trained network, the same x_T draws for every η), at
``n_obs`` observations. For each (setting, η, S) (:func:`measure_map`):

* the mode masses and the **bridge mass** b̂ (samples in no mode) with its 95% Wilson interval, split into
  *fringe* (within 2ρ of the nearest centre: spill-over from a mode) and *between* (farther: between modes);
* the **within-mode spread**: RMS distance of in-mode samples to their mode's mean, relative to the
  demonstrations' σ·√n (1 = as spread as the demonstrations), and apart from it the offset of those means
  from the true centres;
* **L̂ with respect to all of the noise** (max of Jacobian power iteration at random and at bridge base
  points and of finite-difference stretch along random base segments, all lower bounds on L_F), its split
  into the stretch with respect to x_T alone and to the injected noise alone, and the floor at L̂
  (:func:`mbc_lib.theory.bridge_floor`).

Sizes from ``BUDGETS["stochastic_samplers"]``; the figures are in :mod:`mbc_lib.figures.stochastic_samplers`.
Units: base noise in standard-normal units; chunks in task units; L in task units per base unit.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import tasks, theory
from ..diagnostics import assign_modes, jacobian_spectral_norm, random_segments, segment_profile, wilson_interval
from ..fitting import fit
from ..measure import transitions
from ..policies import Policy
from ..profiles import budget
from ..runtime import on_compute_device
from ..train import History
from ..validation import check_seed

__all__ = ["SETTINGS", "ETAS", "DELTA_C", "SIGMA", "CHUNK_LEN", "RING_ARC", "setting_task", "eval_obs", "MapStats",
           "measure_map", "SamplerStats", "Trained", "fit_sampler", "measure", "StochasticResult", "run", "summary",
           "trade"]

#: the settings measured: (task, K); neighbouring mode centres DELTA_C apart as chunks
SETTINGS: tuple[tuple[str, int], ...] = (("fork", 2), ("fork", 3), ("ring", 4))
#: the noise scales compared: 0 = DDIM (deterministic), 1 = DDPM (ancestral)
ETAS: tuple[float, ...] = (0.0, 0.5, 1.0)
#: Δ_c, within-mode noise σ and chunk length H of every setting (chapters 6–7)
DELTA_C, SIGMA, CHUNK_LEN = 3.0, 0.1, 8
#: the ring's orientations φ ∈ [−π/8, π/8], as in chapter 7 (conditioning over the whole circle is slow to learn)
RING_ARC = math.pi / 8


def setting_task(name: str, K: int, delta_c: float = DELTA_C, sigma: float = SIGMA,
                 chunk_len: int = CHUNK_LEN) -> tasks.Task:
    """The ``"fork"`` with K branches or the ``"ring"`` with K modes, neighbouring centres ``delta_c`` apart."""
    if name == "fork":
        return tasks.make("fork", K=K, delta=delta_c, sigma=sigma, chunk_len=chunk_len)
    if name == "ring":
        ramp_norm = math.sqrt(sum((t / chunk_len) ** 2 for t in range(1, chunk_len + 1)))
        radius = delta_c / (2 * math.sin(math.pi / K) * ramp_norm)  # Δ_c = 2R·sin(π/K)·‖r‖ (tasks.Ring)
        return tasks.make("ring", K=K, ring_radius=radius, sigma=sigma, chunk_len=chunk_len, arc=RING_ARC)
    raise ValueError(f"task must be 'fork' or 'ring', got {name!r}")


def eval_obs(task: tasks.Task, n_obs: int) -> Tensor:
    """``n_obs`` fixed observations ``[n_obs, obs_dim]`` inside the training distribution: fork s ∈ (−½, ½),
    ring φ ∈ (−arc/2, arc/2); the centre (s = 0, φ = 0) for one."""
    centred = (torch.arange(n_obs) - (n_obs - 1) / 2) / max(n_obs, 1)
    if task.name == "ring":
        phi = centred * task.arc
        return torch.stack([phi.cos(), phi.sin()], -1)
    return centred[:, None]


# ---------------------------------------------------------------------------------------
# measuring one map at one observation
# ---------------------------------------------------------------------------------------
@dataclass
class MapStats:
    """One map ξ ↦ a measured at one observation (see :func:`measure_map`).

    mass ``[K]``: fraction of samples in each mode; bridge: in no mode, with its 95% Wilson interval
    (bridge_lo, bridge_hi); fringe / between: the parts of the bridge within 2ρ of the nearest centre and
    farther; spread: RMS distance of in-mode samples to the mean of their mode's samples (task units: the
    dispersion within a mode); spread_ratio: spread / (σ√n), 1 for the demonstrations; offset: RMS distance of
    in-mode samples' mode means to the true centres (a bias, not a spread); L_jac_median, L_jac_max: Jacobian spectral norm at random base points;
    L_jac_bridge: its max at base points whose sample fell in the bridge or that lie off-support on a segment
    joining two modes; L_seg: largest segment stretch; L_trans: the largest Jacobian norm inside the transitions
    between two modes along the segments (:func:`mbc_lib.measure.transitions`; 0 if none was crossed); L_hat:
    the max of all (a lower bound on L_F); L_first, L_rest: the Jacobian norm (max over the same random and
    steep points) with respect to the first ``split`` coordinates only (x_T) and to the rest only (the injected
    noise), NaN without a split; floor: :func:`mbc_lib.theory.bridge_floor` at L̂ (NaN: L̂ cannot carry the masses);
    implied_L: the smallest L consistent with the measured bridge. samples ``[N, H, d]``, labels ``[N]``.
    """

    mass: np.ndarray
    bridge: float
    bridge_lo: float
    bridge_hi: float
    fringe: float
    between: float
    spread: float
    offset: float
    spread_ratio: float
    L_jac_median: float
    L_jac_max: float
    L_jac_bridge: float
    L_seg: float
    L_trans: float
    L_hat: float
    L_first: float
    L_rest: float
    floor: float
    implied_L: float
    samples: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)


def _jacobian_norms(f: Callable[[Tensor], Tensor], points: Tensor, split: int | None,
                    generator: torch.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Jacobian spectral norms of ``f`` at ``points [N, D]``: with respect to every coordinate, to the first
    ``split`` only and to the rest only (the last two NaN without a split), ``[N]`` each — one batched power
    iteration over the three copies of the points, row i differentiating u ↦ f(x_i + m_i ∘ (u − x_i)) with the
    row's coordinate mask m_i (so its Jacobian is J_f(x_i) restricted to those coordinates)."""
    N, D = points.shape
    x = points.detach()
    if split is None or not 0 < split < D:
        masks = torch.ones(1, D)
    else:
        first = (torch.arange(D) < split).float()
        masks = torch.stack([torch.ones(D), first, 1 - first])  # [3, D]
    m = masks.repeat_interleave(N, 0)  # [M·N, D], copy-major
    base = x.repeat(len(masks), 1)

    def h(u: Tensor) -> Tensor:
        return f(base + m * (u - base))

    out = jacobian_spectral_norm(h, base, n_iter=3, generator=generator).cpu().numpy().reshape(len(masks), N)
    nan = np.full(N, math.nan)
    return out[0], (out[1] if len(masks) > 1 else nan), (out[2] if len(masks) > 1 else nan)


def measure_map(
    f: Callable[[Tensor], Tensor], dim: int, centers: Tensor | np.ndarray, radius: float, sigma: float,
    gap: float, sizes: Mapping[str, int], seed: int = 0, split: int | None = None,
) -> MapStats:
    """Bridge mass, within-mode spread and L̂ of a map ``f`` from ``N(0, I_dim)`` to chunks at one observation.

    ``f``: base ``[N, dim]`` -> chunks ``[N, H, d]`` (task units), differentiable; ``centers [K, H, d]``, ``radius``
    ρ and ``gap`` Δ = Δ_c − 2ρ describe the modes, ``sigma`` the demonstrations' within-mode noise per element.
    ``sizes``: ``n_samples`` draws, ``n_jac`` Jacobian points (random, and as many in the bridge),
    ``n_segments`` random base segments of ``n_points`` points (and up to ``n_jac``/8 of the transitions
    between two modes along them). ``split``: the first ``split`` coordinates are
    the initial noise (L_first / L_rest). Deterministic given ``seed``: the draws depend on ``seed`` and
    ``dim`` only, so two maps of the same base see the same noise.
    """
    centers = torch.as_tensor(centers, dtype=torch.float32)
    K = centers.shape[0]
    flat_c = centers.reshape(K, -1).double()
    n = flat_c.shape[1]
    g = torch.Generator().manual_seed(check_seed(seed))
    xi = torch.randn((sizes["n_samples"], dim), generator=g)
    with torch.no_grad():
        a = f(xi).detach().cpu()  # [N, H, d]
    lab = assign_modes(a, centers, radius)
    N = len(lab)
    mass = np.bincount(lab[lab >= 0], minlength=K)[:K] / N
    off = lab < 0
    flat = a.reshape(N, -1).double()
    dist = torch.cdist(flat, flat_c).numpy()  # [N, K]
    nearest = dist.min(1)
    x, c = flat.numpy(), flat_c.numpy()
    sq_spread, sq_offset, n_in = 0.0, 0.0, 0
    for k in range(K):
        members = x[lab == k]
        if len(members) >= 2:
            mean_k = members.mean(0)
            sq_spread += float(((members - mean_k) ** 2).sum())
            sq_offset += len(members) * float(((mean_k - c[k]) ** 2).sum())
            n_in += len(members)
    spread = math.sqrt(sq_spread / n_in) if n_in else math.nan
    offset = math.sqrt(sq_offset / n_in) if n_in else math.nan
    lo, hi = wilson_interval(int(off.sum()), N)

    def flat_f(x: Tensor) -> Tensor:
        return f(x).reshape(len(x), -1)

    n_jac = sizes["n_jac"]
    start, end = random_segments(dim, sizes["n_segments"], seed=seed + 1)
    prof = segment_profile(flat_f, start, end, n_points=sizes["n_points"], centers=centers, radius=radius)
    # where the map is steep: samples that landed in the bridge, and the off-support points of segments whose
    # ends lie in two modes (up to n_jac of each); the Jacobian there and at n_jac random points, split by noise
    seg_idx, pt_idx = np.nonzero((prof.labels < 0) & prof.crosses[:, None])
    pick = np.linspace(0, len(seg_idx) - 1, min(len(seg_idx), n_jac)).round().astype(int)
    t = torch.linspace(0, 1, sizes["n_points"])[pt_idx[pick]][:, None]
    on_segments = start[seg_idx[pick]] + t * (end[seg_idx[pick]] - start[seg_idx[pick]])
    pts = torch.cat([xi[:n_jac], xi[np.flatnonzero(off)[:n_jac]], on_segments])
    jac, jac_first, jac_rest = _jacobian_norms(flat_f, pts, split, g)
    jac_r, jac_b = jac[:n_jac], jac[n_jac:]
    # where a segment passes from one mode to the next: the Jacobian inside each transition (located by bisection)
    _, jac_t = transitions(flat_f, start, end, prof.labels, centers, radius, n_max=max(1, n_jac // 8), generator=g)
    L_trans = float(jac_t.max()) if len(jac_t) else 0.0
    L_hat = float(max(jac.max(), prof.max_stretch.max(), L_trans))
    L_first, L_rest = float(jac_first.max()), float(jac_rest.max())
    bridge = float(off.mean())
    return MapStats(
        mass=mass, bridge=bridge, bridge_lo=float(lo), bridge_hi=float(hi),
        fringe=float((off & (nearest <= 2 * radius)).mean()), between=float((off & (nearest > 2 * radius)).mean()),
        spread=spread, offset=offset, spread_ratio=spread / (sigma * math.sqrt(n)) if sigma > 0 else math.nan,
        L_jac_median=float(np.median(jac_r)), L_jac_max=float(jac_r.max()),
        L_jac_bridge=float(jac_b.max()) if len(jac_b) else math.nan, L_seg=float(prof.max_stretch.max()),
        L_trans=L_trans, L_hat=L_hat, L_first=L_first, L_rest=L_rest, floor=theory.bridge_floor(mass, gap, max(L_hat, 1e-12)),
        implied_L=theory.implied_min_lipschitz(bridge, mass, gap),
        samples=a.numpy(), labels=lab,
    )


# ---------------------------------------------------------------------------------------
# one trained diffusion policy, sampled with η and S
# ---------------------------------------------------------------------------------------
@dataclass
class Trained:
    """A diffusion policy trained on one setting."""

    task_name: str
    K: int
    task: tasks.Task = field(repr=False)
    policy: Policy = field(repr=False)
    history: History = field(repr=False)

    @property
    def gap(self) -> float:
        """Δ = Δ_c − 2ρ (task units)."""
        return DELTA_C - 2 * self.task.radius

    @property
    def label(self) -> str:
        return f"{self.task_name} K={self.K}"


@dataclass
class SamplerStats:
    """One (setting, η, S) measured at ``n_obs`` observations: ``per_obs`` holds a :class:`MapStats` each."""

    task_name: str
    K: int
    eta: float
    steps: int
    dim: int
    gap: float
    sigma: float
    radius: float
    per_obs: list[MapStats] = field(repr=False)

    def row(self) -> dict[str, Any]:
        """Averages over the observations (tidy, for tables and the cache); the Wilson bounds are those of
        the pooled samples."""
        st = self.per_obs
        def mean(key: str) -> float:
            v = np.array([getattr(m, key) for m in st], dtype=float)
            return float(np.nanmean(v)) if np.isfinite(v).any() else math.nan

        n = len(st[0].labels)
        off = int(round(sum(m.bridge * n for m in st)))
        lo, hi = wilson_interval(off, n * len(st))
        return {
            "task": self.task_name, "K": self.K, "eta": self.eta, "steps": self.steps, "base_dim": self.dim,
            "gap": self.gap, "bridge": mean("bridge"), "bridge_lo": float(lo), "bridge_hi": float(hi),
            "fringe": mean("fringe"), "between": mean("between"), "min_mass": float(np.mean([m.mass.min() for m in st])),
            "modes_covered": float(np.mean([(m.mass > 0.05).sum() for m in st])), "spread": mean("spread"),
            "offset": mean("offset"),
            "spread_ratio": mean("spread_ratio"), "L_hat": mean("L_hat"), "L_jac_median": mean("L_jac_median"),
            "L_jac_max": mean("L_jac_max"), "L_jac_bridge": mean("L_jac_bridge"), "L_seg": mean("L_seg"),
            "L_trans": mean("L_trans"),
            "L_first": mean("L_first"), "L_rest": mean("L_rest"), "floor": mean("floor"),
            "implied_L": mean("implied_L"),
        }


def fit_sampler(task_name: str, K: int, seed: int = 0, profile: str | None = None,
                progress: bool | None = None) -> Trained:
    """Train one diffusion policy (x₀-prediction, cosine schedule: the family's defaults) on the setting."""
    b = budget("stochastic_samplers", profile)
    task = setting_task(task_name, K)
    data = task.dataset(b["n_demos"], seed=seed)
    policy, history = fit("diffusion", data, budget=b, seed=seed, progress=progress,
                          desc=f"diffusion {task_name} K={K}")
    return Trained(task_name, int(K), task, policy, history)


def measure(model: Trained, eta: float, steps: int, sizes: Mapping[str, int], seed: int = 0) -> SamplerStats:
    """Sample ``model`` with noise scale ``eta`` and ``steps`` steps at ``sizes["n_obs"]`` observations and
    measure each (:func:`measure_map` on :meth:`~mbc_lib.policies.diffusion.DiffusionPolicy.stochastic_map`,
    the base being x_T and every injected draw). The draws depend on ``seed``, ``steps`` and the observation,
    not on η: every η maps the same noise."""
    task, pol = model.task, model.policy
    H, d = task.chunk_len, task.action_dim
    n = H * d
    m = pol.num_injections(steps)
    dim = n * (1 + m)
    obs_all = eval_obs(task, sizes["n_obs"])
    ms = task.modes(obs_all)
    per_obs = []
    with on_compute_device(pol):
        for i in range(len(obs_all)):
            obs = obs_all[i:i + 1]

            def f(xi: Tensor) -> Tensor:  # all noise [N, S·n] -> chunk [N, H, d], on the CPU
                xi = xi.float()
                return pol.stochastic_map(obs.expand(len(xi), -1), xi[:, :n].reshape(-1, H, d),
                                          xi[:, n:].reshape(-1, m, H, d), steps=steps, eta=eta).cpu()

            per_obs.append(measure_map(f, dim, ms.centers[i], task.radius, task.sigma, model.gap, sizes,
                                       seed=seed + 7919 * i + 104_729 * int(steps), split=n))
    return SamplerStats(model.task_name, model.K, float(eta), int(steps), dim, model.gap, task.sigma, task.radius,
                        per_obs)


# ---------------------------------------------------------------------------------------
# the experiment
# ---------------------------------------------------------------------------------------
@dataclass
class StochasticResult:
    """``models[(task, K)]``: the trained policies; ``stats[(task, K, η, S)]``: their measurements."""

    models: dict[tuple[str, int], Trained] = field(default_factory=dict)
    stats: dict[tuple[str, int, float, int], SamplerStats] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        return [s.row() for s in self.stats.values()]

    def get(self, task: str, K: int, eta: float, steps: int) -> dict[str, Any]:
        """The row of one (setting, η, S)."""
        return self.stats[(task, int(K), float(eta), int(steps))].row()


def run(seed: int = 0, profile: str | None = None, settings: Sequence[tuple[str, int]] = SETTINGS,
        etas: Sequence[float] | None = None, progress: bool | None = False) -> StochasticResult:
    """Train one diffusion policy per setting and measure it at every η of ``etas`` (default: the profile's)
    and every step count of the profile's ``sampler_steps``."""
    seed = check_seed(seed)
    b = budget("stochastic_samplers", profile)
    etas = tuple(b["etas"] if etas is None else etas)
    res = StochasticResult()
    for name, K in settings:
        model = fit_sampler(name, K, seed=seed, profile=profile, progress=progress)
        res.models[(name, int(K))] = model
        for S in b["sampler_steps"]:
            for eta in etas:
                res.stats[(name, int(K), float(eta), int(S))] = measure(model, eta, int(S), b, seed=seed)
    return res


def summary(result: StochasticResult) -> list[dict[str, Any]]:
    """One tidy row per (setting, η, S): averages over the observations."""
    return result.rows()


def trade(result: StochasticResult, low: float = 0.0, high: float = 1.0) -> list[dict[str, Any]]:
    """Per (setting, S): how the bridge and the within-mode spread move from η = ``low`` to η = ``high``.
    ``trades`` is True when the bridge falls and the spread grows — noise buying a smaller bridge with spread;
    ``bridge_separated`` when the two bridges' 95% Wilson intervals do not overlap."""
    out = []
    for (name, K), _ in result.models.items():
        for S in sorted({k[3] for k in result.stats if k[:2] == (name, K)}):
            if (name, K, float(low), S) not in result.stats or (name, K, float(high), S) not in result.stats:
                continue
            a, c = result.get(name, K, low, S), result.get(name, K, high, S)
            out.append({
                "task": name, "K": K, "steps": S, "eta_low": low, "eta_high": high,
                "bridge_low": a["bridge"], "bridge_high": c["bridge"], "d_bridge": c["bridge"] - a["bridge"],
                "spread_low": a["spread_ratio"], "spread_high": c["spread_ratio"],
                "d_spread": c["spread_ratio"] - a["spread_ratio"], "L_low": a["L_hat"], "L_high": c["L_hat"],
                "bridge_separated": bool(c["bridge_hi"] < a["bridge_lo"] or a["bridge_hi"] < c["bridge_lo"]),
                "trades": bool(c["bridge"] < a["bridge"] and c["spread_ratio"] > a["spread_ratio"]),
            })
    return out
