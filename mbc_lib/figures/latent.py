"""Chapter 3's figures: the collapse criterion, the toy's optimum, the β sweep against β*, ACT's z = 0,
and where trained models collapse (:mod:`mbc_lib.experiments.latent`)."""
from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from .. import theory
from ..experiments.latent import COLLAPSED_KL, ActResult, BetaSweep, CollapseCurves, summary
from ..measure import LatentEval
from .common import OFF_SUPPORT_COLOR, mode_color, plot_chunks

__all__ = ["plot_rate_curve", "plot_cgf", "plot_sweep", "plot_beta", "plot_act", "plot_collapse"]


def plot_rate_curve(rows: list[dict[str, float]], beta_star: float, beta_hard: float,
                    crossing: float | None = None) -> plt.Figure:
    """The toy's optimal rate and mode error against β, with β* and the naive β_hard marked
    (and, if given, the β where the rate crosses ln 2)."""
    beta = np.array([r["beta"] for r in rows])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.5, 3.2))
    ax1.plot(beta, [r["rate"] for r in rows], "k-", lw=1.8, label=r"optimal rate $I(A;Z)$ (Blahut–Arimoto)")
    ax1.plot(beta, [r["fano"] for r in rows], "--", color="#1f77b4", label=r"Fano bound $B(P_e)$ at its $P_e$")
    ax1.axhline(math.log(2), color="0.5", lw=0.8, ls="--")
    if crossing is not None:
        ax1.plot([crossing], [math.log(2)], "o", color="0.3", ms=5, label=rf"rate $=\ln 2$ at $\beta$ = {crossing:.2f}")
    ax2.plot(beta, [r["p_e"] for r in rows], "k-", lw=1.8, label=r"mode error $P_e$ of the optimum")
    for ax in (ax1, ax2):
        ax.axvline(beta_star, color="#d62728", lw=1.5, label=rf"exact threshold $\beta^*$ = {beta_star:.3g}")
        ax.axvline(beta_hard, color="#ff7f0e", lw=1.5, ls=":", label=rf"naive $\beta_{{\rm hard}}$ = {beta_hard:.3g}")
        ax.set_xlabel(r"KL weight $\beta$")
    ax1.set(ylabel="nats", title=r"the latent dies at $\beta^*$, not at $\beta_{\rm hard}$")
    ax2.set(ylabel=r"$P_e$", ylim=(-0.02, 0.55), title=r"between $\beta_{\rm hard}$ and $\beta^*$: soft mode information")
    ax1.legend(fontsize=8, loc="upper right", frameon=True, framealpha=0.9)
    ax2.legend(fontsize=8, loc="upper left", frameon=True, framealpha=0.9)
    fig.tight_layout()
    return fig


def _log_mgf(centers, weights, sigma: float, lam: np.ndarray) -> np.ndarray:
    """ψ(λ) = log E exp(λ(A − EA)) of a 1-D Gaussian mixture, ``[G]``."""
    mu, pi = np.asarray(centers, float), np.asarray(weights, float)
    c = mu - pi @ mu
    return np.log(np.exp(np.outer(lam, c)) @ pi) + 0.5 * sigma**2 * lam**2


