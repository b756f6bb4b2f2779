"""When modes are not well separated: the two mechanisms as the gap between the modes closes (chapter 10).

Chapters 3–7 explain mode loss by two mechanisms, each stated for modes with a gap Δ = Δ_c − 2ρ > 0
between their regions (ρ the mode radius, Δ_c the centre distance): a latent policy *collapses* onto the
mode average once β ≥ β* (chapter 3), and a continuous transport map must leave a *bridge* of mass at least
the isoperimetric floor, which grows with Δ/L (chapter 5). This module sweeps the gap of the two-branch fork
(σ = 0.1, H = 8, d_a = 1) from overlapping mode regions to a gap of about 10σ and measures, at each gap:

* **what the data say**: the separation regime of the true modes (:func:`mbc_lib.diagnostics.separation_regime`
  of Δ against the within-mode spread s_w = σ√n) and the regime that chapter 9's diagnostic finds from
  demonstrations alone (:func:`mbc_lib.diagnostics.cluster_modes` on chunks at one observation);
* **the latent mechanism**: β* for the CVAE's loss (:func:`mbc_lib.measure.predicted_thresholds`) and the
  measured collapse point — the smallest β/β* of a grid at which a trained CVAE's E KL falls below
  :data:`COLLAPSED_KL` (all gaps × all β trained as one stacked model, one dataset per gap);
* **the transport mechanism**: the bridge (off-support) mass of flow and diffusion samples against the
  isoperimetric floor at their measured Lipschitz estimate L̂ (:func:`mbc_lib.theory.bridge_floor`;
  L̂ = the largest Jacobian spectral norm of the sampler at random base points, a lower bound on L; measured
  only where there is a gap to bridge);
* **coverage of every family** (regression, cvae at a weak β, vq, mixture, diffusion, flow and, where the
  budget lists it, autoregressive): per-mode mass and off-support mass with Wilson intervals, and the
  *middle mass* — the fraction of samples whose projection on the segment between the two centres lies in
  its middle half (a threshold-free view of averaging and bridging, set against the demonstrations' own).

:func:`spread` condenses each gap into the largest difference of off-support mass between two families:
where it falls, the families' failures look alike by the measure the mechanisms are stated in.
Sizes come from ``BUDGETS["separation"]``; chunks in task units.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import diagnostics, policies, tasks, theory
from ..data import ChunkDataset
from ..fitting import fit
from ..measure import predicted_thresholds
from ..profiles import budget
from ..runtime import on_compute_device
from ..tasks import default_radius
from ..train import train
from ..validation import check_seed

__all__ = [
    "SIGMA", "CHUNK_LEN", "COLLAPSED_KL", "TRANSPORT", "gap_task", "fit_family", "eval_obs", "Coverage", "coverage",
    "middle_mass", "collapse_point", "GapResult", "SeparationResult", "sweep", "summary", "spread", "boundary",
]

SIGMA, CHUNK_LEN = 0.1, 8  # within-mode noise and chunk length (chapter 7's fork)
#: a trained CVAE counts as collapsed when its expected KL is below this many nats (chapter 3's rule)
COLLAPSED_KL = 0.02
#: the families whose samples are a smooth map of Gaussian noise (the isoperimetric floor applies)
TRANSPORT = ("diffusion", "flow")


def gap_task(gap: float, sigma: float = SIGMA, chunk_len: int = CHUNK_LEN, K: int = 2,
             weights: Sequence[float] | None = None) -> tasks.Task:
    """The fork whose mode regions are ``gap``·σ apart (Δ = Δ_c − 2ρ; negative: the regions overlap)."""
    rho = default_radius(sigma, chunk_len)
    delta_c = 2 * rho + gap * sigma
    if delta_c <= 0:
        raise ValueError(f"gap {gap}σ puts the mode centres at distance {delta_c:.3g} <= 0; the smallest gap is "
                         f"{-2 * rho / sigma:.3g}σ")
    return tasks.make("fork", K=K, delta=delta_c, sigma=sigma, chunk_len=chunk_len, weights=weights,
                      allow_overlap=gap <= 0)


def fit_family(family: str, data: ChunkDataset, b: dict, seed: int = 0, **config) -> policies.Policy:
    """Train ``family`` on ``data`` with the budget ``b`` (the cvae with an L2 loss, its β in ``config``)."""
    if family == "cvae":
        config = {"recon": "l2", **config}
    return fit(family, data, budget=b, seed=seed, progress=False, **config)[0]


def eval_obs(n_obs: int) -> Tensor:
    """``n_obs`` fixed fork observations in [−½, ½] (0 for one)."""
    return ((torch.arange(n_obs) - (n_obs - 1) / 2) / max(n_obs, 1))[:, None]


def middle_mass(task: tasks.Task, obs: Tensor, chunks: Tensor) -> float:
    """Fraction of ``chunks [B, n, H, d]`` whose projection t on the segment between the first two mode
    centres at their observation (t = 0 at centre 0, 1 at centre 1) lies in (¼, ¾)."""
    ms = task.modes(obs)
    c0, c1 = ms.centers[:, 0].flatten(1), ms.centers[:, 1].flatten(1)  # [B, n]
    u = c1 - c0
    t = ((chunks.flatten(2) - c0[:, None]) * u[:, None]).sum(-1) / (u * u).sum(-1)[:, None]  # [B, n]
    return float(((t > 0.25) & (t < 0.75)).float().mean())


@dataclass
class Coverage:
    """Where one policy's samples land: counts ``[K]`` per mode, off (in no mode), n (samples), middle mass;
    for transport families also L_hat and the isoperimetric floor at L̂ (NaN otherwise)."""

    counts: np.ndarray
    off: int
    n: int
    middle: float
    L_hat: float = math.nan
    floor: float = math.nan

    @property
    def mass(self) -> np.ndarray:
        return self.counts / self.n

    @property
    def mass_ci(self) -> np.ndarray:
        return diagnostics.wilson_interval(self.counts, self.n)

    @property
    def off_support(self) -> float:
        return self.off / self.n

    @property
    def off_ci(self) -> np.ndarray:
        return diagnostics.wilson_interval(self.off, self.n)


@torch.no_grad()
def coverage(policy, task: tasks.Task, obs: Tensor, n: int, generator: torch.Generator) -> Coverage:
    """``n`` samples per observation, labelled by the task's mode rule."""
    with on_compute_device(policy):
        s = policy.sample(obs, n, generator=generator).cpu()  # [B, n, H, d]
    lab = task.assign(obs, s).reshape(-1).numpy()
    K = task.K
    return Coverage(np.bincount(lab[lab >= 0], minlength=K)[:K], int((lab < 0).sum()), len(lab),
                    middle_mass(task, obs, s))


