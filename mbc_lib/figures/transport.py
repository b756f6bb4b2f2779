"""Chapter 5's figures: trained 1-D transport maps, staircases against the counting bounds, the lattice
counterexample, and Gaussian isoperimetry (:mod:`mbc_lib.experiments.transport`)."""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Circle
from scipy.stats import norm

from ..experiments.transport import MapStats, TrainedMap, lattice_in_disc, staircase_stats
from .common import OFF_SUPPORT_COLOR, log_ticks, mode_color

__all__ = ["plot_trained_maps", "plot_staircase", "plot_staircase_check", "plot_counterexample", "plot_isoperimetry"]


def plot_trained_maps(maps: Sequence[TrainedMap]) -> plt.Figure:
    """One panel per policy: the map ε ↦ G_θ(0, ε) coloured by the mode it lands in (red: in no mode),
    the mode regions as bands, the central 1 − τ interval C, and the counts against the bounds."""
    fig, axes = plt.subplots(1, len(maps), figsize=(4.6 * len(maps), 3.4), squeeze=False, sharey=True)
    for ax, m in zip(axes[0], maps):
        st = m.stats
        _draw_map(ax, st, m.task.modes(torch.zeros(1, 1)).centers[0].reshape(m.K).numpy(), m.task.radius)
        ax.set_title(f"{m.family} ({m.steps} steps), fork K={m.K}\n"
                     rf"$N^\tau$ = {st.n_hit}, $1+\lfloor\mathrm{{len}}/\Delta\rfloor$ = {st.bound_length}, "
                     rf"$1+\lfloor 2r\hat L/\Delta\rfloor$ = {st.bound_tight}; bridge $b$ = {st.bridge:.3f}", fontsize=9)
        ax.text(0.02, 0.97, rf"$\hat L$ = {st.L:.1f}" "\n" rf"$\mathrm{{len}}$ = {st.length:.2f}" "\n"
                rf"$\Delta$ = {st.delta:.2f}", transform=ax.transAxes,
                va="top", fontsize=8, bbox=dict(fc="white", ec="0.8", alpha=0.9))
    axes[0, 0].set_ylabel(r"action $a = G_\theta(s, \varepsilon)$ (task units)")
    fig.tight_layout()
    return fig


def _draw_map(ax: plt.Axes, st: MapStats, centers: np.ndarray, radius: float, xlim: float = 3.5) -> None:
    """The curve ε ↦ G(ε) coloured by label, mode bands, and the central interval [−r, r]."""
    sel = np.abs(st.eps) <= xlim
    x, y, lab = st.eps[sel], st.image[sel, 0], st.labels[sel]
    for k, c in enumerate(centers):
        ax.axhspan(c - radius, c + radius, color=mode_color(k), alpha=0.12, lw=0)
    ax.plot(x, y, color="0.75", lw=1, zorder=1)
    for k in np.unique(lab):
        pts = lab == k
        ax.scatter(x[pts], y[pts], s=2, color=mode_color(int(k)), zorder=2, label="off-support" if k < 0 else None)
    for s in (-st.r_tau, st.r_tau):
        ax.axvline(s, color="k", ls=":", lw=1)
    ax.set_xlim(-xlim, xlim)
    ax.set_xlabel(r"base noise $\varepsilon$  (dotted: central set $C = [-r, r]$)")


