"""Chapter 4: prior coverage — where the prior puts mass the decoder never trained on.

Training decodes z ~ q(z|s, a), so the decoder learns the aggregate posterior q̄(z|s);
deployment decodes z ~ p(z|s) (or ACT's z = 0). Several CVAE variants are trained on the
same fork (:data:`VARIANTS`: weak KL, a learned Gaussian prior, aggregate matching with MMD or
Sinkhorn, ACT's L1 with z = 0 decoding) and measured against the bounds of chapter 4 (proofs in
the book's appendix, app-aggregate; the diagnostics themselves: app-diagnostics):

* **hole mass** Hole_α(s) = P_{z~p}[q̄(z|s)/p(z|s) < α] next to its bound TV(q̄, p)/(1 − α) and the
  Pinsker form √(KL(q̄‖p)/2)/(1 − α), with KL(q̄‖p) the marginal term of the rate decomposition
  (:func:`aggregate_ratio` estimates both from the same prior draws);
* **decoded coverage** c_k(s) = P_{z~p}[D(s, z) ∈ M_k] and the off-support mass, under prior
  and under posterior sampling;
* **posterior-mean typicality**: χ²_dz percentiles of ‖(μ_q − μ_p)/σ_p‖², and z = 0;
* **what z = 0 decodes to**, and the decoder's mode map over the latent plane (:func:`decoded_map`,
  summarised by :func:`map_summary`).

The hole threshold is called α (argument ``alphas`` / ``alpha``); result keys are ``hole_<α>``.

Sizes and the list of variants come from ``BUDGETS["prior_coverage"]``. Sinkhorn's POT solver costs
~0.3 s per training step on a CPU, so only the full profile trains it (or pass ``names=``).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.patches import Ellipse
from torch import Tensor
from tqdm.auto import tqdm

from .. import diagnostics, policies, tasks
from ..plotting import OFF_SUPPORT_COLOR, mode_color
from ..profiles import budget
from ..train import History, progress_enabled
from .latent import FORK, LatentEval, Thresholds, evaluate, fit_cvae, predicted_thresholds

__all__ = [
    "VARIANTS", "aggregate_ratio", "CoverageResult", "fit_variant", "compare", "summary", "decoded_map",
    "plot_coverage", "plot_latent_map", "posterior_sample_percentiles", "plot_typicality", "thresholds",
    "map_summary", "radial_gap",
]

#: the CVAE variants chapter 4 compares: name -> cvae config (KL weights are absolute; the
#: fork's L2 collapse threshold is β* ≈ 0.54, so β = 0.05 is weak regularisation)
VARIANTS: dict[str, dict] = {
    "weak KL": dict(beta=0.05, recon="l2"),
    "learned prior": dict(beta=0.05, recon="l2", prior="learned"),
    "MMD (WAE)": dict(recon="l2", regularizer="aggregate", aggregate="mmd"),
    "Sinkhorn (WAE)": dict(recon="l2", regularizer="aggregate", aggregate="sinkhorn"),
    "ACT (L1, z=0)": dict(beta=0.05, recon="l1", decode_from="zero"),
}


# ---------------------------------------------------------------------------------------
# hole mass and TV from the same prior draws
# ---------------------------------------------------------------------------------------
def _log_mixture(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log q̄(z) for the uniform mixture of N diagonal Gaussians ``mu, logvar [N, dz]`` at ``z [M, dz]``."""
    d = z[:, None, :] - mu[None]  # [M, N, dz]
    log_comp = -0.5 * (d.pow(2) * torch.exp(-logvar)[None] + logvar[None] + math.log(2 * math.pi)).sum(-1)  # [M, N]
    return torch.logsumexp(log_comp, dim=1) - math.log(mu.shape[0])


