"""Chapter 9's figures: modes per observation along the trajectory, one neighbourhood, the chunk length,
β*(s) against the trained cvaes, and the trained policies' mechanisms and rollouts
(:mod:`mbc_lib.experiments.robot_modes`)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from .. import envs
from ..experiments.robot_modes import DEMO_TASKS, TRAIN_TASK, PolicyReport, RobotModes, expert_separation, short_name
from .common import OFF_SUPPORT_COLOR, mode_color

__all__ = ["plot_profile", "plot_neighbourhood", "plot_chunk_length", "plot_beta_star", "plot_policies"]


def _finite(x: np.ndarray) -> np.ndarray:
    """Median over queries of values where finite (inf: one mode, no gap) — NaN when most are not."""
    x = np.asarray(x, dtype=float)
    return np.array([np.median(r[np.isfinite(r)]) if np.isfinite(r).sum() > len(r) / 2 else np.nan for r in x])


def plot_profile(result: RobotModes) -> plt.Figure:
    """Per task (columns), against the time step: top, modes per observation K̂(s) (clusters) next to the
    expert modes present in the neighbourhood and the cluster purity; bottom, the gap Δ(s) between the
    clustered modes and the expert's counterfactual centre distance Δ_c^exp(s), at the chapter's H, with the
    separation regime written at the steps where it changes."""
    fig, axes = plt.subplots(2, len(DEMO_TASKS), figsize=(5.4 * len(DEMO_TASKS), 6.2), squeeze=False, sharex="col")
    for j, (env_id, K) in enumerate(DEMO_TASKS):
        p = result.profile(env_id)
        x = np.array(p.steps)
        ax = axes[0, j]
        ax.plot(x, p.n_modes.mean(1), "o-", color="k", label=r"clusters $\hat K(s)$")
        ax.plot(x, p.n_expert.mean(1), "s--", color="C2", mfc="none", ms=8, label="expert modes in the neighbourhood")
        ax.plot(x, K * p.purity.mean(1), ":", color="0.5", label=f"purity × $K$ ($K$ = {K})")
        ax.axhline(K, color="0.8", lw=0.8)
        top = max(K, float(p.n_modes.mean(1).max()), float(p.n_expert.mean(1).max()))
        ax.set(ylabel="modes", ylim=(0, 1.45 * top),
               title=f"{short_name(env_id)} ($K$ = {K}), $H$ = {p.H}: modes per observation")
        ax.legend(fontsize=7, loc="upper center", ncol=2)  # in the head room above the data
        ax = axes[1, j]
        sep = _finite(p.separation)
        ax.plot(x, sep, "o-", color="k", label=r"gap $\hat\Delta(s)$ between clustered modes")
        ax.plot(x, np.median(p.expert_delta, 1), "s--", color="C2", mfc="none", ms=8,
                label=r"expert's counterfactual $\Delta_c^{\rm exp}(s)$")
        regimes = [p.regime(i) for i in range(len(x))]
        for i, (xi, reg) in enumerate(zip(x, regimes)):
            if i == 0 or reg != regimes[i - 1]:  # label where the regime changes (dense steps would overlap)
                ax.annotate(reg, (xi, 0), xytext=(0, 4), textcoords="offset points", rotation=90, fontsize=7,
                            color="0.35", ha="center", va="bottom")
        ax.axhline(0, color="0.6", lw=0.8)
        top = np.nanmax(np.concatenate([sep, np.median(p.expert_delta, 1)]))
        ax.set(xlabel="time step of the query observation (50 Hz)", ylabel="m/s (chunk distance)",
               ylim=(min(-0.1, float(np.nanmin(sep)) - 0.1) if np.isfinite(sep).any() else -0.1, 1.4 * top),
               title="separation (text: the regime, where it changes)")
        ax.legend(fontsize=7, loc="upper center", ncol=2)
    fig.tight_layout()
    return fig


def plot_neighbourhood(result: RobotModes, env_id: str, step: int, H: int, query: int = 0) -> plt.Figure:
    """One query observation: left, the planned effector/pusher paths of the k nearest demonstrations'
    chunks (position + Σ velocity·dt) coloured by cluster, with the expert's counterfactual plan for every
    mode dashed; right, the velocity commands of the chunks (vx solid, vy dotted). Title: K̂, Δ, regime."""
    p = result.profile(env_id, H)
    i = p.steps.index(step)
    cl, idx, q = p.clusters[i][query], p.index[i, query], p.query[i, query]
    data = result.demos[env_id].dataset(H)
    chunks = data.chunks.numpy()[idx]  # [k, H, 2]
    task = envs.make_env_task(env_id, K=p.K)
    dt = task.control_dt
    start = data.obs.numpy()[idx][:, :2]
    paths = start[:, None] + np.cumsum(chunks, axis=1) * dt  # [k, H, 2]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for path, a, lab in zip(paths, chunks, cl.labels):
        c = mode_color(int(lab))
        ax1.plot(path[:, 0], path[:, 1], color=c, lw=1, alpha=0.6)
        ax2.plot(np.arange(H), a[:, 0], color=c, lw=1, alpha=0.5)
        ax2.plot(np.arange(H), a[:, 1], color=c, lw=1, alpha=0.5, ls=":")
    centers, _ = expert_separation(env_id, result.demos[env_id].K, q[None], H)
    for k_, ck in enumerate(centers[0]):
        pk = q[None, :2] + np.cumsum(ck, axis=0) * dt
        ax1.plot(pk[:, 0], pk[:, 1], "--", color="k", lw=1.5, label="expert plan, every mode" if k_ == 0 else None)
    ax1.plot(*q[:2], "k*", ms=12, label="query observation")
    if hasattr(task, "gap_centers"):
        for g in task.gap_centers:
            ax1.axvline(g, color="0.85", lw=6, zorder=0)
        ax1.axhline(task.wall_y, color="0.3", lw=1)
    else:
        for c_ in task.bin_centers:
            ax1.plot(*c_, "o", ms=10, mfc="none", color="0.5")
    ax1.set(xlabel="x (m)", ylabel="y (m)", title=f"{short_name(env_id)}, step {step}: chunks as planned paths",
            aspect="equal")
    ax1.legend(fontsize=7, loc="lower left")
    sep = "—" if not np.isfinite(cl.separation) else f"{cl.separation:.2f} m/s"
    ax2.set(xlabel="step within the chunk", ylabel="command (m/s)",
            title=f"$H$ = {H}: $\\hat K$ = {cl.n_modes}, $\\hat\\Delta(s)$ = {sep}, regime: {cl.regime}")
    ax2.legend([Line2D([], [], color="0.3"), Line2D([], [], color="0.3", ls=":")], ["vx", "vy"], fontsize=7)
    fig.tight_layout()
    return fig


def plot_chunk_length(result: RobotModes) -> plt.Figure:
    """At the start observations (where the expert chooses): the gap Δ(s₀) between clustered modes, its
    ratio to the within-mode spread, and the expert's counterfactual Δ_c, against the chunk length H; dotted,
    the prediction Δ_c = √H·(1 m/s) for two gap paths steering at ±0.5 m/s with equal forward speed. The ratio
    is drawn on a scale linear below 1 (the close / separated boundary) and logarithmic above."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.4), layout="constrained")
    for j, (env_id, K) in enumerate(DEMO_TASKS):
        ps = [result.profile(env_id, H) for H in result.Hs]
        c = f"C{j}"
        ax1.plot(result.Hs, [_finite(p.separation[:1])[0] for p in ps], "o-", color=c,
                 label=f"{short_name(env_id)}: gap $\\hat\\Delta(s_0)$")
        ax1.plot(result.Hs, [np.median(p.expert_delta[0]) for p in ps], "s--", color=c, mfc="none",
                 label=f"{short_name(env_id)}: expert $\\Delta_c(s_0)$")
        ax2.plot(result.Hs, [_finite(p.ratio[:1])[0] for p in ps], "o-", color=c, label=f"{short_name(env_id)} ($K$ = {K})")
    Hg = np.geomspace(min(result.Hs), max(result.Hs), 50)
    ax1.plot(Hg, np.sqrt(Hg), ":", color="k", lw=1, label=r"$\sqrt{H}$ m/s: PathGaps steering saturated at ±0.5 m/s")
    ax1.axhline(0, color="0.6", lw=0.8)
    ax2.set_yscale("symlog", linthresh=1.0, linscale=1.0)
    ax2.axhline(1, color="0.6", lw=0.8, ls="--")
    ax2.text(result.Hs[0], 1.08, "separated ↑ / close ↓", fontsize=7, color="0.4")
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xticks(result.Hs, [str(h) for h in result.Hs])
        ax.set_xlabel("chunk length $H$")
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    ax1.set(ylabel="m/s", title="longer chunks: modes further apart")
    ax2.set(ylabel=r"$\hat\Delta(s_0)\,/\,s_w$ (gap / within-mode spread)", title="…relative to their spread")
    return fig


