"""What the latent of a latent-variable policy carries, and where the prior puts mass (book appendix: app-rate, app-fano, app-collapse, app-aggregate; app-diagnostics, items 6–8 and 10).

* :func:`gaussian_kl` — per-sample KL(q(z|s,a) ‖ p(z|s)) between diagonal Gaussians;
* :func:`kl_split` — the rate decomposition (app-rate): E KL = I_q(A;Z|S) + E_s KL(q̄(·|s) ‖ p(·|s)),
  estimated from a minibatch with the aggregate-posterior mixture;
* :func:`prior_typicality` — prior log-density at posterior means and their χ²_d percentile;
* :func:`hole_mass` — Hole_α = P_{z~p}[q̄(z|s)/p(z|s) < α], the prior mass the decoder never trained on;
* :func:`identification_error` and :func:`fano_check` — P̂_e and the Fano bound B(P̂_e) against Î;
* :func:`predicted_collapse` — the collapse criterion (app-collapse) on the empirical p(a|s) with the actual loss scaling.

Posteriors and priors are diagonal Gaussians given as ``(mu, logvar)`` tensors ``[N, dz]``
(a prior may also be ``[dz]``, shared, or None for N(0, I)). Information is in nats.
Decoding z into chunks is the policy's business: pass the decoded chunks to
:func:`mbc_lib.diagnostics.modes.mode_coverage` (decoded coverage c_k(s), off-support mass).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import chi2
from torch import Tensor

from .. import theory
from .modes import Array, flatten_chunks, wilson_interval

__all__ = [
    "gaussian_kl",
    "gaussian_kl_per_dim",
    "KLSplit",
    "kl_split",
    "PriorTypicality",
    "prior_typicality",
    "hole_mass",
    "identification_error",
    "fano_check",
    "predicted_collapse",
]

LOG_2PI = math.log(2 * math.pi)


def _gaussians(mu: Array, logvar: Array, name: str) -> tuple[Tensor, Tensor]:
    mu = torch.as_tensor(mu).detach().double()
    logvar = torch.as_tensor(logvar).detach().double()
    if mu.ndim != 2 or mu.shape != logvar.shape:
        raise ValueError(f"{name}: mu and logvar must both be [N, dz]; got {tuple(mu.shape)} and {tuple(logvar.shape)}")
    if not (torch.isfinite(mu).all() and torch.isfinite(logvar).all()):
        raise ValueError(f"{name}: mu / logvar contain NaN or inf")
    return mu, logvar


def _prior(mu_p: Array | None, logvar_p: Array | None, like: Tensor) -> tuple[Tensor, Tensor]:
    """The prior's (mu, logvar) broadcast to ``like`` ``[N, dz]``; None → N(0, I)."""
    if mu_p is None and logvar_p is None:
        return torch.zeros_like(like), torch.zeros_like(like)
    if mu_p is None or logvar_p is None:
        raise ValueError("give both prior mu and logvar, or neither (standard normal prior)")
    mu_p = torch.as_tensor(mu_p).detach().double()
    logvar_p = torch.as_tensor(logvar_p).detach().double()
    try:
        return mu_p.expand_as(like), logvar_p.expand_as(like)
    except RuntimeError:
        raise ValueError(f"prior of shape {tuple(mu_p.shape)} does not match posteriors {tuple(like.shape)}") from None


def _log_normal(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; mu, diag e^logvar) summed over the last dim (elementwise pairs)."""
    return -0.5 * (((z - mu) ** 2) * torch.exp(-logvar) + logvar + LOG_2PI).sum(-1)


def _log_normal_matrix(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log q(z_i | j) for all pairs, ``[M, N]``, by expanding the square (memory O(M·N), not O(M·N·dz))."""
    prec = torch.exp(-logvar)  # [N, dz]
    quad = (z**2) @ prec.T - 2 * z @ (mu * prec).T + ((mu**2) * prec).sum(-1)[None, :]
    return -0.5 * (quad + logvar.sum(-1)[None, :] + z.shape[-1] * LOG_2PI)


def gaussian_kl_per_dim(mu_q: Tensor, logvar_q: Tensor, mu_p: Tensor, logvar_p: Tensor) -> Tensor:
    """KL(N(μ_q, σ_q²) ‖ N(μ_p, σ_p²)) per dimension (nats), elementwise over ``[..., dz]`` (sum
    over the last axis for the KL between the diagonal Gaussians):
    ½ [ (σ_q² + (μ_q − μ_p)²) / σ_p² − 1 + log σ_p² − log σ_q² ]. The CVAE's training loss uses it too
    (:mod:`mbc_lib.policies.cvae`), so the diagnostic and the loss share one formula."""
    return 0.5 * ((logvar_q.exp() + (mu_q - mu_p).pow(2)) / logvar_p.exp() - 1.0 + logvar_p - logvar_q)


