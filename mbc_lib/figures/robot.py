"""Chapter 8's figures, tables, sentences and videos: outcomes per policy, trajectories, executors
(:mod:`mbc_lib.experiments.robot`). Mode colours here are the rendered scenes' (:func:`scene_color`)."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from .. import envs
from ..experiments.robot import RobotSweep, env_id, modes_used, row_of, short_name, summary
from .common import OFF_SUPPORT_COLOR

__all__ = [
    "MODE_NOUN", "count_words", "modes_sentence", "outcome_table", "scene_color", "plot_outcomes",
    "plot_trajectories", "plot_family_grid", "plot_executors", "video",
]

#: what one mode of each task is called in the text
MODE_NOUN: dict[str, str] = {"PathGaps": "gap", "PushDivider": "bin", "PushBins": "bin"}


def count_words(m: int, K: int, noun: str) -> str:
    """``m`` of ``K`` modes in words: "both gaps", "all 3 bins", "one gap only", "2 of 3 gaps", "no gap"."""
    if not 0 <= m <= K:
        raise ValueError(f"modes used must lie in [0, K={K}], got {m}")
    if m == 0:
        return f"no {noun}"
    if m == K:
        return f"the one {noun}" if K == 1 else f"both {noun}s" if K == 2 else f"all {K} {noun}s"
    return f"one {noun} only" if m == 1 else f"{m} of {K} {noun}s"


def _names(items: Sequence[str]) -> str:
    items = [f"`{x}`" for x in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def modes_sentence(rows: list[dict[str, Any]], env: str, labels: Sequence[str], executor_label: str = "whole chunk",
                   K: int = 2) -> str:
    """One Markdown sentence saying which of ``labels`` used every mode of ``env`` and which did not,
    grouped by the number of modes used (most first), e.g. "On `PathGaps`, `vq` and `mixture` used
    both gaps; `flow` used one gap only; `cvae` used no gap." Read from :func:`summary` rows."""
    e = short_name(env)
    used = modes_used(rows, e, labels, executor_label, K)
    noun = MODE_NOUN.get(e, "mode")
    clauses = []
    for m in sorted(set(used.values()), reverse=True):
        group = [lab for lab in labels if used[lab] == m]
        clauses.append(f"{_names(group)} used {count_words(m, K, noun)}")
    return f"On `{e}`, " + "; ".join(clauses) + "."


def outcome_table(rows: list[dict[str, Any]], envs_: Sequence[str], labels: Sequence[str],
                  executor_label: str = "whole chunk", K: int = 2) -> str:
    """A Markdown table of :func:`summary` rows: one line per policy (the expert first), per task the
    success rate with its 95% Wilson interval, the share of episodes succeeding through each mode,
    the modes used (of K) and the rate of the task's failure flag; the NFE column is each policy's
    sequential network evaluations per chunk query ("—" for the expert and for tables without it)."""
    env_list = [short_name(e) for e in envs_]
    head, rule = ["policy", "NFE"], ["---", "---:"]
    for e in env_list:
        fail = envs.make_env_task(env_id(e), K=K).failure_key.replace("_", " ")
        noun = MODE_NOUN.get(e, "mode")
        head += [f"{e}: success [95% CI]", f"via {noun} " + " / ".join(str(k) for k in range(K)), f"{noun}s used", fail]
        rule += ["---:"] * 4
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(rule) + "|"]
    for lab in ["expert", *labels]:
        per_env = [row_of(rows, e, K, lab, executor_label) for e in env_list]
        nfe = per_env[0].get("nfe", np.nan) if per_env else np.nan
        cells = [f"`{lab}`", "—" if nfe is None or not np.isfinite(nfe) else f"{nfe:.0f}"]
        for r in per_env:
            fr = r["failure_rate"]
            cells += [f"{r['success_rate']:.0%} [{r['success_lo']:.2f}, {r['success_hi']:.2f}]",
                      " / ".join(f"{r[f'mode{k}_rate']:.0%}" for k in range(K)), f"{r['modes_used']} of {K}",
                      "—" if fr is None or not np.isfinite(fr) else f"{fr:.0%}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# figures and videos
# ---------------------------------------------------------------------------------------
def scene_color(k: int) -> tuple[float, ...]:
    """The colour of gap/bin ``k`` as the rendered scenes draw it (:data:`mbc_lib.envs.MODE_COLORS`)."""
    return envs.MODE_COLORS[k % len(envs.MODE_COLORS)][:3]


def _outcomes(row: dict[str, Any], K: int) -> tuple[list[float], float, float]:
    modes = [row[f"mode{k}_rate"] for k in range(K)]
    fail = 0.0 if not np.isfinite(row["failure_rate"]) else row["failure_rate"]
    return modes, fail, max(0.0, 1.0 - sum(modes) - fail)


def plot_outcomes(result: RobotSweep, executor_label: str | None = None, K: int | None = None) -> plt.Figure:
    """One panel per task: for each policy a bar split into episodes that succeeded through each mode
    (mode colours), ended with the task's failure (red), or timed out (grey); whiskers: the 95%
    Wilson interval of the success rate."""
    ex = executor_label or result.executors[0]
    K = K or result.Ks[0]
    rows = {(r["env"], r["policy"]): r for r in summary(result) if r["K"] == K and r["executor"] in (ex, "scripted")}
    env_list = result.envs
    names = ["expert", *result.labels]
    fig, axes = plt.subplots(1, len(env_list), figsize=(5.2 * len(env_list), 3.4), squeeze=False)
    for ax, e in zip(axes[0], env_list):
        x = np.arange(len(names))
        for i, name in enumerate(names):
            r = rows[(e, name)]
            modes, fail, other = _outcomes(r, K)
            bottom = 0.0
            for k, v in enumerate(modes):
                ax.bar(i, v, bottom=bottom, color=scene_color(k), label=f"success via mode {k}" if i == 0 else None)
                bottom += v
            ax.bar(i, fail, bottom=bottom, color=OFF_SUPPORT_COLOR,
                   label=f"failure ({r['failure']})" if i == 0 else None)
            ax.bar(i, other, bottom=bottom + fail, color="0.8", label="timed out / other" if i == 0 else None)
            err = [[max(r["success_rate"] - r["success_lo"], 0.0)], [max(r["success_hi"] - r["success_rate"], 0.0)]]
            ax.errorbar(i, r["success_rate"], yerr=err,
                        color="k", capsize=3, lw=1)
        ax.set_xticks(x, names, rotation=30, ha="right")
        ax.set(ylim=(0, 1.02), ylabel="fraction of episodes", title=f"{e}, K={K}, executor: {ex}")
    for ax in axes[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(0, -0.35), ncol=2, fontsize=8)
    fig.tight_layout()
    return fig


def _draw_scene(ax: plt.Axes, task: envs.EnvTask) -> None:
    if isinstance(task, envs.PathTask):
        edges = [-task.half_width]
        for g in task.gap_centers:
            edges += [g - task.gap_width / 2, g + task.gap_width / 2]
        edges.append(task.half_width)
        for j in range(0, len(edges), 2):
            ax.add_patch(plt.Rectangle((edges[j], task.wall_y - task.wall_half), edges[j + 1] - edges[j],
                                       2 * task.wall_half, color="0.3"))
        ax.add_patch(plt.Circle(task.target, task.target_radius, color="0.6", alpha=0.4))
        ax.set(xlim=(-task.half_width, task.half_width), ylim=task.y_range)
    else:
        for k, c in enumerate(task.bin_centers):
            ax.add_patch(plt.Circle(c, task.bin_radius, fill=False, ec=scene_color(k), lw=2))
        if hasattr(task, "dividers"):  # PushDivider: the walls between neighbouring bins
            for c, u, h in zip(*task.dividers):
                ax.plot(*np.stack([c - h * u, c + h * u]).T, color="0.3", lw=2.5, solid_capstyle="butt")
        ax.set(xlim=(-task.half_width, task.half_width), ylim=(-0.3, 0.3))
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_trajectories(result: RobotSweep, env: str, label: str, executor_label: str | None = None,
                      K: int | None = None, n_show: int = 32, ax: plt.Axes | None = None) -> plt.Figure:
    """Top-down paths of the effector (PathGaps) or the puck (the push tasks), coloured by the mode of a
    successful episode, red for the task's failure, grey otherwise."""
    ex = executor_label or result.executors[0]
    K = K or result.Ks[0]
    e = short_name(env)
    task = envs.make_env_task(env_id(e), K=K)
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(3.6, 3.0))
    _draw_scene(ax, task)
    if label == "expert":
        traj = result.experts[(e, K)][:n_show]
        paths = [(t.qpos, t.mode_used if t.success else -2) for t in traj]
        title = "expert"
    else:
        r = result.results[(e, K, label, ex)]
        paths = [(q, int(m) if s else (-1 if f else -2))
                 for q, m, s, f in zip(r.qpos[:n_show], r.modes, r.success, r.failures)]
        title = f"{label}: {r.success_rate:.0%} success, {r.failure_key} {r.failures.mean():.0%}"
    cols = slice(0, 2) if isinstance(task, envs.PathTask) else slice(2, 4)  # effector / puck position
    for q, k in paths:
        ax.plot(q[:, cols][:, 0], q[:, cols][:, 1], lw=1, alpha=0.7,
                color="0.6" if k == -2 else (OFF_SUPPORT_COLOR if k == -1 else scene_color(k)))
    ax.set_title(title, fontsize=8)
    return fig if fig is not None else ax.figure


def plot_family_grid(result: RobotSweep, env: str, executor_label: str | None = None, K: int | None = None,
                     n_show: int = 24) -> plt.Figure:
    """:func:`plot_trajectories` for the expert and every policy on one task, side by side."""
    names = ["expert", *result.labels]
    ncols = 4
    nrows = math.ceil(len(names) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.0 * ncols, 2.6 * nrows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        plot_trajectories(result, env, name, executor_label, K, n_show=n_show, ax=ax)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.suptitle(f"{short_name(env)}: paths of {'the effector' if short_name(env) == 'PathGaps' else 'the puck'} "
                 f"(colour: mode of a success; red: {envs.make_env_task(env_id(env)).failure_key}; grey: timed out)",
                 fontsize=10)
    fig.tight_layout()
    return fig


def plot_executors(result: RobotSweep, K: int | None = None) -> plt.Figure:
    """Per task: success rate of every policy (groups) under every executor (bars, with the 95% Wilson
    interval); the black tick on each bar is the task's failure rate (collision / between bins)."""
    K = K or result.Ks[0]
    rows = [r for r in summary(result) if r["K"] == K and r["policy"] != "expert"]
    exs = list(result.executors)
    labels = list(result.labels)
    width = 0.8 / len(exs)
    fig, axes = plt.subplots(len(result.envs), 1, figsize=(1.25 * len(labels) + 1.5, 2.7 * len(result.envs)),
                             squeeze=False, sharex=True)
    for ax, e in zip(axes[:, 0], result.envs):
        for j, ex in enumerate(exs):
            by = {r["policy"]: r for r in rows if r["env"] == e and r["executor"] == ex}
            x = np.arange(len(labels)) + (j - (len(exs) - 1) / 2) * width
            succ = np.array([by[lab]["success_rate"] for lab in labels])
            err = np.clip([[succ[i] - by[lab]["success_lo"], by[lab]["success_hi"] - succ[i]]
                           for i, lab in enumerate(labels)], 0, None).T
            ax.bar(x, succ, width, yerr=err, capsize=2, color=f"C{j}", label=ex, error_kw=dict(lw=0.7))
            fail = [by[lab]["failure_rate"] for lab in labels]
            ax.scatter(x, fail, marker="_", s=120, color="k", lw=1.5, zorder=3,
                       label="failure rate" if j == 0 else None)
        ax.set(ylim=(0, 1.05), ylabel="fraction of episodes", title=f"{e}, K={K}: success per executor")
        ax.grid(axis="y", alpha=0.3)
    axes[-1, 0].set_xticks(np.arange(len(labels)), labels, rotation=20)
    axes[0, 0].legend(fontsize=8, ncol=len(exs) + 1, loc="lower center", bbox_to_anchor=(0.5, 1.12))
    fig.tight_layout()
    return fig


def video(result: RobotSweep, env: str, labels: str | Sequence[str], executor_label: str | None = None,
          K: int | None = None, n: int = 4, size: tuple[int, int] = (96, 128), every: int = 2,
          max_frames: int = 50) -> np.ndarray:
    """Frames ``[T, H', W', 3]``: one row per policy in ``labels`` (``"expert"`` allowed) with its first
    ``n`` recorded episodes side by side, every ``every``-th control step (at most ``max_frames``),
    rendered at ``size`` (:func:`mbc_lib.envs.tile_videos`); play with :func:`mbc_lib.envs.show_video`."""
    ex = executor_label or result.executors[0]
    K = K or result.Ks[0]
    e = short_name(env)
    task = envs.make_env_task(env_id(e), K=K)
    clips = []
    for label in [labels] if isinstance(labels, str) else labels:
        if label == "expert":
            qpos = [t.qpos for t in result.experts[(e, K)][:n]]
        else:
            qpos = result.results[(e, K, label, ex)].qpos[:n]
        clips += [envs.render_trajectory(task, q[::every][:max_frames], height=size[0], width=size[1]) for q in qpos]
    return envs.tile_videos(clips, ncols=n)
