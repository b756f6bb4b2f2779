"""The figure style of the book and the drawing helpers several chapters share (mode colours, chunks,
mode masses, log axes)."""
from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["use_style", "mode_color", "OFF_SUPPORT_COLOR", "plot_chunks", "plot_mode_mass", "sequence_ticks", "log_scale",
           "log_ticks", "positive_or_nan"]

#: colour of chunks that fall in no mode (label −1)
OFF_SUPPORT_COLOR = "#d62728"
_MODE_COLORS = ["#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#e377c2", "#bcbd22"]


def use_style() -> None:
    """Small, clean figures that read well in the built book and in Colab."""
    matplotlib.rcParams.update(
        {
            "figure.figsize": (7.0, 3.2),
            "figure.dpi": 100,
            "savefig.dpi": 100,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.25,
            "font.size": 10,
            "axes.titlesize": 10,
            "legend.frameon": False,
        }
    )


def mode_color(k: int) -> str:
    """Colour of mode ``k`` (−1 → the off-support red)."""
    return OFF_SUPPORT_COLOR if k < 0 else _MODE_COLORS[k % len(_MODE_COLORS)]


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def plot_chunks(
    ax: plt.Axes,
    chunks,
    labels=None,
    dim: int = -1,
    offset=None,
    alpha: float = 0.25,
    lw: float = 1.0,
    **kwargs,
) -> None:
    """Draw chunks ``[N, H, d]`` as curves of coordinate ``dim`` against the step t = 1..H,
    coloured by mode ``labels [N]`` (−1 in red). ``offset [N]`` is subtracted first (e.g.
    the observation, to draw chunks relative to where they start)."""
    c = _np(chunks)[..., dim]  # [N, H]
    if offset is not None:
        c = c - _np(offset).reshape(-1, 1)
    t = np.arange(1, c.shape[1] + 1)
    labels = np.full(c.shape[0], -2) if labels is None else _np(labels)
    fixed_color = kwargs.pop("color", None)
    for k in np.unique(labels):
        rows = c[labels == k]
        color = fixed_color or ("0.3" if k == -2 else mode_color(int(k)))
        ax.plot(t, rows.T, color=color, alpha=alpha, lw=lw, **kwargs)
    ax.set_xlabel("step t in the chunk")


def plot_mode_mass(ax: plt.Axes, labelled: dict[str, object], K: int) -> None:
    """Grouped bars: for each source (e.g. ``{"demos": labels, "policy": labels}``) the fraction
    of chunks in each mode 0..K−1 and off-support."""
    names = list(labelled)
    cats = list(range(K)) + [-1]
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        lab = _np(labelled[name]).reshape(-1)
        frac = [float(np.mean(lab == k)) for k in cats]
        x = np.arange(len(cats)) + (i - (len(names) - 1) / 2) * width
        ax.bar(x, frac, width=width, label=name, color=[mode_color(k) for k in cats], alpha=1.0 - 0.45 * i,
               edgecolor="k", linewidth=0.5)
    ax.set_xticks(np.arange(len(cats)), [f"mode {k}" for k in range(K)] + ["off-support"])
    ax.set_ylim(0, 1)
    ax.set_ylabel("fraction of chunks")
    if len(names) > 1:
        ax.legend([plt.Rectangle((0, 0), 1, 1, fc="0.5", alpha=1.0 - 0.45 * i, ec="k") for i in range(len(names))], names)


def sequence_ticks(ax: plt.Axes, values: Sequence[float], axis: str = "x") -> None:
    """Put ticks exactly at the swept values."""
    (ax.set_xticks if axis == "x" else ax.set_yticks)(list(values))


def log_scale(ax: plt.Axes, axis: str = "y") -> bool:
    """Log-scale ``axis`` ("x" or "y") of ``ax`` if its lines hold a positive finite value; else
    leave it linear and say so on the axes (a log axis with no positive data cannot be drawn —
    e.g. a widths panel when no segment crossed between modes). Returns whether it is log."""
    if axis not in ("x", "y"):
        raise ValueError(f"axis must be 'x' or 'y', got {axis!r}")
    data = [np.asarray(line.get_xdata() if axis == "x" else line.get_ydata(), dtype=float) for line in ax.get_lines()]
    positive = any(np.any(np.isfinite(d) & (d > 0)) for d in data)
    if positive:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    else:
        ax.text(0.5, 0.5, "no positive values to show", transform=ax.transAxes, ha="center", va="center", color="0.4")
    return positive


def log_ticks(ax: plt.Axes, ticks: Sequence[float], axis: str) -> None:
    """Plain-number major ticks on a log axis, no minor labels."""
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(FixedLocator(list(ticks)))
    target.set_major_formatter(ScalarFormatter())
    target.set_minor_formatter(NullFormatter())


def positive_or_nan(values) -> list[float]:
    """Values for a log axis: non-positive or undefined ones become gaps (NaN)."""
    return [v if (v is not None and np.isfinite(v) and v > 0) else math.nan for v in values]
