"""Chapter 3: latent-variable policies and the β trade-off.

A CVAE policy (``policies.make("cvae")``, ACT's objective) is trained on the two-branch fork
at a sweep of KL weights β, and each model is measured against the results of chapter 3
(proofs in the book's appendix: app-rate, app-fano, app-collapse, app-collapse-l2,
app-collapse-l1, app-beta-hard, app-collapse-check, app-trained-collapse, app-act):

* the **predicted collapse threshold** β* of the exact collapse criterion, computed for the
  policy's actual loss scaling: the reconstruction is mean-reduced over the n = H·d_a
  elements of the *normalised* chunk and the KL is summed over latent dimensions, so the
  temperature is T = β and, for L2, β* = 2v′/n with v′ the sub-Gaussian variance proxy of
  the normalised p(a|s) (:func:`predicted_thresholds`); next to it the naive "hard-code"
  estimate β_hard;
* the **rate decomposition**: E KL = Î(A;Z|S) + marginal KL, with the aggregate posterior of
  many demonstrations at the *same* state (:func:`evaluate`);
* the **Fano bound**: the mode-identification error P̂_e of the nearest centre to D(s, z), z
  drawn from the posterior (teacher forcing), and B(P̂_e) against Î;
* what the policy *produces*: chunks decoded from prior samples (modes reached, off-support)
  and from z = 0 (ACT's deterministic decoding).

The rate–distortion optimum of the same toy (Blahut–Arimoto, :func:`rate_curve`) is the
theory curve drawn over the measured rates. :func:`act_comparison` trains ACT's own loss
(L1, z = 0) at a range of kl_weights up to ACT's 10; :func:`collapse_curves` and
:func:`plot_collapse` put both sweeps next to the optimum's rate and its gain over collapse
(β* bounds where a trained model collapses from above). Sizes come from ``BUDGETS["latent"]``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from .. import diagnostics, policies, tasks, theory
from ..data import ChunkDataset, Normalizer
from ..plotting import OFF_SUPPORT_COLOR, mode_color, plot_chunks
from ..profiles import budget
from ..train import History, progress_enabled, train

__all__ = [
    "FORK", "COLLAPSED_KL", "Thresholds", "predicted_thresholds", "act_scaling", "fit_cvae", "fit_cvaes", "LatentEval",
    "evaluate", "nearest_mode", "BetaSweep", "beta_sweep", "summary", "rate_curve", "rate_crossing",
    "sweep_rate_curve", "plot_rate_curve", "plot_cgf", "plot_sweep", "plot_beta", "ActResult", "act_weights",
    "act_comparison", "act_summary", "plot_act", "collapse_bracket", "collapse_curves", "plot_collapse",
]

#: the chapter's task: two equally likely branches, Δ_c = 2 apart, σ = 0.05, H = 8, d_a = 1
FORK: dict = dict(K=2, delta=2.0)

#: a trained model counts as **collapsed** when its expected KL is below this many nats
COLLAPSED_KL = 0.02


# ---------------------------------------------------------------------------------------
# theory for the trained policy: the collapse criterion with the policy's loss scaling
# ---------------------------------------------------------------------------------------
@dataclass
class Thresholds:
    """Chapter 3's thresholds (appendix: app-collapse-l2, app-beta-hard) evaluated on the
    normalised p(a|s) of a task, in the policy's units.

    n: H·d_a, the elements the reconstruction loss averages over. sigma_a: the action std the
    normaliser divides by (task units). delta_n, sigma_n: nearest centre distance and
    within-mode std in normalised units. v_prime: sub-Gaussian variance proxy of the
    normalised chunk (normalised units²). beta_star: exact L2 collapse threshold 2v′/n.
    beta_local: λ_max(Cov)·2/n (second-order threshold, ≤ β*). beta_hard: the naive
    "hard-code" estimate V_B/(2σ_d²·𝓗(π)) with σ_d² = n/2 — NOT the threshold.
    """

    n: int
    sigma_a: float
    delta_n: float
    sigma_n: float
    v_prime: float
    beta_star: float
    beta_local: float
    beta_hard: float

    def as_dict(self) -> dict[str, float]:
        return dict(vars(self))


def _normalised_modes(task: tasks.Task, normalizer: Normalizer, s: float = 0.0) -> tuple[np.ndarray, np.ndarray, float]:
    """Centres ``[K, n]`` and weights ``[K]`` of p(a|s) in the units the policy's loss sees,
    and the within-mode std there (the largest over action dims, if they differ)."""
    ms = task.modes(torch.full((1, task.obs_dim), float(s)))
    mean, std = normalizer.act_mean.cpu(), normalizer.act_std.cpu()
    centers = ((ms.centers[0] - mean) / std).flatten(1).double().numpy()  # [K, H*d]
    weights = ms.weights[0].double().numpy()
    return centers, weights / weights.sum(), float(task.sigma / std.min())


def predicted_thresholds(task: tasks.Task, normalizer: Normalizer, s: float = 0.0) -> Thresholds:
    """β*, the local threshold and β_hard for an L2 CVAE trained on ``task`` with ``normalizer``.

    The cvae loss is mean_{n elements} (a − D)² + β Σ_j KL_j on normalised chunks: in the toy's
    J = E‖a − D‖²/c + β E KL that is c = n = 2σ_d², so β* = v′/σ_d² = 2v′/n (per state; the
    fork's p(a|s) only shifts with s, so every state has the same β*).
    """
    centers, weights, sigma_n = _normalised_modes(task, normalizer, s)
    n = centers.shape[1]
    scale = theory.act_loss_scaling(task.chunk_len, task.action_dim, loss="l2").scale  # σ_d = √(n/2)
    dist = np.linalg.norm(centers[:, None] - centers[None], axis=-1)
    dist[np.eye(len(centers), dtype=bool)] = np.inf
    return Thresholds(
        n=n, sigma_a=float(normalizer.act_std.max()), delta_n=float(dist.min()), sigma_n=sigma_n,
        v_prime=theory.subgaussian_variance_proxy(centers, weights, sigma_n),
        beta_star=theory.critical_beta(centers, weights, sigma_n, "l2", scale),
        beta_local=theory.local_critical_beta(centers, weights, sigma_n, "l2", scale),
        beta_hard=theory.beta_hard(centers, weights, sigma_n, "l2", scale),
    )


def act_scaling(task: tasks.Task, normalizer: Normalizer, kl_weight: float = 10.0, s: float = 0.0) -> dict[str, float]:
    """ACT's loss (mean-reduced L1 + kl_weight·summed KL) on ``task``, in the toy's terms
    (the book's appendix, app-act and app-collapse-l1).

    Returns n, the temperature T = n·kl_weight of the summed-L1 form (T = kl_weight for the
    mean-reduced one), β_hard for L1 (above it exact mode coding no longer pays), the local
    L1 threshold 1/(2 f(y_P) c) (c the Laplace scale; a lower bound on β*, huge when the
    median sits in a gap between modes, where the density f is ≈ 0), and Λ(T) of the collapse
    criterion at ACT's weight with max_gain = kl_weight·Λ: no encoder lowers the objective
    below the collapsed one by more (J ≥ J_col − βΛ). Λ comes from a numerical supremum, a
    lower bound on Λ in n-D. line_gain: the gain of the best code that sees where the chunk
    lies between the branches (:func:`mbc_lib.theory.blahut_arimoto_line`) — a lower bound on
    the optimum's gain, to set against max_gain.
    """
    centers, weights, sigma_n = _normalised_modes(task, normalizer, s)
    sc = theory.act_loss_scaling(task.chunk_len, task.action_dim, kl_weight, "l1")
    crit = theory.collapse_criterion(sc.temperature, centers, weights, sigma_n, "l1")
    return {
        "n": sc.n, "kl_weight": kl_weight, "temperature": sc.temperature,
        "beta_hard_l1": theory.beta_hard(centers, weights, sigma_n, "l1", sc.scale),
        "beta_local_l1": theory.local_critical_beta(centers, weights, sigma_n, "l1", sc.scale),
        "lambda": crit.value, "max_gain": kl_weight * crit.value,
        "line_gain": theory.collapse_gain(centers, weights, sigma_n, kl_weight, "l1", sc.scale),
    }


# ---------------------------------------------------------------------------------------
# training and measuring one CVAE
# ---------------------------------------------------------------------------------------
def fit_cvae(
    task: tasks.Task, data: ChunkDataset, b: dict, seed: int = 0, progress: bool | None = None, **config
) -> tuple[policies.Policy, History]:
    """Train a ``cvae`` with the budget ``b`` (width, depth, latent_dim, steps, batch_size, lr)
    and ``config`` (beta, recon, prior, regularizer, ...). The policy ends on the CPU."""
    policy = policies.make(
        "cvae", obs_dim=task.obs_dim, action_dim=task.action_dim, chunk_len=task.chunk_len,
        latent_dim=b["latent_dim"], width=b["width"], depth=b["depth"], seed=seed, **config,
    )
    desc = "cvae " + " ".join(f"{k}={v}" for k, v in config.items())
    history = train(policy, data, steps=b["steps"], batch_size=b["batch_size"], lr=b["lr"], seed=seed,
                    progress=progress, desc=desc)
    return policy.cpu(), history


def fit_cvaes(
    task: tasks.Task, data: ChunkDataset, b: dict, configs: Sequence[dict], seed: int | Sequence[int] = 0,
    progress: bool | None = None, keys: Sequence | None = None,
) -> tuple[dict, dict]:
    """:func:`fit_cvae` for many ``configs`` that differ only in scalars (β, free bits, β warm-up),
    trained as one stacked model by :func:`mbc_lib.batched.train_batched`. ``seed`` is one seed or
    one per config. Returns ``({key: policy}, {key: history})`` keyed by ``keys`` (default: index);
    the policies end on the CPU."""
    from ..batched import train_batched

    seeds = [seed] * len(configs) if isinstance(seed, int) else list(seed)
    keys = list(range(len(configs))) if keys is None else list(keys)
    pols = [policies.make("cvae", obs_dim=task.obs_dim, action_dim=task.action_dim, chunk_len=task.chunk_len,
                          latent_dim=b["latent_dim"], width=b["width"], depth=b["depth"], seed=s, **c)
            for c, s in zip(configs, seeds)]
    hists = train_batched(pols, data, steps=b["steps"], batch_size=b["batch_size"], lr=b["lr"], seed=seeds,
                          progress=progress, desc=f"{len(pols)} cvaes (batched)")
    return {k: p.cpu() for k, p in zip(keys, pols)}, dict(zip(keys, hists))


def nearest_mode(task: tasks.Task, obs: Tensor, chunks: Tensor) -> Tensor:
    """Index of the nearest present mode centre, ``[B]`` — the identifier ĝ of the Fano bound
    (no radius: every chunk is attributed to some mode)."""
    ms = task.modes(obs)
    dist = torch.cdist(chunks.detach().float().flatten(1)[:, None], ms.centers.flatten(2))[:, 0]  # [B, K]
    return dist.masked_fill(ms.weights <= 0, math.inf).argmin(-1)


@dataclass
class LatentEval:
    """One trained latent policy measured at ``n_states`` states with ``n_per_state`` demos each.

    Tensors: states ``[S]``; obs ``[S·N, 1]``, chunks ``[S·N, H, d_a]``, labels ``[S·N]`` (the
    demonstrations, state-major); mu, logvar ``[S·N, dz]`` (posteriors) and mu_p, logvar_p
    (the prior at each row's state); prior_chunks ``[S, n_prior, H, d]`` and prior_labels
    ``[S, n_prior]`` (decoded prior samples); post_labels ``[S·N]`` (decoded posterior
    samples, teacher forcing); zero_chunks ``[S, H, d]``, zero_labels ``[S]`` (z = 0).
    Labels are mode indices, −1 off-support.
    """

    K: int
    split: diagnostics.KLSplit
    p_e: float  # P̂_e = P(nearest mode to D(s, z) ≠ M), z ~ q(z|s, a)
    fano: float  # B(P̂_e) (nats)
    states: Tensor = field(repr=False)
    obs: Tensor = field(repr=False)
    chunks: Tensor = field(repr=False)
    labels: Tensor = field(repr=False)
    mu: Tensor = field(repr=False)
    logvar: Tensor = field(repr=False)
    mu_p: Tensor = field(repr=False)
    logvar_p: Tensor = field(repr=False)
    post_labels: Tensor = field(repr=False)
    prior_chunks: Tensor = field(repr=False)
    prior_labels: Tensor = field(repr=False)
    zero_chunks: Tensor = field(repr=False)
    zero_labels: Tensor = field(repr=False)

    @property
    def groups(self) -> Tensor:
        """State index of each demonstration row, ``[S·N]``."""
        return torch.arange(len(self.states)).repeat_interleave(self.obs.shape[0] // len(self.states))

    def coverage(self, source: str = "prior") -> np.ndarray:
        """Fraction of decoded chunks in modes 0..K−1 and off-support (last entry), ``[K+1]``;
        ``source`` = "prior" (z ~ p, deployment) or "posterior" (z ~ q, reconstruction)."""
        lab = (self.prior_labels if source == "prior" else self.post_labels).reshape(-1)
        return np.array([float((lab == k).float().mean()) for k in [*range(self.K), -1]])

    def modes_reached(self, min_mass: float = 0.1) -> int:
        """Modes that receive at least ``min_mass`` of the prior-decoded chunks."""
        return int((self.coverage("prior")[: self.K] >= min_mass).sum())

    def scalars(self) -> dict[str, float]:
        cp, cq = self.coverage("prior"), self.coverage("posterior")
        return {
            "mean_kl": self.split.mean_kl, "mutual_information": self.split.mutual_information,
            "marginal_kl": self.split.marginal_kl, "p_e": self.p_e, "fano": self.fano,
            "off_support_prior": float(cp[-1]), "off_support_posterior": float(cq[-1]),
            "modes_reached": self.modes_reached(), "zero_off_support": float((self.zero_labels < 0).float().mean()),
        }


@torch.no_grad()
def evaluate(
    policy: policies.Policy, task: tasks.Task, seed: int = 0, n_states: int = 4, n_per_state: int = 256,
    n_prior: int = 256,
) -> LatentEval:
    """Measure a latent policy at ``n_states`` states in [−0.75, 0.75] (the book's appendix,
    app-diagnostics: the KL split, the Fano bound, prior coverage).

    At each state: ``n_per_state`` demonstrations are encoded (the aggregate posterior q̄(z|s)
    is their mixture, so the KL split uses the state as its group), one z ~ q per demo is
    decoded (teacher forcing: P̂_e and the posterior-sampled coverage), ``n_prior`` z ~ p(z|s)
    are decoded (deployment coverage), and z = 0 is decoded (ACT).
    """
    g = torch.Generator().manual_seed(seed + 10_000)
    states = torch.linspace(-0.75, 0.75, n_states)
    obs = states.repeat_interleave(n_per_state)[:, None]  # [S·N, 1]
    chunks, labels = task.sample(obs, g)  # [S·N, H, d], [S·N]
    mu, logvar = policy.encode(obs, chunks)  # [S·N, dz] each
    mu_p, logvar_p = policy.prior(obs)
    groups = torch.arange(n_states).repeat_interleave(n_per_state)  # the state of each row, [S·N]
    split = diagnostics.kl_split(mu, logvar, mu_p, logvar_p, groups=groups, generator=g)
    z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=g)  # z ~ q(z|s, a)
    recon = policy.decode(obs, z)  # [S·N, H, d]
    p_e = float((nearest_mode(task, obs, recon) != labels).float().mean())
    K = int(task.modes(obs[:1]).count[0])
    fano = theory.fano_bound(task.modes(obs[:1]).weights[0].double().numpy(), min(p_e, (K - 1) / K))
    s_obs = states[:, None]
    prior_chunks = policy.sample(s_obs, n_prior, generator=g, decode_from="prior")  # [S, n_prior, H, d]
    zero_chunks = policy.sample(s_obs, 1, decode_from="zero")[:, 0]  # [S, H, d]
    return LatentEval(
        K=K, split=split, p_e=p_e, fano=fano, states=states, obs=obs, chunks=chunks, labels=labels,
        mu=mu, logvar=logvar, mu_p=mu_p, logvar_p=logvar_p, post_labels=task.assign(obs, recon),
        prior_chunks=prior_chunks, prior_labels=task.assign(s_obs, prior_chunks),
        zero_chunks=zero_chunks, zero_labels=task.assign(s_obs, zero_chunks),
    )


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
    ``batched`` trains all β in one stacked run (:func:`mbc_lib.batched.train_batched`, the
    same models as ``batched=False``'s one-by-one :func:`fit_cvae` up to float rounding).
    """
    b = budget("latent", profile)
    task = tasks.make("fork", **{**FORK, **task_config})
    data = task.dataset(b["n_demos"], seed=seed)
    th = predicted_thresholds(task, data.normalizer())
    ratios = sorted(b["ratios"] if ratios is None else ratios)
    betas, pols, hists, evals = {}, {}, {}, {}
    for r in ratios:
        betas[r] = float(r * th.beta_star)
    if batched:  # one stacked run for the whole sweep: same results as fit_cvae per β, to float tolerance
        pols, hists = fit_cvaes(task, data, b, [dict(beta=betas[r], recon="l2") for r in ratios], seed=seed,
                                progress=progress, keys=ratios)
    for r in tqdm(ratios, desc="β sweep", disable=not progress_enabled(progress)):
        if not batched:
            pols[r], hists[r] = fit_cvae(task, data, b, seed=seed, progress=False, beta=betas[r], recon="l2")
        evals[r] = evaluate(pols[r], task, seed=seed, n_states=b["n_states"], n_per_state=b["n_per_state"],
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
    pols, hists = fit_cvaes(task, data, b, [dict(beta=w, recon="l1", decode_from="zero") for w in ws], seed=seed,
                            progress=progress, keys=ws)
    for w in tqdm(ws, desc="ACT", disable=not progress_enabled(progress)):
        pol, hist = pols[w], hists[w]
        out[float(w)] = ActResult(float(w), pol, hist,
                                  evaluate(pol, task, seed=seed, n_states=b["n_states"], n_per_state=b["n_per_state"],
                                           n_prior=b["n_prior"]))
    return out


def act_summary(results: dict[float, ActResult]) -> list[dict[str, float]]:
    """Tidy rows, one per kl_weight (ascending): β, final reconstruction loss and the
    :class:`LatentEval` scalars."""
    return [{"beta": w, "recon": results[w].history.final["recon"], **results[w].eval.scalars()}
            for w in sorted(results)]


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
    centers, weights, sigma_n = _normalised_modes(sweep.task, sweep.normalizer)
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
