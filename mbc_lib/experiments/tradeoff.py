"""The latent trade-off in one sweep: what the KL weight β buys and what it costs (chapter 10).

The KL weight β of a CVAE sets both sides of one trade-off (chapters 3 and 4; the book's appendix,
app-rate, app-fano, app-aggregate). A *weak* β lets the latent carry the mode — Î(A;Z|S) near ln K and a
Fano floor B(P̂_e) near ln K — but leaves the aggregate posterior q̄ free to differ from the prior, so prior
samples fall in holes and decode to chunks in no mode. A *strong* β pulls q̄ onto the prior — marginal KL,
TV(q̄, p) and Hole_α shrink — but above the collapse threshold β* the latent stops carrying the mode at all.

One grid of β = ratio·β* (from β*/30 to 3β*) is trained on the fork and on ``PathGaps`` (K = 2), each grid as
one stacked model (:func:`mbc_lib.fitting.fit_many`), and every model is measured the same way at the
decision states (the fork's evaluation states; the first chunk of each ``PathGaps`` episode):

* **information**: E KL, Î(A;Z|S) and the marginal KL (the rate decomposition, :func:`mbc_lib.diagnostics.kl_split`),
  the mode-identification error P̂_e of D(s, z) with z from the posterior and its Fano floor B(P̂_e);
* **coverage**: TV(q̄, p) and Hole_α (:meth:`mbc_lib.experiments.prior_surgery.DensityRegion.prior_stats`), the
  fraction of prior-decoded chunks in no mode, the smallest mode's share of them and the modes reached;
* on the robot, **closed loop**: success rate, gaps used, collisions (:func:`mbc_lib.envs.evaluate`).

Sizes come from ``BUDGETS["tradeoff"]``. Information in nats; rates are fractions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .. import diagnostics, theory
from ..fitting import fit_many
from ..measure import evaluate_latent, predicted_thresholds
from ..profiles import budget
from ..validation import check_seed
from .prior_surgery import PATH_ENV, DensityRegion, fork_task, robot_starts, start_beta_star

__all__ = ["TRADEOFF_TASKS", "MIN_SHARE", "TradeoffResult", "fork_tradeoff", "robot_tradeoff", "run", "summary", "sweet_spot",
           "row_at"]

#: the two tasks of the sweep (K = 2 each)
TRADEOFF_TASKS = ("fork", "PathGaps")
#: a mode counts as reached when it holds at least this share of the prior-decoded chunks
MIN_SHARE = 0.1


def _grid(ratios) -> list[float]:
    r = sorted(float(x) for x in ratios)
    if not r or r[0] <= 0:
        raise ValueError(f"β/β* ratios must be > 0, got {ratios!r}")
    return r


def fork_tradeoff(seed: int = 0, profile: str | None = None) -> list[dict[str, Any]]:
    """The β grid on the two-branch fork: one row per β (see the module docstring)."""
    seed = check_seed(seed)
    b = budget("tradeoff", profile)
    task = fork_task(2)
    data = task.dataset(b["n_demos"], seed=seed)
    th = predicted_thresholds(task, data.normalizer())
    ratios = _grid(b["ratios"])
    pols, hists = fit_many("cvae", data, [dict(beta=r * th.beta_star, recon="l2") for r in ratios], keys=ratios,
                           seeds=seed, budget=b, progress=False)
    rows = []
    g = torch.Generator().manual_seed(seed + 41_000)
    with torch.no_grad():
        for r in ratios:
            ev = evaluate_latent(pols[r], task, seed=seed, n_states=b["n_states"], n_per_state=b["n_per_state"],
                                 n_prior=b["n_prior"])
            stats = [DensityRegion(ev.mu[ev.groups == j], ev.logvar[ev.groups == j], b["alpha"]).prior_stats(
                b["n_hole"], g) for j in range(len(ev.states))]
            cov = ev.coverage("prior")
            rows.append({
                "task": "fork", "K": 2, "ratio": r, "beta": r * th.beta_star, "beta_star": th.beta_star,
                "recon": hists[r].final["recon"], "mean_kl": ev.split.mean_kl,
                "mutual_information": ev.split.mutual_information, "marginal_kl": ev.split.marginal_kl,
                "log_n_cap": ev.split.log_n_cap, "p_e": ev.p_e, "fano": ev.fano,
                **{k: float(np.mean([s[k] for s in stats])) for k in ("tv", "hole", "hole_lo", "hole_hi", "hole_bound")},
                "off_support": float(cov[-1]), "off_support_posterior": float(ev.coverage("posterior")[-1]),
                "min_share": float(cov[:2].min()), "modes_reached": int((cov[:2] >= MIN_SHARE).sum()),
            })
    return rows


def robot_tradeoff(seed: int = 0, profile: str | None = None, K: int = 2) -> list[dict[str, Any]]:
    """The β grid on ``PathGaps`` (β*(s₀) from the first chunks): one row per β, with closed-loop rollouts."""
    from .. import envs

    seed = check_seed(seed)
    b = budget("tradeoff", profile)
    rs = robot_starts(K, b["n_episodes"], seed=seed)
    beta_star = start_beta_star(rs)
    ratios = _grid(b["ratios"])
    pols, hists = fit_many("cvae", rs.data, [dict(beta=r * beta_star, recon="l2") for r in ratios], keys=ratios,
                           seeds=seed, budget=b, progress=False)
    weights = np.bincount(rs.labels.numpy(), minlength=K) / len(rs.labels)
    per = max(1, b["n_prior"] // len(rs.obs))
    rows = []
    g = torch.Generator().manual_seed(seed + 42_000)
    for r in ratios:
        pol = pols[r]
        with torch.no_grad():
            mu, logvar = pol.encode(rs.obs, rs.chunks)
            split = diagnostics.kl_split(mu, logvar, generator=g)
            z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=g)
            p_e = float((rs.nearest(pol.decode(rs.obs, z)) != rs.labels.numpy()).mean())
            stats = DensityRegion(mu, logvar, b["alpha"]).prior_stats(b["n_hole"], g)
            lab = rs.assign(pol.sample(rs.obs, per, generator=g).reshape(-1, *rs.chunks.shape[1:]))
        share = np.bincount(lab[lab >= 0], minlength=K)[:K] / len(lab)
        roll = envs.evaluate(pol, PATH_ENV, n_episodes=b["n_eval"], seed=seed + 1, K=K, progress=False, device="cpu")
        used = np.bincount(roll.modes[roll.success], minlength=K)[:K]
        lo, hi = diagnostics.wilson_interval(int(roll.success.sum()), roll.n_episodes)
        rows.append({
            "task": "PathGaps", "K": K, "ratio": r, "beta": r * beta_star, "beta_star": beta_star,
            "recon": hists[r].final["recon"], "mean_kl": split.mean_kl, "mutual_information": split.mutual_information,
            "marginal_kl": split.marginal_kl, "log_n_cap": split.log_n_cap, "p_e": p_e,
            "fano": theory.fano_bound(weights, min(p_e, (K - 1) / K)), **stats,
            "off_support": float((lab < 0).mean()), "min_share": float(share.min()),
            "modes_reached": int((share >= MIN_SHARE).sum()), "success": roll.success_rate, "success_lo": float(lo),
            "success_hi": float(hi), "modes_used": int((used > 0).sum()), "failure": float(roll.failures.mean()),
            **{f"success_{k}": float(used[k]) / roll.n_episodes for k in range(K)},
        })
    return rows


@dataclass
class TradeoffResult:
    """Both sweeps: ``rows[task]`` (one dict per β, ratio ascending) and ``beta_star[task]``."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def beta_star(self) -> dict[str, float]:
        return {t: rows[0]["beta_star"] for t, rows in self.rows.items()}

    def series(self, task: str, key: str) -> np.ndarray:
        """One column of ``task``'s rows, in ratio order."""
        return np.array([r.get(key, math.nan) for r in self.rows[task]], dtype=float)


