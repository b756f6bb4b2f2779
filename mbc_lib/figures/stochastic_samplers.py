"""Figures and table of the stochastic samplers (:mod:`mbc_lib.experiments.stochastic_samplers`)."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

from .common import OFF_SUPPORT_COLOR, log_scale, plot_chunks, positive_or_nan

__all__ = ["plot_bridge_and_spread", "plot_stretch_split", "plot_samples", "format_table", "format_by_eta", "setting_title"]

#: one colour per sampler step count (the first two are the 4 and 16 steps of the fast and standard grids)
_STEP_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b"]


def setting_title(task: str, K: int) -> str:
    return f"{task}, K = {K}"


def _settings(result) -> list[tuple[str, int]]:
    return list(result.models)


def _steps(result) -> list[int]:
    return sorted({k[3] for k in result.stats})


def _etas(result) -> list[float]:
    return sorted({k[2] for k in result.stats})


def plot_bridge_and_spread(result) -> plt.Figure:
    """One column per setting. Top: the bridge mass b̂ against η (one line per step count S, 95% Wilson
    intervals as bars) with the isoperimetric floor at the L̂ measured with respect to all the noise (open
    markers, dashed). Bottom: the within-mode spread of the samples (RMS distance to their mode's mean)
    relative to the demonstrations' σ√n (1 = as spread as the demonstrations)."""
    settings, steps, etas = _settings(result), _steps(result), _etas(result)
    fig, axes = plt.subplots(2, len(settings), figsize=(4.2 * len(settings), 5.8), sharex=True, squeeze=False)
    for j, (task, K) in enumerate(settings):
        top, bot = axes[0, j], axes[1, j]
        for i, S in enumerate(steps):
            rows = [result.get(task, K, e, S) for e in etas]
            c = _STEP_COLORS[i % len(_STEP_COLORS)]
            b = np.array([r["bridge"] for r in rows])
            err = np.clip([[r["bridge"] - r["bridge_lo"] for r in rows], [r["bridge_hi"] - r["bridge"] for r in rows]], 0, None)  # ≥ 0: an interval edge can sit a rounding error inside its estimate
            top.errorbar(etas, b, yerr=err, fmt="o-", color=c, capsize=3, label=f"S = {S} steps")
            top.plot(etas, [r["floor"] for r in rows], "o--", mfc="none", color=c, lw=0.9,
                     label=r"floor at $\hat L$" if i == 0 else None)
            bot.plot(etas, [r["spread_ratio"] for r in rows], "s-", color=c, label=f"S = {S}")
        top.set(title=setting_title(task, K), ylabel="bridge mass (no mode)" if j == 0 else None)
        top.set_ylim(bottom=0)
        bot.axhline(1.0, color="0.4", lw=0.9, ls=":")
        bot.text(etas[0], 1.0, " demonstrations", va="bottom", fontsize=8, color="0.35")
        bot.set(xlabel=r"noise scale $\eta$ (0 = DDIM, 1 = DDPM)",
                ylabel=r"within-mode spread / $\sigma\sqrt{n}$" if j == 0 else None)
        bot.set_ylim(0, max(1.15, float(np.nanmax([result.get(task, K, e, S)["spread_ratio"]
                                                   for e in etas for S in steps])) * 1.1))
        bot.set_xticks(etas)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_stretch_split(result, steps: int | None = None) -> plt.Figure:
    """Which noise the sampler is steep in: at ``steps`` (default the largest count), for each setting, L̂ with
    respect to all the noise and its Jacobian part with respect to the initial noise x_T alone and to the
    injected noise alone, against η (log axis)."""
    settings, etas = _settings(result), _etas(result)
    S = max(_steps(result)) if steps is None else int(steps)
    fig, axes = plt.subplots(1, len(settings), figsize=(4.2 * len(settings), 3.2), squeeze=False)
    for j, (task, K) in enumerate(settings):
        ax = axes[0, j]
        rows = [result.get(task, K, e, S) for e in etas]
        ax.plot(etas, positive_or_nan([r["L_hat"] for r in rows]), "o-", color="k", lw=1.8,
                label=r"$\hat L$, all the noise")
        ax.plot(etas, positive_or_nan([r["L_first"] for r in rows]), "s--", color="#1f77b4",
                label=r"initial noise $x_T$ only")
        ax.plot(etas, positive_or_nan([r["L_rest"] for r in rows]), "^--", color="#ff7f0e",
                label="injected noise only")
        log_scale(ax, "y")
        ax.set(title=f"{setting_title(task, K)}, S = {S}", xlabel=r"$\eta$",
               ylabel="stretch (task units per base unit)" if j == 0 else None)
        ax.set_xticks(etas)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_samples(result, task: str, K: int, steps: int, n: int = 96) -> plt.Figure:
    """Samples of one setting at its first observation, one panel per η: chunks as curves coloured by mode,
    off-support ones in red, with the bridge mass and the spread ratio in the title."""
    etas = _etas(result)
    fig, axes = plt.subplots(1, len(etas), figsize=(3.6 * len(etas), 3.0), sharey=True, squeeze=False)
    for ax, eta in zip(axes[0], etas):
        st = result.stats[(task, int(K), float(eta), int(steps))]
        m = st.per_obs[0]
        plot_chunks(ax, m.samples[:n], m.labels[:n], dim=-1)
        r = st.row()
        ax.set_title(f"η = {eta:g}: bridge {r['bridge']:.1%}, spread {r['spread_ratio']:.2f}", fontsize=9)
    axes[0, 0].set_ylabel("last action coordinate")
    axes[0, 0].plot([], [], color=OFF_SUPPORT_COLOR, label="in no mode")
    axes[0, 0].legend(fontsize=8, loc="upper left")
    fig.suptitle(f"{setting_title(task, K)}, S = {steps} steps", fontsize=10)
    fig.tight_layout()
    return fig


def _fmt(x: float, spec: str) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def format_table(result, steps: tuple[int, ...] | None = None) -> str:
    """A Markdown table: per setting, S and η — the bridge mass with its 95% Wilson interval, the fringe/between
    split, the within-mode spread ratio and the offset of the modes' sample means from their centres (task
    units), L̂ (all noise) and its x_T / injected parts, and the floor at L̂."""
    keep = set(_steps(result) if steps is None else steps)
    head = ("| setting | S | η | bridge (95% CI) | fringe | between | spread / σ√n | offset | L̂ | L̂ x_T "
            "| L̂ injected | floor at L̂ |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in sorted(result.rows(), key=lambda r: (r["task"], r["K"], r["steps"], r["eta"])):
        if r["steps"] not in keep:
            continue
        lines.append(
            f"| {setting_title(r['task'], r['K'])} | {r['steps']} | {r['eta']:g} | {r['bridge']:.1%} "
            f"({r['bridge_lo']:.1%}–{r['bridge_hi']:.1%}) | {r['fringe']:.1%} | {r['between']:.1%} "
            f"| {_fmt(r['spread_ratio'], '.2f')} | {_fmt(r['offset'], '.2f')} | {_fmt(r['L_hat'], '.3g')} | {_fmt(r['L_first'], '.3g')} "
            f"| {_fmt(r['L_rest'], '.3g')} | {_fmt(r['floor'], '.2%')} |")
    return head + "\n".join(lines)


def format_by_eta(result) -> str:
    """A compact Markdown table: one row per (setting, S), the bridge mass and the within-mode spread ratio at each η
    side by side (the bridge with its 95% Wilson interval)."""
    etas = _etas(result)
    head = ("| setting | S | " + " | ".join(f"bridge, η = {e:g}" for e in etas) + " | "
            + " | ".join(f"spread, η = {e:g}" for e in etas) + " |\n|---|---|" + "---|" * (2 * len(etas)) + "\n")
    lines = []
    for task, K in _settings(result):
        for S in _steps(result):
            rows = [result.get(task, K, e, S) for e in etas]
            b = " | ".join(f"{r['bridge']:.1%} ({r['bridge_lo']:.1%}–{r['bridge_hi']:.1%})" for r in rows)
            sp = " | ".join(_fmt(r["spread_ratio"], ".2f") for r in rows)
            lines.append(f"| {setting_title(task, K)} | {S} | {b} | {sp} |")
    return head + "\n".join(lines)