def plot_cgf(examples: Sequence[dict], lam_max: float = 2.2) -> plt.Figure:
    """The L2 collapse criterion as a picture, one column per example. Top: the log
    moment-generating function ψ(λ) of a 1-D mixture against the parabolas Tλ²/4. Bottom: their
    difference ψ(λ) − Tλ²/4, whose supremum over all λ is Λ(T) (given in the legend). Collapse is optimal at temperature T iff the
    parabola stays above ψ everywhere, i.e. iff the difference never rises above 0.

    ``examples``: dicts with centers, weights, sigma, temperatures (a few T) and a title.
    """
    fig, axes = plt.subplots(2, len(examples), figsize=(4.9 * len(examples), 5.6), squeeze=False, sharex="col",
                             gridspec_kw={"height_ratios": [1.2, 1]})
    lam = np.linspace(-lam_max, lam_max, 801)
    colors = ["#d62728", "#2ca02c", "#1f77b4", "#9467bd"]
    for j, ex in enumerate(examples):
        top, bottom = axes[0, j], axes[1, j]
        psi = _log_mgf(ex["centers"], ex["weights"], ex["sigma"], lam)
        top.plot(lam, psi, "k-", lw=2.2, label=r"$\psi(\lambda)=\log\mathbb{E}\,e^{\lambda(A-\mathbb{E}A)}$")
        lo = 0.0
        for T, col in zip(ex["temperatures"], colors):
            par = T * lam**2 / 4
            diff = psi - par
            top.plot(lam, par, color=col, lw=1.4, label=rf"$T\lambda^2/4$, $T$ = {T:.3g}")
            top.fill_between(lam, par, psi, where=psi > par, color=col, alpha=0.3, lw=0)
            lam_T = theory.collapse_criterion(T, ex["centers"], ex["weights"], ex["sigma"], "l2").value  # sup over all λ
            bottom.plot(lam, diff, color=col, lw=1.6, label=rf"$T$ = {T:.3g}: $\Lambda(T)$ = {lam_T:.2g}")
            bottom.fill_between(lam, 0, diff, where=diff > 0, color=col, alpha=0.3, lw=0)
            lo = min(lo, float(diff.min()))
        top.set(title=ex.get("title", ""), ylim=(-0.2, float(psi.max()) * 1.05))
        bottom.axhline(0, color="k", lw=0.8)
        bottom.set(xlabel=r"$\lambda$", ylim=(max(lo, -1.5), None))
        top.legend(fontsize=7.5, loc="upper center")
        bottom.legend(fontsize=7.5, loc="lower center")
    axes[0, 0].set_ylabel("nats")
    axes[1, 0].set_ylabel(r"$\psi(\lambda)-T\lambda^2/4$")
    fig.tight_layout()
    return fig


