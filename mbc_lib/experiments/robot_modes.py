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
  normalised neighbourhood chunks, with the cvae's loss scaling (:func:`mbc_lib.theory.critical_beta_from_clusters`).

Then it trains policies on the demonstrations of one task (:data:`TRAIN_TASK`, through
:func:`mbc_lib.fitting.fit`) and asks which mechanism explains each measured failure:

* a **cvae** at a weak and a strong β (multiples of the measured β* at the start states): the KL split
  E KL = Î(A;Z|S) + marginal KL, prior typicality of the posterior means, hole mass and decoded coverage
  of the clustered modes under prior and posterior sampling (chapter 4; appendix app-rate, app-aggregate);
* a **flow** policy: the bridge (off-support) mass of its samples against the isoperimetric floor at the
  measured Lipschitz estimate L̂ and the measured gap Δ (chapter 5; appendix app-isoperimetry);
* **closed-loop rollouts** of the same policies (:func:`mbc_lib.envs.evaluate`): success, modes used and
  the task's failure flag (collisions with the wall / pucks between bins), and each failed episode's first
  cause — averaged, off-support or bridge chunk, mode switch, drift (:mod:`mbc_lib.envs.attribution`).

Sizes come from ``BUDGETS["robot_modes"]``; the figures are in :mod:`mbc_lib.figures.robot_modes`. Units: chunks are velocity commands in m/s, so distances
between chunks are in m/s (Euclidean over the H·2 entries); β and nats are dimensionless.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from .. import diagnostics, envs, policies, theory
from ..data import ChunkDataset
from ..envs import attribution as attr
from ..fitting import fit
from ..profiles import budget
from ..profiles import profile as active_profile
from ..runtime import on_compute_device, progress_enabled
from ..train import History

__all__ = [
    "DEMO_TASKS", "TRAIN_TASK", "ACTION_NOISE", "REGION", "Demos", "collect", "mode_regions", "ModeProfile",
    "mode_profile", "purity", "expert_separation", "PolicyReport", "fit_policy", "measure_latent",
    "measure_transport", "RobotModes", "diagnose", "summary", "short_name",
]

#: the demonstrations measured: (env id, K)
DEMO_TASKS: tuple[tuple[str, int], ...] = (("mbc/PathGaps-v0", 2), ("mbc/PushBins-v0", 3))
#: the task the policies are trained on
TRAIN_TASK: tuple[str, int] = ("mbc/PathGaps-v0", 2)
#: the experts' Gaussian action noise (m/s): enough within-mode spread for a density model to fit
ACTION_NOISE = 0.02
#: a policy's chunk counts in mode k when it is within max(ρ_k, REGION·Δ_c,k) of the centre (Δ_c,k: distance to the
#: nearest other centre). The demos' own radii ρ_k are tiny (scripted experts), and a learned policy's small
#: errors would otherwise all count as "in no mode"; the gap between the regions shrinks accordingly
REGION = 0.25


