"""Why did a rollout fail? Every executed chunk labelled with a mode, every failure with its cause.

A rollout recorded by :func:`~mbc_lib.envs.evaluate` (``record=True``) holds the state at every step,
the executed actions and the steps at which the executor queried the policy. The executed actions are
cut into **segments** at the queries — one segment per executed chunk (or part of a chunk) — and at
most every ⌊H/2⌋ steps: an executor that queries at every step (temporal ensembling, re-planning each
step) is read in segments of ⌊H/2⌋ steps, those of the half-chunk executor.

**What each segment is.** The scripted expert is deterministic given its mode, and state observations
hold the whole physics state, so from the state ``s`` where a segment starts the expert's next ``L``
actions for each mode ``k`` are known exactly (:meth:`~mbc_lib.envs.Expert.chunks`): ``e_k``. Distances
between chunks are root-mean-square over the steps, ``d(a, b) = (1/L Σ_t ‖a_t − b_t‖²)^½`` in m/s.
With a tolerance τ (below), a segment ``a`` is

* **mode k** when ``d(a, e_k) ≤ τ`` (where two modes' chunks are close it may be within τ of both);
* otherwise, with ``(i, j)`` the two modes whose straight path ``e_i + λ (e_j − e_i)``, ``λ ∈ [0, 1]``,
  passes closest to ``a``, λ the position of ``a``'s projection on that path and ``r`` its distance from it:
  **off-support** when ``r > τ`` (far from every mode and from every path between two of them);
  **averaged** when ``|λ − ½| ≤ ⅙`` (the middle third of the path: near the modes' average, what a
  regression or a collapsed latent model plays); **bridge** otherwise (``λ`` in an outer third, more
  than τ from the mode: part of the way from one mode's chunk to another's).

**Tolerance.** τ is a fixed fraction (``tol_fraction`` = ⅙) of how far apart the modes are where they
are most distinct, at the start: the median, over the demonstrations' start states, of the distance
between the expert's chunks of the two nearest modes. (The noise-free demonstrations have no spread
*within* a mode at a given state, so the spread between the modes sets the scale.) On ``PathGaps`` the
modes' first chunks are 1 m/s apart, so τ ≈ 0.17 m/s.

**Switches.** A segment *leans* to mode k when it is at most half as far from ``e_k`` as from the
chunk of any other mode, where those two modes are distinguishable (their chunks more than 2τ apart).
A **switch** is a segment that leans to another mode than the last segment that leaned to one.

**Drift.** A state is off the demonstrations when its positions (the task's joint positions, metres) are
further from every demonstrated state than ``drift_factor`` (2) times the largest distance from a
demonstrated state to the states of the *other* demonstrations.

**The cause of a failed episode.** Its **point of no return** is the segment after which no mode can
succeed any more — the expert of every mode, started from the state (and step, and failure flag) at
the segment's end, fails; it is found by bisection over the segments, assuming that an episode once
lost stays lost. A segment is *faulty* when it is within τ of no mode, is a switch, or starts off the
demonstrations. The failure's **onset** is the first segment of the unbroken run of faulty segments
that ends at the point of no return (or just before it): faults followed by a sound segment were
recovered from and do not count. The cause is the onset's fault:

1. ``drift`` — the onset starts off the demonstrations (valid chunks had led the episode away from the
   demonstrated states: compounding error);
2. ``averaged``, ``off-support``, ``bridge`` — the onset's label, when it is within τ of no mode;
3. ``switch`` — otherwise: the onset is a valid chunk of another mode than the chunks before it (the
   policy changed its mind while the state still allowed either mode, and lost the time or the position
   to finish either);
4. ``unattributed`` — no faulty segment at or just before the point of no return: lost by valid chunks
   of one mode on the demonstrations (an error within the tolerance that the task does not forgive, or
   too slow).

The paper's two mechanisms are ``averaged`` (averaging, collapse) and ``bridge`` (transport between modes);
``off-support`` chunks sit with ``averaged`` in the book's "averaged / off-support" bar.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import mujoco
import numpy as np
from scipy.spatial import cKDTree

from .core import BatchSim, EnvTask
from .demos import Trajectory
from .evaluate import EvalResult
from .experts import Expert, make_expert
from .registry import as_env_task

__all__ = [
    "AVERAGED", "BRIDGE", "OFF_SUPPORT", "SEGMENT_CLASSES", "CAUSES", "MECHANISMS", "Reference", "reference",
    "segments", "ChunkLabels", "label_chunks", "expert_succeeds", "switch_segments", "faulty", "onset_of", "cause_of", "EpisodeAttribution",
    "Attribution", "attribute",
]

#: segment labels that are not a mode (modes are 0 … K−1)
AVERAGED, BRIDGE, OFF_SUPPORT = -1, -2, -3
#: label -> name, for the labels that are not modes
SEGMENT_CLASSES: dict[int, str] = {AVERAGED: "averaged", BRIDGE: "bridge", OFF_SUPPORT: "off-support"}
#: the causes of a failed episode (module docstring)
CAUSES: tuple[str, ...] = ("averaged", "off-support", "bridge", "switch", "drift", "unattributed")
#: the two causes that are the paper's mechanisms (averaging / collapse, and bridges)
MECHANISMS: tuple[str, ...] = ("averaged", "bridge")


def _rms(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """RMS over steps of ‖x_t‖: ``x [..., L, d]``, ``mask [..., L]`` (valid steps) -> ``[...]``."""
    sq = (x**2).sum(-1) * mask
    return np.sqrt(sq.sum(-1) / np.maximum(mask.sum(-1), 1))


def _positions(task: EnvTask, states: np.ndarray) -> np.ndarray:
    """Joint positions (metres) of state observations ``[N, obs_dim]`` -> ``[N, nq]``."""
    return np.asarray(task.state_from_obs(np.asarray(states, np.float64))[0])


# ---------------------------------------------------------------------------------------------
# what the rollouts are compared with
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reference:
    """The demonstrations' side of the attribution (:func:`reference`).

    Attributes:
        env_id, K: the task. tol: τ (m/s, RMS per step). mode_separation: the distance between the two
        nearest modes' chunks at the start, median over the demonstrations (m/s); τ = tol_fraction of it.
        drift_threshold: metres from the nearest demonstrated state beyond which a state is off them.
        positions: the demonstrated states' joint positions ``[N, nq]`` (m).
    """

    env_id: str
    K: int
    tol: float
    mode_separation: float
    drift_threshold: float
    positions: np.ndarray = field(repr=False)

    @functools.cached_property
    def _tree(self) -> cKDTree:
        return cKDTree(self.positions)

    def demo_distance(self, positions: np.ndarray) -> np.ndarray:
        """Distance (m) from each of ``positions [M, nq]`` to the nearest demonstrated state, ``[M]``."""
        return self._tree.query(np.asarray(positions, np.float64), k=1)[0]


def _start_state(task: EnvTask, t: Trajectory) -> np.ndarray:
    """The state observation at the start of a demonstration (at rest: zero velocities)."""
    q = np.asarray(t.qpos[:1], np.float64)
    return task.observe(q, np.zeros((1, task.model.nv)))[0]


def reference(env: str | EnvTask, trajectories: Sequence[Trajectory], K: int = 2, *, tol_fraction: float = 1 / 6,
              drift_factor: float = 2.0, L: int = 8, expert: Expert | None = None) -> Reference:
    """The tolerance τ and the drift threshold of ``env`` from its demonstrations (module docstring).

    Args:
        trajectories: expert episodes (:func:`~mbc_lib.envs.collect_demos` with ``return_trajectories``);
            the successful ones are used.
        tol_fraction: τ as a fraction of the modes' separation at the start (over the first ``L`` steps).
        drift_factor: the drift threshold as a multiple of the largest leave-one-episode-out
            nearest-neighbour distance between demonstrated states.
    """
    task = as_env_task(env, K=K)
    if not 0 < tol_fraction < 0.5 or not drift_factor > 0:
        raise ValueError(f"need 0 < tol_fraction < 1/2 and drift_factor > 0, got {tol_fraction!r}, {drift_factor!r}")
    kept = [t for t in trajectories if t.success]
    if len(kept) < 2:
        raise ValueError(f"need at least two successful demonstrations, got {len(kept)} of {len(trajectories)}")
    expert = make_expert(task) if expert is None else expert
    if task.K < 2:
        separation = 0.0
    else:
        starts = np.stack([_start_state(task, t) for t in kept])  # [n, obs_dim]
        e = np.stack([expert.chunks(starts, k, L) for k in range(task.K)], axis=1)  # [n, K, L, d]
        mask = np.ones(e.shape[:1] + e.shape[2:3])
        pair = np.stack([_rms(e[:, i] - e[:, j], mask) for i in range(task.K) for j in range(i + 1, task.K)], 1)
        separation = float(np.median(pair.min(axis=1)))
    pos = [np.asarray(t.qpos, np.float64) for t in kept]
    allpos = np.concatenate(pos)
    owner = np.concatenate([np.full(len(p), i) for i, p in enumerate(pos)])
    loo = np.empty(len(allpos))  # each state's distance to the nearest state of another demonstration
    for i in range(0, len(allpos), 512):
        d = np.linalg.norm(allpos[i:i + 512, None, :] - allpos[None], axis=2)
        d[owner[i:i + 512, None] == owner[None]] = np.inf
        loo[i:i + 512] = d.min(axis=1)
    return Reference(env_id=task.env_id, K=task.K, tol=tol_fraction * separation if separation > 0 else np.inf,
                     mode_separation=separation, drift_threshold=drift_factor * float(loo.max()), positions=allpos)


# ---------------------------------------------------------------------------------------------
# segments and their labels
# ---------------------------------------------------------------------------------------------
def segments(query_steps: np.ndarray, n_steps: int, chunk_len: int) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, lengths)`` of an episode's executed segments: cut at the queries, at most every
    ⌊H/2⌋ steps (module docstring). ``query_steps`` ascending, ``n_steps`` the episode's length."""
    every = max(1, chunk_len // 2)
    starts: list[int] = []
    for t in np.asarray(query_steps, np.int64):
        if t < n_steps and (not starts or t - starts[-1] >= every):
            starts.append(int(t))
    if not starts and n_steps > 0:
        starts = [0]
    bounds = np.array(starts + [n_steps], np.int64)
    lengths = np.minimum(np.diff(bounds), chunk_len)
    return bounds[:-1], lengths


@dataclass
class ChunkLabels:
    """What :func:`label_chunks` found per chunk: ``labels [S]`` (mode k ≥ 0, or AVERAGED / BRIDGE /
    OFF_SUPPORT), ``within [S, K]`` (within τ of each mode), ``dist [S, K]`` (to each mode's chunk, m/s),
    for the closest path between two modes ``pair [S, 2]``, ``lam [S]`` (0 at pair[0], 1 at pair[1])
    and ``off_path [S]`` (distance from it, m/s), and ``lean [S]``: the mode each chunk leans to, −1 for none."""

    labels: np.ndarray
    within: np.ndarray
    dist: np.ndarray
    pair: np.ndarray
    lam: np.ndarray
    off_path: np.ndarray
    lean: np.ndarray


def label_chunks(chunks: np.ndarray, expert_chunks: np.ndarray, tol: float, mask: np.ndarray | None = None) -> ChunkLabels:
    """Label chunks ``[S, L, d]`` against the modes' chunks ``[S, K, L, d]`` from the same states with
    tolerance ``tol`` (module docstring); ``mask [S, L]`` marks the steps that count (default all)."""
    chunks, e = np.asarray(chunks, np.float64), np.asarray(expert_chunks, np.float64)
    S, K = e.shape[:2]
    if chunks.shape != (S,) + e.shape[2:]:
        raise ValueError(f"chunks {chunks.shape} and expert chunks {e.shape} do not match ([S, L, d], [S, K, L, d])")
    mask = np.ones(chunks.shape[:2]) if mask is None else np.asarray(mask, np.float64)
    tol = np.broadcast_to(np.asarray(tol, np.float64), (S,))
    dist = np.stack([_rms(chunks - e[:, k], mask) for k in range(K)], axis=1)  # [S, K]
    within = dist <= tol[:, None]
    best_r, best_lam = np.full(S, np.inf), np.zeros(S)
    pair = np.zeros((S, 2), np.int64)
    for i in range(K):
        for j in range(i + 1, K):
            v, w = e[:, j] - e[:, i], chunks - e[:, i]  # [S, L, d]
            vv = ((v**2).sum(-1) * mask).sum(-1)
            lam = np.clip(((w * v).sum(-1) * mask).sum(-1) / np.maximum(vv, 1e-12), 0.0, 1.0)  # [S]
            r = _rms(w - lam[:, None, None] * v, mask)
            better = r < best_r
            best_r[better], best_lam[better] = r[better], lam[better]
            pair[better] = (i, j)
    if K == 1:
        best_r = dist[:, 0]
    order = np.argsort(dist, axis=1)
    nearest = order[:, 0]
    labels = np.where(np.abs(best_lam - 0.5) <= 1 / 6, AVERAGED, BRIDGE)
    labels = np.where(best_r > tol, OFF_SUPPORT, labels)
    labels = np.where(within.any(axis=1), nearest, labels)
    lean = np.full(S, -1, np.int64)
    if K >= 2:
        rows = np.arange(S)
        second = order[:, 1]
        apart = _rms(e[rows, nearest] - e[rows, second], mask) > 2 * tol  # the two modes are distinguishable
        clear = dist[rows, nearest] <= 0.5 * dist[rows, second]
        lean = np.where(apart & clear, nearest, -1)
    return ChunkLabels(labels=labels, within=within, dist=dist, pair=pair, lam=best_lam, off_path=best_r, lean=lean)


def expert_succeeds(env: str | EnvTask, states: np.ndarray, modes: np.ndarray, steps: np.ndarray | None = None,
                    failed: np.ndarray | None = None, *, K: int = 2, expert: Expert | None = None) -> np.ndarray:
    """``[S]`` bool: would the expert of ``modes[s]``, started from state ``states[s]`` at episode step
    ``steps[s]`` (default 0) with the task's failure flag ``failed[s]`` (default False; e.g. a wall
    already touched), succeed before the episode's step limit? Noise-free, one batch."""
    task = as_env_task(env, K=K)
    expert = make_expert(task) if expert is None else expert
    states = np.asarray(states, np.float64)
    S = len(states)
    if S == 0:
        return np.zeros(0, bool)
    modes = np.broadcast_to(np.asarray(modes, np.int64), (S,))
    sim = BatchSim(task, S)
    sim.reset(list(range(S)))  # any start: every episode's state is overwritten below
    qpos, qvel = task.state_from_obs(states)
    for i in range(S):
        d = sim.datas[i]
        d.qpos[:], d.qvel[:] = qpos[i], qvel[i]
        mujoco.mj_forward(task.model, d)
    sim._gather(np.arange(S))
    sim.flags = task.new_flags(S, sim.qpos)
    if failed is not None:
        sim.flags[task.failure_key][:] = np.asarray(failed, bool)
    sim.steps[:] = 0 if steps is None else np.asarray(steps, np.int64)
    lost = sim.flags[task.failure_key] if task.failure_is_final else np.zeros(S, bool)
    sim.done[:] = (sim.steps >= task.max_steps) | lost
    while not sim.done.all():
        run = ~sim.done
        actions = np.zeros((S, task.action_dim))
        actions[run] = expert.act(sim.state()[run], modes[run])
        sim.step(actions, active=run)
        if task.failure_is_final:  # no need to run an episode that can no longer succeed to its end
            sim.done |= sim.flags[task.failure_key]
    return sim.flags["success"].copy()


# ---------------------------------------------------------------------------------------------
# the attribution of one evaluation
# ---------------------------------------------------------------------------------------------
@dataclass
class EpisodeAttribution:
    """One episode: its segments (``starts``, ``lengths`` in steps), their ``labels``, ``lean`` and ``lam``
    (:class:`ChunkLabels`), the ``demo_distance`` of each segment's start (m) and whether it ``drifted``,
    the segments that were a ``switch``, and for a failure its ``cause`` (:data:`CAUSES`), its point of no
    return (the segment ``decisive``) and where the failure began (``onset``, None when no fault led to it);
    ``None`` for a success."""

    success: bool
    starts: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    lean: np.ndarray
    lam: np.ndarray
    demo_distance: np.ndarray
    drifted: np.ndarray
    switches: list[int]
    cause: str | None = None
    decisive: int | None = None
    onset: int | None = None

    @property
    def n_switches(self) -> int:
        return len(self.switches)

    @property
    def decisive_step(self) -> int | None:
        """The step at which the decisive segment started (None for a success)."""
        return None if self.decisive is None else int(self.starts[self.decisive])


def switch_segments(lean: np.ndarray) -> list[int]:
    """The segments that lean to another mode than the last segment that leaned to one."""
    out, last = [], -1
    for n, k in enumerate(np.asarray(lean)):
        if k < 0:
            continue
        if last >= 0 and k != last:
            out.append(n)
        last = int(k)
    return out


def faulty(ep: EpisodeAttribution) -> np.ndarray:
    """``[n_segments]`` bool: the segment is within τ of no mode, is a switch, or starts off the demonstrations."""
    f = (ep.labels < 0) | ep.drifted
    f[np.asarray(ep.switches, np.int64)] = True
    return f


def onset_of(ep: EpisodeAttribution, decisive: int) -> int | None:
    """Where a failure began: the first segment of the unbroken run of faulty segments (:func:`faulty`)
    that ends at the point of no return ``decisive``, or just before it; ``None`` without such a run."""
    f = faulty(ep)
    n = decisive if f[decisive] else decisive - 1
    if n < 0 or not f[n]:
        return None
    while n > 0 and f[n - 1]:
        n -= 1
    return n


def cause_of(ep: EpisodeAttribution, decisive: int) -> str:
    """The cause of a failed episode whose point of no return is segment ``decisive`` (module docstring)."""
    n = onset_of(ep, decisive)
    if n is None:
        return "unattributed"
    if ep.drifted[n]:
        return "drift"
    if ep.labels[n] < 0:
        return SEGMENT_CLASSES[int(ep.labels[n])]
    return "switch"


@dataclass
class Attribution:
    """Every episode of one evaluation attributed (:func:`attribute`); ``episodes`` in evaluation order."""

    env_id: str
    K: int
    tol: float
    drift_threshold: float
    episodes: list[EpisodeAttribution]

    @property
    def n_episodes(self) -> int:
        return len(self.episodes)

    @property
    def success(self) -> np.ndarray:
        return np.array([e.success for e in self.episodes], bool)

    @property
    def causes(self) -> list[str | None]:
        return [e.cause for e in self.episodes]

    def cause_counts(self) -> dict[str, int]:
        """Failed episodes per cause (every cause of :data:`CAUSES`, zeros included)."""
        c = self.causes
        return {k: sum(x == k for x in c) for k in CAUSES}

    def cause_rates(self) -> dict[str, float]:
        """Fraction of *all* episodes that failed with each cause (they sum to 1 − success rate)."""
        n = max(self.n_episodes, 1)
        return {k: v / n for k, v in self.cause_counts().items()}

    @property
    def switches(self) -> np.ndarray:
        """Switches per episode, ``[n_episodes]``."""
        return np.array([e.n_switches for e in self.episodes], np.int64)

    def segment_fractions(self, episodes: str = "all") -> dict[str, float]:
        """Fraction of the executed segments that were a mode, averaged, bridge or off-support, over
        ``"all"`` episodes or the ``"successful"`` ones only (how strict the labels are on episodes that
        worked: a calibration of τ)."""
        eps = [e for e in self.episodes if episodes == "all" or e.success]
        labels = np.concatenate([e.labels for e in eps]) if eps else np.zeros(0, np.int64)
        n = max(len(labels), 1)
        out = {"mode": float((labels >= 0).sum() / n)}
        out.update({name: float((labels == lab).sum() / n) for lab, name in SEGMENT_CLASSES.items()})
        return out

    def summary(self) -> dict[str, Any]:
        """Flat numbers for a table: success and failure rates, the failures' split (``cause_<name>``:
        fraction of all episodes), ``mechanism_share`` (fraction of the failures caused by an averaged
        or a bridge chunk; NaN without failures), ``collapse_share`` (the same with off-support chunks
        added), switches per episode (mean, and the fraction of episodes with at least one), the
        segments' label fractions (``seg_<name>``) and ``seg_mode_successful``, the fraction of the
        successful episodes' segments within τ of a mode."""
        counts = self.cause_counts()
        n_fail = int((~self.success).sum())
        n = max(self.n_episodes, 1)
        known = sum(counts.values()) == n_fail  # False when the causes were not computed
        out: dict[str, Any] = {
            "n_episodes": self.n_episodes, "success_rate": float(self.success.mean()) if self.episodes else np.nan,
            "failure_rate": n_fail / n, "tol": self.tol, "drift_threshold": self.drift_threshold,
        }
        out.update({f"cause_{k.replace('-', '_')}": v / n if known else np.nan for k, v in counts.items()})
        mech = counts["averaged"] + counts["bridge"]
        out["mechanism_share"] = mech / n_fail if n_fail and known else np.nan
        out["collapse_share"] = (mech + counts["off-support"]) / n_fail if n_fail and known else np.nan
        sw = self.switches
        out["switches_per_episode"] = float(sw.mean()) if len(sw) else np.nan
        out["switched_episodes"] = float((sw > 0).mean()) if len(sw) else np.nan
        out.update({f"seg_{k.replace('-', '_')}": v for k, v in self.segment_fractions().items()})
        out["seg_mode_successful"] = self.segment_fractions("successful")["mode"] if self.success.any() else np.nan
        return out


def attribute(result: EvalResult, ref: Reference, *, chunk_len: int | None = None, expert: Expert | None = None,
              causes: bool = True) -> Attribution:
    """Label every executed segment of a recorded evaluation and give each failed episode its cause
    (module docstring). ``result`` from :func:`~mbc_lib.envs.evaluate` with ``record=True``; ``ref``
    from :func:`reference` on the same task; ``chunk_len`` defaults to the executor's H. ``causes=False``
    skips the causes (the expert re-runs that find each failure's point of no return): labels and
    switches only, every failure's cause left ``None``."""
    if result.states is None or result.query_steps is None or result.failure_flags is None:
        raise ValueError("the evaluation was not recorded: run evaluate(..., record=True)")
    if result.env_id != ref.env_id or result.K != ref.K:
        raise ValueError(f"the reference is for {ref.env_id} K={ref.K}, the evaluation ran {result.env_id} K={result.K}")
    H = chunk_len or result.chunk_len
    if not H:
        raise ValueError("pass chunk_len: the evaluation does not say which H its executor used")
    task = as_env_task(result.env_id, K=result.K)
    expert = make_expert(task) if expert is None else expert

    # every segment of every episode, in one batch
    cuts = [segments(q, int(n), H) for q, n in zip(result.query_steps, result.lengths)]
    owner = np.concatenate([np.full(len(s), i) for i, (s, _) in enumerate(cuts)]).astype(np.int64)
    starts = np.concatenate([s for s, _ in cuts]).astype(np.int64)
    lengths = np.concatenate([n for _, n in cuts]).astype(np.int64)
    S, L, d = len(starts), int(lengths.max()), task.action_dim
    states = np.stack([result.states[i][t] for i, t in zip(owner, starts)])
    executed, mask = np.zeros((S, L, d)), np.zeros((S, L))
    for s, (i, t, n) in enumerate(zip(owner, starts, lengths)):
        executed[s, :n] = result.actions[i][t:t + n]
        mask[s, :n] = 1.0
    e = np.stack([expert.chunks(states, k, L) for k in range(task.K)], axis=1)  # [S, K, L, d]
    pos = _positions(task, states)
    lab = label_chunks(executed, e, ref.tol, mask)
    demo_dist = ref.demo_distance(pos)
    drifted = demo_dist > ref.drift_threshold

    episodes: list[EpisodeAttribution] = []
    for i in range(result.n_episodes):
        sel = owner == i
        episodes.append(EpisodeAttribution(
            success=bool(result.success[i]), starts=starts[sel], lengths=lengths[sel], labels=lab.labels[sel],
            lean=lab.lean[sel], lam=lab.lam[sel], demo_distance=demo_dist[sel], drifted=drifted[sel],
            switches=switch_segments(lab.lean[sel])))
    for i, m in (_points_of_no_return(episodes, result, task, expert) if causes else {}).items():
        ep = episodes[i]
        ep.decisive, ep.onset, ep.cause = m, onset_of(ep, m), cause_of(ep, m)
    return Attribution(env_id=result.env_id, K=result.K, tol=ref.tol, drift_threshold=ref.drift_threshold,
                       episodes=episodes)


def _points_of_no_return(episodes: list[EpisodeAttribution], result: EvalResult, task: EnvTask,
                         expert: Expert) -> dict[int, int]:
    """Failed episode -> its decisive segment: the last segment whose end no mode can succeed from,
    bisecting over the segment boundaries (boundary b = the start of segment b, the episode's end for the
    last) of all failed episodes at once, one batch of expert re-runs (episode × mode) per round."""
    bounds = {i: (0, len(ep.starts)) for i, ep in enumerate(episodes) if not ep.success}  # feasible lo, lost hi

    def step_at(i: int, b: int) -> int:
        ep = episodes[i]
        return int(ep.starts[b]) if b < len(ep.starts) else int(result.lengths[i])

    while True:
        probe = {i: (lo + hi) // 2 for i, (lo, hi) in bounds.items() if hi - lo > 1}
        if not probe:
            break
        rows = [(i, b, k) for i, b in probe.items() for k in range(task.K)]
        t = np.array([step_at(i, b) for i, b, _ in rows])
        ok = expert_succeeds(task, np.stack([result.states[i][tt] for (i, _, _), tt in zip(rows, t)]),
                             np.array([k for *_, k in rows]), t,
                             np.array([result.failure_flags[i][tt] for (i, _, _), tt in zip(rows, t)]), expert=expert)
        feasible = {i: False for i in probe}
        for (i, _, _), f in zip(rows, ok):
            feasible[i] |= bool(f)
        for i, b in probe.items():
            lo, hi = bounds[i]
            bounds[i] = (b, hi) if feasible[i] else (lo, b)
    return {i: hi - 1 for i, (_, hi) in bounds.items()}