def plot_sweep(sweep: BetaSweep, curve: list[dict[str, float]] | None = None) -> plt.Figure:
    """Theory over measurement, against β/β*. Left: E KL, Î and the marginal KL (markers) with
    the optimal rate (line). Right: mode error P̂_e (teacher forcing) with the optimum's P_e, and
    the off-support fraction of prior-decoded chunks."""
    rows = summary(sweep)
    th = sweep.thresholds
    x = np.array([r["ratio"] for r in rows])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    if curve is not None:
        ax1.plot([c["ratio"] for c in curve], [c["rate"] for c in curve], "k-", lw=1.2, alpha=0.7,
                 label="optimal rate (theory)")
        ax2.plot([c["ratio"] for c in curve], [c["p_e"] for c in curve], "k-", lw=1.2, alpha=0.7,
                 label=r"$P_e$ of the optimum (theory)")
    ax1.plot(x, [r["mean_kl"] for r in rows], "o", ms=8, color="#1f77b4", label=r"$\mathbb{E}\,$KL (measured)")
    ax1.plot(x, [r["mutual_information"] for r in rows], "^", ms=6, color="#2ca02c", label=r"$\hat I(A;Z\mid S)$")
    ax1.plot(x, [r["marginal_kl"] for r in rows], "s", ms=5, color="#9467bd", label="marginal KL")
    ax1.plot(x, [r["fano"] for r in rows], "x", ms=7, color="#8c564b", label=r"Fano $B(\hat P_e)$")
    ax2.plot(x, [r["p_e"] for r in rows], "o", ms=8, color="#1f77b4", label=r"$\hat P_e$ ($z$ from the posterior)")
    ax2.plot(x, [r["off_support_prior"] for r in rows], "s", ms=6, color=OFF_SUPPORT_COLOR,
             label=r"off-support, $z$ from the prior")
    for ax in (ax1, ax2):
        ax.axvline(1.0, color="#d62728", lw=1.5)
        ax.axvline(th.beta_hard / th.beta_star, color="#ff7f0e", lw=1.5, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel(r"$\beta/\beta^*$   (red: $\beta^*$, orange dotted: naive $\beta_{\rm hard}$)")
    ax1.axhline(math.log(2), color="0.5", lw=0.8, ls="--")
    ax1.text(x.min(), math.log(2) + 0.02, r"$\mathcal{H}(\pi)=\ln 2$", fontsize=8, color="0.4")
    ax1.set(ylabel="nats", title=rf"what the latent carries ($\beta^*$ = {th.beta_star:.3f})")
    ax2.set(ylabel="fraction", ylim=(-0.03, 1.03), title="mode error and deployment failures")
    ax1.legend(fontsize=8, loc="upper right")
    ax2.legend(fontsize=8, loc="center left")
    fig.tight_layout()
    return fig


def _latent_scatter(ax: plt.Axes, ev: LatentEval, max_points: int = 400) -> None:
    """Posterior means (first two latent dims) coloured by the demo's mode, with the N(0, I)
    prior's 1σ and 2σ circles and z = 0 marked."""
    mu = ev.mu[:, :2].numpy()
    if mu.shape[1] == 1:
        mu = np.concatenate([mu, np.zeros_like(mu)], 1)
    idx = np.linspace(0, len(mu) - 1, min(max_points, len(mu))).astype(int)
    lab = ev.labels.numpy()[idx]
    for k in np.unique(lab):
        sel = idx[lab == k]
        ax.scatter(mu[sel, 0], mu[sel, 1], s=8, alpha=0.6, color=mode_color(int(k)), label=f"demo mode {k}")
    t = np.linspace(0, 2 * np.pi, 200)
    for r in (1, 2):
        ax.plot(r * np.cos(t), r * np.sin(t), color="0.4", lw=0.8, ls="--")
    ax.plot([0], [0], "k+", ms=12, mew=2, label="z = 0")
    lim = max(3.0, float(np.abs(mu).max()) * 1.1)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", xlabel="$z_1$", ylabel="$z_2$")


def plot_beta(sweep: BetaSweep, ratio: float, state: int = 0) -> plt.Figure:
    """One model of the sweep: chunks decoded from prior samples at one state (coloured by the
    mode they land in, red off-support) and the posterior means in latent space."""
    ev = sweep.evals[ratio]
    s = float(ev.states[state])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4), gridspec_kw={"width_ratios": [1.4, 1]})
    demos = ev.chunks[ev.groups == state][:60]
    plot_chunks(ax1, demos, None, offset=torch.full((len(demos),), s), color="0.75", alpha=0.5)
    pc = ev.prior_chunks[state][:80]
    plot_chunks(ax1, pc, ev.prior_labels[state][:80], offset=torch.full((len(pc),), s), alpha=0.5)
    plot_chunks(ax1, ev.zero_chunks[state:state + 1], None, offset=torch.tensor([s]), color="k", lw=2.5, alpha=1)
    cov = ev.coverage("prior")
    ax1.set(ylabel="lateral position − s",
            title=f"β = {ratio:g}·β*: prior samples (grey: demos, black: z = 0)\n"
                  f"modes {cov[0]:.0%} / {cov[1]:.0%}, off-support {cov[-1]:.0%}")
    _latent_scatter(ax2, ev)
    ax2.set_title(f"posterior means; E KL = {ev.split.mean_kl:.2f} nats")
    ax2.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def plot_act(results: dict[float, ActResult], state: int = 0, weights: Sequence[float] | None = None) -> plt.Figure:
    """For each kl_weight in ``weights`` (default: all): demos (by mode), chunks from prior
    samples (grey) and the chunk ACT executes, z = 0 (black, red if off-support)."""
    chosen = sorted(results if weights is None else [float(w) for w in weights], reverse=True)
    fig, axes = plt.subplots(1, len(chosen), figsize=(4.6 * len(chosen), 3.2), sharey=True, squeeze=False)
    for ax, w in zip(axes[0], chosen):
        ev = results[w].eval
        s = float(ev.states[state])
        sel = ev.groups == state
        plot_chunks(ax, ev.chunks[sel][:60], ev.labels[sel][:60], offset=torch.full((60,), s), alpha=0.25)
        plot_chunks(ax, ev.prior_chunks[state][:40], None, offset=torch.full((40,), s), color="0.45", alpha=0.35)
        zl = int(ev.zero_labels[state])
        plot_chunks(ax, ev.zero_chunks[state:state + 1], None, offset=torch.tensor([s]), lw=3, alpha=1,
                    color="k" if zl >= 0 else OFF_SUPPORT_COLOR)
        where = f"mode {zl}" if zl >= 0 else "off-support"
        ax.set_title(f"kl_weight = {w:g}: " + r"$\mathbb{E}\,$KL" + f" = {ev.split.mean_kl:.2f} nats\n"
                     f"z = 0 decodes to: {where}")
    axes[0, 0].set_ylabel("lateral position − s")
    fig.tight_layout()
    return fig