def _lipschitz(policy, obs: Tensor, n_jac: int, generator: torch.Generator) -> float:
    """L̂: the largest spectral norm of the sampler's Jacobian ∂G_θ(s, ε)/∂ε over ``n_jac`` base points per
    observation (a lower bound on L). With n = H·d_a = 8 base dimensions the Jacobians are formed exactly, by n
    reverse-mode passes (cheaper here than power iteration with forward-mode products)."""
    cfg = policy.config
    H, d = cfg.chunk_len, cfg.action_dim
    best = 0.0
    for i in range(len(obs)):
        o = obs[i:i + 1]
        eps = torch.randn((n_jac, H * d), generator=generator)

        def total(e: Tensor) -> Tensor:  # Σ over points of G(s, ε_i): row i depends on ε_i only, [H·d]
            return policy.transport(o.expand(len(e), -1), e.reshape(-1, H, d)).reshape(len(e), H * d).sum(0)

        jac = torch.autograd.functional.jacobian(total, eps)  # [H·d (out), N, H·d (in)]
        best = max(best, float(torch.linalg.matrix_norm(jac.permute(1, 0, 2), ord=2).max()))
    return best


def collapse_point(ratios: Sequence[float], kls: Sequence[float], level: float = COLLAPSED_KL) -> float:
    """The β/β* at which E KL falls through ``level`` nats: the first grid point below it (ascending β),
    interpolated log-linearly from the point before it; 0 if the first is already below, inf if none is."""
    r, k = np.asarray(ratios, float), np.maximum(np.asarray(kls, float), 1e-8)
    below = np.flatnonzero(k < level)
    if below.size == 0:
        return math.inf
    i = int(below[0])
    if i == 0:
        return 0.0
    x0, x1, y0, y1 = math.log(r[i - 1]), math.log(r[i]), math.log(k[i - 1]), math.log(k[i])
    return float(math.exp(x0 + (math.log(level) - y0) * (x1 - x0) / (y1 - y0)))


