"""Chapter 11: which parameterisation for which data — a decision chart backed by measurements.

Nothing is trained here. The chapter reads the tables that chapters 7 (``"synthetic"``), 8
(``"robot"``) and 9 (``"robot_modes"``) computed, through the results cache
(:mod:`mbc_lib.experiments.cache`; a missing or stale table is recomputed), and turns them into

* a **scorecard**: one :class:`Candidate` per (family, knob value) — a cvae at one β, a flow
  with a given number of sampler steps — with its measured coverage, balance across modes,
  bridge (off-support) mass, Sinkhorn divergence and, where chapter 8 measured it, robot success;
* a **recommendation** (:func:`recommend`) for data with K modes per observation and a latency
  budget of at most ``max_nfe`` network evaluations per chunk: among the candidates that fit the
  budget, the one with the best measured score — the chart is a *query* over the tables, not a
  hand-written opinion, so a different profile or seed can change its answer;
* the **decision chart** (:func:`plot_chart`), whose leaves quote the measured numbers.

Units: coverage, balance, off-support and success are fractions in [0, 1]; NFE counts network
evaluations per sampled chunk; Sinkhorn in task units².
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from ..plotting import mode_color
from ..profiles import profile as active_profile

__all__ = [
    "FAMILIES", "SOURCES", "Evidence", "Candidate", "Recommendation", "gather", "nfe", "candidates",
    "recommend", "robot_scorecard", "executor_effect", "plot_scorecard", "plot_robot", "plot_recommendation",
    "plot_chart",
]

FAMILIES = ("regression", "cvae", "vq", "mixture", "diffusion", "flow")
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
    diffusion (DDIM) and flow (Euler)."""
    if family in _ONE_SHOT:
        return 1
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
        out.append(Candidate(family, knob, value, nfe(family, value if knob == "steps" else None), mean("coverage"),
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


def robot_scorecard(evidence: Evidence) -> Rows:
    """Chapter 8's table per policy (the expert first), averaged over its tasks and K at the default
    executor (the first of :data:`mbc_lib.experiments.robot.EXECUTORS`): success rate, the task's
    failure rate, modes used and the smallest mode's share of the successes. Empty when chapter 8's
    table is missing."""
    from .robot import EXECUTORS

    default = next(iter(EXECUTORS))
    rows = [r for r in evidence.rows("robot") if r.get("policy") == "expert" or r.get("executor") == default]
    out = []
    for label in dict.fromkeys(r["policy"] for r in rows):
        rs = [r for r in rows if r["policy"] == label]
        mean = lambda k: float(np.nanmean([_num(r, k, 0.0) for r in rs]))  # noqa: E731
        out.append({"policy": label, "family": rs[0].get("family", label), "success": mean("success_rate"),
                    "failure": mean("failure_rate"), "modes_used": mean("modes_used"),
                    "min_mode_fraction": mean("min_mode_fraction"), "n_tables": len(rs)})
    return out


def executor_effect(evidence: Evidence, other: str = "ensemble m=0.01", base: str | None = None,
                    families: Sequence[str] = ("cvae", "vq", "mixture", "diffusion", "flow")) -> Rows:
    """Chapter 8's executor comparison: one row per (task, K, policy of ``families``) measured with both
    ``base`` (default: the first of :data:`mbc_lib.experiments.robot.EXECUTORS`, whole chunks) and
    ``other``, with both success rates, failure rates and modes used, and ``change`` = +1 / −1 / 0
    when ``other`` raised / lowered / kept the success rate (:func:`mbc_lib.experiments.robot.executor_effect`).
    Empty when chapter 8's table lacks either executor."""
    from .robot import EXECUTORS
    from .robot import executor_effect as _effect

    base = next(iter(EXECUTORS)) if base is None else base
    return [r for r in _effect(evidence.rows("robot"), other, base) if r["family"] in families]


# ---------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------
def _family_color(family: str) -> str:
    return mode_color(FAMILIES.index(family)) if family in FAMILIES else "grey"


def plot_scorecard(evidence: Evidence, K: int, ax: plt.Axes | None = None) -> plt.Figure:
    """The scorecard at ``K`` modes as a coloured table: one row per candidate, columns coverage,
    balance, bridge (off-support) mass and the score (green = good), with the NFE per chunk."""
    cands = candidates(evidence, K)
    cols = ("coverage", "balance", "bridge", "score")
    vals = np.array([[c.coverage, min(c.balance, 1.0), c.off_support, c.score()] for c in cands])
    good = vals.copy()
    good[:, 2] = 1 - good[:, 2]  # little bridge is good
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.2, 0.32 * len(cands) + 1.2))
    ax.imshow(good, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    for (r, c), v in np.ndenumerate(vals):
        ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(cols)), cols, fontsize=8)
    ax.set_yticks(range(len(cands)), [f"{c.label} ({c.nfe} NFE)" for c in cands], fontsize=8)
    ax.tick_params(top=True, labeltop=True, bottom=False, labelbottom=False, length=0)
    ax.set_title(f"Chapter 7's measurements, K = {K}", fontsize=9)
    return fig


def plot_robot(evidence: Evidence) -> plt.Figure:
    """Chapter 8's success and failure rate per policy (:func:`robot_scorecard`)."""
    robot = robot_scorecard(evidence)
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    x = np.arange(len(robot))
    ax.bar(x - 0.2, [r["success"] for r in robot], 0.4, label="success")
    ax.bar(x + 0.2, [r["failure"] for r in robot], 0.4, label="collision / between bins", color="C3")
    ax.set_xticks(x, [r["policy"] for r in robot], rotation=20)
    ax.set(ylim=(0, 1.05), ylabel="fraction of episodes", title="Chapter 8: both robot tasks, whole-chunk execution")
    ax.legend(fontsize=8)
    return fig


def plot_recommendation(evidence: Evidence, K: int, max_nfe: int, need_all_modes: bool = True) -> plt.Figure:
    """Every candidate's score, the ones over the latency budget greyed out, the choice outlined."""
    rec = recommend(evidence, K, max_nfe, need_all_modes)
    fig, ax = plt.subplots(figsize=(7.2, 3.8))
    if rec.choice is None and K == 1:
        ax.text(0.5, 0.5, rec.reason, ha="center", va="center", wrap=True)
        ax.set_axis_off()
        return fig
    cands = candidates(evidence, rec.ranked[0].K if rec.ranked else K)
    x = np.arange(len(cands))
    for i, c in enumerate(cands):
        fits = c.nfe <= max_nfe
        chosen = rec.choice is not None and c.label == rec.choice.label
        ax.bar(i, c.score(need_all_modes), color=_family_color(c.family) if fits else "0.85",
               edgecolor="k" if chosen else "none", lw=2.5 if chosen else 0)
        ax.text(i, c.score(need_all_modes) + 0.02, f"{c.nfe}", ha="center", fontsize=7, color="0.3")
    ax.set_xticks(x, [c.label for c in cands], rotation=40, ha="right", fontsize=7)
    ax.set(ylim=(0, 1.15), ylabel="coverage × balance" if need_all_modes else "coverage")
    ax.set_title(f"K={K}, ≤{max_nfe} NFE: {rec.reason}", fontsize=8, loc="left")
    fig.tight_layout()
    return fig


def _box(ax: plt.Axes, xy: tuple[float, float], text: str, color: str = "white") -> None:
    ax.text(*xy, text, ha="center", va="center", fontsize=7.5, wrap=True,
            bbox=dict(boxstyle="round,pad=0.4", fc=color, ec="0.3", lw=0.8))


def _arrow(ax: plt.Axes, a: tuple[float, float], b: tuple[float, float], label: str = "") -> None:
    ax.annotate("", xy=b, xytext=a, arrowprops=dict(arrowstyle="->", color="0.3", lw=0.8))
    if label:
        ax.text((a[0] + b[0]) / 2, (a[1] + b[1]) / 2, label, fontsize=7, color="0.2", ha="center",
                bbox=dict(fc="white", ec="none", pad=0.5))


