"""Chapter 3: latent-variable policies and the β trade-off.

A CVAE policy (``policies.make("cvae")``, ACT's objective) is trained on the two-branch fork
at a sweep of KL weights β, and each model is measured against the results of chapter 3
(proofs in the book's appendix: app-rate, app-fano, app-collapse, app-collapse-l2,
app-collapse-l1, app-beta-hard, app-collapse-check, app-trained-collapse, app-act):

* the **predicted collapse threshold** β* of the exact collapse criterion, computed for the
  policy's actual loss scaling: the reconstruction is mean-reduced over the n = H·d_a
  elements of the *normalised* chunk and the KL is summed over latent dimensions, so the
  temperature is T = β and, for L2, β* = 2v′/n with v′ the sub-Gaussian variance proxy of
  the normalised p(a|s) (:func:`mbc_lib.measure.predicted_thresholds`); next to it the naive "hard-code"
  estimate β_hard;
* the **rate decomposition**: E KL = Î(A;Z|S) + marginal KL, with the aggregate posterior of
  many demonstrations at the *same* state (:func:`mbc_lib.measure.evaluate_latent`);
* the **Fano bound**: the mode-identification error P̂_e of the nearest centre to D(s, z), z
  drawn from the posterior (teacher forcing), and B(P̂_e) against Î;
* what the policy *produces*: chunks decoded from prior samples (modes reached, off-support)
  and from z = 0 (ACT's deterministic decoding).

The rate–distortion optimum of the same toy (Blahut–Arimoto, :func:`rate_curve`) is the
theory curve drawn over the measured rates. :func:`act_comparison` trains ACT's own loss
(L1, z = 0) at a range of kl_weights up to ACT's 10; :func:`collapse_curves` puts both sweeps next
to the optimum's rate and its gain over collapse (β* bounds where a trained model collapses from
above). Sizes come from ``BUDGETS["latent"]``; the figures are in :mod:`mbc_lib.figures.latent`.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from .. import policies, tasks, theory
from ..data import Normalizer
from ..fitting import fit, fit_many
from ..measure import LatentEval, Thresholds, act_scaling, evaluate_latent, normalised_modes, predicted_thresholds
from ..profiles import budget
from ..runtime import progress_enabled
from ..train import History

__all__ = [
    "FORK", "COLLAPSED_KL", "Thresholds", "predicted_thresholds", "act_scaling", "BetaSweep", "beta_sweep",
    "summary", "rate_curve", "rate_crossing", "sweep_rate_curve", "ActResult", "act_weights", "act_comparison",
    "act_summary", "collapse_bracket", "CollapseCurves", "collapse_curves",
]

#: the chapter's task: two equally likely branches, Δ_c = 2 apart, σ = 0.05, H = 8, d_a = 1
FORK: dict = dict(K=2, delta=2.0)


#: a trained model counts as **collapsed** when its expected KL is below this many nats
COLLAPSED_KL = 0.02


# ---------------------------------------------------------------------------------------
# the β sweep
# ---------------------------------------------------------------------------------------
@dataclass
class BetaSweep:
    """CVAEs (L2, fixed N(0, I) prior) at β = ratio·β*, keyed by ratio."""

    task: tasks.Task = field(repr=False)
    thresholds: Thresholds
    betas: dict[float, float]
    policies: dict[float, policies.Policy] = field(repr=False)
    histories: dict[float, History] = field(repr=False)
    evals: dict[float, LatentEval] = field(repr=False)
    normalizer: Normalizer | None = field(default=None, repr=False)

    @property
    def ratios(self) -> list[float]:
        return sorted(self.betas)


def beta_sweep(
    ratios: Sequence[float] | None = None, seed: int = 0, profile: str | None = None, progress: bool | None = None,
    batched: bool = True, **task_config,
) -> BetaSweep:
    """Train one L2 CVAE per β = ratio·β* on the fork (``FORK``, overridable by ``task_config``).

    β* is predicted first from the dataset's normalisation (:func:`predicted_thresholds`), so
    the grid sits where the theory says the latent dies. ``ratios`` default to the profile's.
    ``batched`` trains all β in one stacked run (:func:`mbc_lib.fitting.fit_many`, the same models
    as ``batched=False``'s one :func:`mbc_lib.fitting.fit` per β, up to float rounding).
    """
    b = budget("latent", profile)
    task = tasks.make("fork", **{**FORK, **task_config})
    data = task.dataset(b["n_demos"], seed=seed)
    th = predicted_thresholds(task, data.normalizer())
    ratios = sorted(b["ratios"] if ratios is None else ratios)
    betas, pols, hists, evals = {}, {}, {}, {}
    for r in ratios:
        betas[r] = float(r * th.beta_star)
    if batched:  # one stacked run for the whole sweep: same results as one fit per β, to float tolerance
        pols, hists = fit_many("cvae", data, [dict(beta=betas[r], recon="l2") for r in ratios], keys=ratios,
                               seeds=seed, budget=b, progress=progress)
    for r in tqdm(ratios, desc="β sweep", disable=not progress_enabled(progress)):
        if not batched:
            pols[r], hists[r] = fit("cvae", data, budget=b, seed=seed, progress=False, beta=betas[r], recon="l2")
        evals[r] = evaluate_latent(pols[r], task, seed=seed, n_states=b["n_states"], n_per_state=b["n_per_state"],
                            n_prior=b["n_prior"])
    return BetaSweep(task, th, betas, pols, hists, evals, data.normalizer())


def summary(sweep: BetaSweep) -> list[dict[str, float]]:
    """Tidy rows, one per β: β, β/β*, final reconstruction loss and the :class:`LatentEval` scalars."""
    return [{"beta": sweep.betas[r], "ratio": r, "recon": sweep.histories[r].final["recon"], **sweep.evals[r].scalars()}
            for r in sweep.ratios]


def rate_curve(
    centers, weights, sigma: float, scale: float, betas: Sequence[float], n_codes: int = 16, n_grid: int = 301,
) -> list[dict[str, float]]:
    """The toy's optimum (1-D, L2; the book's appendix, app-collapse-check) by Blahut–Arimoto at
    each β: rate I(A;Z), mode-identification error P_e and the Fano bound B(P_e). A flexible
    discrete latent with a learned prior — the best any CVAE can do with this objective."""
    rows = []
    w = np.asarray(weights, float)
    K = int((w > 0).sum())
    for beta in betas:
        pt = theory.blahut_arimoto(centers, weights, sigma, beta, "l2", scale, n_codes=n_codes, n_grid=n_grid,
                                   n_init=2, max_iter=3000)
        p_e = min(pt.mode_error, (K - 1) / K)
        rows.append({"beta": float(beta), "rate": pt.rate, "p_e": pt.mode_error, "fano": theory.fano_bound(w, p_e)})
    return rows


def rate_crossing(centers, weights, sigma: float, scale: float, level: float = math.log(2),
                  bracket: tuple[float, float] | None = None) -> float:
    """The β at which the toy's optimal rate (L2) falls through ``level`` nats
    (:func:`mbc_lib.theory.beta_at_rate` with a small, fast grid: 8 codes, 201 points; about
    three digits). For two equal modes the rate passes ln 2 where the optimum stops coding the
    noise within each mode."""
    return theory.beta_at_rate(centers, weights, sigma, level, "l2", scale, bracket=bracket, xtol=1e-3,
                               n_codes=8, n_grid=201, n_init=1, max_iter=1000, tol=1e-8)


def sweep_rate_curve(sweep: BetaSweep, n_points: int = 40) -> list[dict[str, float]]:
    """:func:`rate_curve` for the sweep's task, on the line through the two modes in normalised
    units (orthogonal noise is too weak to be coded at these β), over β/β* ∈ [0.05, 2.3]."""
    th = sweep.thresholds
    betas = th.beta_star * np.geomspace(0.05, 2.3, n_points)
    rows = rate_curve([-th.delta_n / 2, th.delta_n / 2], [0.5, 0.5], th.sigma_n, math.sqrt(th.n / 2), betas)
    for r in rows:
        r["ratio"] = r["beta"] / th.beta_star
    return rows


# ---------------------------------------------------------------------------------------
# ACT: L1, kl_weight, z = 0
# ---------------------------------------------------------------------------------------
@dataclass
class ActResult:
    kl_weight: float
    policy: policies.Policy = field(repr=False)
    history: History = field(repr=False)
    eval: LatentEval = field(repr=False)


def act_weights(profile: str | None = None, low: float = 0.05, high: float = 10.0) -> list[float]:
    """The kl_weights of the L1 sweep: from a small weight to ACT's 10, log-spaced, as many as
    the profile's L2 sweep has ratios but at most 7 (3 significant digits)."""
    count = min(len(budget("latent", profile)["ratios"]), 7)
    return [float(f"{w:.3g}") for w in np.geomspace(low, high, max(count, 2))]


def act_comparison(
    kl_weights: Sequence[float] | None = None, seed: int = 0, profile: str | None = None,
    progress: bool | None = None,
) -> dict[float, ActResult]:
    """ACT's setting on the fork: L1 reconstruction (mean over H·d_a), KL summed over latent
    dims with weight ``kl_weight``, fixed N(0, I) prior, deterministic z = 0 decoding — one
    model per weight in ``kl_weights`` (default :func:`act_weights`), trained in one batched
    run on the same demonstrations as :func:`beta_sweep` with the same ``seed``."""
    b = budget("latent", profile)
    task = tasks.make("fork", **FORK)
    data = task.dataset(b["n_demos"], seed=seed)
    out = {}
    ws = [float(w) for w in (act_weights(profile) if kl_weights is None else kl_weights)]
    pols, hists = fit_many("cvae", data, [dict(beta=w, recon="l1", decode_from="zero") for w in ws], keys=ws,
                           seeds=seed, budget=b, progress=progress)
    for w in tqdm(ws, desc="ACT", disable=not progress_enabled(progress)):
        pol, hist = pols[w], hists[w]
        out[float(w)] = ActResult(float(w), pol, hist,
                                  evaluate_latent(pol, task, seed=seed, n_states=b["n_states"], n_per_state=b["n_per_state"],
                                           n_prior=b["n_prior"]))
    return out


def act_summary(results: dict[float, ActResult]) -> list[dict[str, float]]:
    """Tidy rows, one per kl_weight (ascending): β, final reconstruction loss and the
    :class:`LatentEval` scalars."""
    return [{"beta": w, "recon": results[w].history.final["recon"], **results[w].eval.scalars()}
            for w in sorted(results)]


# ---------------------------------------------------------------------------------------
# where trained models collapse: the optimum's rate and its gain over collapse
# ---------------------------------------------------------------------------------------
def collapse_bracket(betas: Sequence[float], mean_kls: Sequence[float], threshold: float = COLLAPSED_KL
                     ) -> tuple[float | None, float | None]:
    """``(last_alive, first_collapsed)``: the sweep collapses between these two β.

    first_collapsed is the smallest β from which on every model of the sweep has E KL below
    ``threshold`` (None if the largest β is not collapsed); last_alive is the largest β below
    it (None if every model is collapsed)."""
    order = np.argsort(betas)
    b, kl = np.asarray(betas, float)[order], np.asarray(mean_kls, float)[order]
    alive = np.flatnonzero(kl >= threshold)
    if len(alive) == 0:
        return None, float(b[0])
    i = int(alive[-1])
    return float(b[i]), (float(b[i + 1]) if i + 1 < len(b) else None)


@dataclass
class CollapseCurves:
    """The optimum's rate and gain over collapse for the L2 sweep and the L1 (ACT) sweep.

    l2, l1: rows (β, ratio = β/β*_{L2}, rate, gain) on a dense grid — the L2 toy on the line
    through the modes (exact) and the L1 optimum over codes that see where a chunk lies along
    that line (:func:`mbc_lib.theory.blahut_arimoto_line`, a lower bound on the L1 gain).
    trained_l2, trained_l1: the same at each trained model's β, with its measured E KL.
    beta_star: β* of the L2 loss; beta_local_l1: the local L1 threshold, a lower bound on the
    exact L1 β* (astronomical when the median sits in the gap between the branches).
    brackets: (last alive β, first collapsed β) of each sweep.
    """

    beta_star: float
    beta_local_l1: float
    l2: list[dict[str, float]]
    l1: list[dict[str, float]]
    trained_l2: list[dict[str, float]]
    trained_l1: list[dict[str, float]]
    brackets: dict[str, tuple[float | None, float | None]]


def collapse_curves(sweep: BetaSweep, acts: dict[float, ActResult], n_points: int = 14) -> CollapseCurves:
    """Theory next to both trained sweeps (same task and demonstrations): the optimum's rate and
    its gain J_col − J_opt over collapse (:func:`mbc_lib.theory.collapse_gain`, in the units of
    the policy's loss), on ``n_points`` β per loss and at every trained β."""
    th = sweep.thresholds
    centers, weights, sigma_n = normalised_modes(sweep.task, sweep.normalizer)
    l2_line = ([-th.delta_n / 2, th.delta_n / 2], [0.5, 0.5], th.sigma_n)
    l2_scale = math.sqrt(th.n / 2)
    l1_scale = theory.act_loss_scaling(sweep.task.chunk_len, sweep.task.action_dim, loss="l1").scale
    ba_l2 = dict(n_codes=8, n_grid=301, n_init=2, max_iter=3000)

    def l2_row(beta: float) -> dict[str, float]:
        rate = 0.0 if beta >= th.beta_star else theory.blahut_arimoto(*l2_line, beta, "l2", l2_scale, **ba_l2).rate
        gain = theory.collapse_gain(*l2_line, beta, "l2", l2_scale, **ba_l2)
        return {"beta": float(beta), "ratio": float(beta / th.beta_star), "rate": rate, "gain": gain}

    def l1_row(beta: float) -> dict[str, float]:
        pt = theory.blahut_arimoto_line(centers, weights, sigma_n, beta, "l1", l1_scale)
        gain = theory.collapse_gain(centers, weights, sigma_n, beta, "l1", l1_scale)
        return {"beta": float(beta), "ratio": float(beta / th.beta_star), "rate": pt.rate, "gain": gain}

    ratios = np.concatenate([np.geomspace(0.05, 0.5, n_points // 2, endpoint=False),
                             1 - np.geomspace(0.5, 0.005, n_points - n_points // 2)])
    l1_betas = np.geomspace(0.02, 20.0, n_points)
    rows2 = summary(sweep)
    rows1 = act_summary(acts)
    trained_l2 = [{**l2_row(r["beta"]), "mean_kl": r["mean_kl"]} for r in rows2]
    trained_l1 = [{**l1_row(r["beta"]), "mean_kl": r["mean_kl"]} for r in rows1]
    return CollapseCurves(
        beta_star=th.beta_star,
        beta_local_l1=theory.local_critical_beta(centers, weights, sigma_n, "l1", l1_scale),
        l2=[l2_row(r * th.beta_star) for r in ratios], l1=[l1_row(b) for b in l1_betas],
        trained_l2=trained_l2, trained_l1=trained_l1,
        brackets={"l2": collapse_bracket([r["beta"] for r in rows2], [r["mean_kl"] for r in rows2]),
                  "l1": collapse_bracket([r["beta"] for r in rows1], [r["mean_kl"] for r in rows1])},
    )
