"""Chapter 9: mode diagnostics on robot data — are the demonstrations in the regime the theory assumes?

The synthetic tasks of chapters 1–7 come with their modes written down. Robot demonstrations do not: the
modes have to be *measured*. On the scripted-expert demonstrations of both MuJoCo tasks
(:func:`mbc_lib.envs.collect_demos`) this module measures, as a function of where the robot is (the
diagnostics are listed in the book's appendix, app-diagnostics):

* **modes per observation**: the chunks of the k demonstrations nearest to a query
  observation are clustered (:func:`mbc_lib.diagnostics.cluster_modes`, single linkage), giving K̂(s),
  centres, radii ρ̂_k, the gap Δ(s) = min_{j≠k}(‖μ_j − μ_k‖ − ρ_j − ρ_k) and the separation regime; the
  clusters are checked against the mode labels the experts record (purity, and the number of expert
  modes present in the neighbourhood);
* the **counterfactual expert modes**: from each query state the expert plans its next H actions for
  *every* mode (:meth:`mbc_lib.envs.Expert.chunks`) — the modes of p(a|s) if the choice were still open
  there, and their nearest centre distance Δ_c^exp(s);
* **how the chunk length H separates the modes** at the decision point (chapter 2);
* **β*(s) along the trajectory**: the exact collapse criterion (the book's appendix, app-collapse) on the
  normalised neighbourhood chunks, with the cvae's loss scaling (:func:`mbc_lib.diagnostics.predicted_collapse`).

Then it trains policies on the demonstrations of one task (:data:`TRAIN_TASK`, through
:func:`mbc_lib.train.train`) and asks which mechanism explains each measured failure:

* a **cvae** at a weak and a strong β (multiples of the measured β* at the start states): the KL split
  E KL = Î(A;Z|S) + marginal KL, prior typicality of the posterior means, hole mass and decoded coverage
  of the clustered modes under prior and posterior sampling (chapter 4; appendix app-rate, app-aggregate);
* a **flow** policy: the bridge (off-support) mass of its samples against the isoperimetric floor at the
  measured Lipschitz estimate L̂ and the measured gap Δ (chapter 5; appendix app-isoperimetry);
* **closed-loop rollouts** of the same policies (:func:`mbc_lib.envs.evaluate`): success, modes used and
  the task's failure flag (collisions with the wall / pucks between bins).

Sizes come from ``BUDGETS["robot_modes"]``. Units: chunks are velocity commands in m/s, so distances
between chunks are in m/s (Euclidean over the H·2 entries); β and nats are dimensionless.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.lines import Line2D
from torch import Tensor
from tqdm.auto import tqdm

from .. import diagnostics, envs, policies, theory
from ..data import ChunkDataset
from ..plotting import OFF_SUPPORT_COLOR, mode_color
from ..profiles import budget
from ..profiles import profile as active_profile
from ..train import History, on_compute_device, progress_enabled, train
from . import cache
from .bridges import implied_lipschitz
from .transport import bridge_floor

__all__ = [
    "TASKS", "TRAIN_TASK", "ACTION_NOISE", "REGION", "Demos", "collect", "critical_beta", "mode_regions",
    "ModeProfile", "mode_profile", "purity",
    "expert_separation", "PolicyReport", "fit_policy", "measure_latent", "measure_transport", "RobotModes",
    "diagnose", "summary", "plot_profile", "plot_neighbourhood", "plot_chunk_length", "plot_beta_star",
    "plot_policies",
]

#: the demonstrations measured: (env id, K)
TASKS: tuple[tuple[str, int], ...] = (("mbc/PathGaps-v0", 2), ("mbc/PushBins-v0", 3))
#: the task the policies are trained on
TRAIN_TASK: tuple[str, int] = ("mbc/PathGaps-v0", 2)
#: the experts' Gaussian action noise (m/s): enough within-mode spread for a density model to fit
ACTION_NOISE = 0.02
#: a policy's chunk counts in mode k when it is within max(ρ_k, REGION·Δ_c,k) of the centre (Δ_c,k: distance to the
#: nearest other centre). The demos' own radii ρ_k are tiny (scripted experts), and a learned policy's small
#: errors would otherwise all count as "in no mode"; the gap between the regions shrinks accordingly
REGION = 0.25


def _short(env_id: str) -> str:
    return env_id.split("/")[-1].split("-")[0]


# ---------------------------------------------------------------------------------------
# demonstrations
# ---------------------------------------------------------------------------------------
@dataclass
class Demos:
    """Successful expert episodes of one task and their chunks at every length H asked for.

    trajectories: the episodes (:class:`mbc_lib.envs.Trajectory`). datasets: H -> ChunkDataset
    (obs ``[N, obs_dim]``, chunks ``[N, H, 2]`` m/s, modes ``[N]`` = the expert's choice), one chunk
    per step (padded). step ``[N]``: the time step of each row in its episode.
    """

    env_id: str
    K: int
    trajectories: list = field(repr=False)
    datasets: dict[int, ChunkDataset] = field(repr=False)
    step: np.ndarray = field(repr=False)

    @property
    def name(self) -> str:
        return f"{_short(self.env_id)} K={self.K}"

    def dataset(self, H: int) -> ChunkDataset:
        """The demonstrations cut into chunks of length ``H`` (computed once, then kept)."""
        if H not in self.datasets:
            tr = self.trajectories
            self.datasets[H] = ChunkDataset.from_trajectories(
                [torch.from_numpy(t.obs) for t in tr], [torch.from_numpy(t.actions) for t in tr], int(H),
                modes=[t.mode for t in tr], pad=True)
        return self.datasets[H]


def collect(env_id: str, K: int, n_episodes: int, seed: int = 0, chunk_len: int = 8,
            action_noise: float = ACTION_NOISE) -> Demos:
    """``n_episodes`` expert episodes of ``env_id`` (successful ones kept), chunked at ``chunk_len``."""
    ds, trajs = envs.collect_demos(env_id, n_episodes, seed=seed, chunk_len=chunk_len, K=K, action_noise=action_noise,
                                   return_trajectories=True, progress=False)
    kept = [t for t in trajs if t.success]
    step = np.concatenate([np.arange(len(t)) for t in kept])
    return Demos(env_id, K, kept, {chunk_len: ds}, step)


# ---------------------------------------------------------------------------------------
# modes per observation along the trajectory
# ---------------------------------------------------------------------------------------
def purity(true: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of chunks whose cluster's majority expert mode is their own (1: no cluster mixes modes).
    Over-splitting a mode keeps purity at 1; merging two modes lowers it."""
    true, labels = np.asarray(true).reshape(-1), np.asarray(labels).reshape(-1)
    if true.shape != labels.shape or true.size == 0:
        raise ValueError(f"true and labels must be non-empty and of equal length, got {true.shape}, {labels.shape}")
    t = true - true.min()
    return float(sum(np.bincount(t[labels == c]).max() for c in np.unique(labels)) / true.size)


def expert_separation(env_id: str, K: int, obs: np.ndarray, H: int) -> tuple[np.ndarray, np.ndarray]:
    """The counterfactual modes at each state: the expert's planned next ``H`` actions for every one of the
    K modes of task ``env_id`` from ``obs [Q, obs_dim]`` (:meth:`mbc_lib.envs.Expert.chunks`). Returns the
    centres ``[Q, K, H, 2]`` and their nearest centre distance Δ_c^exp ``[Q]`` (m/s)."""
    expert = envs.make_expert(envs.make_task(env_id, K=K))
    obs = np.asarray(obs, dtype=np.float64)
    centers = np.stack([expert.chunks(obs, np.full(len(obs), k), H) for k in range(K)], axis=1)
    flat = centers.reshape(len(obs), K, -1)
    d = np.linalg.norm(flat[:, :, None] - flat[:, None], axis=-1)  # [Q, K, K]
    d[:, np.eye(K, dtype=bool)] = np.inf
    return centers, d.min(axis=(1, 2))


def critical_beta(chunks: np.ndarray, labels: np.ndarray, scale: float) -> float:
    """β*(s), the exact collapse threshold, for the measured modes of one neighbourhood (the book's appendix,
    app-collapse and app-collapse-l2, applied at one state).

    The neighbourhood's (normalised) chunks ``[k, H, d]`` with cluster ``labels [k]`` are read as the
    criterion's model: Gaussian modes at the cluster means with weights π̂_k and an isotropic within-mode
    variance σ̂² set to the *largest* eigenvalue of the pooled within-cluster covariance (conservative: the collapse
    threshold grows with σ²); β* = v′/σ_d² with ``scale`` = σ_d (:func:`mbc_lib.theory.critical_beta`).
    With K̂ = 1 it equals the local threshold λ_max(Cov)/σ_d² — such states collapse first."""
    x = np.asarray(chunks, dtype=float).reshape(len(chunks), -1)
    ks = np.unique(labels)
    centers = np.stack([x[labels == k].mean(0) for k in ks])
    weights = np.array([(labels == k).mean() for k in ks])
    resid = x - centers[np.searchsorted(ks, labels)]  # [k, n]
    sigma = math.sqrt(max(float(np.linalg.eigvalsh(resid.T @ resid / len(x)).max()), 0.0))
    return theory.critical_beta(centers, weights, sigma, "l2", scale)


def mode_regions(cl: diagnostics.ClusteredModes, region: float = REGION) -> tuple[np.ndarray, float]:
    """Radii ``[K]`` of the mode regions a policy's chunks are scored against, max(ρ_k, region·Δ_c,k), and the
    gap between the regions Δ = min_{j≠k}(‖μ_j − μ_k‖ − r_j − r_k) (inf for one mode), m/s."""
    cd = cl.center_distances.copy()
    np.fill_diagonal(cd, np.inf)
    radii = np.maximum(cl.radii, region * cd.min(1)) if cl.n_modes > 1 else cl.radii.copy()
    gaps = cd - radii[:, None] - radii[None, :]
    return radii, float(gaps.min()) if cl.n_modes > 1 else math.inf


@dataclass
class ModeProfile:
    """Modes per observation of one task at one chunk length H, at query observations taken from
    ``n_query`` episodes at each time step of ``steps``. Arrays are ``[S, Q]`` (steps × queries).

    n_modes: K̂(s). n_expert: expert modes present in the neighbourhood. purity: :func:`purity` of the
    clusters against the expert labels. separation: Δ(s) (inf when K̂ = 1). ratio: Δ(s)/s_w.
    center_distance: Δ_c (nearest cluster centres; inf for K̂ = 1). expert_delta: Δ_c^exp(s) of
    :func:`expert_separation`. beta_star: β*(s) of the exact collapse criterion on the normalised neighbourhood chunks
    with the cvae's L2 loss scaling (dimensionless), from the clustered modes (:func:`beta_star`);
    beta_local: the second-order threshold λ_max(Cov)/σ_d² of the neighbourhood's chunks (≤ β*).
    regimes: the separation regime of each query.
    query ``[S, Q, obs_dim]``, index ``[S, Q, k]`` (dataset rows of each neighbourhood), clusters.
    """

    env_id: str
    K: int
    H: int
    steps: tuple[int, ...]
    n_modes: np.ndarray
    n_expert: np.ndarray
    purity: np.ndarray
    separation: np.ndarray
    ratio: np.ndarray
    center_distance: np.ndarray
    expert_delta: np.ndarray
    beta_star: np.ndarray
    beta_local: np.ndarray
    regimes: list[list[str]]
    query: np.ndarray = field(repr=False)
    index: np.ndarray = field(repr=False)
    clusters: list[list[diagnostics.ClusteredModes]] = field(repr=False)

    def regime(self, i: int) -> str:
        """The most common regime among the queries at step ``steps[i]``."""
        return Counter(self.regimes[i]).most_common(1)[0][0]

    def rows(self) -> list[dict]:
        """One tidy row per step (medians over the queries; Δ(s) as the median over queries, inf → NaN)."""
        med = lambda x: float(np.median(x)) if np.all(np.isfinite(x)) else (  # noqa: E731
            float(np.median(x[np.isfinite(x)])) if np.isfinite(x).sum() > len(x) / 2 else math.nan)
        return [{"table": "demo modes", "task": _short(self.env_id), "K": self.K, "H": self.H, "step": s,
                 "n_modes": float(self.n_modes[i].mean()), "n_expert_modes": float(self.n_expert[i].mean()),
                 "purity": float(self.purity[i].mean()), "separation": med(self.separation[i]),
                 "separation_ratio": med(self.ratio[i]), "center_distance": med(self.center_distance[i]),
                 "expert_delta": float(np.median(self.expert_delta[i])), "beta_star": float(np.median(self.beta_star[i])),
                 "beta_local": float(np.median(self.beta_local[i])),
                 "regime": self.regime(i)} for i, s in enumerate(self.steps)]


def mode_profile(demos: Demos, H: int, steps: Sequence[int], n_query: int, k: int, threshold: float,
                 beta_star: bool = True) -> ModeProfile:
    """Cluster the demonstration chunks of length ``H`` in the ``k``-nearest neighbourhoods (standardised
    observation space) of the observations of the first ``n_query`` episodes at each step of ``steps``
    (episodes shorter than a step are skipped). Single-linkage clustering cut at ``threshold`` (m/s):
    a mode of a feedback controller is a curve of chunks, which the BIC of an isotropic mixture splits.
    With ``beta_star`` also β*(s) (exact collapse criterion, L2 cvae scaling σ_d = √(H·d/2)) per neighbourhood."""
    if not steps or n_query < 1:
        raise ValueError(f"need at least one step and n_query >= 1, got steps={steps!r}, n_query={n_query!r}")
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0 (m/s), got {threshold!r}")
    data = demos.dataset(H)
    obs, chunks, modes = data.obs.numpy(), data.chunks.numpy(), data.modes.numpy()
    starts = np.concatenate([[0], np.cumsum([len(t) for t in demos.trajectories])[:-1]])
    lengths = np.array([len(t) for t in demos.trajectories])
    norm = data.normalizer()
    nchunks = norm.normalize_actions(data.chunks).double().numpy()
    scale = theory.act_loss_scaling(H, data.action_dim, loss="l2").scale
    keys = ("n_modes", "n_expert", "purity", "separation", "ratio", "center_distance", "expert_delta", "beta_star",
            "beta_local")
    out: dict[str, list] = {k_: [] for k_ in keys}
    regimes, queries, indices, clusters = [], [], [], []
    for s in steps:
        eps_ = np.flatnonzero(lengths > s)[:n_query]
        if len(eps_) == 0:
            raise ValueError(f"no episode of {demos.name} is longer than step {s}")
        if len(eps_) < n_query:  # pad with the last available episode so arrays stay rectangular
            eps_ = np.concatenate([eps_, np.full(n_query - len(eps_), eps_[-1])])
        q = obs[starts[eps_] + s]  # [Q, obs_dim]
        idx = diagnostics.neighbourhoods(obs, q, k=k)  # [Q, k]
        cl = [diagnostics.cluster_modes(chunks[i], method="threshold", threshold=threshold) for i in idx]
        _, exp_delta = expert_separation(demos.env_id, demos.K, q, H)
        out["n_modes"].append([c.n_modes for c in cl])
        out["n_expert"].append([len(np.unique(modes[i])) for i in idx])
        out["purity"].append([purity(modes[i], c.labels) for i, c in zip(idx, cl)])
        out["separation"].append([c.separation for c in cl])
        out["ratio"].append([c.separation_ratio for c in cl])
        out["center_distance"].append([c.min_center_distance for c in cl])
        out["expert_delta"].append(exp_delta)
        out["beta_star"].append([critical_beta(nchunks[i], c.labels, scale) if beta_star else math.nan
                                 for i, c in zip(idx, cl)])
        out["beta_local"].append([theory.local_critical_beta(nchunks[i].reshape(len(i), -1), np.full(len(i), 1 / len(i)),
                                                             0.0, "l2", scale) if beta_star else math.nan
                                  for i in idx])
        regimes.append([c.regime for c in cl])
        queries.append(q)
        indices.append(idx)
        clusters.append(cl)
    arr = {k_: np.array(v, dtype=float) for k_, v in out.items()}
    return ModeProfile(demos.env_id, demos.K, int(H), tuple(int(s) for s in steps), regimes=regimes,
                       query=np.stack(queries), index=np.stack(indices), clusters=clusters, **arr)


# ---------------------------------------------------------------------------------------
# trained policies
# ---------------------------------------------------------------------------------------
@dataclass
class PolicyReport:
    """One trained policy measured at the start-state neighbourhoods (where the K modes are) and in
    closed loop. ``metrics`` are flat scalars (see :func:`measure_latent`, :func:`measure_transport`);
    ``rollout`` the :class:`mbc_lib.envs.EvalResult`; ``samples`` ``[Q, n, H, 2]`` and ``labels``
    ``[Q, n]`` (cluster index, −1 off-support) at the start queries."""

    name: str
    family: str
    policy: policies.Policy = field(repr=False)
    history: History = field(repr=False)
    metrics: dict[str, float] = field(default_factory=dict)
    rollout: envs.EvalResult | None = field(default=None, repr=False)
    samples: np.ndarray | None = field(default=None, repr=False)
    labels: np.ndarray | None = field(default=None, repr=False)

    def row(self) -> dict:
        r = {"table": "policies", "policy": self.name, "family": self.family, **self.metrics}
        if self.rollout is not None:
            s = self.rollout.summary()
            r.update({"success_rate": s["success_rate"], "modes_used": s["modes_covered"],
                      "failures": float(self.rollout.failures.mean()), "failure_kind": self.rollout.failure_key,
                      "no_mode": float((self.rollout.modes < 0).mean())})
            r.update({f"used_mode_{k}": float(v) / self.rollout.n_episodes for k, v in enumerate(s["mode_hist"])})
        return r


def fit_policy(family: str, data: ChunkDataset, b: dict, seed: int = 0, progress: bool | None = None,
               **config) -> tuple[policies.Policy, History]:
    """Train ``family`` (``cvae`` or ``flow``) on the robot chunks with the budget ``b``; ends on the CPU."""
    if family not in ("cvae", "flow"):
        raise ValueError(f"family must be 'cvae' or 'flow', got {family!r}")
    extra = {"latent_dim": b["latent_dim"]} if family == "cvae" else {}
    policy = policies.make(family, obs_dim=data.obs_dim, action_dim=data.action_dim, chunk_len=data.chunk_len,
                           width=b["width"], depth=b["depth"], seed=seed, **extra, **config)
    desc = f"{family} " + " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in config.items())
    history = train(policy, data, steps=b["train_steps"], batch_size=b["batch_size"], lr=b["lr"], seed=seed,
                    progress=progress, desc=desc)
    return policy.cpu(), history


def _coverage(chunks: np.ndarray, clusters: Sequence[diagnostics.ClusteredModes]) -> list[diagnostics.ModeCoverage]:
    """Coverage of each query's clustered modes by ``chunks [Q, n, H, d]``."""
    return diagnostics.mode_coverage_per_obs(chunks, [c.centers for c in clusters],
                                             [mode_regions(c)[0] for c in clusters], [c.weights for c in clusters])


def _labels(chunks: np.ndarray, clusters: Sequence[diagnostics.ClusteredModes]) -> np.ndarray:
    return np.stack([diagnostics.assign_modes(x, c.centers, mode_regions(c)[0]) for x, c in zip(chunks, clusters)])


@torch.no_grad()
def measure_latent(policy: policies.Policy, data: ChunkDataset, prof: ModeProfile, b: dict, beta: float,
                   seed: int = 0) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """The latent diagnostics (appendix app-diagnostics) of a cvae at the start-state neighbourhoods of ``prof``
    (its first step).

    Each neighbourhood is one group of the KL split (its posteriors form q̄(z|s)). Returns the scalars
    (mean over neighbourhoods): E KL, Î, marginal KL, log N cap, median χ² percentile of the posterior
    means, hole mass Hole_0.5 and Hole_0.1, the decoded coverage of the clustered modes under prior and
    posterior sampling (min mode mass, off-support), z = 0's off-support rate, β*(s) and β/β*; and the
    prior samples ``[Q, n, H, 2]`` with their cluster labels."""
    g = torch.Generator().manual_seed(seed + 9_000)
    idx, clusters = prof.index[0], prof.clusters[0]  # [Q, k]
    rows = torch.as_tensor(idx.reshape(-1))
    obs, chunks = data.obs[rows], data.chunks[rows]  # [Q·k, obs_dim], [Q·k, H, d]
    groups = torch.arange(len(idx)).repeat_interleave(idx.shape[1])
    mu, logvar = policy.encode(obs, chunks)
    mu_p, logvar_p = policy.prior(obs)
    split = diagnostics.kl_split(mu, logvar, mu_p, logvar_p, groups=groups, generator=g)
    typ = diagnostics.prior_typicality(mu, mu_p, logvar_p)
    holes = {e: np.mean([diagnostics.hole_mass(mu[groups == j], logvar[groups == j], mu_p[groups == j][0],
                                               logvar_p[groups == j][0], eps=e, n_prior=b["n_hole"], generator=g)
                         ["hole_mass"] for j in range(len(idx))]) for e in (0.1, 0.5)}
    q = torch.as_tensor(prof.query[0], dtype=torch.float32)  # [Q, obs_dim]
    prior_chunks = policy.sample(q, b["n_samples"], generator=g, decode_from="prior").double().numpy()
    z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=g)
    post_chunks = policy.decode(obs, z).double().numpy().reshape(len(idx), idx.shape[1], *chunks.shape[1:])
    zero_chunks = policy.sample(q, 1, decode_from="zero").double().numpy()
    cp, cq, c0 = (diagnostics.summarize_coverage(_coverage(x, clusters))
                  for x in (prior_chunks, post_chunks, zero_chunks))
    min_mass = float(np.mean([c.mass.min() for c in _coverage(prior_chunks, clusters)]))
    beta_star = float(np.median(prof.beta_star[0]))
    metrics = {
        "beta": float(beta), "beta_star": beta_star, "beta_ratio": float(beta) / beta_star,
        "predicted": "collapse" if beta >= beta_star else "no collapse",
        "mean_kl": split.mean_kl, "mutual_information": split.mutual_information, "marginal_kl": split.marginal_kl,
        "log_n_cap": split.log_n_cap, "mode_entropy": float(np.mean([theory.entropy(c.weights) for c in clusters])),
        "median_chi2_cdf": float(np.median(typ.chi2_cdf)), "hole_0.1": float(holes[0.1]), "hole_0.5": float(holes[0.5]),
        "off_support_prior": cp["off_support"], "off_support_posterior": cq["off_support"],
        "modes_covered_prior": cp["n_covered"], "min_mode_mass": min_mass, "zero_off_support": c0["off_support"],
    }
    return metrics, prior_chunks, _labels(prior_chunks, clusters)


