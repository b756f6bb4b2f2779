"""Chapter 7: every policy family on the synthetic tasks — the paper's claims as tables and figures.

One grid, one measurement. Every family of :mod:`mbc_lib.policies` (``regression``, ``cvae``,
``vq``, ``mixture``, ``diffusion``, ``flow``, all on the same backbone and training loop) is
trained on each *setting* ``(task, K, Δ_c)`` of the profile — the K-branch ``"fork"``, K modes on
the ``"ring"`` (orientations from a narrow arc, see :func:`make_task`) and the observation-dependent
``"branching"`` task — and each family's own knob is swept:

* ``cvae``: the KL weight β = ratio·β*, with β* the exact L2 collapse threshold of chapter 3 (the
  book's appendix, app-collapse-l2) for the policy's loss scaling
  (:func:`mbc_lib.experiments.latent.predicted_thresholds`): one model per β;
* ``diffusion`` / ``flow``: the number of sampler steps (DDIM / Euler): one model, sampled with
  every count.

Every (family, setting, knob) is measured the same way at fixed observations (:func:`measure`; the
diagnostics of the book's appendix, app-diagnostics): the mass in each mode, the coverage (fraction of samples inside some
mode), the modes holding more than τ = 5% of the samples, the off-support (bridge) mass with its
Wilson interval, and the Sinkhorn divergence to demonstrations at the same observations. Next to
each measurement sits the theory's number for it:

* ``regression`` — the L2 optimum is the mode average (chapter 1): off-support iff the average lies
  in no mode (``predicted_off_support``);
* ``cvae`` — collapse is the optimum iff β ≥ β* (chapter 3): ``predicted_modes`` K below β*, above it
  1 or 0 (the mode average lies in a mode or not). β* locates the *global* optimum; a trained model
  can stay uncollapsed above it or collapse below it (app-trained-collapse). The measured per-sample
  KL against the Fano bound B(P̂_e) at the measured mode-identification error P̂_e (teacher forcing);
* ``diffusion`` / ``flow`` — Gaussian isoperimetry (chapter 5, app-isoperimetry): the bridge b is at
  least the floor at the sampler's Lipschitz constant, estimated as L̂ by chapter 6's
  :func:`mbc_lib.experiments.bridges.measure` (without its transition search); ``mode_bound`` = #modes an L̂-Lipschitz map can give
  mass ≥ τ (:func:`mbc_lib.theory.max_modes_with_mass`);
* ``vq`` / ``mixture`` — a discrete choice followed by a decoder: no continuity constraint, floor 0.

Sizes (training budget, grid, knobs, sample counts) come from ``BUDGETS["synthetic"]``.
Units: chunks, Δ_c and the gap Δ = Δ_c − 2ρ in task units; KL and B(P_e) in nats; the Sinkhorn
divergence in task units².
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from .. import diagnostics, policies, tasks, theory
from ..data import ChunkDataset
from ..plotting import OFF_SUPPORT_COLOR, mode_color, plot_chunks
from ..profiles import budget
from ..profiles import profile as active_profile
from ..train import History, on_compute_device, progress_enabled, train
from . import bridges, cache, latent
from .transport import bridge_floor

__all__ = [
    "FAMILIES", "TRANSPORT", "DISCRETE", "TASKS", "RING_ARC", "TAU", "make_task", "eval_obs", "fit", "Cell",
    "measure", "SyntheticResult", "sweep", "summary", "format_table", "plot_overview", "plot_beta", "plot_steps",
    "plot_samples", "setting_name",
]

FAMILIES: tuple[str, ...] = ("regression", "cvae", "vq", "mixture", "diffusion", "flow")
TRANSPORT: tuple[str, ...] = ("diffusion", "flow")  # push-forwards of Gaussian noise: the isoperimetric floor applies
DISCRETE: tuple[str, ...] = ("vq", "mixture")  # a discrete choice, then a decoder: no floor
TASKS: tuple[str, ...] = ("fork", "ring", "branching")
#: the ring's orientations come from φ ∈ [−π/8, π/8]: over the whole circle, for K ≥ 3, E[a|s] and
#: Cov[a|s] do not depend on s and conditional generative policies learn the rotation average at
#: CPU budgets (tests/test_policies_coverage.py)
RING_ARC = math.pi / 8
TAU = 0.05  # a mode is covered when it holds more than τ of the samples
SIGMA, CHUNK_LEN = 0.1, 8  # within-mode noise and chunk length of every task (chapter 6's fork)


# ---------------------------------------------------------------------------------------
# tasks and observations
# ---------------------------------------------------------------------------------------
#: the cvae's settings besides β (fit and the batched β sweep share them): L2, the loss β* is computed for
CVAE_CONFIG = dict(recon="l2")


def make_task(name: str, K: int, delta: float, sigma: float = SIGMA, chunk_len: int = CHUNK_LEN) -> tasks.Task:
    """The task of one setting, with neighbouring mode centres ``delta`` (Δ_c) apart as chunks.

    ``"fork"``: K branches. ``"ring"``: K straight paths to a circle whose radius makes Δ_c =
    ``delta``, orientations from ±``RING_ARC``. ``"branching"``: ``K_max = K`` modes appearing as s
    grows, Δ_c(s) from ``delta``/2 to ``delta`` (measured where all K are present)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}")
    if not isinstance(K, (int, np.integer)) or isinstance(K, bool) or K < 1:
        raise ValueError(f"K (number of modes) must be an integer >= 1, got {K!r}")
    if not delta > 0:
        raise ValueError(f"delta (distance between neighbouring mode centres) must be > 0, got {delta}")
    K, delta = int(K), float(delta)
    if name == "fork":
        return tasks.make("fork", K=K, delta=delta, sigma=sigma, chunk_len=chunk_len)
    if name == "ring":
        if K < 2:
            raise ValueError("the ring needs K >= 2 modes")
        ramp_norm = math.sqrt(sum((t / chunk_len) ** 2 for t in range(1, chunk_len + 1)))
        radius = delta / (2 * math.sin(math.pi / K) * ramp_norm)  # Δ_c = 2R·sin(π/K)·‖r‖
        return tasks.make("ring", K=K, ring_radius=radius, sigma=sigma, chunk_len=chunk_len, arc=RING_ARC)
    return tasks.make("branching", K_max=K, delta_min=delta / 2, delta_max=delta, sigma=sigma, chunk_len=chunk_len)


