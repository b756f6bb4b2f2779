"""Prior surgery: does each region of a CVAE's latent space name one mode? (the decisive test of chapter 10)

A CVAE trained below the collapse threshold β* (chapter 3) carries the mode in its latent: Î(A;Z|S)
comes close to ln K. If the latent *names* the mode, then each mode k owns a region R_k of the latent
space, and deploying with a prior that avoids R_k must make mode k disappear — while the policy keeps
producing chunks inside the other modes. Restricting the prior to the regions the encoder actually
uses (no holes, chapter 4) must in turn lower the off-support mass. This module runs that test.

**Regions.** R_k is fitted to the *aggregate posterior of mode k*, q̄_k: ``n_post`` draws
z ~ q(z|s, a) for each demonstration a of mode k at the decision states (the fork: the evaluation
states of chapter 3; ``PathGaps``: the first chunk of every episode, before the state reveals the
gap), a Gaussian fitted to those draws, and R_k = its Mahalanobis ellipse holding a ``coverage``
fraction (95%) of them (:func:`fit_ellipse`). Draws, not posterior means: the decoder was trained on
the draws, and the means of one mode sit at almost one point when the latent codes only the branch.
Two hole-free sets are compared: the union of the R_k, and the set where the pooled aggregate
posterior is at least α times the prior density, {q̄/p ≥ α} — the complement of chapter 4's hole set.

**Deployment.** A modified prior is the standard prior N(0, I) conditioned on a set: rejection
sampling (:func:`sample_latent`) of z ~ p that lies outside the excluded regions (or inside the
restriction), decoded with ``cvae.decode(obs, z)``. :class:`SurgeryPolicy` wraps a CVAE so that its
``sample`` draws from the modified prior; :func:`mbc_lib.envs.evaluate` rolls it out like any policy.
The prior mass each set keeps is measured (Monte Carlo, Wilson interval); the mass of an ellipse is
also computed exactly (:func:`ellipse_prior_mass`, Imhof's inversion of the characteristic function of
a Gaussian quadratic form).

**Measurements.** On the fork: per-mode mass and off-support mass of decoded chunks at the evaluation
states (:meth:`mbc_lib.tasks.Task.assign`). On ``mbc/PathGaps-v0``: the same at the start states (modes
from the expert's labels, :func:`labelled_modes`) and, in closed loop, the episodes that succeed through
each gap and the collisions. Every rate comes with a 95% Wilson interval.

Sizes come from ``BUDGETS["prior_surgery"]``. Latents are dimensionless; robot chunks in m/s.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy import integrate
from torch import Tensor

from .. import diagnostics, policies, tasks, theory
from ..data import ChunkDataset
from ..fitting import fit
from ..measure import evaluate_latent, predicted_thresholds
from ..profiles import budget
from ..train import History
from ..validation import check_seed

__all__ = [
    "FORK", "PATH_ENV", "ACTION_NOISE", "REGION", "Ellipse", "UnionRegion", "DensityRegion", "PriorRule",
    "fit_ellipse", "ellipse_prior_mass", "rule_prior_mass", "sample_latent", "SurgeryPolicy", "fork_task",
    "fit_cvae", "labelled_modes", "RobotStarts", "robot_starts", "start_beta_star", "Variant", "SurgeryResult",
    "surgery_fork", "surgery_robot", "run", "summary", "variant_names",
]

#: the fork of this chapter: chapter 7's (σ = 0.1, H = 8, d_a = 1), neighbouring centres Δ_c = 3 apart
FORK: dict[str, Any] = dict(delta=3.0, sigma=0.1, chunk_len=8)
#: the robot task
PATH_ENV = "mbc/PathGaps-v0"
#: the experts' Gaussian action noise (m/s), as in chapter 9: enough within-mode spread for a CVAE to fit
ACTION_NOISE = 0.02
#: a robot chunk counts in mode k within max(ρ_k, REGION·Δ_c,k) of the mode's mean chunk (chapter 9's rule)
REGION = 0.25


# ---------------------------------------------------------------------------------------
# latent regions
# ---------------------------------------------------------------------------------------
def _as_z(z: Tensor | np.ndarray) -> Tensor:
    z = torch.as_tensor(z).detach().double().cpu()
    if z.ndim != 2:
        raise ValueError(f"latents must be [N, d_z], got shape {tuple(z.shape)}")
    return z


@dataclass
class Ellipse:
    """The set {z : (z − mean)ᵀ cov⁻¹ (z − mean) ≤ r2} in latent space (``mean [d_z]``, ``cov [d_z, d_z]``)."""

    mean: np.ndarray
    cov: np.ndarray
    r2: float

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def sq_distance(self, z: Tensor | np.ndarray) -> Tensor:
        """Squared Mahalanobis distances ``[N]`` of ``z [N, d_z]`` to the centre."""
        z = _as_z(z)
        if z.shape[1] != self.dim:
            raise ValueError(f"latents have {z.shape[1]} dimensions, the region {self.dim}")
        d = z - torch.as_tensor(self.mean)
        return (d @ torch.as_tensor(np.linalg.inv(self.cov)) * d).sum(-1)

    def contains(self, z: Tensor | np.ndarray) -> Tensor:
        """``[N]`` bool: which of ``z [N, d_z]`` lie in the ellipse."""
        return self.sq_distance(z) <= self.r2

    def prior_mass(self) -> float:
        """Mass of the ellipse under N(0, I) (:func:`ellipse_prior_mass`)."""
        return ellipse_prior_mass(self)


@dataclass
class UnionRegion:
    """The union of several regions."""

    regions: tuple

    def contains(self, z: Tensor | np.ndarray) -> Tensor:
        z = _as_z(z)
        return torch.stack([r.contains(z) for r in self.regions]).any(0)


@dataclass
class DensityRegion:
    """{z : q̄(z) ≥ α·p(z)}: where the aggregate posterior q̄ — the uniform mixture of the posteriors
    N(mu_i, diag exp(logvar_i)), ``[N, d_z]`` each — has at least α times the N(0, I) prior density.
    Its complement under the prior is the hole set of chapter 4, of mass Hole_α."""

    mu: Tensor = field(repr=False)
    logvar: Tensor = field(repr=False)
    alpha: float = 0.5

    def __post_init__(self) -> None:
        self.mu, self.logvar = _as_z(self.mu), _as_z(self.logvar)
        if not 0 < self.alpha:
            raise ValueError(f"alpha must be > 0, got {self.alpha}")

    def log_ratio(self, z: Tensor | np.ndarray, chunk: int = 2048) -> Tensor:
        """log q̄(z) − log p(z), ``[N]`` (nats)."""
        z = _as_z(z)
        prec = torch.exp(-self.logvar)  # [M, d]
        const = self.logvar.sum(-1) + z.shape[1] * math.log(2 * math.pi)  # [M]
        out = []
        for i in range(0, len(z), chunk):
            zi = z[i:i + chunk]
            quad = (zi**2) @ prec.T - 2 * zi @ (self.mu * prec).T + ((self.mu**2) * prec).sum(-1)[None]
            log_q = torch.logsumexp(-0.5 * (quad + const[None]), dim=1) - math.log(len(self.mu))
            log_p = -0.5 * ((zi**2).sum(-1) + z.shape[1] * math.log(2 * math.pi))
            out.append(log_q - log_p)
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)

    def contains(self, z: Tensor | np.ndarray) -> Tensor:
        return self.log_ratio(z) >= math.log(self.alpha)

    def prior_stats(self, n: int = 4096, generator: torch.Generator | None = None) -> dict[str, float]:
        """From ``n`` draws z ~ N(0, I), with r = q̄/p (chapter 4; app-aggregate): ``tv`` = E_p[(1 − r)₊], an
        exact identity for TV(q̄, p); ``hole`` = P_p[r < α] = Hole_α, with its 95% Wilson interval
        (``hole_lo``, ``hole_hi``); ``hole_bound`` = TV/(1 − α) ≥ Hole_α (for α < 1)."""
        z = torch.randn((n, self.mu.shape[1]), generator=generator, dtype=torch.float64)
        log_r = self.log_ratio(z)
        holes = int((log_r < math.log(self.alpha)).sum())
        lo, hi = diagnostics.wilson_interval(holes, n)
        tv = float((1 - torch.exp(log_r.clamp(max=0))).mean())
        return {"tv": tv, "hole": holes / n, "hole_lo": float(lo), "hole_hi": float(hi),
                "hole_bound": min(1.0, tv / (1 - self.alpha)) if self.alpha < 1 else math.nan}


@dataclass
class PriorRule:
    """A modified prior: N(0, I) conditioned on z ∉ any of ``exclude`` and, if ``restrict`` is given,
    z ∈ ``restrict``. ``PriorRule("prior")`` is the standard prior."""

    name: str
    exclude: tuple = ()
    restrict: Any = None

    def keep(self, z: Tensor | np.ndarray) -> Tensor:
        """``[N]`` bool: the draws the rule accepts."""
        z = _as_z(z)
        ok = torch.ones(len(z), dtype=torch.bool)
        for r in self.exclude:
            ok &= ~r.contains(z)
        if self.restrict is not None:
            ok &= self.restrict.contains(z)
        return ok


def fit_ellipse(z: Tensor | np.ndarray, coverage: float = 0.95) -> Ellipse:
    """A Gaussian fitted to the points ``z [N, d_z]`` (mean and covariance), and its Mahalanobis ellipse
    holding a ``coverage`` fraction of them (r² = the empirical ``coverage`` quantile of their squared
    Mahalanobis distances, rounded up to a sample, so at least that fraction lies inside)."""
    z = _as_z(z)
    if not 0 < coverage <= 1:
        raise ValueError(f"coverage must lie in (0, 1], got {coverage}")
    if len(z) <= z.shape[1]:
        raise ValueError(f"need more than d_z = {z.shape[1]} points to fit an ellipse, got {len(z)}")
    mean = z.mean(0).numpy()
    cov = np.cov(z.numpy(), rowvar=False).reshape(z.shape[1], z.shape[1])
    cov = cov + 1e-9 * np.trace(cov) / z.shape[1] * np.eye(z.shape[1])  # a degenerate cloud stays invertible
    e = Ellipse(mean, cov, 0.0)
    d2 = e.sq_distance(z).numpy()
    e.r2 = float(np.quantile(d2, coverage, method="higher"))
    return e


def ellipse_prior_mass(ellipse: Ellipse) -> float:
    """P(z ∈ ellipse) for z ~ N(0, I), exactly (to quadrature accuracy).

    With A = cov⁻¹ = U Λ Uᵀ and w = Uᵀz ~ N(0, I), c = Uᵀ·mean, the squared distance is
    Q = Σ_j λ_j (w_j − c_j)², a weighted sum of non-central χ²₁ variables. Imhof (1961) inverts its
    characteristic function: P(Q ≤ r²) = ½ − (1/π) ∫₀^∞ sin θ(u) / (u ρ(u)) du, with
    θ(u) = ½ Σ_j [atan(λ_j u) + c_j² λ_j u / (1 + λ_j² u²)] − ½ r² u and
    ρ(u) = Π_j (1 + λ_j² u²)^{1/4} · exp(½ Σ_j c_j² λ_j² u² / (1 + λ_j² u²)).
    """
    lam, U = np.linalg.eigh(np.linalg.inv(ellipse.cov))
    c2 = (U.T @ ellipse.mean) ** 2
    r2 = float(ellipse.r2)
    if r2 <= 0:
        return 0.0

    def f(u: float) -> float:
        lu = lam * u
        theta = 0.5 * np.sum(np.arctan(lu) + c2 * lu / (1 + lu**2)) - 0.5 * r2 * u
        log_rho = 0.25 * np.sum(np.log1p(lu**2)) + 0.5 * np.sum(c2 * lu**2 / (1 + lu**2))
        return math.sin(theta) / (u * math.exp(log_rho))

    # the integrand behaves like a damped oscillation of period ~4π/r²: integrate piece by piece
    step = 4 * math.pi / max(r2, 1e-6)
    total, a = 0.0, 0.0
    for _ in range(4000):
        piece, _err = integrate.quad(f, a, a + step, limit=100, epsabs=1e-13, epsrel=1e-11)
        total += piece
        a += step
        if abs(piece) < 1e-13 and a > 10 * step:
            break
    return float(min(1.0, max(0.0, 0.5 - total / math.pi)))


def rule_prior_mass(rule: PriorRule, dim: int, n: int = 20_000, generator: torch.Generator | None = None
                    ) -> tuple[float, np.ndarray]:
    """Monte Carlo estimate of the prior mass a rule keeps, with its 95% Wilson interval ``[2]``."""
    z = torch.randn((n, dim), generator=generator, dtype=torch.float64)
    k = int(rule.keep(z).sum())
    return k / n, diagnostics.wilson_interval(k, n)


def sample_latent(rule: PriorRule, n: int, dim: int, generator: torch.Generator | None = None,
                  min_rate: float = 1e-3) -> Tensor:
    """``n`` draws ``[n, dim]`` (float32) of the modified prior: z ~ N(0, I) kept by ``rule`` (rejection
    sampling). Raises ``ValueError`` when the rule keeps less than ``min_rate`` of the prior."""
    out, kept, drawn = [], 0, 0
    while kept < n:
        batch = max(64, 2 * (n - kept))
        z = torch.randn((batch, dim), generator=generator)
        z = z[rule.keep(z)]
        out.append(z)
        kept += len(z)
        drawn += batch
        if drawn >= 1000 and kept < min_rate * drawn:
            raise ValueError(f"the modified prior {rule.name!r} keeps only {kept}/{drawn} of the prior draws "
                             f"(< {min_rate:g}); rejection sampling would not finish")
    return torch.cat(out)[:n].float()


class SurgeryPolicy:
    """A CVAE (fixed N(0, I) prior) deployed with a modified prior: ``sample`` draws z by
    :func:`sample_latent` under ``rule`` and decodes it with ``cvae.decode(obs, z)``. Everything else
    (``config``, ``eval``, the device) is the CVAE's, so :func:`mbc_lib.envs.evaluate` rolls it out."""

    def __init__(self, cvae: policies.Policy, rule: PriorRule):
        if getattr(cvae, "family", None) != "cvae":
            raise TypeError(f"SurgeryPolicy wraps a cvae policy, got {type(cvae).__name__}")
        if cvae.config.prior != "fixed":
            raise ValueError("SurgeryPolicy needs a cvae with the fixed N(0, I) prior: its regions live in one "
                             "latent space for every state")
        self.cvae, self.rule, self.config = cvae, rule, cvae.config

    @property
    def device(self) -> torch.device:
        return next(self.cvae.parameters()).device

    def parameters(self):
        return self.cvae.parameters()

    def eval(self) -> SurgeryPolicy:
        self.cvae.eval()
        return self

    def train(self, mode: bool = True) -> SurgeryPolicy:
        self.cvae.train(mode)
        return self

    @property
    def training(self) -> bool:
        return self.cvae.training

    @torch.no_grad()
    def sample(self, obs: Tensor, n: int = 1, generator: torch.Generator | None = None) -> Tensor:
        """``n`` chunks per observation, ``[B, n, H, d_a]``; z from the modified prior."""
        obs = torch.as_tensor(obs, dtype=torch.float32)
        B, cfg = obs.shape[0], self.config
        z = sample_latent(self.rule, B * n, cfg.latent_dim, generator).to(obs.device)
        chunks = self.cvae.decode(obs.repeat_interleave(n, 0), z)  # [B·n, H, d]
        return chunks.reshape(B, n, cfg.chunk_len, cfg.action_dim)