@dataclass
class GapResult:
    """One gap of the sweep.

    gap: Δ/σ; delta_c, radius, spread s_w (task units); regime (of the true modes) and data_regime,
    data_modes, data_ratio (chapter 9's diagnostic on ``n_diag`` demonstrations at s = 0: regime, K̂, Δ̂/ŝ_w);
    beta_star; kls ``{ratio: E KL}`` of the CVAE grid and collapse_ratio (:func:`collapse_point`);
    demo_middle: the demonstrations' middle mass; families: name -> :class:`Coverage`. samples, labels: for
    drawing, name -> chunks ``[m, H, d]`` at s = 0 (demonstrations under ``"demos"``) and their mode labels."""

    gap: float
    delta_c: float
    radius: float
    spread: float
    regime: str
    data_regime: str
    data_modes: int
    data_ratio: float
    beta_star: float
    kls: dict[float, float]
    collapse_ratio: float
    demo_middle: float
    families: dict[str, Coverage] = field(default_factory=dict)
    samples: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    labels: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def gap_abs(self) -> float:
        return self.gap * SIGMA


@dataclass
class SeparationResult:
    """The sweep: ``gaps`` (:class:`GapResult`, gap ascending), the families and the CVAE grid."""

    gaps: list[GapResult]
    families: tuple[str, ...]
    collapse_ratios: tuple[float, ...]
    cvae_ratio: float