def eval_obs(task: tasks.Task, n_obs: int) -> Tensor:
    """Fixed evaluation observations ``[n_obs, obs_dim]`` inside the training distribution, where all
    K modes are present: fork s ∈ [−½, ½]; ring φ ∈ [−arc/2, arc/2]; branching s near 1."""
    centred = (torch.arange(n_obs) - (n_obs - 1) / 2) / max(n_obs, 1)  # in (−½, ½), 0 for one observation
    if task.name == "ring":
        phi = centred * task.arc
        return torch.stack([phi.cos(), phi.sin()], -1)
    if task.name == "branching":  # K(s) = K_max for s ≥ 1 − 1/K_max
        return (1 - 0.3 / task.K + 0.4 / task.K * centred)[:, None]
    return centred[:, None]


# ---------------------------------------------------------------------------------------
# training one model
# ---------------------------------------------------------------------------------------
def fit(
    family: str, task: tasks.Task, data: ChunkDataset, b: dict, seed: int = 0, progress: bool | None = None,
    **config,
) -> tuple[policies.Policy, History]:
    """Train ``family`` on ``data`` with the budget ``b`` (width, depth, steps, batch_size, lr,
    latent_dim) through :func:`mbc_lib.train.train`; ``config`` adds family options (e.g. ``beta``).
    The policy ends on the CPU."""
    if family not in FAMILIES:
        raise ValueError(f"unknown policy family {family!r}; choose one of: {', '.join(FAMILIES)}")
    extra: dict = {}
    if family == "cvae":
        extra = dict(latent_dim=b["latent_dim"], **CVAE_CONFIG)
    elif family == "mixture":
        extra = dict(num_components=max(5, task.K + 2))  # more components than modes
    elif family == "vq":
        extra = dict(num_codes=max(16, 2 * task.K))
    policy = policies.make(family, obs_dim=task.obs_dim, action_dim=task.action_dim, chunk_len=task.chunk_len,
                           width=b["width"], depth=b["depth"], seed=seed, **extra, **config)
    desc = f"{family} {task.name} K={task.K}" + "".join(f" {k}={v:.3g}" for k, v in config.items())
    history = train(policy, data, steps=b["steps"], batch_size=b["batch_size"], lr=b["lr"], seed=seed,
                    progress=progress, desc=desc)
    return policy.cpu(), history


