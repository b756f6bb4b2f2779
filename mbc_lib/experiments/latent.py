"""Chapter 3: latent-variable policies and the β trade-off.

A CVAE policy (``policies.make("cvae")``, ACT's objective) is trained on the two-branch fork
at a sweep of KL weights β, and each model is measured against THEORY §1:

* the **predicted collapse threshold** β* of criterion (3), computed for the policy's actual
  loss scaling: the reconstruction is mean-reduced over the n = H·d elements of the
  *normalised* chunk and the KL is summed over latent dimensions, so THEORY's temperature is
  T = β and, for L2, β* = 2v′/n with v′ the sub-Gaussian variance proxy of the normalised
  p(a|s) (:func:`predicted_thresholds`); next to it the naive "hard-code" estimate β_hard;
* the **KL split** (1): E KL = Î(A;Z|S) + marginal KL, with the aggregate posterior of many
  demonstrations at the *same* state (:func:`evaluate`);
* the **Fano bound** (2): the mode error ρ̂ of the nearest centre to D(s, z), z drawn from the
  posterior (teacher forcing), and B_ρ̂ against Î;
* what the policy *produces*: chunks decoded from prior samples (modes reached, off-support)
  and from z = 0 (ACT's deterministic decoding).

The rate–distortion optimum of the same toy (Blahut–Arimoto, :func:`rate_curve`) is the
theory curve drawn over the measured rates. :func:`act_comparison` trains ACT's own setting
(L1, kl_weight = 10, z = 0) next to a small β. Sizes come from ``BUDGETS["latent"]``.
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
    "FORK", "Thresholds", "predicted_thresholds", "act_scaling", "fit_cvae", "fit_cvaes", "LatentEval", "evaluate",
    "nearest_mode", "BetaSweep", "beta_sweep", "summary", "rate_curve", "sweep_rate_curve", "plot_rate_curve",
    "plot_sweep", "plot_beta", "ActResult", "act_comparison", "plot_act",
]

#: the chapter's task: two equally likely branches, Δ_c = 2 apart, σ = 0.05, H = 8, d = 1
FORK: dict = dict(K=2, delta=2.0)


# ---------------------------------------------------------------------------------------
# theory for the trained policy: criterion (3) with the policy's loss scaling
# ---------------------------------------------------------------------------------------
@dataclass
class Thresholds:
    """THEORY §1c evaluated on the normalised p(a|s) of a task, in the policy's units.

    n: H·d, the elements the reconstruction loss averages over. sigma_a: the action std the
    normaliser divides by (task units). delta_n, sigma_n: nearest centre distance and
    within-mode std in normalised units. v_prime: sub-Gaussian variance proxy of the
    normalised chunk (normalised units²). beta_star: exact L2 collapse threshold 2v′/n.
    beta_local: λ_max(Cov)·2/n (second-order threshold, ≤ β*). beta_hard: the naive
    "hard-code" estimate V_B/(2σ_d²H(π)) with σ_d² = n/2 — NOT the threshold.
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

    The cvae loss is mean_{n elements} (a − D)² + β Σ_j KL_j on normalised chunks: in THEORY's
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
    """ACT's loss (mean-reduced L1 + kl_weight·summed KL) on ``task``, in THEORY §1c's terms.

    Returns n, the temperature T = n·kl_weight of the summed-L1 form (T = kl_weight for the
    mean-reduced one), β_hard for L1 (above it exact mode coding no longer pays), the local
    L1 threshold 1/(2 f(y_P) b) (a lower bound on β*; huge when the median sits in a gap
    between modes, where the density f is ≈ 0), and Λ(T) of criterion (3) at ACT's weight with
    max_gain = kl_weight·Λ: no encoder lowers the objective below the collapsed one by more
    (J ≥ J_col − βΛ). Λ comes from a numerical supremum, a lower bound on Λ in n-D.
    """
    centers, weights, sigma_n = _normalised_modes(task, normalizer, s)
    sc = theory.act_loss_scaling(task.chunk_len, task.action_dim, kl_weight, "l1")
    crit = theory.collapse_criterion(sc.temperature, centers, weights, sigma_n, "l1")
    return {
        "n": sc.n, "kl_weight": kl_weight, "temperature": sc.temperature,
        "beta_hard_l1": theory.beta_hard(centers, weights, sigma_n, "l1", sc.scale),
        "beta_local_l1": theory.local_critical_beta(centers, weights, sigma_n, "l1", sc.scale),
        "lambda": crit.value, "max_gain": kl_weight * crit.value,
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
    """Index of the nearest present mode centre, ``[B]`` — the identifier ĝ of THEORY (2)
    (no radius: every chunk is attributed to some mode)."""
    ms = task.modes(obs)
    dist = torch.cdist(chunks.detach().float().flatten(1)[:, None], ms.centers.flatten(2))[:, 0]  # [B, K]
    return dist.masked_fill(ms.weights <= 0, math.inf).argmin(-1)


@dataclass
class LatentEval:
    """One trained latent policy measured at ``n_states`` states with ``n_per_state`` demos each.

    Tensors: states ``[S]``; obs ``[S·N, 1]``, chunks ``[S·N, H, d]``, labels ``[S·N]`` (the
    demonstrations, state-major); mu, logvar ``[S·N, dz]`` (posteriors) and mu_p, logvar_p
    (the prior at each row's state); prior_chunks ``[S, n_prior, H, d]`` and prior_labels
    ``[S, n_prior]`` (decoded prior samples); post_labels ``[S·N]`` (decoded posterior
    samples, teacher forcing); zero_chunks ``[S, H, d]``, zero_labels ``[S]`` (z = 0).
    Labels are mode indices, −1 off-support.
    """

    K: int
    split: diagnostics.KLSplit
    rho: float  # P(nearest mode to D(s, z) ≠ M), z ~ q(z|s, a)
    fano: float  # B_ρ̂ (nats)
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
            "marginal_kl": self.split.marginal_kl, "rho": self.rho, "fano": self.fano,
            "off_support_prior": float(cp[-1]), "off_support_posterior": float(cq[-1]),
            "modes_reached": self.modes_reached(), "zero_off_support": float((self.zero_labels < 0).float().mean()),
        }


@torch.no_grad()
def evaluate(
    policy: policies.Policy, task: tasks.Task, seed: int = 0, n_states: int = 4, n_per_state: int = 256,
    n_prior: int = 256,
) -> LatentEval:
    """Measure a latent policy at ``n_states`` states in [−0.75, 0.75] (THEORY §3 items 6–8).

    At each state: ``n_per_state`` demonstrations are encoded (the aggregate posterior q̄(z|s)
    is their mixture, so the KL split uses the state as its group), one z ~ q per demo is
    decoded (teacher forcing: ρ̂ and the posterior-sampled coverage), ``n_prior`` z ~ p(z|s)
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
    rho = float((nearest_mode(task, obs, recon) != labels).float().mean())
    K = int(task.modes(obs[:1]).count[0])
    fano = theory.fano_bound(task.modes(obs[:1]).weights[0].double().numpy(), min(rho, (K - 1) / K))
    s_obs = states[:, None]
    prior_chunks = policy.sample(s_obs, n_prior, generator=g, decode_from="prior")  # [S, n_prior, H, d]
    zero_chunks = policy.sample(s_obs, 1, decode_from="zero")[:, 0]  # [S, H, d]
    return LatentEval(
        K=K, split=split, rho=rho, fano=fano, states=states, obs=obs, chunks=chunks, labels=labels,
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
    return BetaSweep(task, th, betas, pols, hists, evals)


def summary(sweep: BetaSweep) -> list[dict[str, float]]:
    """Tidy rows, one per β: β, β/β*, final reconstruction loss and the :class:`LatentEval` scalars."""
    return [{"beta": sweep.betas[r], "ratio": r, "recon": sweep.histories[r].final["recon"], **sweep.evals[r].scalars()}
            for r in sweep.ratios]


def rate_curve(
    centers, weights, sigma: float, scale: float, betas: Sequence[float], n_codes: int = 16, n_grid: int = 301,
) -> list[dict[str, float]]:
    """The toy's optimum (THEORY §1c, 1-D, L2) by Blahut–Arimoto at each β: rate I(A;Z), mode
    error ρ and the Fano bound B_ρ. A flexible discrete latent with a learned prior — the best
    any CVAE can do with this objective."""
    rows = []
    w = np.asarray(weights, float)
    K = int((w > 0).sum())
    for beta in betas:
        pt = theory.blahut_arimoto(centers, weights, sigma, beta, "l2", scale, n_codes=n_codes, n_grid=n_grid,
                                   n_init=2, max_iter=3000)
        rho = min(pt.mode_error, (K - 1) / K)
        rows.append({"beta": float(beta), "rate": pt.rate, "rho": pt.mode_error, "fano": theory.fano_bound(w, rho)})
    return rows


def sweep_rate_curve(sweep: BetaSweep, n_points: int = 40) -> list[dict[str, float]]:
    """:func:`rate_curve` for the sweep's task, on the line through the two modes in normalised
    units (orthogonal noise is too weak to be coded at these β), over β/β* ∈ [0.05, 2.3]."""
    th = sweep.thresholds
    betas = th.beta_star * np.geomspace(0.05, 2.3, n_points)
    rows = rate_curve([-th.delta_n / 2, th.delta_n / 2], [0.5, 0.5], th.sigma_n, math.sqrt(th.n / 2), betas)
    for r in rows:
        r["ratio"] = r["beta"] / th.beta_star
    return rows


def plot_rate_curve(rows: list[dict[str, float]], beta_star: float, beta_hard: float) -> plt.Figure:
    """The toy's optimal rate and mode error against β, with β* and the naive β_hard marked."""
    beta = np.array([r["beta"] for r in rows])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.5, 3.2))
    ax1.plot(beta, [r["rate"] for r in rows], "k-", lw=1.8, label="optimal rate I(A;Z) (Blahut–Arimoto)")
    ax1.plot(beta, [r["fano"] for r in rows], "--", color="#1f77b4", label="Fano bound $B_\\rho$ at its ρ")
    ax2.plot(beta, [r["rho"] for r in rows], "k-", lw=1.8, label="mode error ρ of the optimum")
    for ax in (ax1, ax2):
        ax.axvline(beta_star, color="#d62728", lw=1.5, label=f"exact threshold β* = {beta_star:.3g}")
        ax.axvline(beta_hard, color="#ff7f0e", lw=1.5, ls=":", label=f"naive β_hard = {beta_hard:.3g}")
        ax.set_xlabel("KL weight β")
    ax1.set(ylabel="nats", title="the latent dies at β*, not at β_hard")
    ax2.set(ylabel="ρ", ylim=(-0.02, 0.55), title="between β_hard and β*: soft mode information")
    ax1.legend(fontsize=8, loc="upper right", frameon=True, framealpha=0.9)
    ax2.legend(fontsize=8, loc="upper left", frameon=True, framealpha=0.9)
    fig.tight_layout()
    return fig


def plot_sweep(sweep: BetaSweep, curve: list[dict[str, float]] | None = None) -> plt.Figure:
    """Theory over measurement, against β/β*. Left: E KL, Î and the marginal KL (markers) with
    the optimal rate (line). Right: mode error ρ̂ (teacher forcing) with the optimum's ρ, and the
    off-support fraction of prior-decoded chunks."""
    rows = summary(sweep)
    th = sweep.thresholds
    x = np.array([r["ratio"] for r in rows])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    if curve is not None:
        ax1.plot([c["ratio"] for c in curve], [c["rate"] for c in curve], "k-", lw=1.2, alpha=0.7,
                 label="optimal rate (theory)")
        ax2.plot([c["ratio"] for c in curve], [c["rho"] for c in curve], "k-", lw=1.2, alpha=0.7,
                 label="ρ of the optimum (theory)")
    ax1.plot(x, [r["mean_kl"] for r in rows], "o", ms=8, color="#1f77b4", label="E KL (measured)")
    ax1.plot(x, [r["mutual_information"] for r in rows], "^", ms=6, color="#2ca02c", label="Î(A;Z|S)")
    ax1.plot(x, [r["marginal_kl"] for r in rows], "s", ms=5, color="#9467bd", label="marginal KL")
    ax1.plot(x, [r["fano"] for r in rows], "x", ms=7, color="#8c564b", label="Fano $B_{\\hat\\rho}$")
    ax2.plot(x, [r["rho"] for r in rows], "o", ms=8, color="#1f77b4", label="ρ̂ (z from the posterior)")
    ax2.plot(x, [r["off_support_prior"] for r in rows], "s", ms=6, color=OFF_SUPPORT_COLOR,
             label="off-support, z from the prior")
    for ax in (ax1, ax2):
        ax.axvline(1.0, color="#d62728", lw=1.5)
        ax.axvline(th.beta_hard / th.beta_star, color="#ff7f0e", lw=1.5, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel("β / β*   (red: β*, orange dotted: naive β_hard)")
    ax1.axhline(math.log(2), color="0.5", lw=0.8, ls="--")
    ax1.text(x.min(), math.log(2) + 0.02, "H(π) = ln 2", fontsize=8, color="0.4")
    ax1.set(ylabel="nats", title=f"what the latent carries (β* = {th.beta_star:.3f})")
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


def act_comparison(
    kl_weights: Sequence[float] = (10.0, 0.05), seed: int = 0, profile: str | None = None,
    progress: bool | None = None,
) -> dict[float, ActResult]:
    """ACT's setting on the fork: L1 reconstruction (mean over H·d), KL summed over latent
    dims with weight ``kl_weight``, fixed N(0, I) prior, deterministic z = 0 decoding."""
    b = budget("latent", profile)
    task = tasks.make("fork", **FORK)
    data = task.dataset(b["n_demos"], seed=seed)
    out = {}
    ws = [float(w) for w in kl_weights]  # the models differ only in β: one batched run
    pols, hists = fit_cvaes(task, data, b, [dict(beta=w, recon="l1", decode_from="zero") for w in ws], seed=seed,
                            progress=progress, keys=ws)
    for w in tqdm(ws, desc="ACT", disable=not progress_enabled(progress)):
        pol, hist = pols[w], hists[w]
        out[float(w)] = ActResult(float(w), pol, hist,
                                  evaluate(pol, task, seed=seed, n_states=b["n_states"], n_per_state=b["n_per_state"],
                                           n_prior=b["n_prior"]))
    return out


def plot_act(results: dict[float, ActResult], state: int = 0) -> plt.Figure:
    """For each kl_weight: demos (by mode), chunks from prior samples (grey) and the chunk ACT
    executes, z = 0 (black, red if off-support)."""
    fig, axes = plt.subplots(1, len(results), figsize=(4.6 * len(results), 3.2), sharey=True, squeeze=False)
    for ax, (w, res) in zip(axes[0], sorted(results.items(), reverse=True)):
        ev = res.eval
        s = float(ev.states[state])
        sel = ev.groups == state
        plot_chunks(ax, ev.chunks[sel][:60], ev.labels[sel][:60], offset=torch.full((60,), s), alpha=0.25)
        plot_chunks(ax, ev.prior_chunks[state][:40], None, offset=torch.full((40,), s), color="0.45", alpha=0.35)
        zl = int(ev.zero_labels[state])
        plot_chunks(ax, ev.zero_chunks[state:state + 1], None, offset=torch.tensor([s]), lw=3, alpha=1,
                    color="k" if zl >= 0 else OFF_SUPPORT_COLOR)
        where = f"mode {zl}" if zl >= 0 else "off-support"
        ax.set_title(f"kl_weight = {w:g}: E KL = {ev.split.mean_kl:.2f} nats\nz = 0 decodes to: {where}")
    axes[0, 0].set_ylabel("lateral position − s")
    fig.tight_layout()
    return fig
