"""Figures and table of the state-adaptive β comparison (:mod:`mbc_lib.experiments.adaptive_beta`)."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["KIND_COLORS", "KIND_NAMES", "plot_beta_profile", "plot_per_state", "plot_summary", "format_table",
           "format_compact"]

#: one colour per kind of β
KIND_COLORS = {"constant": "0.25", "adaptive": "#1f77b4", "adaptive_strong": "#2ca02c"}
#: how the legend names each kind
KIND_NAMES = {"constant": "best constant β", "adaptive": "best β(s) = c·β*(s)",
              "adaptive_strong": "best β(s) = c·β*(s), β*_ref at K̂=1"}


def _best(comp) -> list[tuple[str, str]]:
    return [(kind, comp.best[kind]) for kind in ("constant", "adaptive", "adaptive_strong") if comp.best.get(kind)]


def plot_beta_profile(comp) -> plt.Figure:
    """β*(s) measured at the query states (markers sized by the number of modes K̂ found there) and the β(s)
    that the best model of each kind used at the evaluation states (log axis). On ``branching`` the x axis is
    s; elsewhere the query index."""
    fig, ax = plt.subplots(figsize=(7.0, 3.2))
    rule = comp.rule
    x_q = rule.query[:, 0] if comp.task == "branching" else np.arange(len(rule.query))
    for k in sorted(set(rule.n_modes.tolist())):
        sel = rule.n_modes == k
        ax.scatter(x_q[sel], rule.beta_star[sel], s=14 + 10 * k, color="#d62728", alpha=0.7,
                   label=rf"$\beta^*(s)$, $\hat K$ = {k}")
    key = "s" if comp.task == "branching" else "query"
    for kind, lab in _best(comp):
        xs = np.array([r[key] for r in comp.states if r["label"] == lab], dtype=float)
        ax.plot(xs, comp.state_series(lab, "beta"), "o-" if kind != "constant" else "-", ms=4,
                color=KIND_COLORS[kind], label=f"{KIND_NAMES[kind]}: {lab}")
    ax.set_yscale("log")
    ax.set(xlabel="state s" if comp.task == "branching" else "query state (along the demonstrations)",
           ylabel=r"KL weight $\beta$", title=f"{comp.task}: β*(s) from the clustered demonstrations")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def plot_per_state(comp) -> plt.Figure:
    """Per evaluation state, for the best model of each kind: top, Î(A;Z|S) against ln K(s) (information where
    modes exist); bottom, the share of prior-decoded chunks in no mode (reliability). Unimodal states shaded."""
    key = "s" if comp.task == "branching" else "query"
    fig, (top, bot) = plt.subplots(2, 1, figsize=(7.0, 5.2), sharex=True)
    first = [r for r in comp.states if r["label"] == comp.best["constant"]]
    xs = np.array([r[key] for r in first], dtype=float)
    Ks = np.array([r["K"] for r in first])
    for ax in (top, bot):
        for x, k in zip(xs, Ks):
            if k == 1:
                ax.axvspan(x - 0.5 * _step(xs), x + 0.5 * _step(xs), color="0.9", lw=0)
    top.plot(xs, [math.log(k) for k in Ks], "_", ms=14, color="0.4", mew=2, label="ln K(s)")
    for kind, lab in _best(comp):
        top.plot(xs, comp.state_series(lab, "info"), "o-", color=KIND_COLORS[kind], label=f"{KIND_NAMES[kind]}")
        bot.plot(xs, comp.state_series(lab, "off"), "o-", color=KIND_COLORS[kind])
    top.set(ylabel=r"$\hat I(A;Z\mid S)$ (nats)", title=f"{comp.task}: information where modes exist (shaded: one mode)")
    bot.set(ylabel="prior samples in no mode", xlabel="state s" if comp.task == "branching" else "query state",
            ylim=(-0.03, 1.03), title="reliability under prior sampling")
    top.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _step(xs: np.ndarray) -> float:
    d = np.diff(np.unique(xs))
    return float(d.min()) if len(d) else 1.0


def plot_summary(result) -> plt.Figure:
    """Every model of both tasks: mean TV to the demonstrations' mode distribution (branching; lower is better)
    and closed-loop success with its 95% Wilson interval (PathGaps), coloured by kind, the best of each kind
    outlined."""
    names = list(result.tasks)
    fig, axes = plt.subplots(1, len(names), figsize=(6.0 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        comp = result.tasks[name]
        labels = list(comp.models)
        robot = "success" in comp.models[labels[0]]
        vals = [comp.models[lab]["success" if robot else "tv"] for lab in labels]
        colors = [KIND_COLORS[comp.models[lab]["kind"]] for lab in labels]
        best = set(comp.best.values())
        ax.bar(range(len(labels)), vals, color=colors, alpha=0.85,
                      edgecolor=["k" if lab in best else "none" for lab in labels], linewidth=1.6)
        if robot:
            lo = [comp.models[lab]["success"] - comp.models[lab]["success_lo"] for lab in labels]
            hi = [comp.models[lab]["success_hi"] - comp.models[lab]["success"] for lab in labels]
            ax.errorbar(range(len(labels)), vals, yerr=np.clip([lo, hi], 0, None), fmt="none", color="k", capsize=3, lw=0.9)
        ax.set_xticks(range(len(labels)), [lab.replace(", ", ",\n") for lab in labels], rotation=60, ha="right",
                      fontsize=7)
        ax.set(ylabel="closed-loop success" if robot else "mean TV to the demonstrations (lower is better)",
               title=name, ylim=(0, 1.05 if robot else max(vals) * 1.2 if vals else 1))
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in KIND_COLORS.values()]
    axes[0, -1].legend(handles, ["constant", "c·β*(s)", "c·β*(s), β*_ref at K̂=1"], fontsize=7)
    fig.tight_layout()
    return fig


def _f(x, spec: str) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def format_table(result) -> str:
    """A Markdown table, one row per (task, model): β (median over the states), Î/ln K where modes exist, prior
    samples in no mode where there is one mode and where there are several, modes reached, mean TV, and on the
    robot success (95% CI) and gaps used; the best of each kind in bold."""
    head = ("| task | β | median β | Î/ln K (K ≥ 2) | no mode, K = 1 | no mode, K ≥ 2 | modes reached | TV | success "
            "| gaps used |\n|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for name, comp in result.tasks.items():
        best = set(comp.best.values())
        for lab, m in comp.models.items():
            tag = f"**{_md(lab)}**" if lab in best else _md(lab)
            succ = (f"{m['success']:.0%} ({m['success_lo']:.0%}–{m['success_hi']:.0%})" if "success" in m else "–")
            lines.append(f"| {name} | {tag} | {m['beta']:.3g} | {_f(m['info_frac'], '.2f')} | "
                         f"{_f(m['off_unimodal'], '.1%')} | {_f(m['off_multimodal'], '.1%')} | {m['coverage']:.0%} | "
                         f"{m['tv']:.3f} | {succ} | {m.get('modes_used', '–')} |")
    return head + "\n".join(lines)


def _md(text: str) -> str:
    """``text`` safe inside Markdown: the asterisks of β* would start emphasis."""
    return text.replace("*", "\\*")


def format_compact(result) -> str:
    """A narrow Markdown table, one row per (task, model): median β, Î/ln K where modes exist, prior samples in no
    mode at one-mode states, mean TV, and on the robot the success rate; the best of each kind in bold."""
    head = "| task | model | median β | Î/ln K | no mode, K = 1 | TV | success |\n|---|---|---|---|---|---|---|\n"
    lines = []
    for name, comp in result.tasks.items():
        best = set(comp.best.values())
        for lab, m in comp.models.items():
            tag = f"**{_md(lab)}**" if lab in best else _md(lab)
            succ = f"{m['success']:.0%}" if "success" in m else "–"
            lines.append(f"| {name} | {tag} | {m['beta']:.3g} | {_f(m['info_frac'], '.2f')} | "
                         f"{_f(m['off_unimodal'], '.1%')} | {m['tv']:.3f} | {succ} |")
    return head + "\n".join(lines)
