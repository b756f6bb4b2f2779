"""Chapter 2's figures: chunk length and separation, and executed rollouts in the fork world
(:mod:`mbc_lib.experiments.chunking`)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import norm

from ..experiments.chunking import RolloutStats

__all__ = ["plot_separation", "plot_rollouts", "plot_executor_summary"]


def plot_separation(rows: list[dict[str, float]]) -> plt.Figure:
    """Left: Δ_c(H) against the mode diameter 2ρ(H). Right: measured vs predicted confusion."""
    H = np.array([r["H"] for r in rows])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3))
    ax1.plot(H, [r["delta_c"] for r in rows], "o-", label=r"centre distance $\Delta_c(H)$")
    ax1.plot(H, [2 * r["radius"] for r in rows], "s--", label=r"mode diameter $2\rho(H)$")
    ax1.set(xlabel="chunk length $H$", ylabel="task units", title="longer chunks separate the branches")
    ax1.legend()
    ax2.semilogy(H, [max(r["confusion"], 1e-4) for r in rows], "o",
                 label="measured (nearest centre; 0 drawn at $10^{-4}$)")
    Hf = np.linspace(H.min(), H.max(), 200)
    rate_sigma = rows[0]["delta_c"] / np.sqrt((np.arange(1, H[0] + 1) ** 2).sum())  # rate, recovered
    sigma = rows[0]["delta_c"] / (-2 * norm.ppf(rows[0]["confusion_predicted"]))
    delta_f = rate_sigma * np.sqrt(Hf * (Hf + 1) * (2 * Hf + 1) / 6)
    ax2.semilogy(Hf, np.maximum(norm.cdf(-delta_f / (2 * sigma)), 1e-4), "k-", lw=1,
                 label=r"$\Phi(-\Delta_c/2\sigma)$")
    ax2.set(xlabel="chunk length $H$", ylabel="mode confusion", ylim=(5e-5, 1), title="which mode is this chunk?")
    ax2.legend()
    fig.tight_layout()
    return fig


def plot_rollouts(stats: RolloutStats, n_show: int = 24) -> plt.Figure:
    """Executed lateral paths, and the per-step classification as bars."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3), gridspec_kw={"width_ratios": [1.6, 1]})
    T = stats.positions.shape[1]
    ax1.plot(np.arange(T), stats.positions[:n_show].T.numpy(), lw=1, alpha=0.7)
    for q in range(0, T, stats.H):
        ax1.axvline(q, color="0.85", lw=0.8, zorder=0)
    ax1.set(xlabel="time step", ylabel="lateral position x", title=f"{stats.label}, $H$={stats.H} (grey: chunk starts)")
    vals = [stats.on_branch, stats.between, stats.switches]
    ax2.bar(["on a branch", "between\nbranches", "direction\nflips"], vals, color=["#2ca02c", "#d62728", "#ff7f0e"])
    for i, v in enumerate(vals):
        ax2.text(i, v + 0.02, f"{v:.0%}", ha="center")
    ax2.set(ylim=(0, 1.1), ylabel="fraction of executed steps")
    fig.tight_layout()
    return fig


def plot_executor_summary(results: dict[tuple[int, str], RolloutStats], H: int) -> plt.Figure:
    """For one chunk length: steps between branches and direction flips, per executor."""
    labels = [lab for (h, lab) in results if h == H]
    between = [results[(H, lab)].between for lab in labels]
    flips = [results[(H, lab)].switches for lab in labels]
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(9, 3))
    ax.bar(x - 0.2, between, 0.4, label="steps between branches (averaged path)", color="#d62728")
    ax.bar(x + 0.2, flips, 0.4, label="direction flips (mode switching)", color="#ff7f0e")
    ax.set_xticks(x, labels)
    ax.set(ylabel="fraction of executed steps", ylim=(0, 1), title=f"executing the demonstrator's chunks, $H$={H}")
    ax.legend()
    fig.tight_layout()
    return fig