def measure_transport(policy: policies.Policy, prof: ModeProfile, b: dict, seed: int = 0
                      ) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """The transport diagnostics (appendix app-diagnostics, app-isoperimetry) of a flow at the start-state
    neighbourhoods of ``prof``: per query, ``n_samples``
    samples scored against the clustered modes (masses, bridge b̂), the Jacobian spectral norm of the
    sampler ε ↦ chunk at ``n_jac`` base points (L̂, a lower bound on L), the isoperimetric floor at L̂
    with the measured gap Δ(s) (:func:`mbc_lib.experiments.transport.bridge_floor`) and the smallest L
    consistent with b̂. Scalars are means over the queries."""
    g = torch.Generator().manual_seed(seed + 9_500)
    clusters = prof.clusters[0]
    cfg = policy.config
    H, d = cfg.chunk_len, cfg.action_dim
    out: dict[str, list] = {k: [] for k in ("bridge", "min_mode_mass", "modes_covered", "L_hat", "L_median", "floor",
                                             "implied_L", "gap")}
    samples = []
    with on_compute_device(policy):
        for i, c in enumerate(clusters):
            obs = torch.as_tensor(prof.query[0, i:i + 1], dtype=torch.float32)

            def f(eps: Tensor) -> Tensor:  # base [N, H·d] -> chunk [N, H·d] (m/s), on the CPU
                chunk = policy.transport(obs.expand(len(eps), -1), eps.float().reshape(-1, H, d))  # [N, H, d]
                return chunk.reshape(len(eps), H * d).cpu()

            eps = torch.randn((b["n_samples"], H * d), generator=g)
            with torch.no_grad():
                a = f(eps).double().numpy()
            radii, gap = mode_regions(c)
            cov = diagnostics.mode_coverage(a, c.centers, radii, c.weights)
            jac = diagnostics.jacobian_spectral_norm(f, eps[: b["n_jac"]], n_iter=5, generator=g).numpy()
            L_hat = float(jac.max())
            gap = gap if np.isfinite(gap) and gap > 0 else math.nan
            ok = np.isfinite(gap)
            out["bridge"].append(cov.off_support)
            out["min_mode_mass"].append(float(cov.mass.min()))
            out["modes_covered"].append(cov.n_covered)
            out["L_hat"].append(L_hat)
            out["L_median"].append(float(np.median(jac)))
            out["floor"].append(bridge_floor(cov.mass, gap, L_hat) if ok else math.nan)
            out["implied_L"].append(implied_lipschitz(cov.mass, gap, cov.off_support) if ok else math.nan)
            out["gap"].append(gap)
            samples.append(a.reshape(-1, H, d))
    mean = lambda x: float(np.nanmean(x)) if np.any(np.isfinite(x)) else math.nan  # noqa: E731
    metrics = {k: mean(np.array(v, dtype=float)) for k, v in out.items()}
    metrics["bridge_above_floor"] = float(np.mean([bb >= ff for bb, ff in zip(out["bridge"], out["floor"])
                                                   if np.isfinite(ff)])) if np.any(np.isfinite(out["floor"])) else math.nan
    s = np.stack(samples)
    return metrics, s, _labels(s, clusters)


# ---------------------------------------------------------------------------------------
# the chapter's experiment
# ---------------------------------------------------------------------------------------
@dataclass
class RobotModes:
    """Everything chapter 9 measures. profiles[(env_id, H)] -> :class:`ModeProfile`; demos[env_id];
    reports[name] -> :class:`PolicyReport` (trained on :data:`TRAIN_TASK` at chunk length ``chunk_len``)."""

    chunk_len: int
    Hs: tuple[int, ...]
    steps: tuple[int, ...]
    demos: dict[str, Demos] = field(repr=False)
    profiles: dict[tuple[str, int], ModeProfile] = field(repr=False)
    reports: dict[str, PolicyReport] = field(repr=False)

    def profile(self, env_id: str, H: int | None = None) -> ModeProfile:
        return self.profiles[(env_id, self.chunk_len if H is None else H)]

    @property
    def train_profile(self) -> ModeProfile:
        return self.profile(TRAIN_TASK[0])


def diagnose(profile: str | None = None, seed: int = 0, progress: bool | None = None) -> RobotModes:
    """The whole chapter: demo mode profiles of :data:`TASKS` at every H of the budget, then a cvae at the
    budget's weak and strong β/β* and a flow on :data:`TRAIN_TASK`, measured and rolled out. Stores
    :func:`summary` in the results cache as ``"robot_modes"`` (chapter 11 reads it)."""
    prof_name = active_profile() if profile is None else profile
    b = budget("robot_modes", prof_name)
    H0, Hs, steps = b["chunk_len"], tuple(sorted(set(b["Hs"]) | {b["chunk_len"]})), tuple(b["steps"])
    bar = tqdm(total=len(TASKS) * len(Hs) + len(b["beta_ratios"]) + 1, desc="robot modes",
               disable=not progress_enabled(progress))
    demos, profiles = {}, {}
    for env_id, K in TASKS:
        demos[env_id] = collect(env_id, K, b["n_episodes"], seed=seed, chunk_len=H0)
        for H in Hs:
            profiles[(env_id, H)] = mode_profile(demos[env_id], H, steps, b["n_query"], b["k"], b["threshold"],
                                                 beta_star=(env_id == TRAIN_TASK[0] and H == H0))
            bar.update()
    env_id, K = TRAIN_TASK
    data, tprof = demos[env_id].dataset(H0), profiles[(env_id, H0)]
    beta_star = float(np.median(tprof.beta_star[0]))
    reports: dict[str, PolicyReport] = {}
    for ratio in b["beta_ratios"]:
        beta = float(ratio * beta_star)
        name = f"cvae β = {ratio:g}·β*"
        pol, hist = fit_policy("cvae", data, b, seed=seed, progress=False, beta=beta, recon="l2")
        metrics, s, lab = measure_latent(pol, data, tprof, b, beta, seed=seed)
        reports[name] = PolicyReport(name, "cvae", pol, hist, metrics, samples=s, labels=lab)
        bar.update()
    pol, hist = fit_policy("flow", data, b, seed=seed, progress=False)
    metrics, s, lab = measure_transport(pol, tprof, b, seed=seed)
    reports["flow"] = PolicyReport("flow", "flow", pol, hist, metrics, samples=s, labels=lab)
    bar.update()
    bar.close()
    for rep in reports.values():
        with on_compute_device(rep.policy):
            rep.rollout = envs.evaluate(rep.policy, env_id, n_episodes=b["n_eval"], seed=seed + 1, K=K, progress=False)
    result = RobotModes(H0, Hs, steps, demos, profiles, reports)
    cache.store("robot_modes", summary(result), prof_name, seed)
    return result


def summary(result: RobotModes) -> list[dict]:
    """Tidy rows: ``table = "demo modes"`` (one per task, H and step) and ``table = "policies"`` (one per
    trained policy: information, holes, coverage, bridge vs floor, rollouts)."""
    rows = [r for p in result.profiles.values() for r in p.rows()]
    return rows + [rep.row() for rep in result.reports.values()]


# ---------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------
def _finite(x: np.ndarray) -> np.ndarray:
    """Median over queries of values where finite (inf: one mode, no gap) — NaN when most are not."""
    x = np.asarray(x, dtype=float)
    return np.array([np.median(r[np.isfinite(r)]) if np.isfinite(r).sum() > len(r) / 2 else np.nan for r in x])


def plot_profile(result: RobotModes) -> plt.Figure:
    """Per task (columns), against the time step: top, modes per observation K̂(s) (clusters) next to the
    expert modes present in the neighbourhood and the cluster purity; bottom, the gap Δ(s) between the
    clustered modes and the expert's counterfactual centre distance Δ_c^exp(s), at the chapter's H, with the
    separation regime written at the steps where it changes."""
    fig, axes = plt.subplots(2, len(TASKS), figsize=(5.4 * len(TASKS), 6.2), squeeze=False, sharex="col")
    for j, (env_id, K) in enumerate(TASKS):
        p = result.profile(env_id)
        x = np.array(p.steps)
        ax = axes[0, j]
        ax.plot(x, p.n_modes.mean(1), "o-", color="k", label=r"clusters $\hat K(s)$")
        ax.plot(x, p.n_expert.mean(1), "s--", color="C2", mfc="none", ms=8, label="expert modes in the neighbourhood")
        ax.plot(x, K * p.purity.mean(1), ":", color="0.5", label=f"purity × $K$ ($K$ = {K})")
        ax.axhline(K, color="0.8", lw=0.8)
        top = max(K, float(p.n_modes.mean(1).max()), float(p.n_expert.mean(1).max()))
        ax.set(ylabel="modes", ylim=(0, 1.45 * top),
               title=f"{_short(env_id)} ($K$ = {K}), $H$ = {p.H}: modes per observation")
        ax.legend(fontsize=7, loc="upper center", ncol=2)  # in the head room above the data
        ax = axes[1, j]
        sep = _finite(p.separation)
        ax.plot(x, sep, "o-", color="k", label=r"gap $\hat\Delta(s)$ between clustered modes")
        ax.plot(x, np.median(p.expert_delta, 1), "s--", color="C2", mfc="none", ms=8,
                label=r"expert's counterfactual $\Delta_c^{\rm exp}(s)$")
        regimes = [p.regime(i) for i in range(len(x))]
        for i, (xi, reg) in enumerate(zip(x, regimes)):
            if i == 0 or reg != regimes[i - 1]:  # label where the regime changes (dense steps would overlap)
                ax.annotate(reg, (xi, 0), xytext=(0, 4), textcoords="offset points", rotation=90, fontsize=7,
                            color="0.35", ha="center", va="bottom")
        ax.axhline(0, color="0.6", lw=0.8)
        top = np.nanmax(np.concatenate([sep, np.median(p.expert_delta, 1)]))
        ax.set(xlabel="time step of the query observation (50 Hz)", ylabel="m/s (chunk distance)",
               ylim=(min(-0.1, float(np.nanmin(sep)) - 0.1) if np.isfinite(sep).any() else -0.1, 1.4 * top),
               title="separation (text: the regime, where it changes)")
        ax.legend(fontsize=7, loc="upper center", ncol=2)
    fig.tight_layout()
    return fig


def plot_neighbourhood(result: RobotModes, env_id: str, step: int, H: int, query: int = 0) -> plt.Figure:
    """One query observation: left, the planned effector/pusher paths of the k nearest demonstrations'
    chunks (position + Σ velocity·dt) coloured by cluster, with the expert's counterfactual plan for every
    mode dashed; right, the velocity commands of the chunks (vx solid, vy dotted). Title: K̂, Δ, regime."""
    p = result.profile(env_id, H)
    i = p.steps.index(step)
    cl, idx, q = p.clusters[i][query], p.index[i, query], p.query[i, query]
    data = result.demos[env_id].dataset(H)
    chunks = data.chunks.numpy()[idx]  # [k, H, 2]
    task = envs.make_task(env_id, K=p.K)
    dt = task.control_dt
    start = data.obs.numpy()[idx][:, :2]
    paths = start[:, None] + np.cumsum(chunks, axis=1) * dt  # [k, H, 2]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for path, a, lab in zip(paths, chunks, cl.labels):
        c = mode_color(int(lab))
        ax1.plot(path[:, 0], path[:, 1], color=c, lw=1, alpha=0.6)
        ax2.plot(np.arange(H), a[:, 0], color=c, lw=1, alpha=0.5)
        ax2.plot(np.arange(H), a[:, 1], color=c, lw=1, alpha=0.5, ls=":")
    centers, _ = expert_separation(env_id, result.demos[env_id].K, q[None], H)
    for k_, ck in enumerate(centers[0]):
        pk = q[None, :2] + np.cumsum(ck, axis=0) * dt
        ax1.plot(pk[:, 0], pk[:, 1], "--", color="k", lw=1.5, label="expert plan, every mode" if k_ == 0 else None)
    ax1.plot(*q[:2], "k*", ms=12, label="query observation")
    if hasattr(task, "gap_centers"):
        for g in task.gap_centers:
            ax1.axvline(g, color="0.85", lw=6, zorder=0)
        ax1.axhline(task.wall_y, color="0.3", lw=1)
    else:
        for c_ in task.bin_centers:
            ax1.plot(*c_, "o", ms=10, mfc="none", color="0.5")
    ax1.set(xlabel="x (m)", ylabel="y (m)", title=f"{_short(env_id)}, step {step}: chunks as planned paths",
            aspect="equal")
    ax1.legend(fontsize=7, loc="lower left")
    sep = "—" if not np.isfinite(cl.separation) else f"{cl.separation:.2f} m/s"
    ax2.set(xlabel="step within the chunk", ylabel="command (m/s)",
            title=f"$H$ = {H}: $\\hat K$ = {cl.n_modes}, $\\hat\\Delta(s)$ = {sep}, regime: {cl.regime}")
    ax2.legend([Line2D([], [], color="0.3"), Line2D([], [], color="0.3", ls=":")], ["vx", "vy"], fontsize=7)
    fig.tight_layout()
    return fig


