"""Figures and tables of the prior-surgery experiment (:mod:`mbc_lib.experiments.prior_surgery`, chapter 10)."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.patches import Ellipse as EllipsePatch
from matplotlib.patches import Rectangle

from .common import OFF_SUPPORT_COLOR, mode_color, plot_chunks

__all__ = ["VARIANT_LABELS", "variant_label", "plot_masses", "plot_latent", "plot_outputs", "plot_explorer",
           "format_table"]

#: how each deployment prior is named in figures and tables
VARIANT_LABELS = {"prior": "standard prior", "union": "union of regions", "no holes": r"no holes ($\bar q/p \geq \alpha$)"}


def variant_label(name: str, tex: bool = True) -> str:
    """The display name of a deployment prior (``exclude k`` -> ``without region k``)."""
    if name.startswith("exclude "):
        return f"without region {name.split()[-1]}"
    label = VARIANT_LABELS.get(name, name)
    return label if tex else label.replace(r"($\bar q/p \geq \alpha$)", "(q̄/p ≥ α)")


def _draw_ellipse(ax, e, **kw) -> None:
    """The 2-D ellipse {(z − m)ᵀ C⁻¹ (z − m) ≤ r²} on the plane of the first two latent dimensions."""
    cov = np.asarray(e.cov)[:2, :2]
    vals, vecs = np.linalg.eigh(cov)
    angle = math.degrees(math.atan2(vecs[1, -1], vecs[0, -1]))
    w, h = 2 * np.sqrt(vals[::-1] * e.r2)
    ax.add_patch(EllipsePatch((e.mean[0], e.mean[1]), w, h, angle=angle, fill=False, **kw))


def plot_masses(results: dict, ax_row=None) -> plt.Figure:
    """One panel per task: for each deployment prior, the share of each mode and the share in no mode, with
    95% Wilson intervals — decoded chunks at the decision states on the fork, closed-loop episodes through each
    gap and collisions on ``PathGaps``."""
    items = list(results.values())
    ncols = min(2, len(items))  # two panels a row: readable at the width of a book page
    nrows = -(-len(items) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.6 * ncols, 3.9 * nrows), squeeze=False)
    for ax in axes.flat[len(items):]:
        ax.set_visible(False)
    for ax, res in zip(axes.flat, items):
        names = list(res.variants)
        K = res.K
        robot = res.task == "PathGaps"
        cats = list(range(K)) + [-1]
        width = 0.8 / len(cats)
        x = np.arange(len(names))
        for i, k in enumerate(cats):
            vals, lo, hi = [], [], []
            for n in names:
                v = res.variants[n]
                if robot:
                    val = v.success_by_mode[k] if k >= 0 else v.failure_rate
                    ci = v.success_by_mode_ci[k] if k >= 0 else v.failure_ci
                else:
                    val = v.mass[k] if k >= 0 else v.off_support
                    ci = v.mass_ci[k] if k >= 0 else v.off_ci
                vals.append(val)
                lo.append(max(val - ci[0], 0))
                hi.append(max(ci[1] - val, 0))
            off = (i - (len(cats) - 1) / 2) * width
            label = (f"through gap {k}" if robot else f"mode {k}") if k >= 0 else ("collision" if robot else "in no mode")
            ax.bar(x + off, vals, width, color=mode_color(k), edgecolor="k", linewidth=0.4, label=label)
            ax.errorbar(x + off, vals, yerr=[lo, hi], fmt="none", ecolor="k", capsize=2, lw=0.8)
        ax.set_xticks(x, [variant_label(n).replace(" (", "\n(").replace("region", "\nregion") for n in names],
                      fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("fraction of episodes" if robot else "fraction of decoded chunks")
        ax.set_title(f"{res.task}, K = {K}: " + ("closed loop" if robot else "decoded at the evaluation states"))
        ax.legend(fontsize=7, loc="upper center", ncol=len(cats), frameon=True, framealpha=0.9)
    fig.tight_layout()
    return fig


def plot_latent(res, variant: str = "prior", ax: plt.Axes | None = None) -> plt.Axes:
    """The latent plane at one decision state: background = the mode D(s*, z) lands in (red: no mode), the
    fitted regions R_k (ellipses in their mode's colour), the part the deployment prior ``variant`` removes
    (hatched), posterior draws of the demonstrations (dots) and draws of the deployment prior (×)."""
    ax = ax or plt.subplots(figsize=(4.6, 4.4))[1]
    m = res.latent_map
    axis, K = m["axis"], res.K
    ext = (axis[0], axis[-1], axis[0], axis[-1])
    colors = [OFF_SUPPORT_COLOR] + [mode_color(k) for k in range(K)]
    ax.imshow(m["labels"] + 1, origin="lower", extent=ext, cmap=ListedColormap(colors), vmin=-0.5, vmax=K + 0.5,
              alpha=0.3, interpolation="nearest")
    removed = ~m["keep"][variant]
    if removed.any():
        ax.contourf(axis, axis, removed.astype(float), levels=[0.5, 1.5], colors="none", hatches=["////"])
        ax.contour(axis, axis, removed.astype(float), levels=[0.5], colors="0.2", linewidths=0.9)
    for k, e in enumerate(res.regions):
        _draw_ellipse(ax, e, color=mode_color(k), lw=2.0)
    zl = res.z_labels
    for k in range(K):
        sel = zl == k
        ax.scatter(res.z_post[sel, 0], res.z_post[sel, 1], s=4, color=mode_color(k), alpha=0.35, linewidths=0)
    z = res.variants[variant].z
    ax.scatter(z[:, 0], z[:, 1], s=16, marker="x", color="k", linewidths=0.9, label="draws of this prior")
    for r in (1, 2):
        ax.add_patch(EllipsePatch((0, 0), 2 * r, 2 * r, fill=False, ls="--", color="0.4", lw=0.8))
    ax.set(xlim=ext[:2], ylim=ext[2:], xlabel="$z_1$", ylabel="$z_2$", aspect="equal")
    v = res.variants[variant]
    ax.set_title(f"{variant_label(variant)}: keeps {v.kept_mass:.0%} of the prior", fontsize=9)
    ax.legend(fontsize=7, loc="lower right", frameon=True, framealpha=0.85)
    return ax


def _arena(ax, geo: dict) -> None:
    A, wy, wh = geo["half_width"], geo["wall_y"], geo["wall_half"]
    edges = [-A - 0.03]
    for gx in geo["gap_centers"]:
        edges += [gx - geo["gap_width"] / 2, gx + geo["gap_width"] / 2]
    edges.append(A + 0.03)
    for j in range(0, len(edges), 2):
        ax.add_patch(Rectangle((edges[j], wy - wh), edges[j + 1] - edges[j], 2 * wh, color="0.25"))
    ax.add_patch(plt.Circle(geo["target"], geo["target_radius"], color="0.5", alpha=0.4))
    ax.plot(*geo["start"], "o", color="0.3", ms=4)
    ax.set(xlim=(-A - 0.02, A + 0.02), ylim=(-0.25, 0.25), aspect="equal", xlabel="x (m)", ylabel="y (m)")


def plot_outputs(res, variant: str = "prior", ax: plt.Axes | None = None) -> plt.Axes:
    """What the deployment prior ``variant`` produces: on the fork, chunks decoded at s = 0 (colour = mode,
    red = in no mode; grey = demonstrations); on ``PathGaps``, the effector's paths in closed loop (colour = the
    gap used, red = collided)."""
    ax = ax or plt.subplots(figsize=(4.6, 4.0))[1]
    v = res.variants[variant]
    if res.task == "PathGaps":
        _arena(ax, res.geometry)
        r = v.rollout
        for i, p in enumerate(v.paths):
            color = OFF_SUPPORT_COLOR if r.failures[i] else mode_color(int(r.modes[i]))
            ax.plot(p[:, 0], p[:, 1], color=color, lw=0.9, alpha=0.7)
        ax.set_title(f"closed loop: success {v.success:.0%}, collisions {v.failure_rate:.0%}", fontsize=9)
        return ax
    plot_chunks(ax, res.demos, color="0.6", alpha=0.25)
    plot_chunks(ax, v.samples, labels=v.labels, alpha=0.5)
    ax.set_ylabel("lateral position (task units)")
    ax.set_title("decoded at s = 0: " + ", ".join(f"mode {k} {m:.0%}" for k, m in enumerate(v.mass))
                 + f", none {v.off_support:.0%}", fontsize=9)
    return ax


def plot_explorer(results: dict, setting: str, variant: str) -> plt.Figure:
    """The explorer's frame: the latent map with what ``variant`` removes, next to what it produces.
    ``setting`` is a result's name (``"fork K=2"``); a variant the setting lacks is said so."""
    res = next(r for r in results.values() if r.name == setting)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4.4))
    if variant not in res.variants:
        for a in (a1, a2):
            a.set_axis_off()
        a1.text(0.5, 0.5, f"{setting} has {res.K} regions: no {variant_label(variant, tex=False)}",
                ha="center", va="center", transform=a1.transAxes)
        return fig
    plot_latent(res, variant, a1)
    plot_outputs(res, variant, a2)
    fig.suptitle(f"{setting}, deployment prior: {variant_label(variant)}", fontsize=10)
    fig.tight_layout()
    return fig


def _pct(v: float, ci) -> str:
    return f"{v:.0%} [{ci[0]:.2f}, {ci[1]:.2f}]"


def format_table(res) -> str:
    """A Markdown table of one task's deployment priors: the prior mass each keeps, then per mode the share of
    decoded chunks (fork) or of episodes through each gap (robot), and the share in no mode / collided, with
    95% Wilson intervals."""
    K, robot = res.K, res.task == "PathGaps"
    head = ["deployment prior", "prior mass kept"]
    head += [f"through gap {k}" if robot else f"mode {k}" for k in range(K)]
    head += ["collisions" if robot else "in no mode"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" + "---:|" * (len(head) - 1)]
    for name, v in res.variants.items():
        if robot:
            cells = [_pct(v.success_by_mode[k], v.success_by_mode_ci[k]) for k in range(K)]
            cells.append(_pct(v.failure_rate, v.failure_ci))
        else:
            cells = [_pct(v.mass[k], v.mass_ci[k]) for k in range(K)] + [_pct(v.off_support, v.off_ci)]
        lines.append(f"| {variant_label(name, tex=False)} | {v.kept_mass:.0%} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