# ---------------------------------------------------------------------------------------
# measuring one (model, knob)
# ---------------------------------------------------------------------------------------
@dataclass
class Cell:
    """One (family, setting, knob) measured at ``n_obs`` observations (arrays ``[n_obs]``).

    delta_c: the setting's Δc (branching: its largest, at s = 1); gap: Δ = Δc − 2ρ at the first
    evaluation observation. knob: ``"beta"`` (cvae), ``"steps"`` (diffusion, flow) or ``"none"``; value: β or the step
    count (0 for ``"none"``); ratio: β/β* (cvae, else NaN). mass ``[n_obs, K]``: fraction of samples
    per mode; off_support, off_support_hi: fraction in no mode and the upper end of its 95% Wilson
    interval; covered: modes with mass > τ; sinkhorn: S_ε to demonstrations (task units²).
    theory: the predicted numbers (see the module docstring). For plots, at the first
    observation: obs0 ``[1, obs_dim]``, samples ``[n_plot, H, d]`` and their labels, demos ``[n_plot, H, d]``.
    """

    family: str
    task: str
    K: int
    delta_c: float
    gap: float
    knob: str
    value: float
    ratio: float
    mass: np.ndarray = field(repr=False)
    off_support: np.ndarray = field(repr=False)
    off_support_hi: np.ndarray = field(repr=False)
    covered: np.ndarray = field(repr=False)
    tv: np.ndarray = field(repr=False)
    sinkhorn: np.ndarray = field(repr=False)
    theory: dict[str, float] = field(default_factory=dict)
    obs0: Tensor | None = field(default=None, repr=False)
    samples: Tensor | None = field(default=None, repr=False)
    labels: Tensor | None = field(default=None, repr=False)
    demos: Tensor | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        """Short model name: family and knob (``cvae β=0.1β*``, ``flow 8 steps``)."""
        if self.knob == "beta":
            return f"cvae β={self.ratio:g}β*"
        if self.knob == "steps":
            return f"{self.family} {int(self.value)} step{'s' if self.value != 1 else ''}"
        return self.family

    def row(self) -> dict[str, float | str]:
        """A flat dict of numbers and strings, averaged over the observations (tidy, for tables and the cache)."""
        return {
            "family": self.family, "task": self.task, "K": self.K, "delta": self.delta_c, "gap": self.gap,
            "knob": self.knob, "knob_value": float(self.value), "beta_ratio": self.ratio,
            "coverage": float(1 - self.off_support.mean()), "min_mass": float(self.mass.min(1).mean()),
            "modes_covered": float(self.covered.mean()), "off_support": float(self.off_support.mean()),
            "off_support_hi": float(self.off_support_hi.mean()), "tv": float(self.tv.mean()),
            "sinkhorn": float(self.sinkhorn.mean()), **self.theory,
        }


@torch.no_grad()
def measure(
    policy: policies.Policy, task: tasks.Task, seed: int = 0, n_obs: int = 2, n_samples: int = 512,
    n_sinkhorn: int = 256, n_plot: int = 64, **sample_kw,
) -> dict:
    """Where ``policy``'s samples land at :func:`eval_obs` (app-diagnostics): per-mode mass,
    modes covered, off-support mass with its Wilson interval, TV to the demonstrator's (π, 0), and
    the Sinkhorn divergence between ``n_sinkhorn`` policy samples and as many demonstrations.
    ``sample_kw`` go to ``policy.sample`` (e.g. ``steps``). Deterministic given ``seed``."""
    obs = eval_obs(task, n_obs)
    g = torch.Generator().manual_seed(seed + 7_000)
    with on_compute_device(policy):
        samples = policy.sample(obs, n_samples, generator=g, **sample_kw).cpu()  # [B, n, H, d]
    ms = task.modes(obs)
    covs = diagnostics.mode_coverage_per_obs(samples, ms.centers, task.radius, ms.weights, tau=TAU)
    demos = task.sample_chunks(obs, n_sinkhorn, generator=g)  # [B, n_sinkhorn, H, d]
    with warnings.catch_warnings():  # tol 1e-5 on the marginals: far below the differences we compare
        warnings.simplefilter("ignore", RuntimeWarning)
        sink = [diagnostics.sinkhorn_divergence(samples[i, :n_sinkhorn], demos[i], max_iter=2000, tol=1e-5)
                for i in range(len(obs))]
    labels = task.assign(obs[:1], samples[:1, :n_plot])[0]
    return dict(
        mass=np.stack([c.mass[: task.K] for c in covs]), off_support=np.array([c.off_support for c in covs]),
        off_support_hi=np.array([c.off_support_ci[1] for c in covs]), covered=np.array([c.n_covered for c in covs]),
        tv=np.array([c.tv for c in covs]), sinkhorn=np.array(sink), obs0=obs[:1], samples=samples[0, :n_plot],
        labels=labels, demos=demos[0, :n_plot],
    )


