"""The trade-off figure and table (:mod:`mbc_lib.experiments.tradeoff`, chapter 10)."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

from .common import OFF_SUPPORT_COLOR, log_ticks

__all__ = ["plot_tradeoff", "format_table", "ratio_label"]


def ratio_label(r: float) -> str:
    """β/β* as the reader says it: β*/30, β*/10, β*, 3β*."""
    if r < 1 and abs(1 / r - round(1 / r)) < 1e-6:
        return f"β*/{round(1 / r)}"
    return "β*" if abs(r - 1) < 1e-9 else f"{r:g}β*"


def plot_tradeoff(result, sweet: dict | None = None) -> plt.Figure:
    """Both sides of the trade-off against β/β* (log axis, β* marked), one column per task. Top: what the latent
    carries — Î(A;Z|S), its Fano floor B(P̂_e) and ln K (nats). Bottom: how well the prior covers what the decoder
    learned — the marginal KL (nats, right axis), TV(q̄, p), Hole_α and the share of prior samples decoded into no
    mode; on the robot also the closed-loop success rate. ``sweet``: task -> the row to mark as the sweet spot."""
    tasks = list(result.rows)
    fig, axes = plt.subplots(2, len(tasks), figsize=(5.6 * len(tasks), 6.4), sharex="col", squeeze=False)
    for j, task in enumerate(tasks):
        x = result.series(task, "ratio")
        K = int(result.rows[task][0]["K"])
        top, bot = axes[0, j], axes[1, j]
        top.plot(x, result.series(task, "mutual_information"), "o-", color="k", lw=1.8, label=r"$\hat I(A;Z\mid S)$")
        top.plot(x, result.series(task, "fano"), "s--", color="#1f77b4", label=r"Fano floor $B(\hat P_e)$")
        top.plot(x, result.series(task, "mean_kl"), "^:", color="0.45", label=r"$\mathbb{E}\,\mathrm{KL}$")
        top.axhline(math.log(K), color="0.5", lw=0.8, ls="--")
        top.text(x[0], math.log(K) * 1.03, f"ln K = {math.log(K):.2f}", fontsize=8, color="0.35", va="bottom")
        top.set(ylabel="nats", title=f"{task} (K = {K}): what the latent carries")
        bot.plot(x, result.series(task, "tv"), "o-", color="#9467bd", label=r"TV$(\bar q, p)$")
        bot.plot(x, result.series(task, "hole"), "s-", color="0.3", label=r"$\mathrm{Hole}_\alpha$")
        bot.plot(x, result.series(task, "off_support"), "D-", color=OFF_SUPPORT_COLOR, label="prior samples in no mode")
        if task == "PathGaps":
            bot.plot(x, result.series(task, "success"), "P-", color="#2ca02c", lw=2, label="closed-loop success")
        bot.set(ylabel="fraction", ylim=(-0.03, 1.03), xlabel=r"KL weight $\beta/\beta^*$",
                title="what deployment gets from the prior")
        right = bot.twinx()
        right.plot(x, result.series(task, "marginal_kl"), "v:", color="#ff7f0e", label=r"marginal KL$(\bar q\|p)$ (nats)")
        right.set_ylabel("marginal KL (nats)", color="#ff7f0e")
        right.tick_params(axis="y", colors="#ff7f0e")
        right.grid(False)
        for ax in (top, bot):
            ax.set_xscale("log")
            ax.axvline(1.0, color="#d62728", lw=1.4)
            log_ticks(ax, x, "x")
            ax.set_xticklabels([ratio_label(r) for r in x], fontsize=8)
        top.text(1.0, 0.03, r" $\beta^*$", color="#d62728", va="bottom", fontsize=10, transform=top.get_xaxis_transform())
        spot = (sweet or {}).get(task)
        if spot is not None:
            for ax in (top, bot):
                ax.axvspan(spot["ratio"] / 1.25, spot["ratio"] * 1.25, color="#2ca02c", alpha=0.12, lw=0)
            bot.text(spot["ratio"], 0.5, "sweet spot", rotation=90, ha="center", va="center", fontsize=8,
                     color="#2ca02c")
        top.legend(fontsize=8, loc="upper right", frameon=True, framealpha=0.9)
        lines = bot.get_legend_handles_labels()
        extra = right.get_legend_handles_labels()
        bot.legend(lines[0] + extra[0], lines[1] + extra[1], fontsize=7, loc="center right", frameon=True,
                   framealpha=0.9)
    fig.tight_layout()
    return fig


def format_table(result, ratios=(0.1, 1.0, 3.0)) -> str:
    """A Markdown table of both sweeps at the given β/β* (nearest grid points)."""
    from ..experiments.tradeoff import row_at  # the one rule for "the row at a ratio"

    head = ["task", "β", "Î (nats)", "B(P̂_e)", "marginal KL", "TV(q̄, p)", "Hole_α", "prior samples in no mode",
            "success"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for task in result.rows:
        for r in ratios:
            row = row_at(result, task, r)
            succ = f"{row['success']:.0%}" if "success" in row and np.isfinite(row.get("success", np.nan)) else "—"
            lines.append(f"| {task} | {ratio_label(row['ratio'])} | {row['mutual_information']:.2f} | {row['fano']:.2f} | "
                         f"{row['marginal_kl']:.2f} | {row['tv']:.2f} | {row['hole']:.2f} | {row['off_support']:.0%} | "
                         f"{succ} |")
    return "\n".join(lines)