def short_name(env_id: str) -> str:
    """``"mbc/PathGaps-v0"`` -> ``"PathGaps"``."""
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
        return f"{short_name(self.env_id)} K={self.K}"

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
    expert = envs.make_expert(envs.make_env_task(env_id, K=K))
    obs = np.asarray(obs, dtype=np.float64)
    centers = np.stack([expert.chunks(obs, np.full(len(obs), k), H) for k in range(K)], axis=1)
    flat = centers.reshape(len(obs), K, -1)
    d = np.linalg.norm(flat[:, :, None] - flat[:, None], axis=-1)  # [Q, K, K]
    d[:, np.eye(K, dtype=bool)] = np.inf
    return centers, d.min(axis=(1, 2))


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
    with the cvae's L2 loss scaling (dimensionless), from the clustered modes
    (:func:`mbc_lib.theory.critical_beta_from_clusters`);
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
        return [{"table": "demo modes", "task": short_name(self.env_id), "K": self.K, "H": self.H, "step": s,
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
        out["beta_star"].append([theory.critical_beta_from_clusters(nchunks[i], c.labels, scale) if beta_star else math.nan
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
    ``[Q, n]`` (cluster index, −1 off-support) at the start queries; ``attribution`` the rollout's segments
    labelled and each failed episode's first cause (:mod:`mbc_lib.envs.attribution`)."""

    name: str
    family: str
    policy: policies.Policy = field(repr=False)
    history: History = field(repr=False)
    metrics: dict[str, float] = field(default_factory=dict)
    rollout: envs.EvalResult | None = field(default=None, repr=False)
    samples: np.ndarray | None = field(default=None, repr=False)
    labels: np.ndarray | None = field(default=None, repr=False)
    attribution: attr.Attribution | None = field(default=None, repr=False)

    def row(self) -> dict:
        r = {"table": "policies", "policy": self.name, "family": self.family, **self.metrics}
        if self.rollout is not None:
            s = self.rollout.summary()
            r.update({"success_rate": s["success_rate"], "modes_used": s["modes_covered"],
                      "failures": float(self.rollout.failures.mean()), "failure_kind": self.rollout.failure_key,
                      "no_mode": float((self.rollout.modes < 0).mean())})
            r.update({f"used_mode_{k}": float(v) / self.rollout.n_episodes for k, v in enumerate(s["mode_hist"])})
        if self.attribution is not None:  # the failures' first causes (fractions of all episodes), switches
            a = self.attribution.summary()
            r.update({k: a[k] for k in a if k.startswith("cause_") or k in ("mechanism_share", "switches_per_episode")})
        return r


def fit_policy(family: str, data: ChunkDataset, b: dict, seed: int = 0, progress: bool | None = None,
               **config) -> tuple[policies.Policy, History]:
    """Train ``family`` (``cvae`` or ``flow``) on the robot chunks with the budget ``b``
    (:func:`mbc_lib.fitting.fit`); ends on the CPU."""
    if family not in ("cvae", "flow"):
        raise ValueError(f"family must be 'cvae' or 'flow', got {family!r}")
    return fit(family, data, budget=b, seed=seed, progress=progress, **config)


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
    with the measured gap Δ(s) (:func:`mbc_lib.theory.bridge_floor`) and the smallest L consistent
    with b̂ (:func:`mbc_lib.theory.implied_min_lipschitz`). Scalars are means over the queries."""
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
            out["floor"].append(theory.bridge_floor(cov.mass, gap, L_hat) if ok else math.nan)
            out["implied_L"].append(theory.implied_min_lipschitz(cov.off_support, cov.mass, gap) if ok else math.nan)
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
    """Everything chapter 9 measures. ``steps``: the time steps of the query observations.
    profiles[(env_id, H)] -> :class:`ModeProfile`; demos[env_id];
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
    """The whole chapter: demo mode profiles of :data:`DEMO_TASKS` at every H of the budget (queries at the
    budget's ``time_steps``), then a cvae at the budget's weak and strong β/β* and a flow on
    :data:`TRAIN_TASK`, measured and rolled out. ``mbc_lib.experiments.run("robot_modes", ...)`` is what
    caches its :func:`summary` for chapter 11."""
    prof_name = active_profile() if profile is None else profile
    b = budget("robot_modes", prof_name)
    H0, Hs, steps = b["chunk_len"], tuple(sorted(set(b["Hs"]) | {b["chunk_len"]})), tuple(b["time_steps"])
    bar = tqdm(total=len(DEMO_TASKS) * len(Hs) + len(b["beta_ratios"]) + 1, desc="robot modes",
               disable=not progress_enabled(progress))
    demos, profiles = {}, {}
    for env_id, K in DEMO_TASKS:
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
    ref = attr.reference(env_id, demos[env_id].trajectories, K=K)
    for rep in reports.values():
        with on_compute_device(rep.policy):
            rep.rollout = envs.evaluate(rep.policy, env_id, n_episodes=b["n_eval"], seed=seed + 1, K=K, progress=False,
                                        record=True)
        rep.attribution = attr.attribute(rep.rollout, ref, chunk_len=H0)
    return RobotModes(H0, Hs, steps, demos, profiles, reports)


def summary(result: RobotModes) -> list[dict]:
    """Tidy rows: ``table = "demo modes"`` (one per task, H and step) and ``table = "policies"`` (one per
    trained policy: information, holes, coverage, bridge vs floor, rollouts)."""
    rows = [r for p in result.profiles.values() for r in p.rows()]
    return rows + [rep.row() for rep in result.reports.values()]