@torch.no_grad()
def _cvae_information(policy: policies.Policy, task: tasks.Task, seed: int, n_obs: int, n: int) -> dict[str, float]:
    """Per-sample KL (nats) on demonstrations at the evaluation observations, the mode-identification
    error P̂_e of the nearest centre to D(s, z) with z from the posterior (teacher forcing), and the
    Fano bound B(P̂_e) it implies (chapter 3, app-fano): E KL ≥ I(A;Z|S) ≥ B(P̂_e)."""
    g = torch.Generator().manual_seed(seed + 9_000)
    obs = eval_obs(task, n_obs).repeat_interleave(n, 0)
    chunks, modes = task.sample(obs, g)
    kl = float(policy.kl(obs, chunks).mean())
    mu, logvar = policy.encode(obs, chunks)
    z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=g)
    pe = float((latent.nearest_mode(task, obs, policy.decode(obs, z)) != modes).float().mean())
    w = task.modes(obs[:1]).weights[0].double().numpy()
    w = w[w > 0]
    return {"kl": kl, "mode_error": pe, "fano": theory.fano_bound(w, min(pe, (len(w) - 1) / len(w)))}


def _collapse_off_support(task: tasks.Task, obs: Tensor) -> float:
    """Fraction of ``obs`` at which the L2 collapse point — the mode average Σ π_k μ_k — lies in no mode."""
    ms = task.modes(obs)
    mean = (ms.weights[:, :, None, None] * ms.centers).sum(1)  # [B, H, d]
    return float((task.assign(obs, mean) < 0).float().mean())


# ---------------------------------------------------------------------------------------
# the sweep
# ---------------------------------------------------------------------------------------
@dataclass
class SyntheticResult:
    """The chapter's sweep. ``cells[(family, task, K, Δ_c, knob value)]`` is a :class:`Cell`
    (knob value: β/β* for cvae, steps for diffusion/flow, 0 otherwise); ``models[(family, task,
    K, Δ_c, knob value)]`` the trained policy (one per β; one per transport model, key value 0);
    ``tasks[(task, K, Δ_c)]`` the task; ``thresholds[(task, K, Δ_c)]`` β* and friends."""

    cells: dict[tuple, Cell] = field(default_factory=dict)
    models: dict[tuple, policies.Policy] = field(default_factory=dict, repr=False)
    tasks: dict[tuple, tasks.Task] = field(default_factory=dict, repr=False)
    thresholds: dict[tuple, latent.Thresholds] = field(default_factory=dict, repr=False)

    @property
    def settings(self) -> list[tuple[str, int, float]]:
        return list(self.tasks)

    def select(self, family: str | None = None, setting: tuple | None = None) -> list[Cell]:
        """Cells of one family and/or setting, in knob order."""
        out = [c for k, c in self.cells.items()
               if (family is None or k[0] == family) and (setting is None or k[1:4] == tuple(setting))]
        return sorted(out, key=lambda c: (FAMILIES.index(c.family), c.task, c.K, c.delta_c, c.value))


def _check_grid(settings, families, beta_ratios, sampler_steps) -> None:
    for fam in families:
        if fam not in FAMILIES:
            raise ValueError(f"unknown policy family {fam!r}; choose from: {', '.join(FAMILIES)}")
    for s in settings:
        if len(s) != 3:
            raise ValueError(f"a setting is (task, K, delta), got {s!r}")
        make_task(*s)  # validates task name, K and Δ
    for r in beta_ratios:
        if not (isinstance(r, (int, float)) and r > 0):
            raise ValueError(f"β ratios (β/β*) must be > 0, got {r!r}")
    for s in sampler_steps:
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool) or s < 1:
            raise ValueError(f"sampler steps must be integers >= 1, got {s!r}")


def sweep(
    settings: Sequence[tuple[str, int, float]] | None = None, families: Sequence[str] | None = None,
    beta_ratios: Sequence[float] | None = None, sampler_steps: Sequence[int] | None = None, seed: int = 0,
    profile: str | None = None, progress: bool | None = None, store: bool | None = None,
) -> SyntheticResult:
    """Train every family on every setting and measure every knob value (defaults: the profile's).

    ``settings``: ``(task, K, Δ_c)`` triples; ``beta_ratios``: β/β* for the cvae; ``sampler_steps``:
    step counts for diffusion (DDIM) and flow (Euler). The summary is stored in the experiment
    cache (``cache.store("synthetic", ...)``, read by chapter 11) when ``store`` is True — by
    default only when the whole profile grid was run, so a partial sweep never poses as the chapter's table.
    """
    prof = active_profile() if profile is None else profile
    b = budget("synthetic", prof)
    full_grid = settings is None and families is None and beta_ratios is None and sampler_steps is None
    settings = [(str(t), int(k), float(d)) for t, k, d in (b["settings"] if settings is None else settings)]
    families = tuple(b["families"] if families is None else families)
    beta_ratios = tuple(b["beta_ratios"] if beta_ratios is None else beta_ratios)
    sampler_steps = tuple(b["sampler_steps"] if sampler_steps is None else sampler_steps)
    _check_grid(settings, families, beta_ratios, sampler_steps)
    res = SyntheticResult()
    meas = dict(n_obs=b["n_obs"], n_samples=b["n_samples"], n_sinkhorn=b["n_sinkhorn"])
    bar = tqdm(total=len(settings) * len(families), desc="synthetic sweep", disable=not progress_enabled(progress))
    for setting in settings:
        task_name, K, delta = setting
        task = res.tasks[setting] = make_task(task_name, K, delta)
        data = task.dataset(b["n_demos"], seed=seed)
        obs = eval_obs(task, b["n_obs"])
        th = res.thresholds[setting] = latent.predicted_thresholds(task, data.normalizer(), _state(task, obs))
        collapse_off = _collapse_off_support(task, obs)
        # the gap at the (first) evaluation observation: Δc − 2ρ (for branching Δc(s) < the setting's Δc)
        gap = float(task.modes(obs[:1]).center_distance[0]) - 2 * task.radius
        base = dict(task=task_name, K=K, delta_c=delta, gap=gap)
        for family in families:
            bar.set_postfix_str(f"{family} {task_name} K={K} Δc={delta:g}")
            key = (family, *setting)
            if family == "cvae":  # the whole β sweep as one stacked model (same models as fit, to float tolerance)
                pols, _ = latent.fit_cvaes(task, data, b, [dict(beta=float(r * th.beta_star), **CVAE_CONFIG)
                                                           for r in beta_ratios], seed=seed, progress=False,
                                           keys=beta_ratios)
                for r in beta_ratios:
                    pol = res.models[(*key, float(r))] = pols[r]
                    info = _cvae_information(pol, task, seed, b["n_obs"], b["n_samples"])
                    pred = {"beta_star": th.beta_star, "predicted_modes": float(K if r < 1 else 1 - collapse_off),
                            "predicted_off_support": collapse_off if r >= 1 else math.nan, **info}
                    res.cells[(*key, float(r))] = Cell(family, **base, knob="beta", value=float(r * th.beta_star),
                                                       ratio=float(r), theory=pred, **measure(pol, task, seed, **meas))
            elif family in TRANSPORT:
                pol, hist = fit(family, task, data, b, seed=seed, progress=False)
                res.models[(*key, 0.0)] = pol
                model = bridges.Model(family, K, gap + 2 * task.radius, task, pol, hist)
                for S in sampler_steps:
                    m = measure(pol, task, seed, steps=int(S), **meas)
                    pred = _transport_theory(model, int(S), m, gap, seed, b["lipschitz_sizes"])
                    res.cells[(*key, float(S))] = Cell(family, **base, knob="steps", value=float(S), ratio=math.nan,
                                                       theory=pred, **m)
            else:
                pol, _ = fit(family, task, data, b, seed=seed, progress=False)
                res.models[(*key, 0.0)] = pol
                if family == "regression":  # the mode average: in a mode or not
                    pred = {"predicted_off_support": collapse_off, "predicted_modes": 1.0 - collapse_off}
                else:  # vq, mixture: a discrete choice — no continuity, no floor
                    pred = {"floor": 0.0, "predicted_modes": float(K)}
                res.cells[(*key, 0.0)] = Cell(family, **base, knob="none", value=0.0, ratio=math.nan, theory=pred,
                                              **measure(pol, task, seed, **meas))
            bar.update()
    bar.close()
    if store if store is not None else full_grid:
        cache.store("synthetic", summary(res), prof, seed)
    return res


def _state(task: tasks.Task, obs: Tensor) -> float:
    """A scalar state for :func:`latent.predicted_thresholds` at which all K modes are present."""
    return float(obs[0, 0]) if task.obs_dim == 1 else 0.0


