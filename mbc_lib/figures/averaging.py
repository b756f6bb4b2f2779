"""Chapter 1's figures: what regression does with the fork's modes (:mod:`mbc_lib.experiments.averaging`)."""
from __future__ import annotations

import matplotlib.pyplot as plt

from ..experiments.averaging import AveragingResult, distances, summary
from .common import plot_chunks, plot_mode_mass

__all__ = ["plot_result", "plot_sweep", "plot_distances"]


def plot_result(res: AveragingResult) -> plt.Figure:
    """Left: demonstrations (coloured by mode) and the policy's chunks (black), drawn relative
    to the observation. Right: fraction of chunks per mode and off-support."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2), gridspec_kw={"width_ratios": [1.2, 1]})
    plot_chunks(ax1, res.demos, res.demo_labels, offset=res.obs[:, 0], alpha=0.3)
    plot_chunks(ax1, res.preds, None, offset=res.obs[:, 0], color="k", alpha=0.6, lw=2)
    ax1.set_ylabel("lateral position − s")
    ax1.set_title(rf"fork $K$={res.K}, $\Delta_c$={res.delta:g}: demos (colour) vs "
                  f"{res.loss.upper()} regression (black)")
    plot_mode_mass(ax2, {"demos": res.demo_labels, "regression": res.pred_labels}, res.K)
    ax2.set_title(f"off-support: demos {res.off_support_demos:.0%}, regression {res.off_support_policy:.0%}")
    fig.tight_layout()
    return fig


def plot_sweep(results: dict[tuple[int, float], AveragingResult]) -> plt.Figure:
    """Off-support fraction and modes reached against Δ_c, one line per K."""
    rows = summary(results)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3))
    Ks = sorted({r["K"] for r in rows})
    styles = ["o-", "s--", "^:", "D-."]
    for i, K in enumerate(Ks):
        sel = sorted((r for r in rows if r["K"] == K), key=lambda r: r["delta"])
        x = [r["delta"] for r in sel]
        kw = dict(ms=9 - 2 * i, label=f"$K$={K}")
        ax1.plot(x, [r["off_support_policy"] for r in sel], styles[i % 4], **kw)
        ax2.plot(x, [r["modes_reached"] for r in sel], styles[i % 4], **kw)
        ax2.axhline(K, color=ax2.lines[-1].get_color(), lw=0.8, alpha=0.5)
    ax1.set(xlabel=r"centre distance $\Delta_c$", ylabel="off-support fraction", ylim=(-0.05, 1.05),
            title="regression chunks in no mode")
    ax2.set(xlabel=r"centre distance $\Delta_c$", ylabel="modes reached (≥ 10% of chunks)",
            ylim=(-0.2, max(Ks) + 0.5),
            title="modes produced (thin lines: modes demonstrated)")
    ax1.legend()
    fig.tight_layout()
    return fig


def plot_distances(res: AveragingResult) -> plt.Figure:
    """Theory over measurement: distance of each regression chunk to the analytic conditional mean
    Σ_k π_k μ_k(s) and to the nearest mode centre, against ρ and the corollary's Δ_c/2."""
    d = distances(res)
    fig, ax = plt.subplots(figsize=(6, 2.8))
    ax.hist(d["to_mean"].numpy(), bins=20, alpha=0.7, label="to the conditional mean (prediction)")
    ax.hist(d["to_modes"].numpy(), bins=20, alpha=0.7, label="to the nearest mode centre")
    ax.axvline(res.task.radius, color="r", ls=":", label=r"mode radius $\rho$")
    ax.axvline(res.delta / 2, color="k", ls="--", label=r"$\Delta_c/2$ (corollary)")
    ax.set(xlabel="distance of the regression chunk (task units)", ylabel="chunks")
    ax.legend(fontsize=8, loc="upper center")
    fig.tight_layout()
    return fig