def plot_collapse(curves: CollapseCurves) -> plt.Figure:
    """Left: the optimum's rate (lines) and the trained models' E KL (markers; open = collapsed,
    E KL < ``COLLAPSED_KL``) against β, for the L2 and the L1 sweep. Right: the optimum's gain
    over collapse, J_col − J_opt in the loss's units (log scale), with the β-interval in which
    each trained sweep collapsed shaded. The top axis gives β/β* of the L2 loss."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10.5, 3.8))
    styles = {"l2": ("#1f77b4", "o", "L2"), "l1": ("#ff7f0e", "s", "L1 (ACT's loss)")}
    for key, rows, trained in (("l2", curves.l2, curves.trained_l2), ("l1", curves.l1, curves.trained_l1)):
        col, mk, name = styles[key]
        beta = np.array([r["beta"] for r in rows])
        rate = np.array([r["rate"] for r in rows])
        gain = np.array([r["gain"] for r in rows])
        if key == "l2":  # the L2 optimum's rate and gain reach 0 exactly at β*
            beta, rate = np.append(beta, [curves.beta_star, 2 * curves.beta_star]), np.append(rate, [0.0, 0.0])
        ax1.plot(beta, rate, "-", color=col, lw=1.6, label=f"{name}: optimal rate")
        ax2.plot([r["beta"] for r in rows], np.maximum(gain, 1e-12), "-", color=col, lw=1.8,
                 label=f"{name}: optimum's gain over collapse")
        for r in trained:
            dead = r["mean_kl"] < COLLAPSED_KL
            ax1.plot([r["beta"]], [max(r["mean_kl"], 0.0)], mk, ms=7, color=col,
                     mfc="white" if dead else col)
        ax1.plot([], [], mk, color=col, label=f"{name}: trained, E KL (open: collapsed)")
        lo, hi = curves.brackets[key]
        if hi is not None:
            ax2.axvspan(lo if lo is not None else hi / 2, hi, color=col, alpha=0.15, lw=0,
                        label=f"{name}: trained sweep collapses here")
    for ax in (ax1, ax2):
        ax.axvline(curves.beta_star, color="#d62728", lw=1.3, ls="--")
        ax.set_xscale("log")
        ax.set_xlabel(r"KL weight $\beta$   (red dashed: $\beta^*$ of the L2 loss)")
        top = ax.secondary_xaxis("top", functions=(lambda b: b / curves.beta_star, lambda r: r * curves.beta_star))
        top.set_xlabel(r"$\beta/\beta^*$ (L2)", fontsize=8)
    ax1.axhline(COLLAPSED_KL, color="0.4", lw=0.8, ls=":")
    ax1.annotate(f"collapsed below {COLLAPSED_KL:g} nats", (0.99, COLLAPSED_KL), xycoords=("axes fraction", "data"),
                 ha="right", va="bottom", fontsize=7, color="0.4")
    ax1.set(ylabel="nats", title="what the latent carries: optimum vs trained")
    ax1.set_yscale("symlog", linthresh=0.01)
    ax1.set_ylim(0, 1.2)
    ax2.set_yscale("log")
    ax2.set_ylim(1e-5, 1.0)
    ax2.set(ylabel="gain over collapse (loss units)", title="what coding the mode is worth to the optimum")
    ax1.legend(fontsize=7, loc="lower left")
    ax2.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig
