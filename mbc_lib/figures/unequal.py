"""Figures and tables of the unequal-modes experiment (:mod:`mbc_lib.experiments.unequal`, chapter 10)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .common import OFF_SUPPORT_COLOR, mode_color, plot_chunks

__all__ = ["plot_unequal", "plot_samples", "format_table"]


def plot_unequal(result) -> plt.Figure:
    """Left: per family, the share of samples in each mode (95% Wilson intervals) against the demonstrated
    weights π_k (dashes) and the share in no mode. Right: the CVAE's bookkeeping per mode — the weight π_k, the
    aggregate-posterior mass q̄(A_k) and the prior mass m_k = p(A_k) of the latent set A_k where mode k's posteriors
    are the likeliest explanation, the prior
    mass of mode k's 95% ellipse, the share under posterior sampling (teacher forcing) and the share under prior
    sampling (deployment)."""
    fams = list(result.families)
    K = result.K
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 3.9), gridspec_kw=dict(width_ratios=[1.7, 1]))
    cats = list(range(K)) + [-1]
    width = 0.8 / len(cats)
    x = np.arange(len(fams))
    for i, k in enumerate(cats):
        off = (i - (len(cats) - 1) / 2) * width
        vals = np.array([result.families[f].mass[k] if k >= 0 else result.families[f].off_support for f in fams])
        ci = np.array([result.families[f].mass_ci[k] if k >= 0 else result.families[f].off_ci for f in fams])
        a1.bar(x + off, vals, width, color=mode_color(k), edgecolor="k", linewidth=0.4,
               label=f"mode {k} (π = {result.weights[k]:g})" if k >= 0 else "in no mode")
        a1.errorbar(x + off, vals, yerr=[np.maximum(vals - ci[:, 0], 0), np.maximum(ci[:, 1] - vals, 0)], fmt="none",
                    ecolor="k", capsize=2, lw=0.8)
        if k >= 0:
            a1.hlines(np.full(len(x), result.weights[k]), x + off - width / 2, x + off + width / 2, colors="k", lw=2.2)
    a1.set_xticks(x, fams, fontsize=9)
    a1.set(ylabel="fraction of samples", ylim=(0, 1.0), title="per-mode mass against the demonstrated weights (black dashes)")
    a1.legend(fontsize=8, loc="upper right", frameon=True, framealpha=0.9)
    lat, cv = result.latent, result.families["cvae"]
    series = [("weight $\\pi_k$", result.weights, "k"), (r"$\bar q(A_k)$", lat.qbar, "#17becf"),
              ("prior mass $m_k = p(A_k)$", lat.partition, "#1f77b4"),
              ("95% ellipse mass", lat.ellipse, "#9467bd"), ("posterior sampling", lat.posterior, "#2ca02c"),
              ("prior sampling (deployed)", cv.mass, OFF_SUPPORT_COLOR)]
    w = 0.8 / len(series)
    xk = np.arange(K)
    for i, (label, vals, color) in enumerate(series):
        a2.bar(xk + (i - (len(series) - 1) / 2) * w, vals, w, color=color, alpha=0.8, label=label, edgecolor="k",
               linewidth=0.3)
    a2.set_xticks(xk, [f"mode {k}" for k in range(K)])
    a2.set(ylabel="mass", ylim=(0, 0.8), title=rf"cvae ($\beta$ = {lat.beta / lat.beta_star:g}$\beta^*$): where each mode's mass goes")
    a2.legend(fontsize=7, loc="upper right", frameon=True, framealpha=0.9)
    fig.tight_layout()
    return fig


def plot_samples(result, family: str) -> plt.Figure:
    """Chunks of ``family`` at s = 0 (colour = mode, red = in no mode) over the demonstrations (grey)."""
    fig, ax = plt.subplots(figsize=(4.8, 3.2))
    plot_chunks(ax, result.samples["demos"], color="0.7", alpha=0.3)
    plot_chunks(ax, result.samples[family], labels=result.labels[family], alpha=0.5)
    c = result.families[family]
    ax.set_ylabel("lateral position")
    ax.set_title(f"{family}: " + ", ".join(f"mode {k} {m:.0%}" for k, m in enumerate(c.mass))
                 + f", none {c.off_support:.0%}", fontsize=9)
    fig.tight_layout()
    return fig


def format_table(result) -> str:
    """A Markdown table: per family, each mode's share with its 95% Wilson interval, and the share in no mode."""
    K = result.K
    head = ["family"] + [f"mode {k} (π = {result.weights[k]:g})" for k in range(K)] + ["in no mode"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (K + 1)]
    for fam, c in result.families.items():
        ci = c.mass_ci
        cells = [f"{c.mass[k]:.3f} [{ci[k, 0]:.3f}, {ci[k, 1]:.3f}]" for k in range(K)]
        lines.append(f"| {fam} | " + " | ".join(cells) + f" | {c.off_support:.3f} |")
    return "\n".join(lines)