def plot_staircase(width: float, K: int = 5, radius: float = 0.25, tau: float = 0.05) -> plt.Figure:
    """The staircase of transition width ``width``: the map (left) and where its base mass goes
    (right: φ(ε) shaded by the mode ε lands in; the red area is the bridge mass)."""
    st = staircase_stats(width, K, radius, tau)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2), gridspec_kw={"width_ratios": [1.2, 1]})
    _draw_map(ax1, st, np.arange(K, dtype=float), radius)
    ax1.set_ylabel(r"$G(\varepsilon)$")
    ax1.set_title(rf"$w$ = {width:g}: $L$ = {st.L:.2f}, $N^\tau$ = {st.n_hit}; bounds: length {st.bound_length}, "
                  rf"$1+\lfloor 2rL\rfloor$ = {st.bound_tight}, paper {st.bound_paper}", fontsize=9)
    x, dens = st.eps, norm.pdf(st.eps)
    for k in np.unique(st.labels):
        ax2.fill_between(x, 0, np.where(st.labels == k, dens, 0), color=mode_color(int(k)), alpha=0.8 if k < 0 else 0.35,
                         lw=0, label="bridge (off-support)" if k < 0 else None)
    ax2.plot(x, dens, color="k", lw=0.8)
    ax2.set(xlim=(-3.5, 3.5), ylim=(0, 0.42), xlabel=r"base noise $\varepsilon$", ylabel=r"$\varphi(\varepsilon)$",
            title=rf"smallest mode mass {st.mass.min():.3f}; bridge mass $b$ = {st.bridge:.3f}")
    ax2.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


def plot_staircase_check(rows: list[dict[str, float]], K: int = 5, radius: float = 0.25, tau: float = 0.05) -> plt.Figure:
    """Left: N^τ and the bounds against L. Right: bridge mass against L with the 1-D transition
    prediction (gap/L)·Σφ(c_j) (line) and the dimension-free K-mode floor (open markers)."""
    L = np.array([r["L"] for r in rows])
    Lf = np.geomspace(L.min() * 0.8, L.max() * 1.25, 400)
    r = float(norm.ppf(1 - tau / 2))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax1.step(Lf, 1 + np.ceil(2 * r * Lf), where="post", color="C3", lw=1.2, label=r"paper: $1+\lceil 2rL/\Delta\rceil$")
    ax1.step(Lf, 1 + np.floor(2 * r * Lf), where="post", color="C0", lw=1.2, ls="--", label=r"$1+\lfloor 2rL/\Delta\rfloor$")
    ax1.plot(L, [x["bound_length"] for x in rows], "s", ms=9, mfc="none", color="C2",
             label=r"length form $1+\lfloor\mathrm{len}/\Delta\rfloor$")
    ax1.plot(L, [x["N_tau"] for x in rows], "ko", ms=4, label=r"measured $N^\tau$")
    ax1.set(xscale="log", yscale="log", xlabel="Lipschitz constant $L$", ylabel="modes",
            title=rf"{K}-level staircases ($\Delta = \Delta_c = 1$, $\tau$ = {tau:g})")
    ax1.legend(fontsize=8)
    log_ticks(ax1, [2, 5, 10, 20, 50], "x")
    log_ticks(ax1, [5, 10, 20, 50, 100, 200], "y")
    gap = 1.0 - 2 * radius
    phi_sum = float(norm.pdf(norm.ppf(np.arange(1, K) / K)).sum())
    ax2.plot(Lf, gap / Lf * phi_sum, "k-", lw=1,
             label=rf"1-D prediction $(\mathrm{{gap}}/L)\sum_j\varphi(c_j)$ = {gap * phi_sum:.2f}$/L$")
    ax2.plot(L, [x["bridge"] for x in rows], "o", color=OFF_SUPPORT_COLOR, label="measured bridge mass")
    ax2.plot(L, [x["bridge_floor"] for x in rows], "v", mfc="none", color="C0", ms=8,
             label="isoperimetric K-mode floor")
    ax2.set(xscale="log", yscale="log", xlabel="Lipschitz constant $L$", ylabel="mass in no mode",
            title=f"bridge mass (mode regions: radius {radius:g}, gap {gap:g})")
    ax2.legend(fontsize=8)
    log_ticks(ax2, [2, 5, 10, 20, 50], "x")
    fig.tight_layout()
    return fig


def plot_counterexample(rows: list[dict[str, float]]) -> plt.Figure:
    """One panel per L: the image G(C) (disc), the lattice modes it hits (blue), those on one
    diameter (black: what the 1-D argument sees), and the paper's count."""
    fig, axes = plt.subplots(1, len(rows), figsize=(3.4 * len(rows), 4.0))
    for ax, r in zip(np.atleast_1d(axes), rows):
        rad = r["L"] * r["R_tau"]
        n = int(rad) + 2
        i, j = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1))
        ax.scatter(i.ravel(), j.ravel(), s=3, color="0.75")
        hit = lattice_in_disc(rad)
        ax.scatter(hit[:, 0], hit[:, 1], s=10, color=mode_color(0), label=f"hit: {r['hit']}")
        diam = hit[hit[:, 1] == 0]
        ax.scatter(diam[:, 0], diam[:, 1], s=14, color="k", label=f"on a diameter: {r['path_hit']}")
        ax.add_patch(Circle((0, 0), rad, fill=False, color="C0", lw=1.2))
        ax.set(xlim=(-n, n), ylim=(-n, n), aspect="equal", xticks=[], yticks=[])
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_title(rf"$G = {r['L']:g}\cdot\mathrm{{Id}}$: {r['hit']} modes hit" "\n"
                     f"(paper's formula: {r['paper']}; on a diameter: {r['path_hit']})", fontsize=9)
    fig.legend(handles=[plt.Line2D([], [], marker="o", ls="", color=mode_color(0), label="mode hit by $G(C)$"),
                        plt.Line2D([], [], marker="o", ls="", color="k", label="hit along one diameter"),
                        plt.Line2D([], [], color="C0", label=r"$G(C)$: disc of radius $L R_\tau$")],
               loc="lower center", ncol=3, fontsize=8)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def plot_isoperimetry(rows: list[dict[str, float]]) -> plt.Figure:
    """Bridge mass against Δ/L: the floors of chapter 5's bridge-mass theorem as curves, the extremal map on them
    (filled markers), smooth maps above them (open circles)."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    x = np.linspace(1e-3, 3.3, 400)
    ax.plot(x, 2 * norm.cdf(x / 2) - 1, "k-", lw=1.2, label=r"balanced floor $2\Phi(\Delta/2L)-1$")
    ms = sorted({r["m"] for r in rows if r["kind"] == "extremal" and r.get("target", True)})
    styles = {m: (c, ls, mk) for m, c, ls, mk in zip(ms, ("C0", "C2", "C4"), ("--", "-.", ":"), ("s", "^", "D"))}
    for m, (c, ls, _marker) in styles.items():
        xs = x[x <= -2 * norm.ppf(m)]
        ax.plot(xs, norm.cdf(norm.ppf(m) + xs) - m, color=c, ls=ls, lw=1.2,
                label=rf"floor $\Phi(\Phi^{{-1}}(p_{{\min}})+\Delta/L)-p_{{\min}}$, $p_{{\min}}$ = {m:g}")
    for r in rows:
        if r["kind"] != "extremal":
            continue
        c, mk = next(((cc, mm) for mv, (cc, _, mm) in styles.items() if abs(r["m"] - mv) < 1e-9), ("k", "o"))
        ax.plot(r["ratio"], r["bridge"], mk, color=c, ms=7)
    sm = [r for r in rows if r["kind"] == "smooth"]
    ax.plot([r["ratio"] for r in sm], [r["bridge"] for r in sm], "o", mfc="none", mec=OFF_SUPPORT_COLOR, ms=9, mew=1.5,
            label=f"smooth logistic maps ($n$ = {sm[0]['dim'] if sm else '?'}), measured")
    ax.plot([], [], "ko", label="clipped-linear map, measured (filled)")
    ax.set(xlabel=r"$\Delta / L$  (base distance between the preimages)", ylabel="bridge mass $b$", xlim=(0, 3.3),
           ylim=(0, 1))
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Gaussian isoperimetry: no $L$-Lipschitz map puts less mass between two modes", fontsize=9)
    fig.tight_layout()
    return fig
