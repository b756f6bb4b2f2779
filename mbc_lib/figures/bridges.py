"""Chapter 6's figures: samples and one crossing segment, Lipschitz estimates, bridges against their floor,
and transition widths (:mod:`mbc_lib.experiments.bridges`, :class:`mbc_lib.measure.BridgeStats`)."""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from ..measure import BridgeStats
from .common import OFF_SUPPORT_COLOR, log_scale, mode_color, plot_chunks
from .common import positive_or_nan as _pos

__all__ = ["plot_crossing", "plot_steps", "plot_modes_sweep", "plot_floor_check", "plot_widths"]


#: chunks drawn per panel of sampled chunks (thousands of overlapping curves look the same and draw slowly)
N_DRAWN = 512


def plot_crossing(st: BridgeStats) -> plt.Figure:
    """Left: samples at the first observation (colour: mode; red: in no mode; at most :data:`N_DRAWN` drawn, the
    title's bridge mass is over all of them). Middle: one base segment whose ends land in two modes — the image's
    lateral position at the last chunk step, coloured by mode. Right: the stretch ‖Δa‖/‖Δε‖ along it, with L̂ and
    the median Jacobian norm."""
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(11.5, 3.2), gridspec_kw={"width_ratios": [1.1, 1, 1]})
    fork = st.obs.shape[1] == 1  # fork: draw chunks relative to the observation; ring: the y coordinate
    n = min(len(st.samples), N_DRAWN)  # the samples are independent draws: the first n show the same picture
    plot_chunks(ax1, st.samples[:n], st.labels[:n], offset=st.obs[:1, 0].expand(n) if fork else None, alpha=0.25)
    ax1.set_ylabel("lateral position − s" if fork else "y")
    ax1.set_title(f"{st.family}, {st.steps} steps: bridge {st.bridge[0]:.1%} (floor {st.floor[0]:.1%})", fontsize=9)
    if st.path is not None:
        t = np.linspace(0, 1, len(st.path_labels))
        y = st.path[:, -1, -1] - (float(st.obs[0, 0]) if fork else 0.0)
        ax2.plot(t, y, color="0.7", lw=1)
        for k in np.unique(st.path_labels):
            sel = st.path_labels == k
            ax2.scatter(t[sel], y[sel], s=6, color=mode_color(int(k)), zorder=2)
        ax2.set(xlabel="position along the base segment", ylabel="last step − s" if fork else "last step, y",
                title="one base segment between two modes")
        tm = 0.5 * (t[1:] + t[:-1])
        ax3.semilogy(tm, np.maximum(st.path_stretch, 1e-3), color="k", lw=1)
        ax3.axhline(st.L_hat[0], color=OFF_SUPPORT_COLOR, ls="--", lw=1, label=rf"$\hat L$ = {st.L_hat[0]:.1f}")
        ax3.axhline(st.L_jac_median[0], color="C0", ls=":", lw=1.2, label=rf"median $\|J\|$ = {st.L_jac_median[0]:.2f}")
        ax3.set(xlabel="position along the base segment", ylabel=r"stretch $\|\Delta a\|/\|\Delta\varepsilon\|$", title="where the map stretches")
        ax3.legend(fontsize=8, loc="upper right")
    else:
        for ax in (ax2, ax3):
            ax.text(0.5, 0.5, "no segment crossed between two modes", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
    fig.tight_layout()
    return fig


def _select(stats, family: str, K: int, delta: float) -> list[BridgeStats]:
    return sorted((s for (f, k, dl, _), s in stats.items() if (f, k, dl) == (family, K, float(delta))),
                  key=lambda s: s.steps)


def plot_steps(stats: dict, K: int = 2, delta: float = 3.0, families: Sequence[str] = ("flow", "diffusion")) -> plt.Figure:
    """The chapter's main figure, against the number of sampler steps: (a) Lipschitz estimates,
    (b) bridge mass with the isoperimetric floor at L̂, (c) transition width against Δ/J, J the largest
    Jacobian norm measured inside the transition (medians over the measured transitions)."""
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(12, 3.5))
    marks = {"flow": ("o", "-"), "diffusion": ("s", "--")}
    for fam in families:
        rows = [s.row() for s in _select(stats, fam, K, delta)]
        if not rows:
            continue
        S = [r["steps"] for r in rows]
        mk, ls = marks.get(fam, ("^", ":"))
        ax1.plot(S, _pos(r["L_hat"] for r in rows), mk + ls, color="k", label=rf"{fam}: $\hat L$ (max of all)")
        ax1.plot(S, _pos(r["L_jac_median"] for r in rows), mk + ls, color="C0", mfc="none", label=rf"{fam}: median $\|J\|$")
        ax1.plot(S, _pos(r["implied_L"] for r in rows), mk, color=OFF_SUPPORT_COLOR, mfc="none", ms=9,
                 label=rf"{fam}: $L$ implied by $\hat b$")
        ax2.plot(S, _pos(r["bridge"] for r in rows), mk + ls, color=OFF_SUPPORT_COLOR, label=rf"{fam}: bridge $\hat b$")
        ax2.plot(S, _pos(r["floor"] for r in rows), mk + ls, color="C0", mfc="none", label=rf"{fam}: floor at $\hat L$")
        ax3.plot(S, _pos(r["width"] for r in rows), mk + ls, color="k", label=f"{fam}: width")
        ax3.plot(S, _pos(r["width_floor"] for r in rows), mk + ls, color="C0", mfc="none", label=rf"{fam}: $\Delta/J$")
    for ax in (ax1, ax2, ax3):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sampler steps")
    ax1.set(ylabel="task units per base unit", title=rf"(a) Lipschitz estimates (fork $K$={K}, $\Delta_c$={delta:g})")
    ax2.set(ylabel="mass in no mode", title="(b) bridge mass and its floor")
    ax3.set(ylabel="base length (median)", title="(c) transition width and its floor")
    for ax in (ax1, ax2, ax3):
        log_scale(ax, "y")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_modes_sweep(stats: dict, family: str = "flow", base: tuple[int, float] = (2, 3.0)) -> plt.Figure:
    """Bridge mass (filled) and its floor at L̂ (open, dashed) against sampler steps, one colour per
    K at Δc = base Δc (left) and per Δc at K = base K (right)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
    models = {(k, dl) for (f, k, dl, _) in stats if f == family}
    groups = [("$K$", sorted({k for k, dl in models if dl == base[1]}), lambda v: (v, base[1]), rf"$\Delta_c$ = {base[1]:g}"),
              (r"$\Delta_c$", sorted({dl for k, dl in models if k == base[0]}), lambda v: (base[0], v), f"$K$ = {base[0]}")]
    for ax, (name, values, key, fixed) in zip(axes, groups):
        for i, v in enumerate(values):
            rows = [s.row() for s in _select(stats, family, *key(v))]
            S = [r["steps"] for r in rows]
            c = f"C{i}"
            ax.plot(S, _pos(r["bridge"] for r in rows), "o-", color=c, ms=7 - i, label=f"{name} = {v:g}: bridge")
            ax.plot(S, _pos(r["floor"] for r in rows), "v--", color=c, mfc="none", ms=8, label=rf"{name} = {v:g}: floor at $\hat L$")
        ax.set(xlabel="sampler steps", title=f"{family}, {fixed}")
        log_scale(ax, "y")
        ax.set_xscale("log", base=2)
        ax.legend(fontsize=7, ncol=1)
    axes[0].set_ylabel("mass in no mode")
    fig.tight_layout()
    return fig


def plot_floor_check(stats: dict) -> plt.Figure:
    """Every (model, sampler steps): the measured bridge mass (with the 95% Wilson interval, averaged
    over the observations) against the isoperimetric floor at L̂. Gaussian isoperimetry says every
    point lies on or above the diagonal — up to sampling error, and as long as L̂ is close to L."""
    fig, ax = plt.subplots(figsize=(5.8, 3.9))
    marks = {"flow": "o", "diffusion": "s"}
    settings = sorted({(s.K, s.delta_c) for s in stats.values()})
    seen, lo = set(), 1.0
    for s in stats.values():
        r = s.row()
        if not (np.isfinite(r["floor"]) and r["floor"] > 0):
            continue
        lo = min(lo, r["floor"], r["bridge"] if r["bridge"] > 0 else r["floor"])
        lab = rf"{r['family']} $K$={r['K']}, $\Delta_c$={r['delta_c']:g}"
        color = f"C{settings.index((s.K, s.delta_c))}"
        ax.errorbar(r["floor"], r["bridge"], yerr=[[0.0], [max(r["bridge_hi"] - r["bridge"], 0.0)]], fmt="none", ecolor=color,
                    alpha=0.6, lw=1)
        ax.scatter(r["floor"], max(r["bridge"], lo / 2), marker=marks.get(r["family"], "^"),
                   s=16 + 4 * np.log2(r["steps"]) ** 2, color=color, alpha=0.85, label=None if lab in seen else lab,
                   facecolors="none" if r["family"] == "diffusion" else color)
        seen.add(lab)
    lim = (lo / 2, 1.5)
    ax.plot(lim, lim, "k-", lw=1, label="bridge = floor")
    ax.set(xlim=lim, ylim=lim, xscale="log", yscale="log", xlabel=r"isoperimetric floor at $\hat L$",
           ylabel=r"measured bridge mass $\hat b$", title="trained maps against their floor (size: steps; bar: 95% upper)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def plot_widths(stats: dict, family: str = "flow", K: int = 2, delta: float = 3.0) -> plt.Figure:
    """Every measured transition of one model, all step counts: its width (the base length between a
    point in one mode and a point in the next) against Δ/J, J the largest Jacobian norm measured inside
    it. The transition-width lemma puts every point on or above the diagonal when J is the
    transition's steepest stretch; a point below it would mean the Jacobian samples missed that."""
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    sel = _select(stats, family, K, delta)
    lo, hi = np.inf, 0.0
    for i, s in enumerate(sel):
        if len(s.seg_width) == 0:
            continue
        ax.scatter(s.seg_floor, s.seg_width, s=14, color=plt.cm.viridis(i / max(1, len(sel) - 1)), label=f"{s.steps} steps",
                   alpha=0.8)
        pos = s.seg_width[s.seg_width > 0]
        lo, hi = min(lo, s.seg_floor.min(), pos.min() if len(pos) else np.inf), max(hi, s.seg_floor.max(), s.seg_width.max())
    if np.isfinite(lo):
        x = np.geomspace(lo / 2, hi * 2, 50)
        ax.plot(x, x, "k-", lw=1, label=r"width = $\Delta/J$")
    ax.set(xscale="log", yscale="log", xlabel=r"$\Delta/J$  (gap over the largest $\|J\|$ in the transition)",
           ylabel="transition width (base length)",
           title=rf"{family} $K$={K}, $\Delta_c$={delta:g}: transition widths")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
