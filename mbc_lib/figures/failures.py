"""Chapters 8–9's failure figures and tables: why each policy's rollouts fail (stacked bars beside success)
and how often it switches modes, against the chunk length and the executor, free and committed
(:mod:`mbc_lib.experiments.failures`). Everything here reads the experiment's :func:`summary` rows."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from ..envs.attribution import CAUSES
from ..experiments.failures import rows_where

__all__ = ["CAUSE_COLORS", "CAUSE_NAMES", "plot_split", "plot_switching", "split_table", "switch_table"]

#: colour of each bar segment: success, then the causes of failure
CAUSE_COLORS: dict[str, str] = {
    "success": "#4c9a2a", "averaged": "#d62728", "off-support": "#f4a3a3", "bridge": "#9467bd", "switch": "#ff7f0e",
    "drift": "#7f7f7f", "unattributed": "#d9d9d9",
}
#: how each cause is named in legends and tables
CAUSE_NAMES: dict[str, str] = {
    "success": "success", "averaged": "averaged chunk", "off-support": "off-support chunk", "bridge": "bridge chunk",
    "switch": "mode switch", "drift": "drift off the demos", "unattributed": "unattributed",
}


def _col(cause: str) -> str:
    return f"cause_{cause.replace('-', '_')}"


def _one(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    found = rows_where(rows, **match)
    return found[0] if found else None


def _main_H(rows: list[dict[str, Any]]) -> int:
    return next(r["H"] for r in rows if r["policy"] == "expert")


def plot_split(rows: list[dict[str, Any]], envs_: Sequence[str] | None = None, policies: Sequence[str] | None = None,
               executors: Sequence[str] = ("whole chunk",), committed: bool = False, H: int | None = None,
               axes=None):
    """Per task, one stacked bar per (policy, executor): the success rate at the bottom, then each cause's
    share of all episodes (the bar reaches 1). The expert's success is drawn first for reference.
    Returns the figure."""
    H = _main_H(rows) if H is None else H
    envs_ = list(dict.fromkeys(r["env"] for r in rows)) if envs_ is None else list(envs_)
    if policies is None:
        policies = list(dict.fromkeys(r["policy"] for r in rows if r["policy"] != "expert" and r["H"] == H))
    if axes is None:
        fig, axes = plt.subplots(1, len(envs_), figsize=(max(5.0, 0.55 * len(policies) * len(executors) + 2.5) *
                                                           len(envs_), 3.4), squeeze=False, sharey=True)
        axes = axes[0]
    fig = axes[0].figure
    for ax, e in zip(axes, envs_):
        labels, x = [], 0.0
        expert = _one(rows, env=e, policy="expert")
        if expert is not None:
            ax.bar(x, expert["success_rate"], color=CAUSE_COLORS["success"], width=0.8)
            labels.append((x, "expert"))
            x += 1.3
        for p in policies:
            for ex in executors:
                r = _one(rows, env=e, H=H, policy=p, executor=ex, committed=committed)
                if r is None:
                    continue
                bottom = r["success_rate"]
                ax.bar(x, bottom, color=CAUSE_COLORS["success"], width=0.8)
                for c in CAUSES:
                    v = r.get(_col(c), np.nan)
                    if np.isfinite(v) and v > 0:
                        ax.bar(x, v, bottom=bottom, color=CAUSE_COLORS[c], width=0.8)
                        bottom += v
                labels.append((x, p if len(executors) == 1 else f"{p}\n{ex}"))
                x += 1.0
            x += 0.3 if len(executors) > 1 else 0.0
        ax.set_xticks([t for t, _ in labels], [s for _, s in labels], rotation=45, ha="right", fontsize=8)
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{e}, H = {H}" + (", committed" if committed else ""))
        ax.grid(axis="x", visible=False)
    axes[0].set_ylabel("fraction of episodes")
    handles = [plt.Rectangle((0, 0), 1, 1, color=CAUSE_COLORS[k]) for k in CAUSE_COLORS]
    fig.legend(handles, [CAUSE_NAMES[k] for k in CAUSE_COLORS], loc="upper center", ncol=len(CAUSE_COLORS),
               fontsize=8, bbox_to_anchor=(0.5, 1.06))
    fig.tight_layout()
    return fig


def plot_switching(rows: list[dict[str, Any]], envs_: Sequence[str] | None = None,
                   policies: Sequence[str] | None = None, metric: str = "switches_per_episode", axes=None):
    """Grid (task × policy): ``metric`` (switches per episode, or ``success_rate``) against the chunk length
    H, one colour per executor, solid free and dashed committed once per episode. Returns the figure."""
    envs_ = list(dict.fromkeys(r["env"] for r in rows)) if envs_ is None else list(envs_)
    if policies is None:  # the policies measured at more than one H
        hs: dict[str, set[int]] = {}
        for r in rows:
            if r["policy"] != "expert":
                hs.setdefault(r["policy"], set()).add(r["H"])
        policies = [p for p, h in hs.items() if len(h) > 1]
    executors = list(dict.fromkeys(r["executor"] for r in rows if r["policy"] in policies))
    if axes is None:
        fig, axes = plt.subplots(len(envs_), len(policies), figsize=(3.3 * len(policies) + 0.8, 2.7 * len(envs_)),
                                 squeeze=False, sharex=True)
    fig = axes[0][0].figure
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, e in enumerate(envs_):
        for j, p in enumerate(policies):
            ax = axes[i][j]
            for c, ex in enumerate(executors):
                for committed, style in ((False, "-"), (True, "--")):
                    pts = sorted((r["H"], r[metric]) for r in rows_where(rows, env=e, policy=p, executor=ex,
                                                                          committed=committed))
                    if pts:
                        ax.plot(*zip(*pts), style, marker="o", ms=3, color=colors[c % len(colors)],
                                label=f"{ex}{', committed' if committed else ''}")
            ax.set_xscale("log", base=2)
            Hs = sorted({r["H"] for r in rows_where(rows, env=e, policy=p)})
            ax.set_xticks(Hs, [str(h) for h in Hs])
            ax.minorticks_off()
            ax.set_title(f"{p} on {e}")
            if metric == "success_rate":
                ax.set_ylim(-0.02, 1.02)
            if i == len(envs_) - 1:
                ax.set_xlabel(r"chunk length $H$")
            if j == 0:
                ax.set_ylabel("switches per episode" if metric == "switches_per_episode" else metric.replace("_", " "))
    h, lab = axes[0][0].get_legend_handles_labels()
    fig.legend(h, lab, loc="upper center", ncol=3, fontsize=8, bbox_to_anchor=(0.5, 1.08))
    fig.tight_layout()
    return fig


def split_table(rows: list[dict[str, Any]], envs_: Sequence[str] | None = None, policies: Sequence[str] | None = None,
                executor: str = "whole chunk", committed: bool = False, H: int | None = None) -> str:
    """A Markdown table: per policy and task, the success rate and the failures' split (percent of all
    episodes: averaged / off-support / bridge / switch / drift / unattributed) and the share of the
    failures that the paper's two mechanisms explain: collapse (averaged or off-support chunks) and
    transport (bridge chunks), the rows' ``collapse_share``."""
    H = _main_H(rows) if H is None else H
    envs_ = list(dict.fromkeys(r["env"] for r in rows)) if envs_ is None else list(envs_)
    if policies is None:
        policies = list(dict.fromkeys(r["policy"] for r in rows if r["policy"] != "expert" and r["H"] == H))
    head = ["policy"] + [f"{e}: {k}" for e in envs_ for k in ("success", "avg / off / bridge / switch / drift / other",
                                                              "collapse + bridge")]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for p in ["expert", *policies]:
        cells = [f"`{p}`"]
        for e in envs_:
            r = _one(rows, env=e, policy="expert") if p == "expert" else _one(rows, env=e, H=H, policy=p,
                                                                             executor=executor, committed=committed)
            if r is None:
                cells += ["—"] * 3
                continue
            cells.append(f"{r['success_rate']:.0%}")
            if p == "expert":
                cells += ["—", "—"]
                continue
            cells.append(" / ".join(f"{100 * r[_col(c)]:.0f}" for c in CAUSES))
            m = r.get("collapse_share", np.nan)
            cells.append("—" if not np.isfinite(m) else f"{m:.0%}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def switch_table(rows: list[dict[str, Any]], env: str, policy: str) -> str:
    """A Markdown table for one policy on one task: switches per episode and success per chunk length H
    (rows) and executor, free → committed (free only for an executor measured without commitment)."""
    sel = rows_where(rows, env=env, policy=policy)
    Hs = sorted({r["H"] for r in sel})
    executors = list(dict.fromkeys(r["executor"] for r in sel))
    both = {ex: bool(rows_where(sel, executor=ex, committed=True)) for ex in executors}
    head = ["H"] + [f"{ex}: {m}" + (" (free → committed)" if both[ex] else "") for m in ("switches", "success")
                    for ex in executors]
    lines = ["| " + " | ".join(head) + " |", "|---:" * len(head) + "|"]
    for H in Hs:
        cells = [str(H)]
        for metric, fmt in (("switches_per_episode", "{:.2f}"), ("success_rate", "{:.0%}")):
            for ex in executors:
                free = _one(sel, H=H, executor=ex, committed=False)
                com = _one(sel, H=H, executor=ex, committed=True)
                a = "—" if free is None else fmt.format(free[metric])
                b = "—" if com is None else fmt.format(com[metric])
                cells.append(f"{a} → {b}" if both[ex] else a)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