def gaussian_kl(mu_q: Array, logvar_q: Array, mu_p: Array | None = None, logvar_p: Array | None = None) -> Tensor:
    """Per-sample KL between diagonal Gaussians, ``[N]`` in nats (app-rate; app-diagnostics, item 6):

        KL(N(μ_q, σ_q²) ‖ N(μ_p, σ_p²)) = ½ Σ_d [σ_q²/σ_p² + (μ_q − μ_p)²/σ_p² − 1 + log σ_p² − log σ_q²]

    summed over latent dimensions (as ACT does): the sum over the last axis of
    :func:`gaussian_kl_per_dim`, the training loss's per-dimension KL. Prior None → N(0, I).
    """
    mu_q, logvar_q = _gaussians(mu_q, logvar_q, "posterior")
    mu_p, logvar_p = _prior(mu_p, logvar_p, mu_q)
    return gaussian_kl_per_dim(mu_q, logvar_q, mu_p, logvar_p).sum(-1)


@dataclass
class KLSplit:
    """The rate decomposition (app-rate) estimated on a minibatch, in nats.

    mean_kl: E KL (closed form, exact for the batch). mutual_information: Î(A;Z|S).
    marginal_kl: mean_kl − Î, the estimate of E_s KL(q̄(·|s) ‖ p(·|s)). log_n_cap: the
    (group-size weighted) log N that Î cannot exceed. n: number of posteriors.
    """

    mean_kl: float
    mutual_information: float
    marginal_kl: float
    log_n_cap: float
    n: int


def kl_split(
    mu_q: Array, logvar_q: Array, mu_p: Array | None = None, logvar_p: Array | None = None,
    groups: Array | None = None, n_samples: int = 1, generator: torch.Generator | None = None,
) -> KLSplit:
    """Split E KL into I_q(A;Z|S) + E_s KL(q̄(·|s) ‖ p(·|s)) on a minibatch (the rate decomposition, app-rate; app-diagnostics, item 6).

    Within a group of N posteriors q_j = q(z|s, a_j) from one state neighbourhood, the
    aggregate posterior is the mixture q̄(z) = (1/N) Σ_j q_j(z). Draw z_{i,r} ~ q_i
    (r = 1..``n_samples``) and estimate

        Î = mean_{i,r} [log q_i(z_{i,r}) − log q̄(z_{i,r})],      KL̂(q̄‖p) = E KL − Î,

    with E KL in closed form, so the two parts sum to E KL exactly.
    Bias: Î is the InfoNCE form with the true critic — E Î ≤ I (a lower bound, tight only
    when I ≪ log N) and Î ≤ log N always, because q̄ includes the sample's own term
    (q̄(z_i) ≥ q_i(z_i)/N). So the marginal-KL estimate is biased *upwards*, and a rate
    near log N means "at least log N", not "log N". Use large groups.

    Args:
        mu_q, logvar_q: posteriors ``[N, dz]``. mu_p, logvar_p: prior p(z|s_i), ``[N, dz]``
            or ``[dz]`` or None (N(0, I)); only E KL uses it (Î needs no prior).
        groups: optional ``[N]`` ints — state neighbourhoods; the estimate is computed per
            group and averaged with weights N_g/N. None: one neighbourhood.
        n_samples: z draws per posterior. generator: torch.Generator for the draws.
    """
    mu_q, logvar_q = _gaussians(mu_q, logvar_q, "posterior")
    N = mu_q.shape[0]
    if not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples must be an integer >= 1, got {n_samples!r}")
    mean_kl = float(gaussian_kl(mu_q, logvar_q, mu_p, logvar_p).mean())
    g = np.zeros(N, int) if groups is None else np.asarray(torch.as_tensor(groups).cpu()).reshape(-1)
    if g.shape[0] != N:
        raise ValueError(f"groups must have one entry per posterior (N={N}), got {g.shape[0]}")
    mi, cap = 0.0, 0.0
    for label in np.unique(g):
        idx = torch.as_tensor(np.flatnonzero(g == label))
        mu, logvar = mu_q[idx], logvar_q[idx]  # [Ng, dz]
        Ng = len(idx)
        eps = torch.randn((n_samples, Ng, mu.shape[1]), generator=generator, dtype=torch.float64)
        z = (mu + torch.exp(0.5 * logvar) * eps).reshape(-1, mu.shape[1])  # [R·Ng, dz], row r·Ng+i from q_i
        own = _log_normal(z, mu.repeat(n_samples, 1), logvar.repeat(n_samples, 1))  # log q_i(z_i)
        log_qbar = torch.logsumexp(_log_normal_matrix(z, mu, logvar), dim=1) - math.log(Ng)
        mi += Ng / N * float((own - log_qbar).mean())
        cap += Ng / N * math.log(Ng)
    return KLSplit(mean_kl=mean_kl, mutual_information=mi, marginal_kl=mean_kl - mi, log_n_cap=cap, n=N)


@dataclass
class PriorTypicality:
    """Where posterior means sit under the prior (app-aggregate, posterior-mean typicality; app-diagnostics, item 8).

    log_density ``[N]``: log p(μ_q) in nats. sq_radius ``[N]``: r² = ‖(μ_q − μ_p)/σ_p‖².
    chi2_cdf ``[N]``: F_{χ²_dz}(r²), the prior *mass* closer to the prior mean than μ_q.
    density_rank ``[N]``: 1 − chi2_cdf, the fraction of prior samples with lower density than
    μ_q (1 at the prior mode). High density ≠ typical: prior mass lives near r² ≈ dz, so a
    posterior mean at the centre (e.g. ACT's z = 0) is dense but atypical.
    """

    log_density: np.ndarray
    sq_radius: np.ndarray
    chi2_cdf: np.ndarray
    density_rank: np.ndarray

    def summary(self) -> dict[str, float]:
        return {"mean_log_density": float(self.log_density.mean()), "median_chi2_cdf": float(np.median(self.chi2_cdf)),
                "frac_inside_central_50": float(np.mean(self.chi2_cdf < 0.5))}


def prior_typicality(mu_q: Array, mu_p: Array | None = None, logvar_p: Array | None = None) -> PriorTypicality:
    """Prior log-density at posterior means and its χ² percentile (app-diagnostics, item 8).

    For p = N(μ_p, diag σ_p²) in dz dimensions, log p(z) = −½ r² − ½ Σ log σ_p² − (dz/2) log 2π
    with r² = ‖(z − μ_p)/σ_p‖² ~ χ²_dz under the prior, so the percentile of log p(μ_q) among
    log p(z), z ~ p, is P(χ²_dz ≥ r²). mu_q ``[N, dz]``; prior as in :func:`gaussian_kl`.
    """
    mu_q = torch.as_tensor(mu_q).detach().double()
    if mu_q.ndim != 2:
        raise ValueError(f"mu_q must be [N, dz], got shape {tuple(mu_q.shape)}")
    mu_p, logvar_p = _prior(mu_p, logvar_p, mu_q)
    r2 = (((mu_q - mu_p) ** 2) * torch.exp(-logvar_p)).sum(-1).numpy()
    dz = mu_q.shape[1]
    log_density = (-0.5 * r2 - 0.5 * logvar_p.sum(-1).numpy() - 0.5 * dz * LOG_2PI)
    cdf = chi2.cdf(r2, dz)
    return PriorTypicality(log_density=log_density, sq_radius=r2, chi2_cdf=cdf, density_rank=1 - cdf)


def hole_mass(
    mu_q: Array, logvar_q: Array, mu_p: Array | None = None, logvar_p: Array | None = None,
    eps: float = 0.1, n_prior: int = 4096,
    generator: torch.Generator | None = None, confidence: float = 0.95,
) -> dict[str, float]:
    """Prior hole mass at one state (book appendix, app-aggregate): Hole_α = P_{z~p}[q̄(z)/p(z) < α] ≤ TV(q̄, p)/(1 − α),
    with the threshold α passed as ``eps``.

    q̄ is the mixture of the N posteriors ``[N, dz]`` of one state neighbourhood; the prior
    ``[dz]`` (or None: N(0, I)) is that state's. Draws ``n_prior`` z ~ p and counts those
    where the aggregate posterior has less than ε times the prior density — prior samples
    the decoder was (almost) never trained on. The mixture estimate of q̄ from N posteriors
    is noisy in its tails, so small N overstates holes. Returns {"hole_mass", "ci_low", "ci_high"}.
    """
    mu_q, logvar_q = _gaussians(mu_q, logvar_q, "posterior")
    if not 0 < eps < 1:
        raise ValueError(f"eps must lie in (0, 1), got {eps}")
    dz = mu_q.shape[1]
    mp, lp = _prior(mu_p, logvar_p, mu_q[:1])
    z = mp + torch.exp(0.5 * lp) * torch.randn((n_prior, dz), generator=generator, dtype=torch.float64)
    log_qbar = torch.logsumexp(_log_normal_matrix(z, mu_q, logvar_q), dim=1) - math.log(mu_q.shape[0])
    holes = int((log_qbar - _log_normal(z, mp, lp) < math.log(eps)).sum())
    lo, hi = wilson_interval(holes, n_prior, confidence)
    return {"hole_mass": holes / n_prior, "ci_low": float(lo), "ci_high": float(hi)}


def identification_error(predicted: Array, true: Array, confidence: float = 0.95) -> dict[str, float]:
    """P̂_e = P(ĝ ≠ M), the mode-identification error, from predicted and true mode labels ``[N]`` (app-diagnostics,
    item 7), with a Wilson interval (returned under the key ``"rho"``).

    ĝ is e.g. the mode of the chunk decoded from the posterior mean
    (:func:`mbc_lib.diagnostics.modes.assign_modes`); an off-support prediction (−1) counts
    as an error. Feed P̂_e to :func:`fano_check`.
    """
    p = np.asarray(torch.as_tensor(predicted).cpu()).reshape(-1)
    t = np.asarray(torch.as_tensor(true).cpu()).reshape(-1)
    if p.shape != t.shape or p.size == 0:
        raise ValueError(f"predicted and true must be non-empty and of equal length; got {p.shape}, {t.shape}")
    errors = int((p != t).sum())
    lo, hi = wilson_interval(errors, p.size, confidence)
    return {"rho": errors / p.size, "ci_low": float(lo), "ci_high": float(hi)}


def fano_check(weights: Array | Sequence[float], rho: float, mutual_information: float, mean_kl: float | None = None,
               beta: float | None = None) -> dict[str, float | bool]:
    """Compare the estimated rate with the Fano bound (app-fano; app-diagnostics, item 7).

    Returns B(P_e) = ℋ(π) − h(P_e) − P_e log(K−1) (nats; key ``"B_rho"``), Î and whether Î ≥ B(P_e), with
    P_e the mode-identification error passed as ``rho``; with ``mean_kl`` and ``beta`` also
    β·E KL ≥ β·Î ≥ β·B(P_e), the price the KL term charges for identifying
    modes. P_e is clipped to (K−1)/K, where the bound is 0 for balanced modes (an identifier
    worse than chance proves nothing). Remember Î from :func:`kl_split` is itself a lower bound, so Î < B(P̂_e) by a little
    can be estimator bias rather than a violation.
    """
    w = np.asarray(weights, dtype=float)
    K = w.shape[-1]
    bound = theory.fano_bound(w, min(float(rho), (K - 1) / K))
    out: dict[str, float | bool] = {"B_rho": bound, "I_hat": float(mutual_information),
                                    "satisfied": bool(mutual_information >= bound)}
    if mean_kl is not None:
        out["mean_kl"] = float(mean_kl)
        if beta is not None:
            out["beta_mean_kl"] = float(beta) * float(mean_kl)
            out["beta_B_rho"] = float(beta) * bound
    return out


def predicted_collapse(
    chunks: Array, beta: float, loss: str = "l2", scale: float = 1.0, sigma: float = 0.0, exact: bool | None = None,
) -> dict[str, float | str]:
    """Does the collapse criterion predict posterior collapse at this state? (app-collapse; app-diagnostics, item 10)

    Treats the demonstrations at one state (neighbourhood) ``[N, H, d]`` as the empirical
    p(a|s), smoothed by a Gaussian of std ``sigma`` per coordinate (σ = 0 allowed for L2;
    L1 needs σ > 0 — use a small kernel bandwidth). With the loss scaling of the policy
    (``scale`` = σ_d for L2, b for L1; for ACT use :func:`mbc_lib.theory.act_loss_scaling`)
    it returns the local threshold (L2: λ_max(Cov)/σ_d²) and, when ``exact`` (default: L2,
    or L1 with n ≤ 4), the exact β*. verdict: "collapse" (β ≥ β*), "no collapse"
    (β < local threshold, or < β*), or "locally stable" (L1 in high dimension with only the
    local threshold computed and β above it: collapse is a local optimum, the global
    question is open).
    """
    x = flatten_chunks(chunks, "chunks")
    N, n = x.shape
    weights = np.full(N, 1.0 / N)
    local = theory.local_critical_beta(x, weights, sigma, loss, scale)
    exact = (loss == "l2" or n <= 4) if exact is None else exact
    star = theory.critical_beta(x, weights, sigma, loss, scale) if exact else math.nan
    if exact:
        verdict = "collapse" if beta >= star else "no collapse"
    else:
        verdict = "no collapse" if beta < local else "locally stable"
    return {"beta": float(beta), "beta_local": local, "beta_star": star, "verdict": verdict}
