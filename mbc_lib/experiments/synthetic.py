"""Chapter 7: every policy family on the synthetic tasks — the paper's claims as tables and figures.

One grid, one measurement. Every family of :mod:`mbc_lib.policies` (``regression``, ``cvae``,
``vq``, ``mixture``, ``diffusion``, ``flow``, ``autoregressive``, all on the same backbone and training loop) is
trained on each *setting* ``(task, K, Δ_c)`` of the profile — the K-branch ``"fork"``, K modes on
the ``"ring"`` (orientations from a narrow arc, see :func:`setting_task`) and the observation-dependent
``"branching"`` task — and each family's own knob is swept:

* ``cvae``: the KL weight β = ratio·β*, with β* the exact L2 collapse threshold of chapter 3 (the
  book's appendix, app-collapse-l2) for the policy's loss scaling
  (:func:`mbc_lib.measure.predicted_thresholds`): one model per β;
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
  :func:`mbc_lib.measure.measure_bridges` (without its transition search); ``mode_bound`` = #modes an L̂-Lipschitz map can give
  mass ≥ τ (:func:`mbc_lib.theory.max_modes_with_mass`);
* ``vq`` / ``mixture`` — a discrete choice followed by a decoder: no continuity constraint, floor 0;
* ``autoregressive`` — the chunk as n = H·d_a tokens drawn one after another: each draw is discrete, so
  no Lipschitz floor either (floor 0); its price is n sequential network evaluations per chunk
  (``nfe``, in the row) and the bin width (removed by its offset head).

Sizes (training budget, grid, knobs, sample counts) come from ``BUDGETS["synthetic"]``.
The figures and the text table are in :mod:`mbc_lib.figures.synthetic`. Units: chunks, Δ_c and the gap Δ = Δ_c − 2ρ in task units; KL and B(P_e) in nats; the Sinkhorn
divergence in task units².
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from .. import diagnostics, policies, tasks, theory
from ..data import ChunkDataset
from ..fitting import fit as fit_policy
from ..fitting import fit_many
from ..measure import Thresholds, TrainedTransport, identified_modes, measure_bridges, predicted_thresholds
from ..profiles import budget
from ..profiles import profile as active_profile
from ..runtime import on_compute_device, progress_enabled
from ..train import History

__all__ = [
    "FAMILIES", "TRANSPORT", "DISCRETE", "TOKENS", "SYNTHETIC_TASKS", "RING_ARC", "TAU", "setting_task", "eval_obs", "fit",
    "Cell", "measure", "collapse_off_support", "SyntheticResult", "sweep", "summary", "setting_name",
]

FAMILIES: tuple[str, ...] = ("regression", "cvae", "vq", "mixture", "diffusion", "flow", "autoregressive")
TRANSPORT: tuple[str, ...] = ("diffusion", "flow")  # push-forwards of Gaussian noise: the isoperimetric floor applies
DISCRETE: tuple[str, ...] = ("vq", "mixture")  # a discrete choice, then a decoder: no floor
TOKENS: tuple[str, ...] = ("autoregressive",)  # discrete tokens drawn one by one: no floor, n = H·d_a evaluations
#: the synthetic tasks a setting can use (:mod:`mbc_lib.tasks`)
SYNTHETIC_TASKS: tuple[str, ...] = ("fork", "ring", "branching")
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


def setting_task(name: str, K: int, delta: float, sigma: float = SIGMA, chunk_len: int = CHUNK_LEN) -> tasks.Task:
    """The task of one setting, with neighbouring mode centres ``delta`` (Δ_c) apart as chunks.

    ``"fork"``: K branches. ``"ring"``: K straight paths to a circle whose radius makes Δ_c =
    ``delta``, orientations from ±``RING_ARC``. ``"branching"``: ``K_max = K`` modes appearing as s
    grows, Δ_c(s) from ``delta``/2 to ``delta`` (measured where all K are present)."""
    if name not in SYNTHETIC_TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of: {', '.join(SYNTHETIC_TASKS)}")
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
def _family_config(family: str, task: tasks.Task) -> dict:
    """What a family needs beyond the budget on a task with K modes: more mixture components than modes,
    more codes than modes, the cvae's L2 reconstruction."""
    if family == "cvae":
        return dict(CVAE_CONFIG)
    if family == "mixture":
        return dict(num_components=max(5, task.K + 2))  # more components than modes
    if family == "vq":
        return dict(num_codes=max(16, 2 * task.K))
    return {}


def fit(
    family: str, task: tasks.Task, data: ChunkDataset, b: dict, seed: int = 0, progress: bool | None = None,
    **config,
) -> tuple[policies.Policy, History]:
    """Train ``family`` on ``data`` with the budget ``b`` (width, depth, steps, batch_size, lr,
    latent_dim) through :func:`mbc_lib.fitting.fit`, with the chapter's per-family settings for
    ``task``; ``config`` adds family options (e.g. ``beta``). The policy ends on the CPU."""
    if family not in FAMILIES:
        raise ValueError(f"unknown policy family {family!r}; choose one of: {', '.join(FAMILIES)}")
    desc = f"{family} {task.name} K={task.K}" + "".join(f" {k}={v:.3g}" for k, v in config.items())
    return fit_policy(family, data, budget=b, seed=seed, progress=progress, desc=desc,
                      **{**_family_config(family, task), **config})


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
    pe = float((identified_modes(task, obs, policy.decode(obs, z)) != modes).float().mean())
    w = task.modes(obs[:1]).weights[0].double().numpy()
    w = w[w > 0]
    return {"kl": kl, "mode_error": pe, "fano": theory.fano_bound(w, min(pe, (len(w) - 1) / len(w)))}