def _policy_label(rep: PolicyReport, newline: bool = True) -> str:
    """Mathtext label of a trained policy for figures: "cvae, β = 0.1 β*" or "flow"."""
    if rep.family != "cvae":
        return rep.family
    return f"cvae{chr(10) if newline else ', '}$\\beta = {rep.metrics['beta_ratio']:.3g}\\,\\beta^*$"


def plot_beta_star(result: RobotModes) -> plt.Figure:
    """Left: β*(s) along the trajectory of the training task (exact collapse criterion per neighbourhood, median
    and range over queries) with the trained cvaes' β as horizontal lines — a state whose β*(s) lies
    below a model's β is predicted to collapse there. Right: what each cvae's latent carries at the start
    states (E KL, Î, marginal KL) against the mode entropy 𝓗(π̂) ≤ log K. Legends sit under the panels."""
    p = result.train_profile
    cvaes = [r for r in result.reports.values() if r.family == "cvae"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.6), layout="constrained")
    x = np.array(p.steps)
    ax1.fill_between(x, p.beta_star.min(1), p.beta_star.max(1), color="0.85", label=r"$\beta^*(s)$, range over queries")
    ax1.plot(x, np.median(p.beta_star, 1), "o-", color="k", label=r"$\beta^*(s)$, median")
    for i, r in enumerate(cvaes):
        ax1.axhline(r.metrics["beta"], color=f"C{i}", ls="--",
                    label=f"{_policy_label(r, newline=False)}: $\\beta$ = {r.metrics['beta']:.3g}")
    ax1.set(yscale="log", xlabel="time step of the query observation", ylabel=r"$\beta$ (dimensionless)",
            title=f"{short_name(p.env_id)}: predicted collapse threshold along the trajectory")
    ax1.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    w = 0.25
    xs = np.arange(len(cvaes))
    for off, key, lab, c in ((-w, "mean_kl", "E KL", "#1f77b4"),
                             (0, "mutual_information", r"$\hat I(A;Z\mid S)$", "#2ca02c"),
                             (w, "marginal_kl", "marginal KL", "#9467bd")):
        ax2.bar(xs + off, [r.metrics[key] for r in cvaes], w, color=c, label=lab)
    ent = np.mean([r.metrics["mode_entropy"] for r in cvaes])
    ax2.axhline(ent, color="k", ls=":", lw=1, label=f"$\\mathcal{{H}}(\\hat\\pi)$ at $s_0$ = {ent:.2f} nats")
    ax2.set_xticks(xs, [f"{_policy_label(r)}\n{r.metrics['predicted']}" for r in cvaes], fontsize=8)
    ax2.set(ylabel="nats", title="what the latent carries at the start states (tick: predicted)")
    ax2.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, frameon=False)
    return fig


