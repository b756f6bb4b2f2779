"""Chapter 4's figures: decoded coverage and holes per variant, the latent plane, and where latents
sit under the prior (:mod:`mbc_lib.experiments.prior_coverage`)."""
from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.patches import Ellipse

from ..experiments.prior_coverage import CoverageResult, decoded_map, posterior_sample_percentiles, summary
from .common import OFF_SUPPORT_COLOR, mode_color

__all__ = ["plot_coverage", "plot_latent_map", "plot_typicality"]


def plot_latent_map(res: CoverageResult, alpha: float = 0.1, state: int = 0) -> plt.Figure:
    """The latent plane at one state: background = where D(s, z) lands (mode colours, red
    off-support), the hole region q̄/p < α hatched, the prior's 1σ/2σ ellipses, posterior means
    of the demonstrations (dots) and z = 0 (+)."""
    m = decoded_map(res, state)
    ax_vals, K = m["axis"], res.eval.K
    colors = [OFF_SUPPORT_COLOR] + [mode_color(k) for k in range(K)]
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    ext = (ax_vals[0], ax_vals[-1], ax_vals[0], ax_vals[-1])
    ax.imshow(m["labels"] + 1, origin="lower", extent=ext, cmap=ListedColormap(colors), vmin=-0.5, vmax=K + 0.5,
              alpha=0.35, interpolation="nearest")
    holes = (m["log_ratio"] < math.log(alpha)).astype(float)
    if holes.any():
        ax.contourf(ax_vals, ax_vals, holes, levels=[0.5, 1.5], colors="none", hatches=["////"])
        ax.contour(ax_vals, ax_vals, holes, levels=[0.5], colors="0.3", linewidths=0.8)
    ev = res.eval
    rows = (ev.groups == state).nonzero()[:, 0][:200]
    mu = ev.mu[rows].numpy()
    for k in range(K):
        sel = ev.labels[rows].numpy() == k
        ax.scatter(mu[sel, 0], mu[sel, 1], s=10, color=mode_color(k), edgecolor="k", linewidth=0.3,
                   label=f"posterior means, mode {k}")
    mp, sp = ev.mu_p[rows[0]].numpy(), torch.exp(0.5 * ev.logvar_p[rows[0]]).numpy()
    for r in (1, 2):
        ax.add_patch(Ellipse((mp[0], mp[1]), 2 * r * sp[0], 2 * r * sp[1], fill=False, ls="--", color="k", lw=0.9))
    ax.plot([0], [0], "k+", ms=14, mew=2.5, label="$z = 0$")
    hole = res.hole_mass(alpha) if f"hole_{alpha:g}" in res.holes else float("nan")
    ax.set(xlim=ext[:2], ylim=ext[2:], xlabel="$z_1$", ylabel="$z_2$", aspect="equal",
           title=rf"{res.name}: hatched = hole ($\bar q/p < {alpha:g}$), $\mathrm{{Hole}}_{{{alpha:g}}}$ = {hole:.2f}" "\n"
                 f"prior samples decoded off-support: {res.eval.coverage('prior')[-1]:.0%}")
    ax.legend(fontsize=7, loc="lower right", framealpha=0.8, frameon=True)
    fig.tight_layout()
    return fig


def _ticks(ax: plt.Axes, names: Sequence[str]) -> None:
    ax.set_xticks(np.arange(len(names)), [n.replace(" (", "\n(") for n in names], fontsize=8)


def plot_coverage(results: dict[str, CoverageResult]) -> plt.Figure:
    """Theory over measurement for every variant. Left: decoded coverage c_0, c_1 and off-support
    under prior sampling (dashed: π_k = 1/2). Middle: off-support under prior and posterior
    sampling, with the bound posterior + TV(q̄, p) (◆). Right: hole masses Hole_0.1, Hole_0.5 with
    their bounds TV/(1 − α) (◆)."""
    names = list(results)
    rows = summary(results)
    x = np.arange(len(names))
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 3.9))
    covs = np.stack([results[n].eval.coverage("prior") for n in names])  # [V, K+1]
    bottom = np.zeros(len(names))
    K = covs.shape[1] - 1
    for k in [*range(K), -1]:
        ax1.bar(x, covs[:, k], 0.6, bottom=bottom, color=mode_color(k), edgecolor="k", linewidth=0.4,
                label=f"mode {k}" if k >= 0 else "off-support")
        bottom += covs[:, k]
    for j in range(1, K):
        ax1.axhline(j / K, color="k", ls="--", lw=0.8)
    ax1.set(ylabel="fraction of decoded chunks", ylim=(0, 1.0), title=r"decoded coverage $c_k$: $z \sim$ prior")
    ax1.legend(fontsize=8, loc="lower left", ncol=3, frameon=True, framealpha=0.9)
    w = 0.36
    ax2.bar(x - w / 2, [r["off_support_prior"] for r in rows], w, color=OFF_SUPPORT_COLOR, edgecolor="k",
            linewidth=0.4, label=r"$z \sim$ prior (deployment)")
    ax2.bar(x + w / 2, [r["off_support_posterior"] for r in rows], w, color="#f4a5a5", edgecolor="k",
            linewidth=0.4, hatch="...", label=r"$z \sim$ posterior (reconstruction)")
    ax2.plot(x - w / 2, [r["off_support_bound"] for r in rows], "D", color="k", ms=7,
             label=r"bound: posterior + TV$(\bar q, p)$")
    ax2.set(ylabel="off-support fraction", ylim=(0, 1.0), title="chunks in no mode")
    ax2.legend(fontsize=8, loc="upper left")
    alphas = results[names[0]].alphas
    w = 0.8 / len(alphas)
    for i, e in enumerate(alphas):
        off = (i - (len(alphas) - 1) / 2) * w
        hm = np.array([r[f"hole_{e:g}"] for r in rows])
        lo = np.array([results[n].holes[f"hole_{e:g}_low"] for n in names])
        hi = np.array([results[n].holes[f"hole_{e:g}_high"] for n in names])
        ax3.bar(x + off, hm, w, color=["0.45", "0.75"][i % 2], edgecolor="k", linewidth=0.4,
                label=rf"$\mathrm{{Hole}}_{{{e:g}}}$ measured")
        ax3.errorbar(x + off, hm, yerr=[np.maximum(hm - lo, 0), np.maximum(hi - hm, 0)], fmt="none", ecolor="k",
                     capsize=2)
        ax3.plot(x + off, [r[f"hole_{e:g}_bound"] for r in rows], "D", ms=6, color="k", mfc=["k", "w"][i % 2],
                 label=f"bound TV/(1 − {e:g})")
    ax3.set(ylabel="prior mass", ylim=(0, 1.05), title=r"holes: prior mass where $\bar q/p < \alpha$")
    ax3.legend(fontsize=8, loc="upper left", ncol=2)
    for ax in (ax1, ax2, ax3):
        _ticks(ax, names)
    fig.tight_layout()
    return fig


def plot_typicality(results: dict[str, CoverageResult]) -> plt.Figure:
    """Where latents sit under the prior, as χ²_dz percentiles F(‖(z − μ_p)/σ_p‖²) (the prior
    mass closer to the centre). Left: posterior means — z = 0 is at 0, the densest point,
    yet no prior mass is closer to the centre. Right: posterior samples (the aggregate
    posterior); prior samples give the uniform diagonal."""
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.5), sharey=True)
    styles = ["-", "--", "-.", ":", (0, (5, 1, 1, 1))]
    for i, (name, res) in enumerate(results.items()):
        for ax, c in zip(axes, (res.typicality.chi2_cdf, posterior_sample_percentiles(res))):
            c = np.sort(c)
            ax.plot(c, np.arange(1, len(c) + 1) / len(c), ls=styles[i % len(styles)], lw=2, label=name)
    for ax in axes:
        ax.plot([0, 1], [0, 1], color="0.5", lw=1, label="prior samples (uniform)")
        ax.set(xlabel=r"$\chi^2_{d_z}$ percentile (prior mass closer to the centre)", xlim=(-0.01, 1), ylim=(0, 1.01))
    axes[0].plot([0], [0], "k+", ms=14, mew=2.5, clip_on=False, label="$z = 0$")
    axes[0].set(ylabel="cumulative fraction", title="posterior means $\\mu_q(s, a)$")
    axes[1].set_title(r"posterior samples $z \sim q(z\mid s, a)$: the aggregate posterior")
    axes[0].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig
