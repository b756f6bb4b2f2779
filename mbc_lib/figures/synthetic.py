"""Chapter 7's figures and text table: where every family's samples land, the cvae against β/β*, the
samplers against their floor, and one model's samples (:mod:`mbc_lib.experiments.synthetic`)."""
from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from .. import tasks
from ..experiments.synthetic import TAU, TRANSPORT, Cell, SyntheticResult, collapse_off_support, eval_obs, setting_name
from .common import OFF_SUPPORT_COLOR, mode_color, plot_chunks

__all__ = ["format_table", "plot_overview", "plot_beta", "plot_steps", "plot_samples", "token_rows", "plot_token_head"]

_COLUMNS = (("model", 18), ("task", 9), ("K", 2), ("Δc", 4), ("coverage", 8), ("min mode", 8), ("modes", 5),
            ("bridge", 7), ("theory", 7), ("Sinkhorn", 8))


def _theory_value(r: dict) -> float:
    """The theory's number for the off-support column: the predicted off-support (regression, collapsed
    cvae) or the floor under it (transport at L̂, 0 for the discrete heads)."""
    for k in ("predicted_off_support", "floor"):
        v = r.get(k, math.nan)
        if v is not None and np.isfinite(v):
            return float(v)
    return math.nan


def format_table(result: SyntheticResult, setting: tuple | None = None) -> str:
    """The summary as a fixed-width text table (pandas is not a dependency). ``bridge``: off-support mass;
    ``theory``: the predicted off-support (regression, cvae at β ≥ β*) or, marked ≥, the floor under it."""
    head = " ".join(f"{name:<{w}s}" if i < 2 else f"{name:>{w}s}" for i, (name, w) in enumerate(_COLUMNS))
    lines = [head, "-" * len(head)]
    for c in result.select(setting=setting):
        r = c.row()
        th = _theory_value(r)
        th_s = "—" if not np.isfinite(th) else (f"≥{th:.3f}" if "floor" in c.theory else f"{th:.3f}")
        vals = (c.label, c.task, f"{c.K:d}", f"{c.delta_c:.1f}", f"{r['coverage']:.3f}", f"{r['min_mass']:.3f}",
                f"{r['modes_covered']:.1f}", f"{r['off_support']:.3f}", th_s, f"{r['sinkhorn']:.3f}")
        lines.append(" ".join(f"{v:<{w}s}" if i < 2 else f"{v:>{w}s}" for i, ((_, w), v) in enumerate(zip(_COLUMNS, vals))))
    return "\n".join(lines)


def _representatives(result: SyntheticResult, setting: tuple) -> list[Cell]:
    """One cell per model for the overview: every β of the cvae, the largest step count of diffusion/flow."""
    out = []
    for c in result.select(setting=setting):
        if c.knob == "steps" and c.value != max(x.value for x in result.select(c.family, setting)):
            continue
        out.append(c)
    return out