def variant_names(K: int) -> list[str]:
    """The deployment priors compared, in order."""
    return ["prior", *[f"exclude {k}" for k in range(K)], "union", "no holes"]


def _rules(regions: Sequence[Ellipse], hole_free: DensityRegion) -> dict[str, PriorRule]:
    K = len(regions)
    rules = {"prior": PriorRule("prior")}
    for k in range(K):
        rules[f"exclude {k}"] = PriorRule(f"exclude {k}", exclude=(regions[k],))
    rules["union"] = PriorRule("union", restrict=UnionRegion(tuple(regions)))
    rules["no holes"] = PriorRule("no holes", restrict=hole_free)
    return rules


# ---------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------
def fork_task(K: int = 2, weights: Sequence[float] | None = None) -> tasks.Task:
    """The chapter's fork (:data:`FORK`) with ``K`` branches (and optional branch weights)."""
    return tasks.make("fork", K=K, weights=weights, **FORK)


def fit_cvae(data: ChunkDataset, b: dict, beta: float, seed: int = 0) -> tuple[policies.Policy, History]:
    """An L2 CVAE with the fixed N(0, I) prior, trained on ``data`` with the budget ``b``; ends on the CPU."""
    return fit("cvae", data, budget=b, seed=seed, progress=False, beta=float(beta), recon="l2")


