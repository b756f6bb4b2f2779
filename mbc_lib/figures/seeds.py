"""Drawing a metric across training seeds (rows of :func:`mbc_lib.experiments.grid.run_grid`)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ..experiments.grid import across_seeds

__all__ = ["plot_across_seeds"]


def plot_across_seeds(rows: list[dict[str, Any]], label: str, metrics: Sequence[str],
                      titles: Sequence[str] | None = None, interval: dict[str, tuple[str, str]] | None = None) -> Figure:
    """One panel per metric, one line per value of ``label`` (e.g. the family): every seed's value as a dot,
    the mean as a black bar and the min–max spread as a grey band. ``interval`` maps a metric to the columns of
    its sampling interval (lower, upper) in the rows, drawn as a thin line under each dot, so that the spread
    across seeds reads against the interval of one model."""
    table = across_seeds(rows, by=[label], metrics=list(metrics))
    labels = [r[label] for r in table]
    n_seeds = max(r["n_seeds"] for r in table) if table else 0
    titles = list(titles or metrics)
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.4 * len(metrics), 0.45 * len(labels) + 1.3), sharey=True,
                             squeeze=False)
    seeds = sorted({r["seed"] for r in rows})
    offsets = np.linspace(-0.2, 0.2, len(seeds)) if len(seeds) > 1 else np.zeros(1)
    for ax, metric, title in zip(axes[0], metrics, titles):
        for i, row in enumerate(table):
            lo, hi, mean = row[f"{metric}_min"], row[f"{metric}_max"], row[f"{metric}_mean"]
            ax.plot([lo, hi], [i, i], color="0.8", lw=7, solid_capstyle="butt", zorder=1)
            ax.plot([mean, mean], [i - 0.3, i + 0.3], color="k", lw=2, zorder=3)
            for off, s in zip(offsets, seeds):
                for r in rows:
                    if r["seed"] == s and r[label] == row[label]:
                        if interval and metric in interval:
                            a, b = (r[c] for c in interval[metric])
                            ax.plot([a, b], [i + off, i + off], color="C0", lw=0.8, alpha=0.7, zorder=2)
                        ax.plot(r[metric], i + off, "o", ms=4, color="C0", zorder=4)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(range(len(labels)), labels)
    axes[0][0].invert_yaxis()
    fig.suptitle(f"{n_seeds} training seed{'s' if n_seeds != 1 else ''}: each dot one trained model, black bar the "
                 "mean, grey band the min–max", fontsize=10)
    fig.tight_layout()
    return fig