def plot_overview(result: SyntheticResult, settings: Sequence[tuple] | None = None) -> plt.Figure:
    """One row per setting. Left: where the samples go — stacked fractions off-support (red, at the bottom)
    and per mode (mode colours), with the theory's off-support value (◆: prediction; ▽: floor) beside the
    red part. Right: the
    Sinkhorn divergence to the demonstrations (log scale)."""
    settings = list(result.settings if settings is None else settings)
    fig, axes = plt.subplots(len(settings), 2, figsize=(12, 2.9 * len(settings)), squeeze=False,
                             gridspec_kw={"width_ratios": [2.2, 1]})
    for (ax, ax2), setting in zip(axes, settings):
        cells = _representatives(result, setting)
        x = np.arange(len(cells))
        for i, c in enumerate(cells):
            bottom = float(c.off_support.mean())  # off-support at the bottom, so its height reads against the theory marker
            ax.bar(i, bottom, color=OFF_SUPPORT_COLOR, edgecolor="k", lw=0.4, width=0.7, hatch="//")
            for k, p in enumerate(c.mass.mean(0)):
                ax.bar(i, p, bottom=bottom, color=mode_color(k), edgecolor="k", lw=0.4, width=0.7)
                bottom += p
            th = _theory_value(c.row())
            if np.isfinite(th):
                pred = "floor" not in c.theory
                ax.plot(i + 0.42, th, "D" if pred else "v", color="k", ms=6, mfc="k" if pred else "w",
                        label=("theory: predicted off-support" if pred else "theory: floor on off-support")
                        if i == next(j for j, cc in enumerate(cells)
                                     if ("floor" not in cc.theory) == pred and np.isfinite(_theory_value(cc.row())))
                        else None)
        ax.set_xticks(x, [c.label for c in cells], rotation=25, ha="right", fontsize=8)
        ax.set(ylim=(0, 1.3), yticks=np.linspace(0, 1, 6), ylabel="fraction of samples",
               title=f"{setting_name(setting)}: off-support (red, bottom) and modes (colours)")
        ax.legend(fontsize=7, loc="upper right", ncol=2, framealpha=0.9, frameon=True)
        ax2.bar(x, [max(c.sinkhorn.mean(), 1e-4) for c in cells], color="0.5", width=0.7)
        ax2.set_xticks(x, [c.label for c in cells], rotation=25, ha="right", fontsize=8)
        ax2.set(yscale="log", ylabel="Sinkhorn to demos", title="distribution match (lower is better)")
    fig.tight_layout()
    return fig


def plot_beta(result: SyntheticResult) -> plt.Figure:
    """The cvae against β/β* (log axis), one colour per setting. (a) Modes holding > τ of the prior
    samples, with the prediction (dashed): K below β*; above, 1 if the mode average lies in a mode, else 0. (b) Per-sample KL (●) with the Fano
    bound B(P̂_e) (×) and log K (dotted). (c) Off-support mass, with the collapse point's off-support (◆)."""
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(12.5, 3.5))
    for i, setting in enumerate(result.settings):
        cells = result.select("cvae", setting)
        if not cells:
            continue
        col, K = f"C{i}", setting[1]
        r = np.array([c.ratio for c in cells])
        rows = [c.row() for c in cells]
        grid = np.geomspace(min(r.min(), 0.05), max(r.max(), 4), 200)
        task = result.tasks[setting]
        collapsed = 1 - collapse_off_support(task, eval_obs(task, 1))  # the mode average: in one mode or in none
        ax1.plot(grid, np.where(grid < 1, K, collapsed) + 0.04 * i, "--", color=col, lw=1, alpha=0.8)
        ax1.plot(r, [x["modes_covered"] for x in rows], "o", color=col, ms=7, label=setting_name(setting))
        ax2.plot(r, [x["kl"] for x in rows], "o-", color=col, ms=6, label=f"{setting_name(setting)}: E KL")
        ax2.plot(r, [x["fano"] for x in rows], "x", color=col, ms=8, mew=2)
        ax2.axhline(math.log(K), color=col, ls=":", lw=1)
        ax3.plot(r, [x["off_support"] for x in rows], "o-", color=col, ms=6, label=setting_name(setting))
        ax3.plot(r, [x["predicted_off_support"] for x in rows], "D", color=col, mfc="none", ms=9)
    for ax in (ax1, ax2, ax3):
        ax.axvline(1.0, color="#d62728", lw=1.5)
        ax.set_xscale("log")
        ax.set_xlabel(r"$\beta/\beta^*$   (red line: $\beta^*$, above which collapse is optimal)")
    ax1.set(ylabel=f"modes with > {TAU:.0%} of samples", title="(a) modes kept (dashed: at the optimum)")
    ax2.set(ylabel="nats", title=r"(b) E KL (●) ≥ Fano $B(\hat P_e)$ (×); $\log K$ dotted")
    ax3.set(ylabel="off-support", ylim=(-0.03, 1.03), title="(c) off-support (◆: collapse point)")
    ax1.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_steps(result: SyntheticResult, families: Sequence[str] = TRANSPORT) -> plt.Figure:
    """Transport policies against sampler steps: the bridge (filled, solid) and its isoperimetric floor
    at L̂ (open, dashed), one colour per setting, one panel per family; the last panel holds every
    (model, steps) against its floor (the theorem: on or above the diagonal, up to sampling error)."""
    fams = [f for f in families if result.select(f)]
    fig, axes = plt.subplots(1, len(fams) + 1, figsize=(4.3 * (len(fams) + 1), 3.6), squeeze=False)
    axes = axes[0]
    lo = 1.0
    for ax, fam in zip(axes, fams):
        for i, setting in enumerate(result.settings):
            rows = [c.row() for c in result.select(fam, setting)]
            if not rows:
                continue
            S = [r["knob_value"] for r in rows]
            ax.plot(S, [max(r["off_support"], 1e-4) for r in rows], "o-", color=f"C{i}", label=setting_name(setting))
            fl = [r["floor"] if np.isfinite(r["floor"]) and r["floor"] > 0 else math.nan for r in rows]
            ax.plot(S, fl, "v--", color=f"C{i}", mfc="none", ms=8)
            ax3 = axes[-1]
            for r in rows:
                if np.isfinite(r["floor"]) and r["floor"] > 0:
                    lo = min(lo, r["floor"], max(r["off_support"], 1e-4))
                    ax3.errorbar(r["floor"], max(r["off_support"], 1e-4), yerr=[[0], [max(r["off_support_hi"] - r["off_support"], 0.0)]],
                                 fmt="o" if fam == "flow" else "s", color=f"C{i}", ms=4 + np.log2(r["knob_value"]),
                                 mfc=f"C{i}" if fam == "flow" else "none", alpha=0.8, lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set(yscale="log", xlabel="sampler steps", ylabel="mass in no mode",
               title=rf"{fam}: bridge (●) and floor at $\hat L$ (▽)")
        ax.legend(fontsize=7)
    ax3 = axes[-1]
    lim = (lo / 2, 1.5)
    ax3.plot(lim, lim, "k-", lw=1)
    ax3.set(xscale="log", yscale="log", xlim=lim, ylim=lim, xlabel=r"isoperimetric floor at $\hat L$",
            ylabel="measured bridge", title="every model: bridge ≥ floor (● flow, □ diffusion)")
    fig.tight_layout()
    return fig


def plot_samples(cell: Cell, task: tasks.Task) -> plt.Figure:
    """One (family, setting, knob) at the first evaluation observation: demonstrations (grey) and the
    policy's samples coloured by the mode they land in (red: off-support). Fork and branching: lateral
    position − s against the step in the chunk; ring: the 2-D paths."""
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    if task.action_dim == 1:
        off = cell.obs0[:1, 0].expand(len(cell.demos)) if task.name == "fork" else None
        plot_chunks(ax, cell.demos, None, offset=off, color="0.75", alpha=0.5)
        off = cell.obs0[:1, 0].expand(len(cell.samples)) if task.name == "fork" else None
        plot_chunks(ax, cell.samples, cell.labels, offset=off, alpha=0.45)
        ax.set_ylabel("lateral position − s" if task.name == "fork" else "lateral position")
    else:
        for c, lab in ((cell.demos, None), (cell.samples, cell.labels)):
            c = c.numpy()
            for j in range(len(c)):
                color = "0.75" if lab is None else mode_color(int(lab[j]))
                ax.plot(c[j, :, 0], c[j, :, 1], color=color, alpha=0.5 if lab is None else 0.45, lw=1)
        ax.set(xlabel="x", ylabel="y", aspect="equal")
    r = cell.row()
    ax.set_title(f"{cell.label} on {cell.task} K={cell.K}, Δc={cell.delta_c:g}\n"
                 f"coverage {r['coverage']:.0%}, modes {r['modes_covered']:.0f}/{cell.K}, "
                 f"off-support {r['off_support']:.0%}, Sinkhorn {r['sinkhorn']:.3f}", fontsize=9)
    fig.tight_layout()
    return fig


#: the models the token head is compared with: the discrete heads and the samplers at their largest step count
_TOKEN_PEERS = ("mixture", "vq", "diffusion", "flow", "autoregressive")
_TOKEN_COLORS = {"mixture": "#1f77b4", "vq": "#ff7f0e", "diffusion": "#2ca02c", "flow": "#9467bd",
                 "autoregressive": "#d62728"}


def token_rows(rows: Sequence[dict]) -> list[dict]:
    """From chapter 7's summary rows (:func:`mbc_lib.experiments.synthetic.summary`, or the cached table): per
    setting, one row per model of ``_TOKEN_PEERS`` — diffusion and flow at their largest step count — with
    ``setting``, ``label``, ``coverage``, ``balance`` = K·(smallest mode mass) and ``nfe`` (network evaluations
    per chunk: 1 for the one-shot heads, the step count for the samplers, the token count for the token head)."""
    out = []
    settings = list(dict.fromkeys((r["task"], int(r["K"]), float(r["delta"])) for r in rows))
    for setting in settings:
        mine = [r for r in rows if (r["task"], int(r["K"]), float(r["delta"])) == setting]
        for fam in _TOKEN_PEERS:
            fr = [r for r in mine if r["family"] == fam]
            if not fr:
                continue
            r = max(fr, key=lambda x: x["knob_value"]) if fam in TRANSPORT else fr[0]
            nfe = r["knob_value"] if fam in TRANSPORT else (r.get("nfe", math.nan) if fam == "autoregressive" else 1)
            label = f"{fam} {int(r['knob_value'])} steps" if fam in TRANSPORT else fam
            out.append({"setting": setting, "family": fam, "label": label, "coverage": float(r["coverage"]),
                        "balance": float(setting[1] * r["min_mass"]), "off_support": float(r["off_support"]),
                        "modes_covered": float(r["modes_covered"]), "nfe": float(nfe)})
    return out


def plot_token_head(rows: Sequence[dict]) -> plt.Figure:
    """The token head against the other multimodal families, per setting of chapter 7's table: (a) coverage
    (fraction of samples in some mode), (b) balance K·(smallest mode mass) (1 = equal shares), (c) network
    evaluations per chunk (log axis, sequential for the samplers and the token head)."""
    tr = token_rows(rows)
    settings = list(dict.fromkeys(r["setting"] for r in tr))
    fams = [f for f in _TOKEN_PEERS if any(r["family"] == f for r in tr)]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.0))
    width = 0.8 / max(1, len(fams))
    for j, fam in enumerate(fams):
        color = _TOKEN_COLORS[fam]
        for ax, key in zip(axes, ("coverage", "balance", "nfe")):
            xs, ys = [], []
            for i, st in enumerate(settings):
                r = next((r for r in tr if r["setting"] == st and r["family"] == fam), None)
                if r is not None:
                    xs.append(i - 0.4 + width * (j + 0.5))
                    ys.append(r[key])
            ax.bar(xs, ys, width=width * 0.95, color=color, edgecolor="k" if fam == "autoregressive" else "none",
                   label=next(r["label"] for r in tr if r["family"] == fam).replace(
                       f" {int(max(r['nfe'] for r in tr if r['family'] == fam))} steps", " (most steps)")
                   if fam in TRANSPORT else fam)
    names = [setting_name(s) for s in settings]
    for ax in axes:
        ax.set_xticks(range(len(settings)), names, rotation=20, ha="right", fontsize=8)
    axes[0].set(ylim=(0, 1.05), ylabel="fraction of samples in a mode", title="(a) coverage")
    axes[1].set(ylim=(0, 1.15), ylabel=r"$K\cdot\min_k \hat p_k$", title="(b) balance across modes (1 = equal)")
    axes[1].axhline(1.0, color="0.4", lw=0.8, ls=":")
    axes[2].set(yscale="log", ylabel="network evaluations per chunk", title="(c) latency: NFE")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    return fig