def _posterior_draws(mu: Tensor, logvar: Tensor, labels: Tensor, n_post: int, g: torch.Generator
                     ) -> tuple[Tensor, Tensor]:
    """``n_post`` draws z ~ q(z|s, a) per posterior: ``[N·n_post, d_z]`` and their mode labels."""
    eps = torch.randn((n_post,) + tuple(mu.shape), generator=g)
    z = (mu[None] + torch.exp(0.5 * logvar)[None] * eps).reshape(-1, mu.shape[1])
    return z, labels.repeat(n_post)


# ---------------------------------------------------------------------------------------
# robot: the decision states and their modes
# ---------------------------------------------------------------------------------------
def labelled_modes(chunks: np.ndarray, labels: np.ndarray, K: int, region: float = REGION
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Mode centres ``[K, n]`` (mean chunk of each label) and radii ``[K]`` = max(ρ_k, region·Δ_c,k), with ρ_k the
    95% quantile of the member distances to their centre and Δ_c,k the distance to the nearest other centre
    (chapter 9's rule: the scripted experts' own spread is tiny). ``chunks [N, H, d]`` or ``[N, n]``."""
    x = np.asarray(chunks, dtype=float).reshape(len(chunks), -1)
    labels = np.asarray(labels)
    missing = [k for k in range(K) if not (labels == k).any()]
    if missing:
        raise ValueError(f"no demonstration of mode(s) {missing}: cannot place their centres")
    centers = np.stack([x[labels == k].mean(0) for k in range(K)])
    rho = np.array([np.quantile(np.linalg.norm(x[labels == k] - centers[k], axis=1), 0.95) for k in range(K)])
    cd = np.linalg.norm(centers[:, None] - centers[None], axis=-1)
    np.fill_diagonal(cd, np.inf)
    radii = np.maximum(rho, region * cd.min(1)) if K > 1 else rho
    return centers, radii


@dataclass
class RobotStarts:
    """Expert demonstrations of ``PathGaps`` and their decision states: the first chunk of each episode.

    data: every chunk (the training set). starts ``[E]``: row of each episode's first chunk. obs ``[E, 4]``,
    chunks ``[E, H, 2]`` (m/s), labels ``[E]`` (the gap the expert chose). centers ``[K, H·2]``, radii ``[K]``:
    the modes at the start (:func:`labelled_modes`). geometry: the arena for drawing (gap centres and width,
    wall, start, target; m)."""

    K: int
    data: ChunkDataset = field(repr=False)
    starts: np.ndarray = field(repr=False)
    obs: Tensor = field(repr=False)
    chunks: Tensor = field(repr=False)
    labels: Tensor = field(repr=False)
    centers: np.ndarray = field(repr=False)
    radii: np.ndarray = field(repr=False)
    geometry: dict = field(repr=False)

    def assign(self, chunks: Tensor | np.ndarray) -> np.ndarray:
        """Mode labels (−1: in no mode) of chunks ``[N, H, 2]`` at the start."""
        return diagnostics.assign_modes(chunks, self.centers, self.radii)

    def nearest(self, chunks: Tensor | np.ndarray) -> np.ndarray:
        """The nearest mode centre of each chunk (the identifier of the Fano bound: every chunk gets a mode)."""
        x = np.asarray(torch.as_tensor(chunks).detach().double()).reshape(len(chunks), -1)
        return np.linalg.norm(x[:, None] - self.centers[None], axis=-1).argmin(1)


def robot_starts(K: int, n_episodes: int, seed: int = 0, chunk_len: int = 8) -> RobotStarts:
    """``n_episodes`` noisy expert episodes of ``PathGaps`` with ``K`` gaps (the successful ones kept)."""
    from .. import envs

    data, trajs = envs.collect_demos(PATH_ENV, n_episodes, seed=seed, chunk_len=chunk_len, K=K,
                                     action_noise=ACTION_NOISE, return_trajectories=True, progress=False)
    kept = [t for t in trajs if t.success]
    starts = np.concatenate([[0], np.cumsum([len(t) for t in kept])[:-1]]).astype(int)
    rows = torch.as_tensor(starts)
    obs, chunks, labels = data.obs[rows], data.chunks[rows], data.modes[rows]
    centers, radii = labelled_modes(chunks.double().numpy(), labels.numpy(), K)
    t = envs.make_env_task(PATH_ENV, K=K)
    geometry = dict(gap_centers=np.asarray(t.gap_centers, dtype=float), gap_width=float(t.gap_width),
                    wall_y=float(t.wall_y), wall_half=float(t.wall_half), half_width=float(t.half_width),
                    start=tuple(t.start), target=tuple(t.target), target_radius=float(t.target_radius))
    return RobotStarts(K, data, starts, obs, chunks, labels, centers, radii, geometry)


def start_beta_star(rs: RobotStarts) -> float:
    """β* at the start states (chapter 9's β*(s₀)): the exact L2 collapse criterion on the normalised
    first chunks with the expert's labels as modes, in the cvae's loss scaling."""
    x = rs.data.normalizer().normalize_actions(rs.chunks).double().numpy()
    scale = theory.act_loss_scaling(rs.data.chunk_len, rs.data.action_dim, loss="l2").scale
    return float(theory.critical_beta_from_clusters(x, rs.labels.numpy(), scale))


# ---------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------
@dataclass
class Variant:
    """One deployment prior measured.

    kept_mass, kept_ci: the prior mass the rule keeps (Monte Carlo, 95% Wilson interval). counts ``[K]``:
    decoded chunks in each mode at the decision states, off: in no mode, n: chunks decoded.
    On the robot, also ``rollout`` (an :class:`mbc_lib.envs.EvalResult`). For drawing: z ``[m, d_z]``
    (draws of this prior), samples ``[m, H, d]`` (fork: chunks at s = 0) with labels ``[m]``, paths
    (robot: the effector's (x, y) per episode, ``[T, 2]`` each)."""

    name: str
    kept_mass: float
    kept_ci: np.ndarray
    counts: np.ndarray
    off: int
    n: int
    rollout: Any = field(default=None, repr=False)
    z: np.ndarray | None = field(default=None, repr=False)
    samples: np.ndarray | None = field(default=None, repr=False)
    labels: np.ndarray | None = field(default=None, repr=False)
    paths: list | None = field(default=None, repr=False)

    @property
    def K(self) -> int:
        return len(self.counts)

    @property
    def mass(self) -> np.ndarray:
        """Fraction of decoded chunks in each mode, ``[K]``."""
        return self.counts / self.n

    @property
    def mass_ci(self) -> np.ndarray:
        return diagnostics.wilson_interval(self.counts, self.n)

    @property
    def off_support(self) -> float:
        return self.off / self.n

    @property
    def off_ci(self) -> np.ndarray:
        return diagnostics.wilson_interval(self.off, self.n)

    # closed loop (robot)
    @property
    def episodes(self) -> int:
        return 0 if self.rollout is None else int(self.rollout.n_episodes)

    @property
    def success_counts(self) -> np.ndarray:
        """Episodes that succeeded through each gap, ``[K]``."""
        r = self.rollout
        return np.bincount(r.modes[r.success], minlength=self.K)[: self.K]

    @property
    def success_by_mode(self) -> np.ndarray:
        return self.success_counts / self.episodes

    @property
    def success_by_mode_ci(self) -> np.ndarray:
        return diagnostics.wilson_interval(self.success_counts, self.episodes)

    @property
    def success(self) -> float:
        return float(self.rollout.success.mean())

    @property
    def failure_rate(self) -> float:
        """Episodes that ended with the task's failure flag (collision)."""
        return float(self.rollout.failures.mean())

    @property
    def failure_ci(self) -> np.ndarray:
        return diagnostics.wilson_interval(int(self.rollout.failures.sum()), self.episodes)

    def row(self) -> dict[str, Any]:
        r: dict[str, Any] = {"variant": self.name, "kept_mass": self.kept_mass, "kept_lo": float(self.kept_ci[0]),
                             "kept_hi": float(self.kept_ci[1]), "off_support": self.off_support,
                             "off_lo": float(self.off_ci[0]), "off_hi": float(self.off_ci[1])}
        ci = self.mass_ci
        for k in range(self.K):
            r.update({f"mass_{k}": float(self.mass[k]), f"mass_{k}_lo": float(ci[k, 0]), f"mass_{k}_hi": float(ci[k, 1])})
        if self.rollout is not None:
            sci = self.success_by_mode_ci
            r.update({"success": self.success, "failure": self.failure_rate, "episodes": self.episodes})
            for k in range(self.K):
                r.update({f"success_{k}": float(self.success_by_mode[k]), f"success_{k}_lo": float(sci[k, 0]),
                          f"success_{k}_hi": float(sci[k, 1])})
        return r


@dataclass
class SurgeryResult:
    """Prior surgery on one task.

    task: ``"fork"`` or ``"PathGaps"``; K; beta, beta_star (β and the predicted collapse threshold, the
    policy's loss units); mutual_information Î(A;Z|S), mean_kl E KL, marginal_kl (nats) at the decision
    states; p_e, fano: the mode-identification error from posterior draws and B(P̂_e); off_support_posterior: the
    share of chunks decoded from posterior draws (teacher forcing) that lie in no mode. regions: R_k;
    region_mass ``[K]`` (exact prior mass of each R_k), union_mass, hole_free_mass (Monte Carlo), alpha.
    variants: name -> :class:`Variant` (:func:`variant_names`). For drawing: z_post ``[m, d_z]`` and
    z_labels ``[m]`` (posterior draws at the decision states), latent_map (``axis [G]``, the mode labels
    ``labels [G, G]`` of D(s*, z) over the first two latent dimensions at one decision state s* — the fork's
    s = 0, the robot's average start — and ``keep[name] [G, G]``, the grid points each deployment prior keeps),
    geometry (robot arena), demos (fork: demonstrations at s = 0, ``[m, H, d]``)."""

    task: str
    K: int
    beta: float
    beta_star: float
    mutual_information: float
    mean_kl: float
    marginal_kl: float
    log_n_cap: float
    p_e: float
    fano: float
    coverage: float
    alpha: float
    off_support_posterior: float
    regions: list[Ellipse] = field(repr=False)
    region_mass: np.ndarray = field(repr=False)
    union_mass: float = 0.0
    hole_free_mass: float = 0.0
    variants: dict[str, Variant] = field(default_factory=dict, repr=False)
    z_post: np.ndarray | None = field(default=None, repr=False)
    z_labels: np.ndarray | None = field(default=None, repr=False)
    latent_map: dict | None = field(default=None, repr=False)
    geometry: dict | None = field(default=None, repr=False)
    demos: np.ndarray | None = field(default=None, repr=False)
    policy: Any = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return f"{self.task} K={self.K}"

    @property
    def log_k(self) -> float:
        return math.log(self.K)

    def hole_bound(self) -> float:
        """The bound on the off-support share under the hole-free prior p_α: the posterior-sampled share divided by
        α·p({q̄/p ≥ α}) (chapter 10's proposition; 1 when that is larger)."""
        return min(1.0, self.off_support_posterior / (self.alpha * self.hole_free_mass)) if self.hole_free_mass > 0 else 1.0

    def exclusion_drop(self) -> np.ndarray:
        """Per mode k, its share with R_k excluded over its share under the standard prior, ``[K]`` (NaN if 0)."""
        prior = self.variants["prior"]
        base = prior.success_by_mode if self.task == "PathGaps" else prior.mass
        out = []
        for k in range(self.K):
            v = self.variants[f"exclude {k}"]
            now = v.success_by_mode[k] if self.task == "PathGaps" else v.mass[k]
            out.append(now / base[k] if base[k] > 0 else math.nan)
        return np.array(out)

    def row(self) -> dict[str, Any]:
        r = {"task": self.task, "K": self.K, "beta": self.beta, "beta_star": self.beta_star,
             "beta_ratio": self.beta / self.beta_star, "mutual_information": self.mutual_information,
             "log_K": self.log_k, "mean_kl": self.mean_kl, "marginal_kl": self.marginal_kl, "p_e": self.p_e,
             "fano": self.fano, "off_support_posterior": self.off_support_posterior, "union_mass": self.union_mass,
             "hole_free_mass": self.hole_free_mass, "alpha": self.alpha, "coverage": self.coverage}
        r.update({f"region_mass_{k}": float(m) for k, m in enumerate(self.region_mass)})
        return r


def _latent_map(decode_labels, rules: dict[str, PriorRule], dim: int, lim: float, n: int) -> dict:
    """On a grid of the first two latent dims (the others at 0): the mode labels of D(s*, z) and, for each
    deployment prior, which grid points it keeps."""
    axis = torch.linspace(-lim, lim, n)
    z1, z2 = torch.meshgrid(axis, axis, indexing="xy")
    z = torch.zeros(n * n, dim)
    z[:, 0], z[:, 1] = z1.reshape(-1), z2.reshape(-1)
    return {"axis": axis.numpy(), "labels": np.asarray(decode_labels(z)).reshape(n, n),
            "keep": {name: rule.keep(z).numpy().reshape(n, n) for name, rule in rules.items()}}


def _finish(res: SurgeryResult, rules: dict[str, PriorRule], dim: int, b: dict, g: torch.Generator) -> None:
    res.region_mass = np.array([r.prior_mass() for r in res.regions])
    res.union_mass = rule_prior_mass(rules["union"], dim, b["n_mass"], g)[0]
    res.hole_free_mass = rule_prior_mass(rules["no holes"], dim, b["n_mass"], g)[0]


# ---------------------------------------------------------------------------------------
# the fork
# ---------------------------------------------------------------------------------------
def surgery_fork(K: int = 2, seed: int = 0, profile: str | None = None) -> SurgeryResult:
    """Prior surgery on the K-branch fork: a CVAE at β = ratio·β*, its regions at the evaluation states,
    each deployment prior decoded at those states (``n_prior`` chunks per state)."""
    seed = check_seed(seed)
    b = budget("prior_surgery", profile)
    task = fork_task(K)
    data = task.dataset(b["n_demos"], seed=seed)
    th = predicted_thresholds(task, data.normalizer())
    beta = b["ratio"] * th.beta_star
    policy, _ = fit_cvae(data, b, beta, seed)
    with torch.no_grad():
        return _measure_fork(task, policy, th.beta_star, beta, b, seed)


def _measure_fork(task: tasks.Task, policy: policies.Policy, beta_star: float, beta: float, b: dict, seed: int
                  ) -> SurgeryResult:
    K = task.K
    ev = evaluate_latent(policy, task, seed=seed, n_states=b["n_states"], n_per_state=b["n_per_state"], n_prior=8)
    g = torch.Generator().manual_seed(seed + 31_000)
    z_post, z_lab = _posterior_draws(ev.mu, ev.logvar, ev.labels, b["n_post"], g)
    regions = [fit_ellipse(z_post[z_lab == k], b["coverage"]) for k in range(K)]
    sub = torch.randperm(len(ev.mu), generator=g)[: b["n_pool"]]
    rules = _rules(regions, DensityRegion(ev.mu[sub], ev.logvar[sub], b["alpha"]))
    dim = policy.config.latent_dim
    res = SurgeryResult("fork", K, beta, beta_star, ev.split.mutual_information, ev.split.mean_kl,
                        ev.split.marginal_kl, ev.split.log_n_cap, ev.p_e, ev.fano, b["coverage"], b["alpha"],
                        float(ev.coverage("posterior")[-1]), regions, np.zeros(K), policy=policy)
    _finish(res, rules, dim, b, g)
    states = ev.states[:, None]  # [S, 1]
    s0 = torch.zeros(1, 1)
    for name, rule in rules.items():
        kept, ci = rule_prior_mass(rule, dim, b["n_mass"], g)
        z = sample_latent(rule, len(states) * b["n_prior"], dim, g)
        obs = states.repeat_interleave(b["n_prior"], 0)
        lab = task.assign(obs, policy.decode(obs, z)).numpy()
        zp = sample_latent(rule, b["n_plot"], dim, g)
        chunks0 = policy.decode(s0.expand(len(zp), 1), zp)
        res.variants[name] = Variant(name, kept, ci, np.bincount(lab[lab >= 0], minlength=K)[:K], int((lab < 0).sum()),
                                     len(lab), z=zp.numpy(), samples=chunks0.numpy(),
                                     labels=task.assign(s0.expand(len(zp), 1), chunks0).numpy())
    keep = torch.randperm(len(z_post), generator=g)[: b["n_plot"] * 8]
    res.z_post, res.z_labels = z_post[keep].numpy(), z_lab[keep].numpy()
    res.latent_map = _latent_map(lambda z: task.assign(s0.expand(len(z), 1), policy.decode(s0.expand(len(z), 1), z)),
                                 rules, dim, b["map_lim"], b["n_map"])
    res.demos = task.sample_chunks(s0, b["n_plot"], generator=g)[0].numpy()
    return res


# ---------------------------------------------------------------------------------------
# the robot
# ---------------------------------------------------------------------------------------
def surgery_robot(K: int = 2, seed: int = 0, profile: str | None = None) -> SurgeryResult:
    """Prior surgery on ``PathGaps`` with ``K`` gaps: a CVAE at β = ratio·β*(s₀), its regions at the start
    states, and every deployment prior rolled out for ``n_eval`` episodes (plus decoded at the starts)."""
    seed = check_seed(seed)
    b = budget("prior_surgery", profile)
    rs = robot_starts(K, b["n_episodes"], seed=seed)
    beta_star = start_beta_star(rs)
    beta = b["ratio"] * beta_star
    policy, _ = fit_cvae(rs.data, b, beta, seed)
    with torch.no_grad():
        return _measure_robot(rs, policy, beta_star, beta, b, seed)


def _measure_robot(rs: RobotStarts, policy: policies.Policy, beta_star: float, beta: float, b: dict, seed: int
                   ) -> SurgeryResult:
    from .. import envs

    K = rs.K
    g = torch.Generator().manual_seed(seed + 32_000)
    mu, logvar = policy.encode(rs.obs, rs.chunks)
    split = diagnostics.kl_split(mu, logvar, generator=g)
    z_post, z_lab = _posterior_draws(mu, logvar, rs.labels, b["n_post"], g)
    rep = z_post.shape[0] // len(mu)
    recon = policy.decode(rs.obs.repeat(rep, 1), z_post.float())
    p_e = float((rs.nearest(recon) != z_lab.numpy()).mean())
    off_post = float((rs.assign(recon) < 0).mean())
    weights = np.bincount(rs.labels.numpy(), minlength=K) / len(rs.labels)
    fano = theory.fano_bound(weights, min(p_e, (K - 1) / K))
    regions = [fit_ellipse(z_post[z_lab == k], b["coverage"]) for k in range(K)]
    rules = _rules(regions, DensityRegion(mu, logvar, b["alpha"]))
    dim = policy.config.latent_dim
    res = SurgeryResult("PathGaps", K, beta, beta_star, split.mutual_information, split.mean_kl, split.marginal_kl,
                        split.log_n_cap, p_e, fano, b["coverage"], b["alpha"], off_post, regions, np.zeros(K),
                        geometry=rs.geometry, policy=policy)
    _finish(res, rules, dim, b, g)
    n_start = len(rs.obs)
    per = max(1, b["n_prior"] // n_start)
    for name, rule in rules.items():
        kept, ci = rule_prior_mass(rule, dim, b["n_mass"], g)
        z = sample_latent(rule, n_start * per, dim, g)
        lab = rs.assign(policy.decode(rs.obs.repeat_interleave(per, 0), z))
        rollout = envs.evaluate(SurgeryPolicy(policy, rule), PATH_ENV, n_episodes=b["n_eval"], seed=seed + 1, K=K,
                                record=True, progress=False, device="cpu")
        paths = [q[:, :2].copy() for q in rollout.qpos[: b["n_plot"]]]
        res.variants[name] = Variant(name, kept, ci, np.bincount(lab[lab >= 0], minlength=K)[:K], int((lab < 0).sum()),
                                     len(lab), rollout=rollout, z=sample_latent(rule, b["n_plot"], dim, g).numpy(),
                                     paths=paths)
    keep = torch.randperm(len(z_post), generator=g)[: b["n_plot"] * 8]
    res.z_post, res.z_labels = z_post[keep].numpy(), z_lab[keep].numpy()
    s_star = rs.obs.mean(0, keepdim=True)  # the average start state
    res.latent_map = _latent_map(lambda z: rs.assign(policy.decode(s_star.expand(len(z), -1), z)), rules, dim,
                                 b["map_lim"], b["n_map"])
    return res


# ---------------------------------------------------------------------------------------
# the experiment
# ---------------------------------------------------------------------------------------
def run(seed: int = 0, profile: str | None = None) -> dict[tuple[str, int], SurgeryResult]:
    """Prior surgery on the fork with every K of ``fork_Ks`` and on ``PathGaps`` with every K of ``robot_Ks``
    (the profile's): ``{(task, K): SurgeryResult}``."""
    b = budget("prior_surgery", profile)
    out: dict[tuple[str, int], SurgeryResult] = {}
    for K in b["fork_Ks"]:
        out[("fork", int(K))] = surgery_fork(int(K), seed=seed, profile=profile)
    for K in b["robot_Ks"]:
        out[("PathGaps", int(K))] = surgery_robot(int(K), seed=seed, profile=profile)
    return out


def exclusion_drops(rows: Sequence[dict[str, Any]], task: str) -> np.ndarray:
    """:meth:`SurgeryResult.exclusion_drop` of every K of ``task`` read off the rows of :func:`summary` (a cached
    table, as chapter 11 reads it), concatenated over K in increasing order; NaN where the base share is 0."""
    col = "success_{}" if task == "PathGaps" else "mass_{}"
    out = []
    for K in sorted({int(r["K"]) for r in rows if r["task"] == task}):
        by = {r["variant"]: r for r in rows if r["task"] == task and int(r["K"]) == K}
        for k in range(K):
            base = float(by["prior"][col.format(k)])
            out.append(float(by[f"exclude {k}"][col.format(k)]) / base if base > 0 else math.nan)
    return np.array(out)


def summary(results: dict[tuple[str, int], SurgeryResult]) -> list[dict[str, Any]]:
    """Tidy rows, one per (task, K, deployment prior): the model's numbers and the variant's."""
    rows = [{**res.row(), **v.row()} for res in results.values() for v in res.variants.values()]
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return [{k: r.get(k, math.nan) for k in keys} for r in rows]