def aggregate_ratio(
    mu_q: Tensor, logvar_q: Tensor, mu_p: Tensor, logvar_p: Tensor, alphas: Sequence[float] = (0.1, 0.5),
    n_prior: int = 4096, generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Hole masses and TV(q̄, p) at one state, from the same ``n_prior`` draws z ~ p (chapter 4;
    app-aggregate).

    q̄ is the mixture of the posteriors ``[N, dz]`` of demonstrations at that state; the prior
    is ``mu_p, logvar_p [dz]``. With r(z) = q̄(z)/p(z) and a threshold α ∈ (0, 1):

        Hole_α = P_p[r < α]         (the estimator of :func:`mbc_lib.diagnostics.hole_mass`)
        TV     = E_p[(1 − r)_+]     (an exact identity for TV(q̄, p))

    and 1[r < α] ≤ (1 − r)_+/(1 − α) pointwise, so Hole_α ≤ TV/(1 − α) holds for the estimates
    too. ``diagnostics.hole_mass`` gives Hole_α alone; TV needs the same draws, hence this helper.
    Returns {"tv", "hole_<α>", "hole_<α>_low", "hole_<α>_high"} (Wilson 95% intervals).
    """
    mu_q, logvar_q = mu_q.double(), logvar_q.double()
    mp, lp = mu_p.double().reshape(1, -1), logvar_p.double().reshape(1, -1)
    z = mp + torch.exp(0.5 * lp) * torch.randn((n_prior, mu_q.shape[1]), generator=generator, dtype=torch.float64)
    log_p = -0.5 * (((z - mp) ** 2) * torch.exp(-lp) + lp + math.log(2 * math.pi)).sum(-1)
    log_r = _log_mixture(z, mu_q, logvar_q) - log_p  # [n_prior]
    out = {"tv": float((1 - torch.exp(log_r.clamp(max=0))).mean())}
    for a in alphas:
        if not 0 < a < 1:
            raise ValueError(f"the hole threshold alpha must lie in (0, 1), got {a}")
        holes = int((log_r < math.log(a)).sum())
        lo, hi = diagnostics.wilson_interval(holes, n_prior)
        out[f"hole_{a:g}"], out[f"hole_{a:g}_low"], out[f"hole_{a:g}_high"] = holes / n_prior, float(lo), float(hi)
    return out


# ---------------------------------------------------------------------------------------
# one variant
# ---------------------------------------------------------------------------------------
@dataclass
class CoverageResult:
    """One trained variant and its prior-coverage measurements (averaged over the eval states)."""

    name: str
    config: dict
    alphas: tuple[float, ...]  # hole thresholds α
    holes: dict[str, float]  # the per-state averages of :func:`aggregate_ratio`'s entries
    typicality: diagnostics.PriorTypicality = field(repr=False)
    policy: policies.Policy = field(repr=False)
    history: History = field(repr=False)
    eval: LatentEval = field(repr=False)
    task: tasks.Task = field(repr=False)

    @property
    def tv(self) -> float:
        """TV(q̄, p), averaged over the eval states."""
        return self.holes["tv"]

    def hole_mass(self, alpha: float) -> float:
        """Hole_α averaged over the eval states."""
        return self.holes[f"hole_{alpha:g}"]

    @property
    def pinsker(self) -> float:
        """√(KL(q̄‖p)/2) with the marginal-KL estimate of the rate decomposition (clipped at 0)."""
        return math.sqrt(max(self.eval.split.marginal_kl, 0.0) / 2)

    def scalars(self) -> dict[str, float]:
        cp, cq = self.eval.coverage("prior"), self.eval.coverage("posterior")
        zl = self.eval.zero_labels
        out = {
            "c_0": float(cp[0]), "c_1": float(cp[1]), "off_support_prior": float(cp[-1]),
            "off_support_posterior": float(cq[-1]),
            # TV(D#p, D#q̄) ≤ TV(p, q̄): deployment off-support ≤ reconstruction off-support + TV
            "off_support_bound": min(1.0, float(cq[-1]) + self.tv), "tv": self.tv,
            "pinsker": min(1.0, self.pinsker),
        }
        for a in self.alphas:
            out[f"hole_{a:g}"] = self.hole_mass(a)
            out[f"hole_{a:g}_bound"] = min(1.0, self.tv / (1 - a))
        out.update({
            "mean_kl": self.eval.split.mean_kl, "mutual_information": self.eval.split.mutual_information,
            "marginal_kl": self.eval.split.marginal_kl,
            "median_chi2_cdf": float(np.median(self.typicality.chi2_cdf)),
            "zero_off_support": float((zl < 0).float().mean()),
        })
        return out


def fit_variant(
    name: str, seed: int = 0, profile: str | None = None, progress: bool | None = None,
    alphas: Sequence[float] = (0.1, 0.5), data_task: tuple | None = None,
) -> CoverageResult:
    """Train variant ``name`` of :data:`VARIANTS` on the fork and measure its prior coverage."""
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; choose one of: {', '.join(VARIANTS)}")
    b = budget("prior_coverage", profile)
    task, data = data_task if data_task is not None else _task_data(b, seed)
    config = dict(VARIANTS[name])
    policy, history = fit_cvae(task, data, b, seed=seed, progress=progress, **config)
    ev = evaluate(policy, task, seed=seed, n_states=b["n_states"], n_per_state=b["n_per_state"], n_prior=b["n_prior"])
    g = torch.Generator().manual_seed(seed + 20_000)
    per_state = []
    for j in range(len(ev.states)):
        rows = ev.groups == j
        per_state.append(aggregate_ratio(ev.mu[rows], ev.logvar[rows], ev.mu_p[rows][0], ev.logvar_p[rows][0],
                                         alphas=alphas, n_prior=b["n_hole"], generator=g))
    holes = {k: float(np.mean([r[k] for r in per_state])) for k in per_state[0]}
    typ = diagnostics.prior_typicality(ev.mu, ev.mu_p, ev.logvar_p)
    return CoverageResult(name=name, config=config, alphas=tuple(alphas), holes=holes, typicality=typ, policy=policy,
                          history=history, eval=ev, task=task)


def _task_data(b: dict, seed: int):
    task = tasks.make("fork", **FORK)
    return task, task.dataset(b["n_demos"], seed=seed)


def compare(
    names: Sequence[str] | None = None, seed: int = 0, profile: str | None = None, progress: bool | None = None,
    alphas: Sequence[float] = (0.1, 0.5),
) -> dict[str, CoverageResult]:
    """:func:`fit_variant` for each variant (default: the profile's list), on one shared dataset."""
    b = budget("prior_coverage", profile)
    names = list(b["variants"] if names is None else names)
    td = _task_data(b, seed)
    return {n: fit_variant(n, seed=seed, profile=profile, progress=False, alphas=alphas, data_task=td)
            for n in tqdm(names, desc="prior coverage", disable=not progress_enabled(progress))}


def thresholds(results: dict[str, CoverageResult]) -> Thresholds:
    """The fork's L2 collapse threshold for the normalisation these variants were trained with."""
    res = next(iter(results.values()))
    return predicted_thresholds(res.task, res.policy.normalizer)


def summary(results: dict[str, CoverageResult]) -> list[dict[str, float | str]]:
    """Tidy rows, one per variant."""
    return [{"variant": n, **r.scalars()} for n, r in results.items()]


# ---------------------------------------------------------------------------------------
# the decoder's mode map over the latent plane
# ---------------------------------------------------------------------------------------
@torch.no_grad()
def decoded_map(res: CoverageResult, state: int = 0, lim: float = 3.0, n: int = 121) -> dict[str, np.ndarray]:
    """Decode a grid of z over [−lim, lim]² (latent dims beyond two held at the prior mean) at
    eval state ``state``: mode labels ``[n, n]`` (−1 off-support), and log q̄(z)/p(z) on the grid."""
    ev = res.eval
    s = ev.states[state:state + 1, None]  # [1, 1]
    rows = ev.groups == state
    mu_p, logvar_p = ev.mu_p[rows][0], ev.logvar_p[rows][0]  # [dz]
    axis = torch.linspace(-lim, lim, n)
    z1, z2 = torch.meshgrid(axis, axis, indexing="xy")  # [n, n] each, z1 along columns
    z = mu_p.repeat(n * n, 1)
    z[:, 0], z[:, 1] = z1.reshape(-1), z2.reshape(-1)
    chunks = res.policy.decode(s.expand(n * n, 1), z)  # [n², H, d]
    labels = res.task.assign(s.expand(n * n, 1), chunks).reshape(n, n)
    mu_q, lv_q = ev.mu[rows].double(), ev.logvar[rows].double()
    zd = z.double()
    if z.shape[1] > 2:  # q̄ and p on the plane: marginalise the other dims analytically (Gaussians)
        mu_q, lv_q, zd, mp, lp = mu_q[:, :2], lv_q[:, :2], zd[:, :2], mu_p[:2].double(), logvar_p[:2].double()
    else:
        mp, lp = mu_p.double(), logvar_p.double()
    log_p = -0.5 * (((zd - mp) ** 2) * torch.exp(-lp) + lp + math.log(2 * math.pi)).sum(-1)
    log_r = (_log_mixture(zd, mu_q, lv_q) - log_p).reshape(n, n)
    return {"axis": axis.numpy(), "labels": labels.numpy(), "log_ratio": log_r.numpy()}


def map_summary(res: CoverageResult, alphas: Sequence[float] | None = None, state: int = 0, lim: float = 3.0,
                n: int = 121) -> dict[str, float]:
    """Numbers behind :func:`plot_latent_map` at eval state ``state``, inside the prior's 2σ ellipse
    on the plane of the first two latent dimensions (the region the picture is about):

    ``z0_off`` (1.0 if z = 0 decodes off-support at this state, else 0.0), ``off_share`` (fraction of
    the region that decodes off-support), and for each hole threshold α: ``hole_share_<α>`` (fraction
    of the region that is a hole, q̄/p < α) and ``strip_hole_<α>`` (fraction of the off-support part of
    the region that is a hole; NaN when nothing decodes off-support)."""
    m = decoded_map(res, state, lim, n)
    ev = res.eval
    rows = ev.groups == state
    mp, sp = ev.mu_p[rows][0][:2].numpy(), torch.exp(0.5 * ev.logvar_p[rows][0][:2]).numpy()
    z1, z2 = np.meshgrid(m["axis"], m["axis"], indexing="xy")
    inside = ((z1 - mp[0]) / sp[0]) ** 2 + ((z2 - mp[1]) / sp[1]) ** 2 <= 4.0
    off = (m["labels"] < 0) & inside
    out = {"z0_off": float(int(ev.zero_labels[state]) < 0), "off_share": float(off.sum() / inside.sum())}
    for a in (res.alphas if alphas is None else alphas):
        hole = m["log_ratio"] < math.log(a)
        out[f"hole_share_{a:g}"] = float((hole & inside).sum() / inside.sum())
        out[f"strip_hole_{a:g}"] = float((hole & off).sum() / off.sum()) if off.any() else math.nan
    return out


def radial_gap(res: CoverageResult, seed: int = 0) -> dict[str, float]:
    """How far the aggregate posterior is from the prior *in radius*: the χ²_dz percentiles of one
    posterior sample per demonstration (:func:`posterior_sample_percentiles`) against the uniform
    law they follow under the prior. ``ks``: the largest gap between their empirical CDF and the
    diagonal; ``inner``: the fraction below 0.5 (0.5 for the prior: the inner half of its mass)."""
    u = np.sort(np.asarray(posterior_sample_percentiles(res, seed=seed), dtype=float))
    k = len(u)
    ks = float(max((np.arange(1, k + 1) / k - u).max(), (u - np.arange(k) / k).max()))
    return {"ks": ks, "inner": float((u < 0.5).mean())}


def plot_latent_map(res: CoverageResult, alpha: float = 0.1, state: int = 0) -> plt.Figure:
    """The latent plane at one state: background = where D(s, z) lands (mode colours, red
    off-support), the hole region q̄/p < α hatched, the prior's 1σ/2σ ellipses, posterior means
    of the demonstrations (dots) and z = 0 (+)."""
    m = decoded_map(res, state)
    ax_vals, K = m["axis"], res.eval.K
    colors = [OFF_SUPPORT_COLOR] + [mode_color(k) for k in range(K)]
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    ext = (ax_vals[0], ax_vals[-1], ax_vals[0], ax_vals[-1])
    ax.imshow(m["labels"] + 1, origin="lower", extent=ext, cmap=ListedColormap(colors), vmin=-0.5, vmax=K + 0.5,
              alpha=0.35, interpolation="nearest")
    holes = (m["log_ratio"] < math.log(alpha)).astype(float)
    if holes.any():
        ax.contourf(ax_vals, ax_vals, holes, levels=[0.5, 1.5], colors="none", hatches=["////"])
        ax.contour(ax_vals, ax_vals, holes, levels=[0.5], colors="0.3", linewidths=0.8)
    ev = res.eval
    rows = (ev.groups == state).nonzero()[:, 0][:200]
    mu = ev.mu[rows].numpy()
    for k in range(K):
        sel = ev.labels[rows].numpy() == k
        ax.scatter(mu[sel, 0], mu[sel, 1], s=10, color=mode_color(k), edgecolor="k", linewidth=0.3,
                   label=f"posterior means, mode {k}")
    mp, sp = ev.mu_p[rows[0]].numpy(), torch.exp(0.5 * ev.logvar_p[rows[0]]).numpy()
    for r in (1, 2):
        ax.add_patch(Ellipse((mp[0], mp[1]), 2 * r * sp[0], 2 * r * sp[1], fill=False, ls="--", color="k", lw=0.9))
    ax.plot([0], [0], "k+", ms=14, mew=2.5, label="$z = 0$")
    hole = res.hole_mass(alpha) if f"hole_{alpha:g}" in res.holes else float("nan")
    ax.set(xlim=ext[:2], ylim=ext[2:], xlabel="$z_1$", ylabel="$z_2$", aspect="equal",
           title=rf"{res.name}: hatched = hole ($\bar q/p < {alpha:g}$), $\mathrm{{Hole}}_{{{alpha:g}}}$ = {hole:.2f}" "\n"
                 f"prior samples decoded off-support: {res.eval.coverage('prior')[-1]:.0%}")
    ax.legend(fontsize=7, loc="lower right", framealpha=0.8, frameon=True)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------
# the comparison figures
# ---------------------------------------------------------------------------------------
def _ticks(ax: plt.Axes, names: Sequence[str]) -> None:
    ax.set_xticks(np.arange(len(names)), [n.replace(" (", "\n(") for n in names], fontsize=8)


def plot_coverage(results: dict[str, CoverageResult]) -> plt.Figure:
    """Theory over measurement for every variant. Left: decoded coverage c_0, c_1 and off-support
    under prior sampling (dashed: π_k = 1/2). Middle: off-support under prior and posterior
    sampling, with the bound posterior + TV(q̄, p) (◆). Right: hole masses Hole_0.1, Hole_0.5 with
    their bounds TV/(1 − α) (◆)."""
    names = list(results)
    rows = summary(results)
    x = np.arange(len(names))
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 3.9))
    covs = np.stack([results[n].eval.coverage("prior") for n in names])  # [V, K+1]
    bottom = np.zeros(len(names))
    K = covs.shape[1] - 1
    for k in [*range(K), -1]:
        ax1.bar(x, covs[:, k], 0.6, bottom=bottom, color=mode_color(k), edgecolor="k", linewidth=0.4,
                label=f"mode {k}" if k >= 0 else "off-support")
        bottom += covs[:, k]
    for j in range(1, K):
        ax1.axhline(j / K, color="k", ls="--", lw=0.8)
    ax1.set(ylabel="fraction of decoded chunks", ylim=(0, 1.0), title=r"decoded coverage $c_k$: $z \sim$ prior")
    ax1.legend(fontsize=8, loc="lower left", ncol=3, frameon=True, framealpha=0.9)
    w = 0.36
    ax2.bar(x - w / 2, [r["off_support_prior"] for r in rows], w, color=OFF_SUPPORT_COLOR, edgecolor="k",
            linewidth=0.4, label=r"$z \sim$ prior (deployment)")
    ax2.bar(x + w / 2, [r["off_support_posterior"] for r in rows], w, color="#f4a5a5", edgecolor="k",
            linewidth=0.4, hatch="...", label=r"$z \sim$ posterior (reconstruction)")
    ax2.plot(x - w / 2, [r["off_support_bound"] for r in rows], "D", color="k", ms=7,
             label=r"bound: posterior + TV$(\bar q, p)$")
    ax2.set(ylabel="off-support fraction", ylim=(0, 1.0), title="chunks in no mode")
    ax2.legend(fontsize=8, loc="upper left")
    alphas = results[names[0]].alphas
    w = 0.8 / len(alphas)
    for i, e in enumerate(alphas):
        off = (i - (len(alphas) - 1) / 2) * w
        hm = np.array([r[f"hole_{e:g}"] for r in rows])
        lo = np.array([results[n].holes[f"hole_{e:g}_low"] for n in names])
        hi = np.array([results[n].holes[f"hole_{e:g}_high"] for n in names])
        ax3.bar(x + off, hm, w, color=["0.45", "0.75"][i % 2], edgecolor="k", linewidth=0.4,
                label=rf"$\mathrm{{Hole}}_{{{e:g}}}$ measured")
        ax3.errorbar(x + off, hm, yerr=[np.maximum(hm - lo, 0), np.maximum(hi - hm, 0)], fmt="none", ecolor="k",
                     capsize=2)
        ax3.plot(x + off, [r[f"hole_{e:g}_bound"] for r in rows], "D", ms=6, color="k", mfc=["k", "w"][i % 2],
                 label=f"bound TV/(1 − {e:g})")
    ax3.set(ylabel="prior mass", ylim=(0, 1.05), title=r"holes: prior mass where $\bar q/p < \alpha$")
    ax3.legend(fontsize=8, loc="upper left", ncol=2)
    for ax in (ax1, ax2, ax3):
        _ticks(ax, names)
    fig.tight_layout()
    return fig