def plot_chart(evidence: Evidence, K: int, slow_nfe: int = 16) -> plt.Figure:
    """The decision chart, its leaves filled by :func:`recommend` from the measurements at ``K`` modes:
    the best discrete head (a small known set of modes), the best latent policy (one evaluation) and the
    best transport policy within ``slow_nfe`` evaluations (modes not a small known set)."""
    discrete = recommend(evidence, K, 1, families=("vq", "mixture")).choice
    latent = recommend(evidence, K, 1, families=("cvae",)).choice
    transport = recommend(evidence, K, slow_nfe, families=("diffusion", "flow")).choice
    used = (discrete or latent or transport).K if (discrete or latent or transport) else K
    cands = candidates(evidence, used)
    reg = next((c for c in cands if c.family == "regression"), None)
    cvaes = [c for c in cands if c.family == "cvae"]
    strong = max(cvaes, key=lambda c: c.value) if cvaes else None
    one_step = [c for c in cands if c.knob == "steps" and c.value == 1]

    def quote(c: Candidate | None, name: bool = True) -> str:
        if c is None:
            return "(not measured)"
        head = f"{c.label}\n" if name else ""
        return f"{head}coverage {c.coverage:.2f}, balance {min(c.balance, 1):.2f}, bridge {c.off_support:.2f}, {c.nfe} NFE"

    fig, ax = plt.subplots(figsize=(11, 5.8))
    ax.set(xlim=(0, 11), ylim=(0, 6.2))
    ax.set_axis_off()
    q, leaf, check = "#eef3fb", "#e9f6ea", "#fdf0e6"
    _box(ax, (5.5, 5.8), "How many modes per observation?\n(chapter 9: cluster the demonstration chunks)", q)
    _box(ax, (1.6, 4.4), f"one → regression (L1/L2)\nwith K = {used} modes it averages:\n{quote(reg, False)}", "#f5f5f5")
    _box(ax, (6.6, 4.4), "several: a small set whose size you know\n(at most the head's components)?", q)
    _box(ax, (2.3, 2.6), f"yes → discrete head\n{quote(discrete)}", leaf)
    _box(ax, (8.4, 3.0), "no (unknown K, continuous families of chunks)\n→ latency budget per chunk?", q)
    _box(ax, (5.6, 1.6), f"1 evaluation → latent (CVAE/ACT)\n{quote(latent)}", leaf)
    _box(ax, (9.4, 1.6), f"≤ {slow_nfe} evaluations → transport\n{quote(transport)}", leaf)
    _box(ax, (5.6, 0.35), f"check: β < β*, KL ≥ Fano bound, no prior holes (ch. 3–4)\n"
                         f"past β*: {quote(strong)}", check)
    _box(ax, (9.4, 0.35), "check: bridge vs floor at $\\hat L$ (ch. 6)\n"
                         + (f"1 step = regression: bridge {one_step[0].off_support:.2f}" if one_step else ""), check)
    _arrow(ax, (4.6, 5.45), (2.2, 4.95), "K = 1")
    _arrow(ax, (6.0, 5.45), (6.5, 4.85), "K ≥ 2")
    _arrow(ax, (5.4, 4.05), (3.0, 3.1), "yes")
    _arrow(ax, (7.6, 4.05), (8.3, 3.45), "no")
    _arrow(ax, (7.7, 2.65), (6.2, 2.05), "1")
    _arrow(ax, (8.8, 2.65), (9.3, 2.05), f"≤ {slow_nfe}")
    _arrow(ax, (5.6, 1.15), (5.6, 0.75))
    _arrow(ax, (9.4, 1.15), (9.4, 0.75))
    ax.set_title(f"Which parameterisation for which data: leaves quote chapter 7 at K = {used} "
                 f"({evidence.profile} profile, seed {evidence.seed})", fontsize=9)
    return fig