def run(seed: int = 0, profile: str | None = None) -> TradeoffResult:
    """The β grid on the fork and on ``PathGaps``."""
    return TradeoffResult({"fork": fork_tradeoff(seed, profile), "PathGaps": robot_tradeoff(seed, profile)})


def summary(result: TradeoffResult) -> list[dict[str, Any]]:
    """Tidy rows of both sweeps (same keys; NaN where a task has no such measurement)."""
    rows = [r for t in result.rows for r in result.rows[t]]
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return [{k: r.get(k, math.nan) for k in keys} for r in rows]


def row_at(result: TradeoffResult, task: str, ratio: float) -> dict[str, Any]:
    """The row of ``task`` whose β/β* is closest to ``ratio`` (on a log scale)."""
    return min(result.rows[task], key=lambda r: abs(math.log(r["ratio"] / ratio)))


def sweet_spot(result: TradeoffResult, task: str) -> dict[str, Any] | None:
    """The best β of the grid: on the fork, the smallest off-support mass under prior sampling among the β
    that reach every mode (each ≥ :data:`MIN_SHARE` of the decoded chunks); on the robot, the highest success
    among the β whose successful episodes used every gap. ``None`` when no β qualifies."""
    rows = result.rows[task]
    if task == "PathGaps":
        ok = [r for r in rows if r["modes_used"] == r["K"]]
        return max(ok, key=lambda r: (r["success"], -r["ratio"])) if ok else None
    ok = [r for r in rows if r["modes_reached"] == r["K"]]
    return min(ok, key=lambda r: (r["off_support"], r["ratio"])) if ok else None