def collapse_off_support(task: tasks.Task, obs: Tensor) -> float:
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
    thresholds: dict[tuple, Thresholds] = field(default_factory=dict, repr=False)

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
        setting_task(*s)  # validates task name, K and Δ
    for r in beta_ratios:
        if not (isinstance(r, (int, float)) and r > 0):
            raise ValueError(f"β ratios (β/β*) must be > 0, got {r!r}")
    for s in sampler_steps:
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool) or s < 1:
            raise ValueError(f"sampler steps must be integers >= 1, got {s!r}")


def sweep(
    settings: Sequence[tuple[str, int, float]] | None = None, families: Sequence[str] | None = None,
    beta_ratios: Sequence[float] | None = None, sampler_steps: Sequence[int] | None = None, seed: int = 0,
    profile: str | None = None, progress: bool | None = None,
) -> SyntheticResult:
    """Train every family on every setting and measure every knob value (defaults: the profile's).

    ``settings``: ``(task, K, Δ_c)`` triples; ``beta_ratios``: β/β* for the cvae; ``sampler_steps``:
    step counts for diffusion (DDIM) and flow (Euler). ``mbc_lib.experiments.run("synthetic", ...)``
    runs the whole profile grid and is what caches its :func:`summary` for chapter 11.
    """
    prof = active_profile() if profile is None else profile
    b = budget("synthetic", prof)
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
        task = res.tasks[setting] = setting_task(task_name, K, delta)
        data = task.dataset(b["n_demos"], seed=seed)
        obs = eval_obs(task, b["n_obs"])
        th = res.thresholds[setting] = predicted_thresholds(task, data.normalizer(), _state(task, obs))
        collapse_off = collapse_off_support(task, obs)
        # the gap at the (first) evaluation observation: Δc − 2ρ (for branching Δc(s) < the setting's Δc)
        gap = float(task.modes(obs[:1]).center_distance[0]) - 2 * task.radius
        base = dict(task=task_name, K=K, delta_c=delta, gap=gap)
        for family in families:
            bar.set_postfix_str(f"{family} {task_name} K={K} Δc={delta:g}")
            key = (family, *setting)
            if family == "cvae":  # the whole β sweep as one stacked model (same models as fit, to float tolerance)
                pols, _ = fit_many("cvae", data, [dict(beta=float(r * th.beta_star), **CVAE_CONFIG)
                                                  for r in beta_ratios], keys=beta_ratios, seeds=seed, budget=b,
                                   progress=False)
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
                model = TrainedTransport(family, K, gap + 2 * task.radius, task, pol, hist)
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
                else:  # vq, mixture, autoregressive: discrete choices — no continuity, no floor
                    pred = {"floor": 0.0, "predicted_modes": float(K)}
                    if family in TOKENS:  # one network evaluation per token, in sequence
                        pred["nfe"] = float(pol.nfe())
                res.cells[(*key, 0.0)] = Cell(family, **base, knob="none", value=0.0, ratio=math.nan, theory=pred,
                                              **measure(pol, task, seed, **meas))
            bar.update()
    bar.close()
    return res


def _state(task: tasks.Task, obs: Tensor) -> float:
    """A scalar state for :func:`mbc_lib.measure.predicted_thresholds` at which all K modes are present."""
    return float(obs[0, 0]) if task.obs_dim == 1 else 0.0


def _transport_theory(model: TrainedTransport, steps: int, m: dict, gap: float, seed: int, sizes: str) -> dict[str, float]:
    """Chapter 6's Lipschitz estimate L̂ of the sampler with ``steps`` steps (:func:`mbc_lib.measure.measure_bridges` with the
    ``BUDGETS["bridges"][sizes]`` sample counts, without its transition search), and at L̂: the isoperimetric
    floor on the bridge for the measured mode masses (2 modes: chapter 5's bridge-mass floor; K: its corollary) and the
    number of modes that can hold ≥ τ. With at most one mode holding mass the floor is 0. The branching task's L̂ is not measured (chapter 6's
    observations are for the fork and the ring): NaN."""
    mass = m["mass"].mean(0)
    if (mass > 0).sum() < 2:  # at most one mode holds mass: nothing to bridge, floor 0 (L̂ not needed)
        return {"L_hat": math.nan, "floor": 0.0, "mode_bound": math.nan}
    if model.task.name == "branching":
        return {"L_hat": math.nan, "floor": math.nan, "mode_bound": math.nan}
    L_hat = float(np.nanmean(measure_bridges(model, steps, budget("bridges", sizes), seed=seed, n_transitions=0).L_hat))
    floor = theory.bridge_floor(mass, gap, L_hat) if L_hat > 0 else math.nan
    bound = theory.max_modes_with_mass(L_hat, gap, TAU) if L_hat > 0 else math.nan
    return {"L_hat": L_hat, "floor": floor, "mode_bound": float(bound)}


def summary(result: SyntheticResult) -> list[dict[str, float | str]]:
    """One tidy row per (family, setting, knob value): the :meth:`Cell.row` averages. Columns not
    measured for a family (e.g. ``beta_star`` for a flow) are NaN, so every row has the same keys."""
    rows = [c.row() for c in result.select()]
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return [{k: r.get(k, math.nan) for k in keys} for r in rows]


def setting_name(setting: tuple) -> str:
    """A setting ``(task, K, Δc)`` as a label: ``"fork K=2, Δc=3"``."""
    t, K, d = setting
    return f"{t} K={K}, Δc={d:g}"
