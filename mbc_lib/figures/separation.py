"""Figures of the separation sweep (:mod:`mbc_lib.experiments.separation`, chapter 10)."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

from .common import plot_chunks

__all__ = ["FAMILY_STYLE", "plot_separation", "plot_samples", "format_table"]

#: one colour and marker per family
FAMILY_STYLE = {
    "regression": ("0.35", "o"), "cvae": ("#1f77b4", "s"), "vq": ("#8c564b", "P"), "mixture": ("#2ca02c", "^"),
    "diffusion": ("#9467bd", "D"), "flow": ("#d62728", "v"), "autoregressive": ("#ff7f0e", "X"),
}
_REGIME_SHADE = {"overlapping": "#f2dede", "close": "#fcf8e3", "separated": "#dff0d8", "unimodal": "#eeeeee"}


def _regime_bands(ax, result) -> None:
    """Shade the x-range of each regime (the true modes' regime, changing halfway between two gaps) and name it
    once, at the bottom of its band."""
    gaps = [r.gap for r in result.gaps]
    edges = [gaps[0] - 0.5] + [(a + b) / 2 for a, b in zip(gaps, gaps[1:])] + [gaps[-1] + 0.5]
    bands: list[list] = []
    for r, lo, hi in zip(result.gaps, edges, edges[1:]):
        ax.axvspan(lo, hi, color=_REGIME_SHADE.get(r.regime, "white"), lw=0, zorder=0)
        if bands and bands[-1][0] == r.regime:
            bands[-1][2] = hi
        else:
            bands.append([r.regime, lo, hi])
    for name, lo, hi in bands:
        ax.text((lo + hi) / 2, 0.01, name, transform=ax.get_xaxis_transform(), ha="center", va="bottom", fontsize=7,
                color="0.35", style="italic")


def plot_separation(result) -> plt.Figure:
    """Against the gap Δ/σ between the two mode regions (shaded: overlapping, close, separated). Top left: the
    share of samples in no mode per family (95% Wilson intervals) and, dashed, the isoperimetric floor of the
    transport families at their L̂. Top right: the middle mass — samples between the two modes — against the
    demonstrations' own. Bottom: β* of the CVAE's loss and the measured collapse point (β at which E KL falls
    below 0.02 nats), with the β the CVAE family is trained at."""
    gaps = np.array([r.gap for r in result.gaps])
    fig = plt.figure(figsize=(11, 7.6))  # two panels on top, the thresholds below: readable at a book page's width
    grid = fig.add_gridspec(2, 2)
    a1, a2, a3 = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, :])
    for ax in (a1, a2, a3):
        _regime_bands(ax, result)
    for fam in result.families:
        color, marker = FAMILY_STYLE.get(fam, ("k", "o"))
        covs = [r.families[fam] for r in result.gaps]
        off = np.array([c.off_support for c in covs])
        ci = np.array([c.off_ci for c in covs])
        a1.errorbar(gaps, off, yerr=[np.maximum(off - ci[:, 0], 0), np.maximum(ci[:, 1] - off, 0)], color=color,
                    marker=marker, capsize=2, lw=1.3, label=fam)
        a2.plot(gaps, [c.middle for c in covs], color=color, marker=marker, lw=1.3, label=fam)
        floors = np.array([c.floor for c in covs], dtype=float)
        if np.any(np.isfinite(floors)):
            a1.plot(gaps, floors, ls="--", color=color, lw=1.0, label=f"{fam}: floor at $\\hat L$")
    a2.plot(gaps, [r.demo_middle for r in result.gaps], "k--", lw=1.5, label="demonstrations")
    a1.set(xlabel=r"gap $\Delta/\sigma$", ylabel="fraction of samples in no mode", ylim=(-0.03, 1.03),
           title="off-support mass (the mechanisms' measure)")
    a2.set(xlabel=r"gap $\Delta/\sigma$", ylabel="fraction in the middle half between the modes", ylim=(-0.03, 1.03),
           title="middle mass: averaging and bridging, threshold-free")
    star = np.array([r.beta_star for r in result.gaps])
    collapse = np.array([r.collapse_ratio * r.beta_star for r in result.gaps])
    a3.plot(gaps, star, "k-o", lw=1.8, label=r"$\beta^*$ (collapse is the optimum above it)")
    shown = np.where(np.isfinite(collapse) & (collapse > 0), collapse, np.nan)
    a3.plot(gaps, shown, "s--", color="#1f77b4", lw=1.5, label="measured collapse point")
    a3.plot(gaps, result.cvae_ratio * star, ":", color="0.4", lw=1.2,
            label=rf"$\beta$ of the cvae family ({result.cvae_ratio:g}$\beta^*$)")
    lo = min(result.collapse_ratios)
    for g, r in zip(gaps, result.gaps):
        if r.collapse_ratio == 0:  # collapsed already at the smallest β of the grid
            a3.annotate("", xy=(g, lo * r.beta_star * 0.6), xytext=(g, lo * r.beta_star),
                        arrowprops=dict(arrowstyle="->", color="#1f77b4"))
    a3.set_yscale("log")
    a3.set(xlabel=r"gap $\Delta/\sigma$", ylabel=r"KL weight $\beta$ (the cvae's loss units)",
           title="latent mechanism: where the CVAE collapses")
    for ax in (a1, a2, a3):
        ax.legend(fontsize=7, loc="best", frameon=True, framealpha=0.85)
    fig.tight_layout()
    return fig


def plot_samples(result, gap: float) -> plt.Figure:
    """Chunks of every family at s = 0 at the sweep's gap nearest to ``gap`` (colour = mode, red = in no mode;
    grey = demonstrations)."""
    res = min(result.gaps, key=lambda r: abs(r.gap - gap))
    fams = list(result.families)
    n = len(fams)
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 2.8), sharey=True)
    for ax, fam in zip(np.atleast_1d(axes), fams):
        plot_chunks(ax, res.samples["demos"], color="0.7", alpha=0.3)
        plot_chunks(ax, res.samples[fam], labels=res.labels[fam], alpha=0.5)
        c = res.families[fam]
        ax.set_title(f"{fam}\nno mode {c.off_support:.0%}", fontsize=8)
        ax.set_xlabel("step t")
    np.atleast_1d(axes)[0].set_ylabel("lateral position")
    fig.suptitle(f"gap Δ = {res.gap:g}σ ({res.regime}; the data's diagnostic says {res.data_regime})", fontsize=9)
    fig.tight_layout()
    return fig


def format_table(result) -> str:
    """A Markdown table: per gap, the regimes, β*, the collapse point, and each family's share in no mode."""
    fams = list(result.families)
    head = ["gap Δ/σ", "regime (true / data)", "β*", "collapse at β/β*"] + fams
    lines = ["| " + " | ".join(head) + " |", "|---:|---|---:|---:|" + "---:|" * len(fams)]
    for r in result.gaps:
        cp = r.collapse_ratio
        cps = "≤ " + f"{min(result.collapse_ratios):g}" if cp == 0 else ("> " + f"{max(result.collapse_ratios):g}"
                                                                          if math.isinf(cp) else f"{cp:.2f}")
        cells = [f"{r.families[f].off_support:.0%}" for f in fams]
        lines.append(f"| {r.gap:g} | {r.regime} / {r.data_regime} | {r.beta_star:.3f} | {cps} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
