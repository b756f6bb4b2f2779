"""Chapter 11's figures: the scorecard, chapter 8's robots, the recommendation within an NFE budget, and
the decision chart whose leaves quote the measurements (:mod:`mbc_lib.experiments.guidance`)."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

from ..experiments.guidance import FAMILIES, Candidate, Evidence, candidates, recommend, robot_scorecard
from .common import mode_color

__all__ = ["plot_scorecard", "plot_robot", "plot_recommendation", "plot_chart"]


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
    """Chapter 8's success and failure rate per policy (:func:`robot_scorecard`), each named with its
    network evaluations per chunk query."""
    robot = robot_scorecard(evidence)
    fig, ax = plt.subplots(figsize=(8.5, 3.6))
    x = np.arange(len(robot))
    ax.bar(x - 0.2, [r["success"] for r in robot], 0.4, label="success")
    ax.bar(x + 0.2, [r["failure"] for r in robot], 0.4, label="collision / between bins", color="C3")
    nfe = lambda r: "" if math.isnan(r.get("nfe", math.nan)) else f"\n{int(r['nfe'])} NFE"  # noqa: E731
    ax.set_xticks(x, [r["policy"] + nfe(r) for r in robot], rotation=20, fontsize=8)
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