def plot_policies(result: RobotModes) -> plt.Figure:
    """Left: the trained policies' chunks at a start observation as planned paths, coloured by the clustered
    mode they land in (red: in no mode). Middle: mechanism measurements at the start states — off-support
    mass of prior-decoded and posterior-decoded cvae chunks, hole mass Hole_0.5, and the flow's bridge mass
    with its isoperimetric floor at L̂ (◆). Right: closed-loop rollouts — success, failures (collisions /
    between bins) and episodes that used no mode, with the number of episodes through each mode above the
    bars. Legends sit under their panels, so they never cover a bar."""
    reps = list(result.reports.values())
    p = result.train_profile
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.2), gridspec_kw={"width_ratios": [1.1, 1, 1]},
                             layout="constrained")
    ax = axes[0]
    env_id = TRAIN_TASK[0]
    dt = envs.make_env_task(env_id, K=TRAIN_TASK[1]).control_dt
    q = p.query[0, 0]
    for i, r in enumerate(reps):
        s, lab = r.samples[0][:60], r.labels[0][:60]
        paths = q[None, None, :2] + np.cumsum(s, axis=1) * dt  # [60, H, 2]
        for path, l_ in zip(paths, lab):
            ax.plot(path[:, 0], path[:, 1] + 0.06 * i, color=mode_color(int(l_)), lw=0.8, alpha=0.5)
        ax.text(q[0] + 0.05, q[1] + 0.06 * i + 0.005, _policy_label(r, newline=False), fontsize=8)
    ax.set(xlabel="x (m)", ylabel="y (m), policies stacked 6 cm apart",
           title="chunks at a start observation (red: no mode)")
    ax.set_xlim(right=ax.get_xlim()[1] + 0.06)  # room for the policy names
    xs = np.arange(len(reps))
    ticks = [_policy_label(r) for r in reps]
    w = 0.27
    ax = axes[1]
    lat = [i for i, r in enumerate(reps) if r.family == "cvae"]
    tra = [i for i, r in enumerate(reps) if r.family != "cvae"]
    pri = [r.metrics.get("off_support_prior", r.metrics.get("bridge", np.nan)) for r in reps]
    ax.bar(xs[lat] - w, [pri[i] for i in lat], w, color=OFF_SUPPORT_COLOR, label="off-support: deployment samples")
    ax.bar(xs[lat], [reps[i].metrics["off_support_posterior"] for i in lat], w, color="#f4a5a5", hatch="...",
           label=r"off-support: $z\sim q(z\mid s,a)$")
    ax.bar(xs[lat] + w, [reps[i].metrics["hole_0.5"] for i in lat], w, color="0.6",
           label=r"hole mass $\mathrm{Hole}_{0.5}$")
    ax.bar(xs[tra], [pri[i] for i in tra], w, color=OFF_SUPPORT_COLOR, hatch="//", edgecolor="w",
           label="flow: bridge mass $b$")
    ax.plot(xs[tra], [reps[i].metrics["floor"] for i in tra], "D", color="k", ms=7,
            label=r"flow: isoperimetric floor at $\hat L$")
    ax.set_xticks(xs, ticks, fontsize=8)
    ax.set(ylim=(0, 1.05), ylabel="fraction", title="mechanisms at the start states")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    ax = axes[2]
    succ = [r.rollout.success_rate for r in reps]
    fail = [float(r.rollout.failures.mean()) for r in reps]
    none = [float((r.rollout.modes < 0).mean()) for r in reps]
    ax.bar(xs - w, succ, w, color="C2", label="success")
    ax.bar(xs, fail, w, color=OFF_SUPPORT_COLOR, label=reps[0].rollout.failure_key)
    ax.bar(xs + w, none, w, color="0.5", label="used no mode")
    for x_, r in zip(xs, reps):
        ax.text(x_, 1.04, "/".join(str(int(v)) for v in r.rollout.mode_hist), ha="center", va="bottom", fontsize=8)
    ax.text(-0.5, 1.17, "episodes through mode " + "/".join(str(k + 1) for k in range(TRAIN_TASK[1])) + ":",
            fontsize=8, color="0.3", va="bottom")
    ax.set_xticks(xs, ticks, fontsize=8)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set(xlim=(-0.6, len(reps) - 0.4), ylim=(0, 1.28), ylabel="fraction of episodes",
           title=f"closed-loop rollouts ({reps[0].rollout.n_episodes} episodes each)")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, frameon=False)
    return fig