def posterior_sample_percentiles(res: CoverageResult, seed: int = 0) -> np.ndarray:
    """χ²_dz percentiles of one z ~ q(z|s, a) per demonstration — samples of the aggregate
    posterior q̄. They are uniform on [0, 1] exactly when q̄ matches the prior in radius."""
    ev = res.eval
    g = torch.Generator().manual_seed(seed)
    z = ev.mu + torch.exp(0.5 * ev.logvar) * torch.randn(ev.mu.shape, generator=g)
    return diagnostics.prior_typicality(z, ev.mu_p, ev.logvar_p).chi2_cdf


def plot_typicality(results: dict[str, CoverageResult]) -> plt.Figure:
    """Where latents sit under the prior, as χ²_dz percentiles F(‖(z − μ_p)/σ_p‖²) (the prior
    mass closer to the centre). Left: posterior means — z = 0 is at 0, the densest point,
    yet no prior mass is closer to the centre. Right: posterior samples (the aggregate
    posterior); prior samples give the uniform diagonal."""
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.5), sharey=True)
    styles = ["-", "--", "-.", ":", (0, (5, 1, 1, 1))]
    for i, (name, res) in enumerate(results.items()):
        for ax, c in zip(axes, (res.typicality.chi2_cdf, posterior_sample_percentiles(res))):
            c = np.sort(c)
            ax.plot(c, np.arange(1, len(c) + 1) / len(c), ls=styles[i % len(styles)], lw=2, label=name)
    for ax in axes:
        ax.plot([0, 1], [0, 1], color="0.5", lw=1, label="prior samples (uniform)")
        ax.set(xlabel=r"$\chi^2_{d_z}$ percentile (prior mass closer to the centre)", xlim=(-0.01, 1), ylim=(0, 1.01))
    axes[0].plot([0], [0], "k+", ms=14, mew=2.5, clip_on=False, label="$z = 0$")
    axes[0].set(ylabel="cumulative fraction", title="posterior means $\\mu_q(s, a)$")
    axes[1].set_title(r"posterior samples $z \sim q(z\mid s, a)$: the aggregate posterior")
    axes[0].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig
