"""What several experiments measure on a trained policy, against a task whose modes are known.

Three measurements that more than one chapter uses, so that no experiment module imports another:

* **the collapse thresholds for a policy's own loss** (:func:`predicted_thresholds`, :func:`act_scaling`):
  the theory of chapter 3 (:mod:`mbc_lib.theory`) evaluated on a task's p(a|s) in the normalised units
  the policy's loss sees — chapters 3, 4 and 7;
* **the latent diagnostics of a CVAE** (:func:`evaluate_latent` → :class:`LatentEval`): the KL split,
  the mode-identification error P̂_e with its Fano bound, and what prior samples, posterior samples
  and z = 0 decode to — chapters 3 and 4, and the exercise checks;
* **the bridge and Lipschitz estimates of a transport sampler** (:func:`measure_bridges` →
  :class:`BridgeStats`): the mass in no mode against the isoperimetric floor at L̂, L̂ itself from
  Jacobians and base segments, and the transition widths — chapters 6 and 7.

The mode of a chunk is always the library's one rule (:func:`mbc_lib.data.label_modes`); the
diagnostics themselves (:mod:`mbc_lib.diagnostics`) work on samples, latents and maps, and this
module is where a policy meets them. Units are the task's; a Lipschitz constant is task units per
base unit.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from . import diagnostics, policies, tasks, theory
from .data import Normalizer, label_modes
from .diagnostics import assign_modes, jacobian_spectral_norm, random_segments, segment_profile, wilson_interval
from .runtime import on_compute_device
from .train import History

__all__ = [
    "Thresholds", "normalised_modes", "predicted_thresholds", "act_scaling", "identified_modes", "LatentEval",
    "evaluate_latent", "TrainedTransport", "BridgeStats", "bridge_eval_obs", "transitions", "measure_bridges",
]


# ---------------------------------------------------------------------------------------
# theory for a trained policy: the collapse criterion with the policy's loss scaling
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


def normalised_modes(
    task: tasks.Task | None = None, normalizer: Normalizer | None = None, s: float = 0.0, *,
    centers: np.ndarray | Tensor | None = None, spread: float | np.ndarray | Tensor | None = None,
    weights: np.ndarray | Tensor | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Centres ``[K, n]`` and weights ``[K]`` of p(a|s) in the units the policy's loss sees,
    and the within-mode std there (the largest over modes and action dims, if they differ).

    The modes come from a ``task`` at observation ``s`` — or, for your own demonstrations, from
    measured ones: ``centers`` ``[K, H, d_a]`` (task units), ``spread`` the RMS distance of a mode's
    chunks to its centre (task units; a number or ``[K]``), ``weights`` ``[K]`` (default equal). The
    first argument may also be the result of :func:`mbc_lib.diagnostics.cluster_modes`, which carries
    all three. A task with noise σ per element has spread σ·√n (n = H·d_a), so both routes agree.
    ``normalizer`` is the policy's (``policy.normalizer``) or the dataset's (``data.normalizer()``).
    """
    if not isinstance(normalizer, Normalizer):
        raise ValueError(  # noqa: TRY004 - one error type for every bad input of these helpers
            f"normalizer must be a policy's or a dataset's Normalizer (policy.normalizer, "
            f"data.normalizer()), got {type(normalizer).__name__}")
    mean, std = normalizer.act_mean.detach().cpu().double(), normalizer.act_std.detach().cpu().double()
    if task is not None and not isinstance(task, tasks.Task):
        if not all(hasattr(task, f) for f in ("centers", "spread", "weights")):
            raise ValueError("the first argument must be a tasks.Task or a cluster_modes result (centers, spread, "
                             f"weights); got {type(task).__name__}")
        if centers is not None or spread is not None or weights is not None:
            raise ValueError("give the modes once: a cluster_modes result or centers=/spread=/weights=, not both")
        task, centers, spread, weights = None, task.centers, task.spread, task.weights
    if task is not None:
        if centers is not None or spread is not None or weights is not None:
            raise ValueError("give either a task or measured centers/spread/weights, not both")
        ms = task.modes(torch.full((1, task.obs_dim), float(s)))
        mean32, std32 = normalizer.act_mean.detach().cpu(), normalizer.act_std.detach().cpu()
        flat = ((ms.centers[0] - mean32) / std32).flatten(1).double().numpy()  # [K, H*d]
        w = ms.weights[0].double().numpy()
        if flat.shape[0] < 2:
            raise ValueError(f"the collapse thresholds need at least two modes, got {flat.shape[0]}")
        return flat, w / w.sum(), float(task.sigma / std32.min())
    else:
        if centers is None or spread is None:
            raise ValueError("give a tasks.Task, or the measured modes: centers [K, H, d_a] and spread (task units)")
        if s != 0.0:
            raise ValueError("s selects a task's observation; measured centers already belong to one observation")
        c = torch.as_tensor(np.asarray(centers, dtype=np.float64))
        if c.ndim != 3 or c.shape[-1] != mean.numel():
            raise ValueError(f"centers must be [K, H, d_a] with d_a = {mean.numel()} (the normalizer's action_dim), "
                             f"got shape {tuple(c.shape)}")
        K, n = c.shape[0], c.shape[1] * c.shape[2]
        sp = np.asarray(spread, dtype=np.float64).reshape(-1)
        if sp.size not in (1, K) or not (np.isfinite(sp).all() and (sp >= 0).all()):
            raise ValueError(f"spread must be one number or one per mode ([{K}]), finite and >= 0 (task units); "
                             f"got {np.asarray(spread)!r}")
        w = np.full(K, 1.0 / K) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
        if w.size != K or not (np.isfinite(w).all() and (w >= 0).all() and w.sum() > 0):
            raise ValueError(f"weights must be [{K}] (one per centre), finite, >= 0 and not all 0; got {w!r}")
        sigma = torch.as_tensor(sp.max() / math.sqrt(n))[None]  # per-element std of the noisiest mode
    if c.shape[0] < 2:
        raise ValueError(f"the collapse thresholds need at least two modes, got {c.shape[0]}")
    flat = ((c - mean) / std).flatten(1).numpy()  # [K, H*d]
    return flat, w / w.sum(), float(sigma.max() / std.min())


def predicted_thresholds(
    task: tasks.Task | None = None, normalizer: Normalizer | None = None, s: float = 0.0, *,
    centers: np.ndarray | Tensor | None = None, spread: float | np.ndarray | Tensor | None = None,
    weights: np.ndarray | Tensor | None = None,
) -> Thresholds:
    """β*, the local threshold and β_hard for an L2 CVAE trained on ``task`` with ``normalizer``.

    The cvae loss is mean_{n elements} (a − D)² + β Σ_j KL_j on normalised chunks: in the toy's
    J = E‖a − D‖²/c + β E KL that is c = n = 2σ_d², so β* = v′/σ_d² = 2v′/n (per state; the
    fork's p(a|s) only shifts with s, so every state has the same β*).

    Your own data: pass measured modes instead of a task — a :func:`mbc_lib.diagnostics.cluster_modes`
    result, or ``centers=``/``spread=``/``weights=`` (see :func:`normalised_modes`) — with the policy's
    normaliser; the conversion to the loss's units happens here.
    """
    centers, weights, sigma_n = normalised_modes(task, normalizer, s, centers=centers, spread=spread, weights=weights)
    n = centers.shape[1]
    sigma_a = float(normalizer.act_std.max())
    d_a = normalizer.act_std.numel()
    scale = theory.act_loss_scaling(n // d_a, d_a, loss="l2").scale  # σ_d = √(n/2)
    dist = np.linalg.norm(centers[:, None] - centers[None], axis=-1)
    dist[np.eye(len(centers), dtype=bool)] = np.inf
    return Thresholds(
        n=n, sigma_a=sigma_a, delta_n=float(dist.min()), sigma_n=sigma_n,
        v_prime=theory.subgaussian_variance_proxy(centers, weights, sigma_n),
        beta_star=theory.critical_beta(centers, weights, sigma_n, "l2", scale),
        beta_local=theory.local_critical_beta(centers, weights, sigma_n, "l2", scale),
        beta_hard=theory.beta_hard(centers, weights, sigma_n, "l2", scale),
    )


def act_scaling(
    task: tasks.Task | None = None, normalizer: Normalizer | None = None, kl_weight: float = 10.0, s: float = 0.0, *,
    centers: np.ndarray | Tensor | None = None, spread: float | np.ndarray | Tensor | None = None,
    weights: np.ndarray | Tensor | None = None,
) -> dict[str, float]:
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

    As :func:`predicted_thresholds`, the modes may be measured ones (a ``cluster_modes`` result or
    ``centers=``/``spread=``/``weights=``) instead of a task.
    """
    centers, weights, sigma_n = normalised_modes(task, normalizer, s, centers=centers, spread=spread, weights=weights)
    d_a = normalizer.act_std.numel()
    sc = theory.act_loss_scaling(centers.shape[1] // d_a, d_a, kl_weight, "l1")
    crit = theory.collapse_criterion(sc.temperature, centers, weights, sigma_n, "l1")
    return {
        "n": sc.n, "kl_weight": kl_weight, "temperature": sc.temperature,
        "beta_hard_l1": theory.beta_hard(centers, weights, sigma_n, "l1", sc.scale),
        "beta_local_l1": theory.local_critical_beta(centers, weights, sigma_n, "l1", sc.scale),
        "lambda": crit.value, "max_gain": kl_weight * crit.value,
        "line_gain": theory.collapse_gain(centers, weights, sigma_n, kl_weight, "l1", sc.scale),
    }


# ---------------------------------------------------------------------------------------
# the latent diagnostics of a CVAE
# ---------------------------------------------------------------------------------------
def identified_modes(task: tasks.Task, obs: Tensor, chunks: Tensor) -> Tensor:
    """The mode ĝ each chunk ``[B, H, d]`` is identified with, ``[B]``: the nearest present centre at its
    observation, with no radius (every chunk is attributed to some mode) — the identifier of the
    Fano bound (app-fano); the library's one mode rule (:func:`mbc_lib.data.label_modes`) with ρ = ∞."""
    ms = task.modes(obs)
    flat = chunks.detach().float().cpu().flatten(1)[:, None]  # [B, 1, H·d]
    return label_modes(flat, ms.centers.flatten(2), math.inf, present=ms.weights > 0)[:, 0]


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
def evaluate_latent(
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
    p_e = float((identified_modes(task, obs, recon) != labels).float().mean())
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
# bridges and Lipschitz estimates of a transport sampler
# ---------------------------------------------------------------------------------------
@dataclass
class TrainedTransport:
    """A transport policy trained on the fork or the ring (``K`` modes, neighbouring centres ``delta_c`` = Δ_c apart as chunks)."""

    family: str
    K: int
    delta_c: float
    task: tasks.Task = field(repr=False)
    policy: policies.Policy = field(repr=False)
    history: History = field(repr=False)

    @property
    def gap(self) -> float:
        """Δ = Δ_c − 2ρ, the gap between mode regions (task units)."""
        return self.delta_c - 2 * self.task.radius

    @property
    def label(self) -> str:
        return f"{self.family} K={self.K} Δc={self.delta_c:g}"


@dataclass
class BridgeStats:
    """One model sampled with ``steps`` steps, measured at ``n_obs`` observations (arrays ``[n_obs]``).

    mass ``[n_obs, K]`` and bridge: fractions of samples per mode and in no mode; bridge_hi: the
    upper end of the bridge's 95% Wilson interval; floor: the isoperimetric floor at L̂ (NaN if L̂
    is too small to carry those masses); implied_L: the smallest L consistent with the measured
    bridge; L_jac_median, L_jac_max: Jacobian spectral norm at random base points; L_jac_bridge:
    its max at base points in the bridge (samples that landed there, the off-support points of
    crossing segments and the points inside the measured transitions); L_seg: largest segment
    stretch; L_hat: the max of all estimates. width: median over the measured transitions
    (:func:`transitions`) of the base length between a point in one mode and a point in the next;
    width_floor: median of Δ/J, J the largest Jacobian norm measured inside that transition;
    width_margin: the smallest width/(Δ/J) (the lemma says ≥ 1 when J is the transition's true
    steepest stretch); crossing: fraction of segments whose ends land in two modes.
    seg_width, seg_floor: per measured transition (all observations). For plots, at the first
    observation: samples ``[n, H, d]``, labels ``[n]``, and one crossing segment's images
    ``path [P, H, d]``, labels ``path_labels [P]`` and stretch ``path_stretch [P−1]``.
    """

    family: str
    K: int
    delta_c: float
    gap: float
    steps: int
    obs: Tensor = field(repr=False)
    mass: np.ndarray = field(repr=False)
    bridge: np.ndarray = field(repr=False)
    bridge_hi: np.ndarray = field(repr=False)
    floor: np.ndarray = field(repr=False)
    implied_L: np.ndarray = field(repr=False)
    L_jac_median: np.ndarray = field(repr=False)
    L_jac_max: np.ndarray = field(repr=False)
    L_jac_bridge: np.ndarray = field(repr=False)
    L_seg: np.ndarray = field(repr=False)
    L_hat: np.ndarray = field(repr=False)
    width: np.ndarray = field(repr=False)
    width_floor: np.ndarray = field(repr=False)
    width_margin: np.ndarray = field(repr=False)
    crossing: np.ndarray = field(repr=False)
    seg_width: np.ndarray = field(repr=False)
    seg_floor: np.ndarray = field(repr=False)
    samples: Tensor = field(repr=False)
    labels: np.ndarray = field(repr=False)
    path: np.ndarray | None = field(default=None, repr=False)
    path_labels: np.ndarray | None = field(default=None, repr=False)
    path_stretch: np.ndarray | None = field(default=None, repr=False)

    def above_floor(self) -> np.ndarray:
        """Per observation: is the measured bridge at or above the floor at L̂ — outright (``2``), only
        within its 95% confidence interval (``1``), or not (``0``: L̂ underestimates L, or the floor is
        NaN because L̂ cannot carry the measured masses)? Observations with fewer than two modes
        holding mass have no floor and count as ``2``."""
        has = (self.mass > 0).sum(1) >= 2
        f = np.where(has, self.floor, 0.0)
        return np.where(~np.isfinite(f), 0, np.where(self.bridge >= f, 2, np.where(self.bridge_hi >= f, 1, 0)))

    def row(self) -> dict[str, float]:
        """Averages over the observations (tidy, for tables and tests)."""
        mean = lambda x: float(np.nanmean(x)) if np.any(np.isfinite(x)) else math.nan  # noqa: E731
        return {
            "family": self.family, "K": self.K, "delta_c": self.delta_c, "gap": self.gap, "steps": self.steps,
            "bridge": mean(self.bridge), "bridge_hi": mean(self.bridge_hi), "floor": mean(self.floor),
            "min_mass": float(self.mass.min(1).mean()),
            "modes_covered": float((self.mass > 0.05).sum(1).mean()),
            "L_hat": mean(self.L_hat), "L_jac_median": mean(self.L_jac_median), "L_jac_max": mean(self.L_jac_max),
            "L_jac_bridge": mean(self.L_jac_bridge), "L_seg": mean(self.L_seg), "implied_L": mean(self.implied_L),
            "width": mean(self.width), "width_floor": mean(self.width_floor),
            "width_margin": float(np.nanmin(self.width_margin)) if np.any(np.isfinite(self.width_margin)) else math.nan,
            "crossing": mean(self.crossing),
        }


def bridge_eval_obs(task: tasks.Task, n_obs: int) -> Tensor:
    """Fixed evaluation observations: for the fork, lateral positions evenly spread in [−½, ½]."""
    if task.obs_dim == 1:
        return torch.linspace(-0.5, 0.5, n_obs)[:, None] if n_obs > 1 else torch.zeros(1, 1)
    arc = getattr(task, "arc", math.pi)  # the ring: evenly spread rotations, inside the trained arc
    if arc >= math.pi:
        phi = torch.arange(n_obs) * 2 * math.pi / n_obs
    else:
        phi = (torch.arange(n_obs) - (n_obs - 1) / 2) / n_obs * arc  # centred in [−arc/2, arc/2]
    return torch.stack([phi.cos(), phi.sin()], -1)


def transitions(
    f, start: Tensor, end: Tensor, labels: np.ndarray, centers, radius: float, n_max: int,
    n_bisect: int = 12, n_jac_points: int = 17, n_iter: int = 4, generator: torch.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Width of each transition between two modes along base segments, and the largest Jacobian norm inside it.

    A *transition* is a pair of consecutive grid points of a segment that land in two *different* modes
    (``labels [M, P]`` from :func:`~mbc_lib.diagnostics.segment_profile`), with only off-support points
    between them. Up to ``n_max`` of them (evenly picked) are measured on a finer scale, independently of
    the grid's finite differences:

    * the **width**: both ends are located by ``n_bisect`` bisections of a grid step (on the mode labels),
      giving a base point known to lie in the first mode and one known to lie in the second; the width is
      the base length between them (at most 2·step/2^n_bisect more than the true width);
    * the **Jacobian** ‖J_G‖₂ (power iteration, ``n_iter`` steps) at ``n_jac_points`` evenly spaced base
      points between them; its max J.

    The image of that base interval joins two modes, so it is at least Δ long; it is at most
    width · sup‖J‖ long. Hence width ≥ Δ/sup‖J‖ (the transition-width lemma of chapter 6). The measured J
    is at most the sup, so width ≥ Δ/J *can* fail: when the Jacobian samples miss the steepest point.
    Returns ``(width [T], jac [T])`` in base units and task units per base unit.
    """
    P = labels.shape[1]
    pairs = []  # (segment, grid index in the first mode, grid index in the second)
    for m, row in enumerate(labels):
        idx = np.flatnonzero(row >= 0)
        for p, q in zip(idx[:-1], idx[1:]):
            if row[p] != row[q]:
                pairs.append((m, p, q))
    if not pairs or n_max < 1:
        return np.zeros(0), np.zeros(0)
    pick = np.unique(np.linspace(0, len(pairs) - 1, min(len(pairs), n_max)).round().astype(int))
    seg, p, q = (np.array(x) for x in zip(*(pairs[i] for i in pick)))
    lab_a, lab_b = labels[seg, p], labels[seg, q]
    t = np.arange(P) / (P - 1)
    s0, d0 = start[seg].double(), (end[seg] - start[seg]).double()  # [T, D]

    def at(tt: np.ndarray) -> Tensor:  # base points ε(t) on each transition's segment, [T, D]
        return (s0 + torch.as_tensor(tt)[:, None] * d0).float()

    a_lo, a_hi = t[p], t[p + 1]  # the first mode's exit: a_lo in mode A, a_hi not
    b_lo, b_hi = t[q - 1], t[q]  # the second mode's entry: b_hi in mode B, b_lo not
    for _ in range(n_bisect):
        a_mid, b_mid = (a_lo + a_hi) / 2, (b_lo + b_hi) / 2
        with torch.no_grad():
            img = f(torch.cat([at(a_mid), at(b_mid)]))
        lab = assign_modes(img, centers, radius)
        in_a, in_b = lab[: len(seg)] == lab_a, lab[len(seg):] == lab_b
        a_lo, a_hi = np.where(in_a, a_mid, a_lo), np.where(in_a, a_hi, a_mid)
        b_lo, b_hi = np.where(in_b, b_lo, b_mid), np.where(in_b, b_mid, b_hi)
    lo, hi = np.minimum(a_lo, b_hi), np.maximum(a_lo, b_hi)
    width = (hi - lo) * d0.norm(dim=1).numpy()
    u = np.linspace(0, 1, n_jac_points)
    pts = torch.cat([at(lo + (hi - lo) * ui) for ui in u])  # [n_jac_points·T, D], point-major
    jac = jacobian_spectral_norm(f, pts, n_iter=n_iter, generator=generator).cpu().numpy()
    return width, jac.reshape(n_jac_points, len(seg)).max(0)


def measure_bridges(model: TrainedTransport, steps: int, sizes: Mapping[str, int], seed: int = 0,
                    n_transitions: int | None = None) -> BridgeStats:
    """Measure ``model`` sampled with ``steps`` steps (bridge mass, Lipschitz estimates, transition
    widths) at ``sizes["n_obs"]`` observations (:func:`bridge_eval_obs`), with ``n_samples`` samples,
    ``n_segments`` base segments of ``n_points`` points, ``n_jac`` random Jacobian points (all read
    from ``sizes``, e.g. ``BUDGETS["bridges"][profile]``) and up to ``n_transitions`` transitions
    (default ``n_jac``/8; 0 skips them, and L̂ then comes from the other estimates) each.
    Deterministic given ``seed``."""
    b = sizes
    n_transitions = max(1, b["n_jac"] // 8) if n_transitions is None else int(n_transitions)
    task, pol = model.task, model.policy
    H, d = task.chunk_len, task.action_dim
    D = H * d
    obs_all = bridge_eval_obs(task, b["n_obs"])
    ms = task.modes(obs_all)
    keys = ("mass", "bridge", "bridge_hi", "floor", "implied_L", "L_jac_median", "L_jac_max", "L_jac_bridge", "L_seg", "L_hat",
            "width", "width_floor", "width_margin", "crossing")
    out: dict[str, list] = {k: [] for k in keys}
    seg_width, seg_floor = [], []
    plot: dict[str, object] = {}
    g = torch.Generator().manual_seed(seed)
    with on_compute_device(pol):  # CUDA when present: the segments and Jacobians are the cost
        for i in range(len(obs_all)):
            obs = obs_all[i:i + 1]
            centers, radius = ms.centers[i], task.radius  # [K, H, d]

            def f(eps: Tensor) -> Tensor:  # base [N, D] -> chunk [N, D], on the CPU
                return pol.transport(obs.expand(len(eps), -1), eps.float().reshape(-1, H, d),
                                     steps=steps).reshape(len(eps), D).cpu()

            eps = torch.randn((b["n_samples"], D), generator=g)
            with torch.no_grad():
                a = f(eps)
            lab = assign_modes(a, centers, radius)
            mass = np.bincount(lab[lab >= 0], minlength=model.K)[: model.K] / len(lab)
            bridge = float((lab < 0).mean())
            start, end = random_segments(D, b["n_segments"], seed=seed + 1 + i)
            prof = segment_profile(f, start, end, n_points=b["n_points"], centers=centers, radius=radius)
            cross = prof.crosses
            # where the map is steep: samples that landed in the bridge, and the off-support points of
            # crossing segments (inside the transitions); up to n_jac of each
            seg_idx, pt_idx = np.nonzero((prof.labels < 0) & cross[:, None])
            pick = np.linspace(0, len(seg_idx) - 1, min(len(seg_idx), b["n_jac"])).round().astype(int)
            t = torch.linspace(0, 1, b["n_points"])[pt_idx[pick]][:, None]
            on_segments = start[seg_idx[pick]] + t * (end[seg_idx[pick]] - start[seg_idx[pick]])
            steep = torch.cat([eps[np.flatnonzero(lab < 0)[: b["n_jac"]]], on_segments])
            # power iteration at n_jac random base points and at the steep ones, in one batched call
            # (3 iterations: the stretch is dominated by one direction)
            both = jacobian_spectral_norm(f, torch.cat([eps[: b["n_jac"]], steep]), n_iter=3, generator=g).numpy()
            jac, jac_b = both[: b["n_jac"]], (both[b["n_jac"]:] if len(steep) else np.zeros(1))
            # the transitions between two modes, located to 1/2^12 of a grid step, and ‖J‖ inside each
            # (up to n_transitions of them): an estimate of the stretch independent of the grid's finite differences
            widths, jac_t = transitions(f, start, end, prof.labels, centers, radius, n_max=n_transitions, generator=g)
            floors = model.gap / np.maximum(jac_t, 1e-30)
            jac_b = np.concatenate([jac_b, jac_t])
            L_hat = float(max(jac.max(), jac_b.max(), prof.max_stretch.max()))
            seg_width.append(widths)
            seg_floor.append(floors)
            hi = float(wilson_interval(int((lab < 0).sum()), len(lab))[1])
            for k, v in (("mass", mass), ("bridge", bridge), ("bridge_hi", hi), ("floor", theory.bridge_floor(mass, model.gap, L_hat)),
                         ("implied_L", theory.implied_min_lipschitz(bridge, mass, model.gap)),
                         ("L_jac_median", float(np.median(jac))), ("L_jac_max", float(jac.max())),
                         ("L_jac_bridge", float(jac_b.max())), ("L_seg", float(prof.max_stretch.max())),
                         ("L_hat", L_hat), ("width", float(np.median(widths)) if len(widths) else math.nan),
                         ("width_floor", float(np.median(floors)) if len(floors) else math.nan),
                         ("width_margin", float((widths / floors).min()) if len(floors) else math.nan),
                         ("crossing", float(cross.mean()))):
                out[k].append(v)
            if i == 0:
                plot["samples"], plot["labels"] = a.reshape(-1, H, d), lab
                if cross.any():
                    j = int(np.flatnonzero(cross)[0])
                    t = torch.linspace(0, 1, b["n_points"])[:, None]
                    with torch.no_grad():
                        path = f(start[j] + t * (end[j] - start[j])).double().numpy()  # [P, D]
                    step = float((end[j] - start[j]).norm()) / (b["n_points"] - 1)
                    plot["path"] = path.reshape(-1, H, d)
                    plot["path_labels"] = prof.labels[j]
                    plot["path_stretch"] = np.linalg.norm(np.diff(path, axis=0), axis=1) / step
    arr = {k: np.array(v, dtype=float) for k, v in out.items()}
    return BridgeStats(model.family, model.K, model.delta_c, model.gap, steps, obs_all, seg_width=np.concatenate(seg_width),
                       seg_floor=np.concatenate(seg_floor), **arr, **plot)