def plot_chunk_length(result: RobotModes) -> plt.Figure:
    """At the start observations (where the expert chooses): the gap Δ(s₀) between clustered modes, its
    ratio to the within-mode spread, and the expert's counterfactual Δ_c, against the chunk length H; dotted,
    the prediction Δ_c = √H·(1 m/s) for two gap paths steering at ±0.5 m/s with equal forward speed. The ratio
    is drawn on a scale linear below 1 (the close / separated boundary) and logarithmic above."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.4), layout="constrained")
    for j, (env_id, K) in enumerate(TASKS):
        ps = [result.profile(env_id, H) for H in result.Hs]
        c = f"C{j}"
        ax1.plot(result.Hs, [_finite(p.separation[:1])[0] for p in ps], "o-", color=c,
                 label=f"{_short(env_id)}: gap $\\hat\\Delta(s_0)$")
        ax1.plot(result.Hs, [np.median(p.expert_delta[0]) for p in ps], "s--", color=c, mfc="none",
                 label=f"{_short(env_id)}: expert $\\Delta_c(s_0)$")
        ax2.plot(result.Hs, [_finite(p.ratio[:1])[0] for p in ps], "o-", color=c, label=f"{_short(env_id)} ($K$ = {K})")
    Hg = np.geomspace(min(result.Hs), max(result.Hs), 50)
    ax1.plot(Hg, np.sqrt(Hg), ":", color="k", lw=1, label=r"$\sqrt{H}$ m/s: PathGaps steering saturated at ±0.5 m/s")
    ax1.axhline(0, color="0.6", lw=0.8)
    ax2.set_yscale("symlog", linthresh=1.0, linscale=1.0)
    ax2.axhline(1, color="0.6", lw=0.8, ls="--")
    ax2.text(result.Hs[0], 1.08, "separated ↑ / close ↓", fontsize=7, color="0.4")
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xticks(result.Hs, [str(h) for h in result.Hs])
        ax.set_xlabel("chunk length $H$")
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    ax1.set(ylabel="m/s", title="longer chunks: modes further apart")
    ax2.set(ylabel=r"$\hat\Delta(s_0)\,/\,s_w$ (gap / within-mode spread)", title="…relative to their spread")
    return fig


def _policy_label(rep: PolicyReport, newline: bool = True) -> str:
    """Mathtext label of a trained policy for figures: "cvae, β = 0.1 β*" or "flow"."""
    if rep.family != "cvae":
        return rep.family
    return f"cvae{chr(10) if newline else ', '}$\\beta = {rep.metrics['beta_ratio']:.3g}\\,\\beta^*$"


def plot_beta_star(result: RobotModes) -> plt.Figure:
    """Left: β*(s) along the trajectory of the training task (exact collapse criterion per neighbourhood, median
    and range over queries) with the trained cvaes' β as horizontal lines — a state whose β*(s) lies
    below a model's β is predicted to collapse there. Right: what each cvae's latent carries at the start
    states (E KL, Î, marginal KL) against the mode entropy 𝓗(π̂) ≤ log K. Legends sit under the panels."""
    p = result.train_profile
    cvaes = [r for r in result.reports.values() if r.family == "cvae"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.6), layout="constrained")
    x = np.array(p.steps)
    ax1.fill_between(x, p.beta_star.min(1), p.beta_star.max(1), color="0.85", label=r"$\beta^*(s)$, range over queries")
    ax1.plot(x, np.median(p.beta_star, 1), "o-", color="k", label=r"$\beta^*(s)$, median")
    for i, r in enumerate(cvaes):
        ax1.axhline(r.metrics["beta"], color=f"C{i}", ls="--",
                    label=f"{_policy_label(r, newline=False)}: $\\beta$ = {r.metrics['beta']:.3g}")
    ax1.set(yscale="log", xlabel="time step of the query observation", ylabel=r"$\beta$ (dimensionless)",
            title=f"{_short(p.env_id)}: predicted collapse threshold along the trajectory")
    ax1.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    w = 0.25
    xs = np.arange(len(cvaes))
    for off, key, lab, c in ((-w, "mean_kl", "E KL", "#1f77b4"),
                             (0, "mutual_information", r"$\hat I(A;Z\mid S)$", "#2ca02c"),
                             (w, "marginal_kl", "marginal KL", "#9467bd")):
        ax2.bar(xs + off, [r.metrics[key] for r in cvaes], w, color=c, label=lab)
    ent = np.mean([r.metrics["mode_entropy"] for r in cvaes])
    ax2.axhline(ent, color="k", ls=":", lw=1, label=f"$\\mathcal{{H}}(\\hat\\pi)$ at $s_0$ = {ent:.2f} nats")
    ax2.set_xticks(xs, [f"{_policy_label(r)}\n{r.metrics['predicted']}" for r in cvaes], fontsize=8)
    ax2.set(ylabel="nats", title="what the latent carries at the start states (tick: predicted)")
    ax2.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, frameon=False)
    return fig


def plot_policies(result: RobotModes) -> plt.Figure:
    """Left: the trained policies' chunks at a start observation as planned paths, coloured by the clustered
    mode they land in (red: in no mode). Middle: mechanism measurements at the start states — off-support
    mass of prior-decoded and posterior-decoded cvae chunks, hole mass Hole_0.5, and the flow's bridge mass
    with its isoperimetric floor at L̂ (◆). Right: closed-loop rollouts — success, failures (collisions /
    between bins) and episodes that used no mode, with the number of episodes through each mode above the
    bars. Legends sit under their panels, so they never cover a bar."""
    reps = list(result.reports.values())
    p = result.train_profile
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.2), gridspec_kw={"width_ratios": [1.1, 1, 1]},
                             layout="constrained")
    ax = axes[0]
    env_id = TRAIN_TASK[0]
    dt = envs.make_task(env_id, K=TRAIN_TASK[1]).control_dt
    q = p.query[0, 0]
    for i, r in enumerate(reps):
        s, lab = r.samples[0][:60], r.labels[0][:60]
        paths = q[None, None, :2] + np.cumsum(s, axis=1) * dt  # [60, H, 2]
        for path, l_ in zip(paths, lab):
            ax.plot(path[:, 0], path[:, 1] + 0.06 * i, color=mode_color(int(l_)), lw=0.8, alpha=0.5)
        ax.text(q[0] + 0.05, q[1] + 0.06 * i + 0.005, _policy_label(r, newline=False), fontsize=8)
    ax.set(xlabel="x (m)", ylabel="y (m), policies stacked 6 cm apart",
           title="chunks at a start observation (red: no mode)")
    ax.set_xlim(right=ax.get_xlim()[1] + 0.06)  # room for the policy names
    xs = np.arange(len(reps))
    ticks = [_policy_label(r) for r in reps]
    w = 0.27
    ax = axes[1]
    lat = [i for i, r in enumerate(reps) if r.family == "cvae"]
    tra = [i for i, r in enumerate(reps) if r.family != "cvae"]
    pri = [r.metrics.get("off_support_prior", r.metrics.get("bridge", np.nan)) for r in reps]
    ax.bar(xs[lat] - w, [pri[i] for i in lat], w, color=OFF_SUPPORT_COLOR, label="off-support: deployment samples")
    ax.bar(xs[lat], [reps[i].metrics["off_support_posterior"] for i in lat], w, color="#f4a5a5", hatch="...",
           label=r"off-support: $z\sim q(z\mid s,a)$")
    ax.bar(xs[lat] + w, [reps[i].metrics["hole_0.5"] for i in lat], w, color="0.6",
           label=r"hole mass $\mathrm{Hole}_{0.5}$")
    ax.bar(xs[tra], [pri[i] for i in tra], w, color=OFF_SUPPORT_COLOR, hatch="//", edgecolor="w",
           label="flow: bridge mass $b$")
    ax.plot(xs[tra], [reps[i].metrics["floor"] for i in tra], "D", color="k", ms=7,
            label=r"flow: isoperimetric floor at $\hat L$")
    ax.set_xticks(xs, ticks, fontsize=8)
    ax.set(ylim=(0, 1.05), ylabel="fraction", title="mechanisms at the start states")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    ax = axes[2]
    succ = [r.rollout.success_rate for r in reps]
    fail = [float(r.rollout.failures.mean()) for r in reps]
    none = [float((r.rollout.modes < 0).mean()) for r in reps]
    ax.bar(xs - w, succ, w, color="C2", label="success")
    ax.bar(xs, fail, w, color=OFF_SUPPORT_COLOR, label=reps[0].rollout.failure_key)
    ax.bar(xs + w, none, w, color="0.5", label="used no mode")
    for x_, r in zip(xs, reps):
        ax.text(x_, 1.04, "/".join(str(int(v)) for v in r.rollout.mode_hist), ha="center", va="bottom", fontsize=8)
    ax.text(-0.5, 1.17, "episodes through mode " + "/".join(str(k + 1) for k in range(TRAIN_TASK[1])) + ":",
            fontsize=8, color="0.3", va="bottom")
    ax.set_xticks(xs, ticks, fontsize=8)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set(xlim=(-0.6, len(reps) - 0.4), ylim=(0, 1.28), ylabel="fraction of episodes",
           title=f"closed-loop rollouts ({reps[0].rollout.n_episodes} episodes each)")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, frameon=False)
    return fig