def _transport_theory(model: bridges.Model, steps: int, m: dict, gap: float, seed: int, sizes: str) -> dict[str, float]:
    """Chapter 6's Lipschitz estimate L̂ of the sampler with ``steps`` steps (:func:`bridges.measure` with the
    ``BUDGETS["bridges"][sizes]`` sample counts, without its transition search), and at L̂: the isoperimetric
    floor on the bridge for the measured mode masses (2 modes: chapter 5's bridge-mass floor; K: its corollary) and the
    number of modes that can hold ≥ τ. With at most one mode holding mass the floor is 0. The branching task's L̂ is not measured (chapter 6's
    observations are for the fork and the ring): NaN."""
    mass = m["mass"].mean(0)
    if (mass > 0).sum() < 2:  # at most one mode holds mass: nothing to bridge, floor 0 (L̂ not needed)
        return {"L_hat": math.nan, "floor": 0.0, "mode_bound": math.nan}
    if model.task.name == "branching":
        return {"L_hat": math.nan, "floor": math.nan, "mode_bound": math.nan}
    L_hat = float(np.nanmean(bridges.measure(model, steps, seed=seed, profile=sizes, n_transitions=0).L_hat))
    floor = bridge_floor(mass, gap, L_hat) if L_hat > 0 else math.nan
    bound = theory.max_modes_with_mass(L_hat, gap, TAU) if L_hat > 0 else math.nan
    return {"L_hat": L_hat, "floor": floor, "mode_bound": float(bound)}


def summary(result: SyntheticResult) -> list[dict[str, float | str]]:
    """One tidy row per (family, setting, knob value): the :meth:`Cell.row` averages. Columns not
    measured for a family (e.g. ``beta_star`` for a flow) are NaN, so every row has the same keys."""
    rows = [c.row() for c in result.select()]
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return [{k: r.get(k, math.nan) for k in keys} for r in rows]


# ---------------------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------------------
_COLUMNS = (("model", 18), ("task", 9), ("K", 2), ("Δc", 4), ("coverage", 8), ("min mode", 8), ("modes", 5),
            ("bridge", 7), ("theory", 7), ("Sinkhorn", 8))


def _theory_value(r: dict) -> float:
    """The theory's number for the off-support column: the predicted off-support (regression, collapsed
    cvae) or the floor under it (transport at L̂, 0 for the discrete heads)."""
    for k in ("predicted_off_support", "floor"):
        v = r.get(k, math.nan)
        if v is not None and np.isfinite(v):
            return float(v)
    return math.nan


def format_table(result: SyntheticResult, setting: tuple | None = None) -> str:
    """The summary as a fixed-width text table (pandas is not a dependency). ``bridge``: off-support mass;
    ``theory``: the predicted off-support (regression, cvae at β ≥ β*) or, marked ≥, the floor under it."""
    head = " ".join(f"{name:<{w}s}" if i < 2 else f"{name:>{w}s}" for i, (name, w) in enumerate(_COLUMNS))
    lines = [head, "-" * len(head)]
    for c in result.select(setting=setting):
        r = c.row()
        th = _theory_value(r)
        th_s = "—" if not np.isfinite(th) else (f"≥{th:.3f}" if "floor" in c.theory else f"{th:.3f}")
        vals = (c.label, c.task, f"{c.K:d}", f"{c.delta_c:.1f}", f"{r['coverage']:.3f}", f"{r['min_mass']:.3f}",
                f"{r['modes_covered']:.1f}", f"{r['off_support']:.3f}", th_s, f"{r['sinkhorn']:.3f}")
        lines.append(" ".join(f"{v:<{w}s}" if i < 2 else f"{v:>{w}s}" for i, ((_, w), v) in enumerate(zip(_COLUMNS, vals))))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------
def setting_name(setting: tuple) -> str:
    """A setting ``(task, K, Δc)`` as a label: ``"fork K=2, Δc=3"``."""
    t, K, d = setting
    return f"{t} K={K}, Δc={d:g}"


def _representatives(result: SyntheticResult, setting: tuple) -> list[Cell]:
    """One cell per model for the overview: every β of the cvae, the largest step count of diffusion/flow."""
    out = []
    for c in result.select(setting=setting):
        if c.knob == "steps" and c.value != max(x.value for x in result.select(c.family, setting)):
            continue
        out.append(c)
    return out


def plot_overview(result: SyntheticResult, settings: Sequence[tuple] | None = None) -> plt.Figure:
    """One row per setting. Left: where the samples go — stacked fractions off-support (red, at the bottom)
    and per mode (mode colours), with the theory's off-support value (◆: prediction; ▽: floor) beside the
    red part. Right: the
    Sinkhorn divergence to the demonstrations (log scale)."""
    settings = list(result.settings if settings is None else settings)
    fig, axes = plt.subplots(len(settings), 2, figsize=(12, 2.9 * len(settings)), squeeze=False,
                             gridspec_kw={"width_ratios": [2.2, 1]})
    for (ax, ax2), setting in zip(axes, settings):
        cells = _representatives(result, setting)
        x = np.arange(len(cells))
        for i, c in enumerate(cells):
            bottom = float(c.off_support.mean())  # off-support at the bottom, so its height reads against the theory marker
            ax.bar(i, bottom, color=OFF_SUPPORT_COLOR, edgecolor="k", lw=0.4, width=0.7, hatch="//")
            for k, p in enumerate(c.mass.mean(0)):
                ax.bar(i, p, bottom=bottom, color=mode_color(k), edgecolor="k", lw=0.4, width=0.7)
                bottom += p
            th = _theory_value(c.row())
            if np.isfinite(th):
                pred = "floor" not in c.theory
                ax.plot(i + 0.42, th, "D" if pred else "v", color="k", ms=6, mfc="k" if pred else "w",
                        label=("theory: predicted off-support" if pred else "theory: floor on off-support")
                        if i == next(j for j, cc in enumerate(cells)
                                     if ("floor" not in cc.theory) == pred and np.isfinite(_theory_value(cc.row())))
                        else None)
        ax.set_xticks(x, [c.label for c in cells], rotation=25, ha="right", fontsize=8)
        ax.set(ylim=(0, 1.3), yticks=np.linspace(0, 1, 6), ylabel="fraction of samples",
               title=f"{setting_name(setting)}: off-support (red, bottom) and modes (colours)")
        ax.legend(fontsize=7, loc="upper right", ncol=2, framealpha=0.9, frameon=True)
        ax2.bar(x, [max(c.sinkhorn.mean(), 1e-4) for c in cells], color="0.5", width=0.7)
        ax2.set_xticks(x, [c.label for c in cells], rotation=25, ha="right", fontsize=8)
        ax2.set(yscale="log", ylabel="Sinkhorn to demos", title="distribution match (lower is better)")
    fig.tight_layout()
    return fig


def plot_beta(result: SyntheticResult) -> plt.Figure:
    """The cvae against β/β* (log axis), one colour per setting. (a) Modes holding > τ of the prior
    samples, with the prediction (dashed): K below β*; above, 1 if the mode average lies in a mode, else 0. (b) Per-sample KL (●) with the Fano
    bound B(P̂_e) (×) and log K (dotted). (c) Off-support mass, with the collapse point's off-support (◆)."""
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(12.5, 3.5))
    for i, setting in enumerate(result.settings):
        cells = result.select("cvae", setting)
        if not cells:
            continue
        col, K = f"C{i}", setting[1]
        r = np.array([c.ratio for c in cells])
        rows = [c.row() for c in cells]
        grid = np.geomspace(min(r.min(), 0.05), max(r.max(), 4), 200)
        task = result.tasks[setting]
        collapsed = 1 - _collapse_off_support(task, eval_obs(task, 1))  # the mode average: in one mode or in none
        ax1.plot(grid, np.where(grid < 1, K, collapsed) + 0.04 * i, "--", color=col, lw=1, alpha=0.8)
        ax1.plot(r, [x["modes_covered"] for x in rows], "o", color=col, ms=7, label=setting_name(setting))
        ax2.plot(r, [x["kl"] for x in rows], "o-", color=col, ms=6, label=f"{setting_name(setting)}: E KL")
        ax2.plot(r, [x["fano"] for x in rows], "x", color=col, ms=8, mew=2)
        ax2.axhline(math.log(K), color=col, ls=":", lw=1)
        ax3.plot(r, [x["off_support"] for x in rows], "o-", color=col, ms=6, label=setting_name(setting))
        ax3.plot(r, [x["predicted_off_support"] for x in rows], "D", color=col, mfc="none", ms=9)
    for ax in (ax1, ax2, ax3):
        ax.axvline(1.0, color="#d62728", lw=1.5)
        ax.set_xscale("log")
        ax.set_xlabel(r"$\beta/\beta^*$   (red line: $\beta^*$, above which collapse is optimal)")
    ax1.set(ylabel=f"modes with > {TAU:.0%} of samples", title="(a) modes kept (dashed: at the optimum)")
    ax2.set(ylabel="nats", title=r"(b) E KL (●) ≥ Fano $B(\hat P_e)$ (×); $\log K$ dotted")
    ax3.set(ylabel="off-support", ylim=(-0.03, 1.03), title="(c) off-support (◆: collapse point)")
    ax1.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_steps(result: SyntheticResult, families: Sequence[str] = TRANSPORT) -> plt.Figure:
    """Transport policies against sampler steps: the bridge (filled, solid) and its isoperimetric floor
    at L̂ (open, dashed), one colour per setting, one panel per family; the last panel holds every
    (model, steps) against its floor (the theorem: on or above the diagonal, up to sampling error)."""
    fams = [f for f in families if result.select(f)]
    fig, axes = plt.subplots(1, len(fams) + 1, figsize=(4.3 * (len(fams) + 1), 3.6), squeeze=False)
    axes = axes[0]
    lo = 1.0
    for ax, fam in zip(axes, fams):
        for i, setting in enumerate(result.settings):
            rows = [c.row() for c in result.select(fam, setting)]
            if not rows:
                continue
            S = [r["knob_value"] for r in rows]
            ax.plot(S, [max(r["off_support"], 1e-4) for r in rows], "o-", color=f"C{i}", label=setting_name(setting))
            fl = [r["floor"] if np.isfinite(r["floor"]) and r["floor"] > 0 else math.nan for r in rows]
            ax.plot(S, fl, "v--", color=f"C{i}", mfc="none", ms=8)
            ax3 = axes[-1]
            for r in rows:
                if np.isfinite(r["floor"]) and r["floor"] > 0:
                    lo = min(lo, r["floor"], max(r["off_support"], 1e-4))
                    ax3.errorbar(r["floor"], max(r["off_support"], 1e-4), yerr=[[0], [r["off_support_hi"] - r["off_support"]]],
                                 fmt="o" if fam == "flow" else "s", color=f"C{i}", ms=4 + np.log2(r["knob_value"]),
                                 mfc=f"C{i}" if fam == "flow" else "none", alpha=0.8, lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set(yscale="log", xlabel="sampler steps", ylabel="mass in no mode",
               title=rf"{fam}: bridge (●) and floor at $\hat L$ (▽)")
        ax.legend(fontsize=7)
    ax3 = axes[-1]
    lim = (lo / 2, 1.5)
    ax3.plot(lim, lim, "k-", lw=1)
    ax3.set(xscale="log", yscale="log", xlim=lim, ylim=lim, xlabel=r"isoperimetric floor at $\hat L$",
            ylabel="measured bridge", title="every model: bridge ≥ floor (● flow, □ diffusion)")
    fig.tight_layout()
    return fig


def plot_samples(cell: Cell, task: tasks.Task) -> plt.Figure:
    """One (family, setting, knob) at the first evaluation observation: demonstrations (grey) and the
    policy's samples coloured by the mode they land in (red: off-support). Fork and branching: lateral
    position − s against the step in the chunk; ring: the 2-D paths."""
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    if task.action_dim == 1:
        off = cell.obs0[:1, 0].expand(len(cell.demos)) if task.name == "fork" else None
        plot_chunks(ax, cell.demos, None, offset=off, color="0.75", alpha=0.5)
        off = cell.obs0[:1, 0].expand(len(cell.samples)) if task.name == "fork" else None
        plot_chunks(ax, cell.samples, cell.labels, offset=off, alpha=0.45)
        ax.set_ylabel("lateral position − s" if task.name == "fork" else "lateral position")
    else:
        for c, lab in ((cell.demos, None), (cell.samples, cell.labels)):
            c = c.numpy()
            for j in range(len(c)):
                color = "0.75" if lab is None else mode_color(int(lab[j]))
                ax.plot(c[j, :, 0], c[j, :, 1], color=color, alpha=0.5 if lab is None else 0.45, lw=1)
        ax.set(xlabel="x", ylabel="y", aspect="equal")
    r = cell.row()
    ax.set_title(f"{cell.label} on {cell.task} K={cell.K}, Δc={cell.delta_c:g}\n"
                 f"coverage {r['coverage']:.0%}, modes {r['modes_covered']:.0f}/{cell.K}, "
                 f"off-support {r['off_support']:.0%}, Sinkhorn {r['sinkhorn']:.3f}", fontsize=9)
    fig.tight_layout()
    return fig
