"""State-adaptive regularisation: a KL weight β(s) set from the demonstrations, against the best constant β.

A CVAE's β buys two things (chapters 3, 4 and 10): where p(a|s) has several modes, a β below the collapse
threshold β*(s) lets the latent carry the mode (information, Î(A;Z|S) up to ln K); where it has one, a strong β
pulls the aggregate posterior onto the prior, so that prior samples decode into the demonstrations' support
(reliability). When the number of modes K(s) and their gap change along a trajectory, β*(s) changes too — on the
``branching`` task it grows a hundredfold from the unimodal early states to the late K = 3 states — and one
constant β is a compromise: weak relative to β*(s) where the modes are far apart, strong (or above β*) where
they are close.

**The adaptive rule.** Measure β*(s) from the demonstrations, as chapter 9 does on robot data: cluster the
chunks of the k demonstrations nearest to each of Q query states (:func:`mbc_lib.diagnostics.neighbourhoods`,
:func:`mbc_lib.diagnostics.cluster_modes`) and evaluate the exact L2 collapse threshold on the clusters in the
cvae's normalised units and loss scaling (:func:`mbc_lib.theory.critical_beta_from_clusters`; the book's
appendix, app-collapse, app-collapse-l2). Every demonstration gets β_i = c·β*(nearest query) for a fixed
fraction c (:func:`state_beta_star`, :func:`adaptive_dataset`); the cvae weighs each sample's KL with its own β_i
(a :class:`~mbc_lib.data.ChunkDataset` with per-sample ``beta``). At a unimodal state β*(s) is the local threshold
λ_max(Cov)/σ_d² of the within-mode noise — tiny — so the rule keeps β/β* = c there too, and leaves the latent free
to encode that noise. A second rule (``"adaptive_strong"``) aims at the two goals separately: c·β*(s) where
the neighbourhood has at least two modes, and β*_ref (far above the local β*, so the latent collapses) where it
has one.

**The comparison** (:func:`run`): on ``branching`` (K_max = 3, Δ_c from 1.5 to 3, σ = 0.1, H = 8) and on
``PathGaps`` (K = 2, noisy scripted experts), three kinds of cvae with the same budget and seed: a constant
β = r·β*_ref for each r of ``ratios`` (β*_ref: the median β* of the query states with at least two modes), and
each adaptive rule with each fraction c of ``fractions`` — so the best of each kind is picked from a grid of the
same kind. Each model is measured per state:

* **information where modes exist**: Î(A;Z|S) of the demonstrations at that state (:func:`mbc_lib.diagnostics.kl_split`),
  as a fraction of ln K(s);
* **reliability where they do not**: the share of prior-decoded chunks in no mode at unimodal states (and at
  multimodal ones);
* **coverage**: the modes that receive at least :data:`MIN_SHARE` of the prior-decoded chunks, and the total
  variation between the decoded mode shares (plus the off-support share) and the demonstrations' weights;
* on ``PathGaps`` also **closed loop** (:func:`mbc_lib.envs.evaluate`): success with its Wilson interval, gaps used,
  collisions.

The best of a kind is its lowest mean TV on ``branching`` and its highest success among those using every gap on
``PathGaps`` (:func:`best_of`). Modes on ``branching`` are the task's own; on ``PathGaps`` they are the
clusters of each query's neighbourhood with chapter 9's radii. Sizes from ``BUDGETS["adaptive_beta"]``; figures
in :mod:`mbc_lib.figures.adaptive_beta`. β and nats are dimensionless; robot chunks are in m/s.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import diagnostics, tasks, theory
from ..data import ChunkDataset
from ..fitting import fit, fit_many
from ..policies import Policy
from ..profiles import budget
from ..validation import check_seed

__all__ = ["BRANCHING", "PATH_ENV", "ACTION_NOISE", "THRESHOLD", "REGION", "MIN_SHARE", "KINDS", "StateBetaStar",
           "state_beta_star", "adaptive_beta", "adaptive_dataset", "label", "branching_states", "TaskComparison",
           "compare_branching", "compare_path_gaps", "best_of", "AdaptiveResult", "run", "summary", "verdict"]

#: the branching task: K(s) = 1, 2, 3 on thirds of s ∈ [0, 1], Δ_c(s) from 1.5 to 3 (chapter 7's setting)
BRANCHING: dict[str, Any] = dict(K_max=3, delta_min=1.5, delta_max=3.0, sigma=0.1, chunk_len=8)
#: the robot task, its experts' action noise (m/s) and chapter 9's clustering of robot chunks: single linkage cut
#: at THRESHOLD m/s, a chunk in mode k within max(ρ_k, REGION·Δ_c,k) of its centre
PATH_ENV, ACTION_NOISE, THRESHOLD, REGION = "mbc/PathGaps-v0", 0.02, 0.3, 0.25
#: a mode counts as reached when it holds at least this share of the prior-decoded chunks
MIN_SHARE = 0.1
#: the cvae's settings besides β: L2 reconstruction, the loss β* is computed for
CVAE = dict(recon="l2")
#: the kinds of β compared: constant r·β*_ref; c·β*(s) everywhere; c·β*(s) where K̂(s) ≥ 2 and β*_ref where K̂(s) = 1
KINDS: tuple[str, ...] = ("constant", "adaptive", "adaptive_strong")


# ---------------------------------------------------------------------------------------
# β*(s) from the demonstrations
# ---------------------------------------------------------------------------------------
@dataclass
class StateBetaStar:
    """β* measured at Q query states (see :func:`state_beta_star`).

    query ``[Q, obs_dim]``; beta_star ``[Q]`` (normalised units, L2 cvae scaling); n_modes ``[Q]`` (K̂ of the
    neighbourhood); index ``[Q, k]`` (the neighbourhood's rows of the dataset); clusters (one
    :class:`~mbc_lib.diagnostics.ClusteredModes` per query, in task units); scale ``[obs_dim]``: the feature
    scale of the nearest-query search (the demonstrations' standard deviation)."""

    query: np.ndarray
    beta_star: np.ndarray
    n_modes: np.ndarray
    index: np.ndarray = field(repr=False)
    clusters: list = field(repr=False)
    scale: np.ndarray = field(repr=False)

    def nearest(self, obs: Tensor | np.ndarray) -> np.ndarray:
        """The nearest query state of each observation ``[N, obs_dim]`` (standardised features), ``[N]``."""
        o = np.asarray(torch.as_tensor(obs).detach().cpu().double()).reshape(len(obs), -1) / self.scale
        q = self.query / self.scale
        return np.linalg.norm(o[:, None] - q[None], axis=-1).argmin(1)

    def at(self, obs: Tensor | np.ndarray) -> np.ndarray:
        """β*(s) of each observation ``[N, obs_dim]``: that of its nearest query state, ``[N]``."""
        return self.beta_star[self.nearest(obs)]

    @property
    def reference(self) -> float:
        """β*_ref: the median β* over the query states with at least two modes (all states if none has)."""
        multi = self.beta_star[self.n_modes >= 2]
        return float(np.median(multi if len(multi) else self.beta_star))


def state_beta_star(data: ChunkDataset, query: Tensor | np.ndarray, k: int = 64, method: str = "bic",
                    threshold: float | None = None) -> StateBetaStar:
    """β*(s) at each query state ``[Q, obs_dim]`` from the demonstrations ``data``: cluster the chunks (task units)
    of the ``k`` nearest demonstrations (standardised observations; :func:`mbc_lib.diagnostics.cluster_modes`
    with ``method``/``threshold``) and evaluate the exact L2 collapse threshold on those chunks normalised as the
    cvae sees them, with its loss scaling σ_d = √(H·d/2) (:func:`mbc_lib.theory.critical_beta_from_clusters`)."""
    obs = data.obs.detach().cpu().double().numpy()
    q = np.asarray(torch.as_tensor(query).detach().cpu().double()).reshape(-1, data.obs_dim)
    chunks = data.chunks.detach().cpu().double().numpy()
    nchunks = data.normalizer().normalize_actions(data.chunks).detach().cpu().double().numpy()
    scale_d = theory.act_loss_scaling(data.chunk_len, data.action_dim, loss="l2").scale
    idx = diagnostics.neighbourhoods(obs, q, k=k)  # [Q, k]
    kw = dict(method=method) if threshold is None else dict(method=method, threshold=threshold)
    clusters = [diagnostics.cluster_modes(chunks[i], **kw) for i in idx]
    beta = np.array([theory.critical_beta_from_clusters(nchunks[i], c.labels, scale_d) for i, c in zip(idx, clusters)])
    sd = obs.std(0)
    return StateBetaStar(q, beta, np.array([c.n_modes for c in clusters]), idx, clusters, np.where(sd > 0, sd, 1.0))


def adaptive_beta(rule: StateBetaStar, obs: Tensor | np.ndarray, fraction: float,
                  unimodal: float | None = None) -> np.ndarray:
    """β(s) of each observation ``[N, obs_dim]``: ``fraction``·β*(nearest query state), or ``unimodal`` where that
    query's neighbourhood has a single mode (when given), ``[N]``."""
    if not (isinstance(fraction, (int, float)) and math.isfinite(fraction) and fraction > 0):
        raise ValueError(f"fraction (β/β* of the adaptive rule) must be a number > 0, got {fraction!r}")
    j = rule.nearest(obs)
    beta = fraction * rule.beta_star[j]
    if unimodal is not None:
        beta = np.where(rule.n_modes[j] >= 2, beta, float(unimodal))
    return beta


def adaptive_dataset(data: ChunkDataset, rule: StateBetaStar, fraction: float,
                     unimodal: float | None = None) -> ChunkDataset:
    """``data`` with per-sample KL weights β_i = :func:`adaptive_beta` of its observation."""
    beta = torch.as_tensor(adaptive_beta(rule, data.obs, fraction, unimodal), dtype=torch.float32)
    return ChunkDataset(data.obs, data.chunks, data.modes, device=data.device, beta=beta)


# ---------------------------------------------------------------------------------------
# one comparison
# ---------------------------------------------------------------------------------------
def label(kind: str, value: float) -> str:
    """The name of one model: ``"β = 0.1·β*_ref"`` (constant), ``"β(s) = 0.1·β*(s)"`` (adaptive),
    ``"β(s) = 0.1·β*(s), β*_ref at K̂=1"`` (adaptive_strong)."""
    if kind == "constant":
        return f"β = {value:g}·β*_ref"
    if kind == "adaptive":
        return f"β(s) = {value:g}·β*(s)"
    if kind == "adaptive_strong":
        return f"β(s) = {value:g}·β*(s), β*_ref at K̂=1"
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


@dataclass
class TaskComparison:
    """Every model of one task: the constant grid and both adaptive rules.

    beta_ref: β*_ref; rule: the measured β*(s); models: label -> summary dict (the keys of :func:`_summarise`,
    plus ``kind``, ``value`` — r or c — and ``beta``: the median β over the evaluation states); states: one dict per
    (label, state) with the per-state measurements; best: kind -> the label of its best model (:func:`best_of`)."""

    task: str
    beta_ref: float
    rule: StateBetaStar = field(repr=False)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    states: list[dict[str, Any]] = field(default_factory=list, repr=False)
    best: dict[str, str] = field(default_factory=dict)

    def state_series(self, label: str, key: str) -> np.ndarray:
        """One per-state measurement of model ``label``, in state order."""
        return np.array([r[key] for r in self.states if r["label"] == label], dtype=float)

    def kind(self, kind: str) -> dict[str, dict[str, Any]]:
        """The models of one kind, label -> summary."""
        return {k: v for k, v in self.models.items() if v["kind"] == kind}


def _tv(shares: np.ndarray, off: float, weights: np.ndarray) -> float:
    """½(Σ_k |share_k − π_k| + off): total variation between (decoded shares, off-support) and (π, 0)."""
    return 0.5 * float(np.abs(shares - weights).sum() + off)


def _summarise(states: list[dict[str, Any]]) -> dict[str, float]:
    """Per-model averages over its states: information where K ≥ 2, reliability where K = 1, coverage, TV."""
    multi = [r for r in states if r["K"] >= 2]
    uni = [r for r in states if r["K"] == 1]

    def mean(rows: list[dict[str, Any]], key: str) -> float:
        return float(np.mean([r[key] for r in rows])) if rows else math.nan

    return {
        "info_frac": mean(multi, "info_frac"), "info": mean(multi, "info"), "mean_kl": mean(states, "mean_kl"),
        "off_unimodal": mean(uni, "off"), "off_multimodal": mean(multi, "off"), "off": mean(states, "off"),
        "coverage": float(sum(r["reached"] for r in states) / max(1, sum(r["K"] for r in states))),
        "tv": mean(states, "tv"),
    }


def _latent_state(pol: Policy, obs: Tensor, chunks: Tensor, g: torch.Generator) -> dict[str, float]:
    with torch.no_grad():
        mu, logvar = pol.encode(obs, chunks)
        mu_p, logvar_p = pol.prior(obs)
    split = diagnostics.kl_split(mu, logvar, mu_p, logvar_p, generator=g)
    return {"info": split.mutual_information, "mean_kl": split.mean_kl, "marginal_kl": split.marginal_kl}


def _state_row(name: str, K: int, shares: np.ndarray, off: float, weights: np.ndarray, lat: dict[str, float],
               beta: float, **where: Any) -> dict[str, Any]:
    return {"label": name, **where, "K": K, "beta": beta, **lat,
            "info_frac": lat["info"] / math.log(K) if K > 1 else math.nan, "off": off,
            "reached": int((shares >= MIN_SHARE).sum()), "tv": _tv(shares, off, weights),
            "min_share": float(shares.min())}


def branching_states(task: tasks.Branching, per_segment: int) -> np.ndarray:
    """Evaluation states ``[K_max·per_segment]``: ``per_segment`` evenly spaced inside each third (K(s) = 1, 2, …),
    away from the switches of K."""
    K = task.K
    return np.array([(j + (i + 0.5) / per_segment) / K for j in range(K) for i in range(per_segment)])


def _fit_all(data: ChunkDataset, rule: StateBetaStar, b: dict, seed: int
             ) -> dict[str, tuple[str, float, Policy, Any]]:
    """Every model of the comparison: label -> (kind, r or c, policy, obs [1, obs_dim] -> β there). The constant
    grid is one stacked run; each adaptive model is its own run (one-model training reads per-sample β)."""
    ref = rule.reference
    ratios = [float(r) for r in b["ratios"]]
    labels = [label("constant", r) for r in ratios]
    pols, _ = fit_many("cvae", data, [dict(beta=r * ref, **CVAE) for r in ratios], keys=labels, seeds=seed,
                       budget=b, progress=False)
    out = {lab: ("constant", r, pols[lab], lambda obs, x=r * ref: x) for lab, r in zip(labels, ratios)}
    for kind, unimodal in (("adaptive", None), ("adaptive_strong", ref)):
        for c in (float(x) for x in b["fractions"]):
            pol, _ = fit("cvae", adaptive_dataset(data, rule, c, unimodal), budget=b, seed=seed, progress=False,
                         desc=f"cvae {label(kind, c)}", beta=c * ref, **CVAE)
            out[label(kind, c)] = (kind, c, pol, lambda obs, c=c, u=unimodal: float(adaptive_beta(rule, obs, c, u)[0]))
    return out


def _finish(comp: TaskComparison, name: str, kind: str, value: float, rows: list[dict[str, Any]],
            **extra: Any) -> None:
    comp.states += rows
    comp.models[name] = {"kind": kind, "value": value, "beta": float(np.median([r["beta"] for r in rows])),
                         **_summarise(rows), **extra}


def compare_branching(seed: int = 0, profile: str | None = None) -> TaskComparison:
    """Constant against adaptive β on ``branching`` (module docstring)."""
    seed = check_seed(seed)
    b = budget("adaptive_beta", profile)
    task = tasks.make("branching", **BRANCHING)
    data = task.dataset(b["n_demos"], seed=seed)
    q = (np.arange(b["n_query"]) + 0.5) / b["n_query"]
    rule = state_beta_star(data, q[:, None], k=b["k"])
    states = branching_states(task, b["per_segment"])
    comp = TaskComparison("branching", rule.reference, rule)
    for name, (kind, value, pol, beta_of) in _fit_all(data, rule, b, seed).items():
        g = torch.Generator().manual_seed(seed + 51_000)  # the same demonstrations and prior draws for every model
        rows = []
        for s in states:
            obs1 = torch.tensor([[float(s)]])
            ms = task.modes(obs1)
            K = int(ms.count[0])
            obs = obs1.expand(b["n_per_state"], 1)
            chunks, _ = task.sample(obs, g)
            lat = _latent_state(pol, obs, chunks, g)
            with torch.no_grad():
                dec = pol.sample(obs1, b["n_prior"], generator=g, decode_from="prior")  # [1, n, H, d]
            lab = task.assign(obs1, dec)[0].numpy()
            shares = np.bincount(lab[lab >= 0], minlength=task.K)[:K] / len(lab)
            rows.append(_state_row(name, K, shares, float((lab < 0).mean()), ms.weights[0, :K].double().numpy(), lat,
                                   beta_of(obs1), s=float(s)))
        _finish(comp, name, kind, value, rows)
    comp.best = {k: best_of(comp, k) for k in KINDS}
    return comp


def _regions(cl: diagnostics.ClusteredModes) -> tuple[np.ndarray, np.ndarray]:
    """Centres ``[K, n]`` and radii ``[K]`` = max(ρ_k, REGION·Δ_c,k) of one neighbourhood's clusters (chapter 9's rule)."""
    centers = np.asarray(cl.centers).reshape(cl.n_modes, -1)
    if cl.n_modes == 1:
        return centers, np.asarray(cl.radii, dtype=float)
    cd = np.array(cl.center_distances, dtype=float)
    np.fill_diagonal(cd, np.inf)
    return centers, np.maximum(cl.radii, REGION * cd.min(1))


def compare_path_gaps(seed: int = 0, profile: str | None = None, K: int = 2) -> TaskComparison:
    """Constant against adaptive β on ``PathGaps`` with ``K`` gaps, closed loop included. The query states are the
    observations every ``stride`` steps of the first ``n_query_episodes`` demonstrations."""
    from .. import envs

    seed = check_seed(seed)
    b = budget("adaptive_beta", profile)
    data, trajs = envs.collect_demos(PATH_ENV, b["n_episodes"], seed=seed, chunk_len=BRANCHING["chunk_len"], K=K,
                                     action_noise=ACTION_NOISE, return_trajectories=True, progress=False)
    kept = [t for t in trajs if t.success]
    starts = np.concatenate([[0], np.cumsum([len(t) for t in kept])[:-1]]).astype(int)
    rows_q = np.concatenate([starts[e] + np.arange(0, len(kept[e]), b["stride"])
                             for e in range(min(b["n_query_episodes"], len(kept)))])
    rule = state_beta_star(data, data.obs[torch.as_tensor(rows_q)], k=b["k"], method="threshold", threshold=THRESHOLD)
    comp = TaskComparison("PathGaps", rule.reference, rule)
    for name, (kind, value, pol, beta_of) in _fit_all(data, rule, b, seed).items():
        g = torch.Generator().manual_seed(seed + 52_000)
        rows = []
        for j, (qobs, idx, cl) in enumerate(zip(rule.query, rule.index, rule.clusters)):
            obs1 = torch.as_tensor(qobs, dtype=torch.float32)[None]
            it = torch.as_tensor(idx)
            lat = _latent_state(pol, data.obs[it], data.chunks[it], g)
            with torch.no_grad():
                dec = pol.sample(obs1, b["n_prior"], generator=g, decode_from="prior")[0]  # [n, H, 2]
            centers, radii = _regions(cl)
            lab = diagnostics.assign_modes(dec, centers, radii)
            shares = np.bincount(lab[lab >= 0], minlength=cl.n_modes)[:cl.n_modes] / len(lab)
            rows.append(_state_row(name, cl.n_modes, shares, float((lab < 0).mean()), np.asarray(cl.weights), lat,
                                   beta_of(obs1), query=j))
        roll = envs.evaluate(pol, PATH_ENV, n_episodes=b["n_eval"], seed=seed + 1, K=K, progress=False, device="cpu")
        used = np.bincount(roll.modes[roll.success], minlength=K)[:K]
        lo, hi = diagnostics.wilson_interval(int(roll.success.sum()), roll.n_episodes)
        _finish(comp, name, kind, value, rows, success=roll.success_rate, success_lo=float(lo), success_hi=float(hi),
                modes_used=int((used > 0).sum()), collision=float(roll.failures.mean()))
    comp.best = {k: best_of(comp, k) for k in KINDS}
    return comp


def best_of(comp: TaskComparison, kind: str) -> str | None:
    """The best model of one kind: on ``PathGaps`` the highest success among those whose successful episodes used
    every gap (ties: the lower mean TV), else the highest success; elsewhere the lowest mean TV (ties: the larger
    information). ``None`` when the kind has no model."""
    models = comp.kind(kind)
    if not models:
        return None
    if "success" in next(iter(models.values())):
        K = max(int(r["K"]) for r in comp.states)
        ok = {k: v for k, v in models.items() if v["modes_used"] >= K} or models
        return max(ok, key=lambda k: (ok[k]["success"], -ok[k]["tv"]))
    return min(models, key=lambda k: (models[k]["tv"], -np.nan_to_num(models[k]["info_frac"])))


# ---------------------------------------------------------------------------------------
# the experiment
# ---------------------------------------------------------------------------------------
@dataclass
class AdaptiveResult:
    """``tasks[name]``: the :class:`TaskComparison` of ``branching`` and ``PathGaps``."""

    tasks: dict[str, TaskComparison] = field(default_factory=dict)


def run(seed: int = 0, profile: str | None = None) -> AdaptiveResult:
    """Both comparisons (``branching``, then ``PathGaps``)."""
    return AdaptiveResult({"branching": compare_branching(seed, profile), "PathGaps": compare_path_gaps(seed, profile)})


def summary(result: AdaptiveResult) -> list[dict[str, Any]]:
    """One tidy row per (task, model): its kind, r or c, β, the summary measurements and whether it is the best of
    its kind (same keys for both tasks; NaN where a task has no such measurement)."""
    rows = []
    for name, comp in result.tasks.items():
        for lab, m in comp.models.items():
            rows.append({"task": name, "label": lab, "beta_ref": comp.beta_ref,
                         "best_of_kind": comp.best.get(m["kind"]) == lab, **m})
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return [{k: r.get(k, math.nan) for k in keys} for r in rows]


def verdict(comp: TaskComparison, kind: str = "adaptive") -> dict[str, Any]:
    """The best model of an adaptive ``kind`` against the best constant on one task: both summaries, and
    ``beats`` — a lower mean TV (``branching``) or a higher success (``PathGaps``); ``separated``: on
    ``PathGaps``, whether the two success Wilson intervals do not overlap (False elsewhere)."""
    a, c = comp.best.get(kind), comp.best.get("constant")
    if a is None or c is None:
        raise ValueError(f"{comp.task}: no {kind if a is None else 'constant'} model to compare")
    A, C = comp.models[a], comp.models[c]
    out = {"task": comp.task, "kind": kind, "adaptive_label": a, "constant_label": c, "adaptive": A, "constant": C}
    if "success" in A:
        return {**out, "beats": bool(A["success"] > C["success"]),
                "separated": bool(A["success_lo"] > C["success_hi"] or C["success_lo"] > A["success_hi"])}
    return {**out, "beats": bool(A["tv"] < C["tv"]), "separated": False}