def sweep(seed: int = 0, profile: str | None = None) -> SeparationResult:
    """Every gap of the profile's ``gaps`` (in units of σ): the data's regime, β* and the collapse point,
    and the coverage of every family (see the module docstring)."""
    seed = check_seed(seed)
    b = budget("separation", profile)
    gaps = sorted(float(x) for x in b["gaps"])
    ratios = tuple(sorted(float(r) for r in b["collapse_ratios"]))
    if b["cvae_ratio"] not in ratios:
        raise ValueError(f"cvae_ratio {b['cvae_ratio']} must be one of the collapse grid's ratios {ratios}")
    families = tuple(b["families"])
    g = torch.Generator().manual_seed(seed + 51_000)
    obs = eval_obs(b["n_obs"])
    s0 = torch.zeros(1, 1)
    task_list = [gap_task(x) for x in gaps]
    datas = [t.dataset(b["n_demos"], seed=seed) for t in task_list]
    stars = [predicted_thresholds(t, d.normalizer()).beta_star for t, d in zip(task_list, datas)]
    # the CVAE grid: every (gap, β) in one stacked run, one dataset per gap
    cvaes = [policies.make("cvae", obs_dim=1, action_dim=1, chunk_len=CHUNK_LEN, latent_dim=b["latent_dim"],
                           width=b["width"], depth=b["depth"], seed=seed, beta=r * star, recon="l2")
             for star in stars for r in ratios]
    train(cvaes, [d for d in datas for _ in ratios], steps=b["steps"], batch_size=b["batch_size"], lr=b["lr"],
          seed=seed, progress=False)
    out = []
    for i, (x, task, data, star) in enumerate(zip(gaps, task_list, datas, stars)):
        grid = {r: cvaes[i * len(ratios) + j].cpu() for j, r in enumerate(ratios)}
        demos = task.sample_chunks(obs, b["n_samples"], generator=g)  # [B, n, H, d]
        with torch.no_grad():
            o = obs.repeat_interleave(b["n_kl"], 0)
            chunks, _ = task.sample(o, g)
            kls = {r: float(p.kl(o, chunks).mean()) for r, p in grid.items()}
        diag = diagnostics.cluster_modes(task.sample_chunks(s0, b["n_diag"], generator=g)[0])
        spread = SIGMA * math.sqrt(CHUNK_LEN)
        gap_abs = task.delta - 2 * task.radius
        res = GapResult(x, task.delta, task.radius, spread, diagnostics.separation_regime(gap_abs, spread, 2),
                        diag.regime, diag.n_modes, float(diag.separation_ratio), star, kls,
                        collapse_point(ratios, [kls[r] for r in ratios]), middle_mass(task, obs, demos))
        res.samples["demos"] = task.sample_chunks(s0, b["n_plot"], generator=g)[0].numpy()
        for fam in families:
            pol = grid[b["cvae_ratio"]] if fam == "cvae" else fit_family(fam, data, b, seed)
            cov = coverage(pol, task, obs, b["n_samples"], g)
            if fam in TRANSPORT:
                if gap_abs <= 0:
                    cov.floor = 0.0  # no gap between the regions: nothing to bridge, whatever L is
                else:
                    cov.L_hat = _lipschitz(pol, obs, b["n_jac"], g)
                    cov.floor = theory.bridge_floor(cov.mass, gap_abs, cov.L_hat) if cov.L_hat > 0 else math.nan
            res.families[fam] = cov
            with torch.no_grad(), on_compute_device(pol):
                x = pol.sample(s0, b["n_plot"], generator=g)[0].cpu()
            res.samples[fam], res.labels[fam] = x.numpy(), task.assign(s0.expand(len(x), 1), x).numpy()
        out.append(res)
    return SeparationResult(out, families, ratios, float(b["cvae_ratio"]))


def spread(res: GapResult) -> float:
    """The largest difference of off-support mass between two families at this gap."""
    off = [c.off_support for c in res.families.values()]
    return float(max(off) - min(off))


def boundary(result: SeparationResult | Sequence[dict[str, Any]], level: float = 0.5) -> tuple[float, float]:
    """Where the families' failures stop being told apart by off-support mass: the largest swept gap (Δ/σ) at
    which :func:`spread` is below ``level``, and the smallest one above it at which it is at least ``level``
    (NaN when the sweep has no such gap). ``result`` may also be the rows of :func:`summary` (a cached table,
    as chapter 11 reads it)."""
    if isinstance(result, SeparationResult):
        gaps = [(r.gap, spread(r)) for r in result.gaps]
    else:
        gaps = sorted({(float(r["gap"]), float(r["off_spread"])) for r in result})
    alike = [g for g, s in gaps if s < level]
    last = max(alike) if alike else math.nan
    apart = [g for g, s in gaps if s >= level and (math.isnan(last) or g > last)]
    return last, (min(apart) if apart else math.nan)


def summary(result: SeparationResult) -> list[dict[str, Any]]:
    """Tidy rows, one per (gap, family), with the gap's own numbers repeated."""
    rows = []
    for r in result.gaps:
        base = {"gap": r.gap, "delta_c": r.delta_c, "radius": r.radius, "spread": r.spread, "regime": r.regime,
                "data_regime": r.data_regime, "data_modes": r.data_modes, "data_ratio": r.data_ratio,
                "beta_star": r.beta_star, "collapse_ratio": r.collapse_ratio, "demo_middle": r.demo_middle,
                "off_spread": spread(r)}
        for fam, c in r.families.items():
            ci = c.off_ci
            rows.append({**base, "family": fam, "off_support": c.off_support, "off_lo": float(ci[0]),
                         "off_hi": float(ci[1]), "middle": c.middle, "min_mass": float(c.mass.min()),
                         **{f"mass_{k}": float(m) for k, m in enumerate(c.mass)}, "L_hat": c.L_hat, "floor": c.floor})
    return rows
