"""Chapter 11: which parameterisation for which data — a decision chart backed by measurements.

Nothing is trained here. The chapter reads the tables that chapters 7 (``"synthetic"``), 8
(``"robot"``) and 9 (``"robot_modes"``) computed, through the results cache
(:mod:`mbc_lib.experiments.cache`; a missing or stale table is recomputed), and turns them into

* a **scorecard**: one :class:`Candidate` per (family, knob value) — a cvae at one β, a flow
  with a given number of sampler steps, the autoregressive token head — with its measured coverage, balance across modes,
  bridge (off-support) mass, Sinkhorn divergence and, where chapter 8 measured it, robot success;
* a **recommendation** (:func:`recommend`) for data with K modes per observation and a latency
  budget of at most ``max_nfe`` network evaluations per chunk: among the candidates that fit the
  budget, the one with the best measured score — the chart is a *query* over the tables, not a
  hand-written opinion, so a different profile or seed can change its answer;
* the **decision chart** (:func:`mbc_lib.figures.guidance.plot_chart`), whose leaves quote the measured
  numbers.

Units: coverage, balance, off-support and success are fractions in [0, 1]; NFE counts network
evaluations per sampled chunk; Sinkhorn in task units².
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..profiles import budget
from ..profiles import profile as active_profile
from .tables import executor_effect as _executor_effect

__all__ = [
    "FAMILIES", "SOURCES", "Evidence", "Candidate", "Recommendation", "gather", "nfe", "candidates",
    "recommend", "recommend_across_seeds", "default_executor", "robot_scorecard", "executor_effect",
]

FAMILIES = ("regression", "cvae", "vq", "mixture", "diffusion", "flow", "autoregressive")
#: the chapters whose tables chapter 11 reads, by experiment name
SOURCES = {"synthetic": 7, "robot": 8, "robot_modes": 9}
_ONE_SHOT = ("regression", "cvae", "vq", "mixture")

Rows = list[dict[str, Any]]


def _num(row: dict, key: str, default: float = math.nan) -> float:
    v = row.get(key)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return default
    return float(v)


@dataclass
class Evidence:
    """The tables of chapters 7–9 (rows as stored by each chapter), for one profile and seed."""

    profile: str
    seed: int
    tables: dict[str, Rows] = field(default_factory=dict)

    def rows(self, name: str) -> Rows:
        return self.tables.get(name, [])


def gather(profile: str | None = None, seed: int = 0, names: Sequence[str] = tuple(SOURCES)) -> Evidence:
    """Read the tables of ``names`` (default: chapters 7–9) from the results cache, computing any
    that is missing or was produced by another library source. Unregistered names raise."""
    from . import EXPERIMENTS, run

    prof = active_profile() if profile is None else profile
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        raise ValueError(f"no experiment named {', '.join(unknown)}; registered: {', '.join(sorted(EXPERIMENTS))}")
    return Evidence(prof, seed, {n: run(n, profile=prof, seed=seed, use_cache=True) for n in names})


def nfe(family: str, steps: float | None = None) -> int:
    """Network evaluations per sampled chunk: 1 for one-shot heads, one per sampler step for
    diffusion (DDIM) and flow (Euler), one per token for the autoregressive head (``steps`` is then its
    token count n = H·d_a, evaluated in sequence)."""
    if family in _ONE_SHOT:
        return 1
    if family == "autoregressive":
        if steps is None or not steps >= 1:
            raise ValueError(f"autoregressive needs its number of tokens per chunk (H·d_a ≥ 1), got {steps!r}")
        return int(steps)
    if family in ("diffusion", "flow"):
        if steps is None or not steps >= 1:
            raise ValueError(f"{family} needs its number of sampler steps (≥ 1), got {steps!r}")
        return int(steps)
    raise ValueError(f"unknown family {family!r}; expected one of {', '.join(FAMILIES)}")


@dataclass
class Candidate:
    """One family at one knob value, its chapter-7 measurements averaged over the settings with the
    requested K (fractions in [0, 1]; ``balance`` = K·(smallest mode mass), 1 when the modes are
    reproduced in the demonstrator's equal proportions)."""

    family: str
    knob: str
    value: float
    nfe: int
    coverage: float
    balance: float
    off_support: float
    sinkhorn: float
    modes_covered: float
    K: int
    n_settings: int

    @property
    def label(self) -> str:
        if self.knob == "beta":
            return f"cvae β={self.value:g}β*"
        if self.knob == "steps":
            return f"{self.family} {self.value:g} steps"
        return self.family

    def score(self, need_all_modes: bool = True) -> float:
        """Coverage, times the balance across modes when every mode must be reproduced."""
        return self.coverage * (min(1.0, self.balance) if need_all_modes else 1.0)


def candidates(evidence: Evidence, K: int) -> list[Candidate]:
    """The scorecard at ``K`` modes: one candidate per (family, knob value) of chapter 7's table,
    averaged over the settings with that K. Raises if chapter 7 measured no setting with this K."""
    rows = [r for r in evidence.rows("synthetic") if int(r["K"]) == K]
    if not rows:
        have = sorted({int(r["K"]) for r in evidence.rows("synthetic")})
        raise ValueError(f"chapter 7 measured no setting with K={K} at profile {evidence.profile!r}; measured K: {have}")
    groups: dict[tuple, Rows] = {}
    for r in rows:
        value = _num(r, "beta_ratio") if r["knob"] == "beta" else _num(r, "knob_value", 0.0)
        groups.setdefault((r["family"], r["knob"], value), []).append(r)
    out = []
    for (family, knob, value), rs in groups.items():
        mean = lambda k: float(np.nanmean([_num(r, k) for r in rs]))  # noqa: E731
        # the token head's latency is its token count, stored in chapter 7's rows: the longest among the settings
        count = value if knob == "steps" else (max(_num(r, "nfe") for r in rs) if family == "autoregressive" else None)
        out.append(Candidate(family, knob, value, nfe(family, count), mean("coverage"),
                             K * mean("min_mass"), mean("off_support"), mean("sinkhorn"), mean("modes_covered"), K,
                             len(rs)))
    order = {f: i for i, f in enumerate(FAMILIES)}
    return sorted(out, key=lambda c: (order.get(c.family, 99), c.value))


@dataclass
class Recommendation:
    """What :func:`recommend` chose, and why (the ranked admissible candidates)."""

    K: int
    max_nfe: int
    need_all_modes: bool
    choice: Candidate | None
    ranked: list[Candidate]
    excluded: list[Candidate]
    reason: str


def recommend(evidence: Evidence, K: int, max_nfe: int = 16, need_all_modes: bool = True,
              families: Sequence[str] = FAMILIES) -> Recommendation:
    """The parameterisation for data with ``K`` modes per observation and at most ``max_nfe``
    network evaluations per chunk: the admissible candidate (of ``families``) with the highest
    measured score (ties: fewer evaluations, then the smaller Sinkhorn divergence).

    ``K = 1`` needs no generative model: regression is the risk minimiser (chapter 1) and costs one
    evaluation. For ``K ≥ 2`` the measured K nearest below ``K`` is used when chapter 7 has no
    setting with that K (stated in ``reason``).
    """
    if int(K) != K or K < 1:
        raise ValueError(f"K must be a positive integer, got {K!r}")
    if int(max_nfe) != max_nfe or max_nfe < 1:
        raise ValueError(f"max_nfe must be a positive integer (network evaluations per chunk), got {max_nfe!r}")
    if unknown := [f for f in families if f not in FAMILIES]:
        raise ValueError(f"unknown famil{'y' if len(unknown) == 1 else 'ies'} {unknown}; expected some of {FAMILIES}")
    if K == 1:
        return Recommendation(1, max_nfe, need_all_modes, None, [], [],
                              "one mode per observation: regression (L2 or L1) is optimal and needs 1 evaluation")
    measured = sorted({int(r["K"]) for r in evidence.rows("synthetic")})
    below = [k for k in measured if k <= K]
    if not below:
        raise ValueError(f"chapter 7 measured K = {measured} only; cannot advise for K={K}")
    used = below[-1]
    cands = [c for c in candidates(evidence, used) if c.family in families]
    ok = [c for c in cands if c.nfe <= max_nfe]
    ok.sort(key=lambda c: (-c.score(need_all_modes), c.nfe, c.sinkhorn))
    excluded = [c for c in cands if c.nfe > max_nfe]
    choice = ok[0] if ok else None
    note = "" if used == K else f" (evidence from K={used}, the largest measured K ≤ {K})"
    if choice is None:
        reason = f"no measured candidate fits {max_nfe} evaluations per chunk{note}"
    else:
        what = "coverage × balance" if need_all_modes else "coverage"
        reason = (f"{choice.label}: highest measured {what} = {choice.score(need_all_modes):.2f} "
                  f"within {max_nfe} evaluation(s) per chunk{note}")
    return Recommendation(K, max_nfe, need_all_modes, choice, ok, excluded, reason)


def recommend_across_seeds(evidence: Evidence, setting: tuple[str, int, float], seeds: Sequence[int],
                           max_nfe: int = 16, need_all_modes: bool = True) -> dict[int, Recommendation]:
    """:func:`recommend` for one of chapter 7's settings ``(task, K, Δc)``, once per training seed: what
    each trained model would advise for ``K`` modes. ``evidence.seed``'s rows come from ``evidence``; the
    other seeds' cells from :func:`mbc_lib.experiments.grid.run_grid` (read from the cache when chapter 7
    computed them, else trained here). Returns {seed: recommendation}, in the order of ``seeds``."""
    from .grid import run_grid

    task, K, delta = str(setting[0]), int(setting[1]), float(setting[2])
    mine = lambda r: (r["task"], int(r["K"]), float(r["delta"])) == (task, K, delta)  # noqa: E731
    by_seed: dict[int, Rows] = {int(evidence.seed): [r for r in evidence.rows("synthetic") if mine(r)]}
    others = [int(s) for s in seeds if int(s) != int(evidence.seed)]
    if others:
        more = run_grid("synthetic", others, profile=evidence.profile, use_cache=True, settings=[(task, K, delta)])
        if more.failed:
            raise RuntimeError("chapter 7's cells failed: " + "; ".join(f"{f.cell.label}: {f.error}" for f in more.failed))
        for s, rows in more.by_seed().items():
            by_seed[s] = rows
    if not by_seed[int(evidence.seed)]:
        raise ValueError(f"chapter 7's table at seed {evidence.seed} has no setting {setting!r}")
    return {int(s): recommend(Evidence(evidence.profile, int(s), {"synthetic": by_seed[int(s)]}), K, max_nfe,
                              need_all_modes) for s in seeds}


def default_executor(profile: str | None = None) -> str:
    """The executor chapter 8 runs first, and its tables and figures show: the first of the profile's
    ``BUDGETS["robot"]["executors"]`` (whole chunks)."""
    return budget("robot", profile)["executors"][0]


def robot_scorecard(evidence: Evidence) -> Rows:
    """Chapter 8's table per policy (the expert first), averaged over its tasks and K at its default
    executor (:func:`default_executor`): success rate, the task's failure rate, modes used, the smallest
    mode's share of the successes, and ``nfe``, the sequential network evaluations per chunk query (the latency
    price; NaN for the expert and in tables that predate the column). Empty when chapter 8's table is missing."""
    default = default_executor(evidence.profile)
    rows = [r for r in evidence.rows("robot") if r.get("policy") == "expert" or r.get("executor") == default]
    out = []
    for label in dict.fromkeys(r["policy"] for r in rows):
        rs = [r for r in rows if r["policy"] == label]
        mean = lambda k: float(np.nanmean([_num(r, k, 0.0) for r in rs]))  # noqa: E731
        nfes = [v for v in (_num(r, "nfe") for r in rs) if not math.isnan(v)]
        out.append({"policy": label, "family": rs[0].get("family", label), "success": mean("success_rate"),
                    "failure": mean("failure_rate"), "modes_used": mean("modes_used"),
                    "min_mode_fraction": mean("min_mode_fraction"),
                    "nfe": max(nfes, default=math.nan), "n_tables": len(rs)})
    return out


def executor_effect(evidence: Evidence, other: str = "ensemble m=0.01", base: str | None = None,
                    families: Sequence[str] = ("cvae", "vq", "mixture", "diffusion", "flow", "autoregressive")) -> Rows:
    """Chapter 8's executor comparison: one row per (task, K, policy of ``families``) measured with both
    ``base`` (default: chapter 8's default executor, whole chunks) and ``other``, with both success rates,
    failure rates and modes used, and ``change`` = +1 / −1 / 0 when ``other`` raised / lowered / kept the
    success rate (:func:`mbc_lib.experiments.tables.executor_effect`). Empty when chapter 8's table lacks
    either executor."""
    base = default_executor(evidence.profile) if base is None else base
    return [r for r in _executor_effect(evidence.rows("robot"), other, base) if r["family"] in families]
