"""Unequal modes: does each family give a rare mode its demonstrated weight? (chapter 10)

The fork with K = 3 branches demonstrated with weights π = (0.6, 0.3, 0.1) (σ = 0.1, H = 8, Δ_c = 3).
Every family is trained on it and sampled at fixed observations; per mode, the fraction of samples in the
mode p̂_k (with its Wilson interval) is set against π_k, and the off-support mass against 0.

For the CVAE the deficit of a mode is traced to its latent region — the mechanism of chapter 4 seen from
the weights' side. Prior sampling decodes z ~ p, so mode k receives about the prior mass of the latent set
the decoder maps to mode k. That set is read off the encoder's posteriors at the evaluation states
(:func:`mbc_lib.measure.evaluate_latent`): with q̄_k the aggregate posterior of mode k's demonstrations, the
*partition* A_k = {z : π̂_k q̄_k(z) ≥ π̂_j q̄_j(z) for all j} (the latent points where mode k's posteriors are
the most likely explanation) has prior mass m_k, and m_k ≈ π_k only if the encoder gives each mode a share of
the prior equal to its weight. Also reported: the prior mass of mode k's 95% ellipse
(:func:`mbc_lib.experiments.prior_surgery.fit_ellipse`) and the mode's share under posterior sampling.

Sizes come from ``BUDGETS["unequal"]``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..measure import evaluate_latent, predicted_thresholds
from ..profiles import budget
from ..validation import check_seed
from .prior_surgery import DensityRegion, fit_ellipse, fork_task
from .separation import Coverage, coverage, eval_obs, fit_family

__all__ = ["WEIGHTS", "LatentShares", "UnequalResult", "latent_shares", "run", "summary"]

#: the demonstrated branch weights π_k
WEIGHTS: tuple[float, ...] = (0.6, 0.3, 0.1)


@dataclass
class LatentShares:
    """The CVAE's latent allocation per mode ``[K]`` (means over the evaluation states): partition (prior mass m_k
    of A_k), qbar (aggregate-posterior mass of A_k: the share of posterior draws in A_k), ellipse (prior mass of
    the 95% ellipse of q̄_k), posterior (share of posterior-decoded chunks in mode k); tv: TV(q̄, p), which bounds
    |m_k − q̄(A_k)|; beta, beta_star and Î(A;Z|S) (nats) of the model."""

    partition: np.ndarray
    qbar: np.ndarray
    ellipse: np.ndarray
    posterior: np.ndarray
    tv: float
    beta: float
    beta_star: float
    mutual_information: float


@torch.no_grad()
def latent_shares(policy, task, b: dict, seed: int, beta: float, beta_star: float) -> LatentShares:
    """:class:`LatentShares` of a trained CVAE on ``task`` (see the module docstring)."""
    K = task.K
    ev = evaluate_latent(policy, task, seed=seed, n_states=b["n_states"], n_per_state=b["n_per_state"], n_prior=8)
    g = torch.Generator().manual_seed(seed + 61_000)
    eps = torch.randn((b["n_post"],) + tuple(ev.mu.shape), generator=g)
    zq = (ev.mu[None] + torch.exp(0.5 * ev.logvar)[None] * eps).reshape(-1, ev.mu.shape[1])  # draws of q̄, [R·N, d_z]
    zl, zg = ev.labels.repeat(b["n_post"]), ev.groups.repeat(b["n_post"])
    parts, qbar, tvs = [], [], []
    for j in range(len(ev.states)):
        rows = ev.groups == j
        lab = ev.labels[rows]
        comps = [DensityRegion(ev.mu[rows][lab == k], ev.logvar[rows][lab == k]) if bool((lab == k).any()) else None
                 for k in range(K)]

        def owner(z: torch.Tensor) -> np.ndarray:  # argmax_k π̂_k q̄_k(z): the partition A_k a code falls in
            score = torch.stack([c.log_ratio(z) + math.log(float((lab == k).double().mean())) if c is not None
                                 else torch.full((len(z),), -math.inf, dtype=torch.float64) for k, c in enumerate(comps)])
            return score.argmax(0).numpy()

        z = torch.randn((b["n_mass"], policy.config.latent_dim), generator=g, dtype=torch.float64)
        parts.append(np.bincount(owner(z), minlength=K)[:K] / len(z))
        qbar.append(np.bincount(owner(zq[zg == j]), minlength=K)[:K] / int((zg == j).sum()))
        tvs.append(DensityRegion(ev.mu[rows], ev.logvar[rows]).prior_stats(b["n_mass"], g)["tv"])
    ellipse = np.array([fit_ellipse(zq[zl == k], b["coverage"]).prior_mass() for k in range(K)])
    post = ev.coverage("posterior")[:K]
    return LatentShares(np.mean(parts, 0), np.mean(qbar, 0), ellipse, post, float(np.mean(tvs)), beta, beta_star,
                        ev.split.mutual_information)


@dataclass
class UnequalResult:
    """families: name -> :class:`mbc_lib.experiments.separation.Coverage`; weights π ``[K]``; latent: the
    CVAE's :class:`LatentShares`; samples, labels: name -> chunks ``[m, H, d]`` at s = 0 and their mode labels,
    for drawing (demonstrations under ``"demos"``)."""

    weights: np.ndarray
    families: dict[str, Coverage]
    latent: LatentShares
    samples: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    labels: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def K(self) -> int:
        return len(self.weights)


def run(seed: int = 0, profile: str | None = None) -> UnequalResult:
    """Train every family of the profile on the unequal fork and measure its per-mode mass."""
    seed = check_seed(seed)
    b = budget("unequal", profile)
    task = fork_task(len(WEIGHTS), weights=WEIGHTS)
    data = task.dataset(b["n_demos"], seed=seed)
    beta_star = predicted_thresholds(task, data.normalizer()).beta_star
    beta = b["cvae_ratio"] * beta_star
    g = torch.Generator().manual_seed(seed + 62_000)
    obs = eval_obs(b["n_obs"])
    s0 = torch.zeros(1, 1)
    demos = task.sample_chunks(s0, b["n_plot"], generator=g)[0]
    fams, shares = {}, None
    samples, labels = {"demos": demos.numpy()}, {"demos": task.assign(s0.expand(len(demos), 1), demos).numpy()}
    for fam in b["families"]:
        pol = fit_family(fam, data, b, seed, **({"beta": beta} if fam == "cvae" else {}))
        fams[fam] = coverage(pol, task, obs, b["n_samples"], g)
        with torch.no_grad():
            x = pol.sample(s0, b["n_plot"], generator=g)[0].cpu()
        samples[fam], labels[fam] = x.numpy(), task.assign(s0.expand(len(x), 1), x).numpy()
        if fam == "cvae":
            shares = latent_shares(pol, task, b, seed, beta, beta_star)
    if shares is None:
        raise ValueError("the unequal-modes budget must list the cvae among its families")
    return UnequalResult(np.asarray(WEIGHTS, dtype=float), fams, shares, samples, labels)


def summary(result: UnequalResult) -> list[dict[str, Any]]:
    """Tidy rows, one per (family, mode): p̂_k with its interval, π_k, the off-support mass; for the cvae also
    the latent shares of the mode."""
    rows = []
    lat = result.latent
    for fam, c in result.families.items():
        ci = c.mass_ci
        for k in range(result.K):
            r = {"family": fam, "mode": k, "weight": float(result.weights[k]), "mass": float(c.mass[k]),
                 "mass_lo": float(ci[k, 0]), "mass_hi": float(ci[k, 1]), "off_support": c.off_support,
                 "tv": float(0.5 * (np.abs(c.mass - result.weights).sum() + c.off_support))}
            if fam == "cvae":
                r.update({"partition_mass": float(lat.partition[k]), "qbar_mass": float(lat.qbar[k]),
                          "tv_latent": lat.tv, "ellipse_mass": float(lat.ellipse[k]),
                          "posterior_share": float(lat.posterior[k]), "beta_ratio": lat.beta / lat.beta_star})
            rows.append(r)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return [{k: r.get(k, math.nan) for k in keys} for r in rows]
