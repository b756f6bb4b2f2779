"""Closed-loop evaluation of a chunk policy on a robot task, many episodes at once.

Per control step, *one* batched policy call serves all ``B`` running episodes: the
observations ``[B, obs_dim]`` go through a :class:`~mbc_lib.control.ChunkExecutor`
(action queue or temporal ensembling), which queries ``policy.sample(obs, 1)`` when it
needs a new chunk; the resulting actions ``[B, 2]`` step ``B`` MuJoCo simulations.
Finished episodes are frozen but keep their row, so the executor's queues stay aligned.

Episode ``i`` starts like ``env.reset(seed=episode_seeds(seed, n)[i])``; a stochastic
policy draws from torch's global generator, seeded with ``seed`` inside a forked RNG
state (the caller's RNG state is left untouched): same seed, same device → same result.

With ``record=True`` every episode keeps what a failure analysis needs
(:mod:`mbc_lib.envs.attribution`): the state at every step, the actions executed, the steps at
which the executor queried the policy and the chunk each query returned. A policy that keeps
state across the steps of an episode (e.g. a latent drawn once per episode) may define
``begin_episodes(n)``: it is called before each batch of ``n`` episodes starts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..control import ChunkExecutor
from ..runtime import progress_enabled, select_device
from ..validation import check_seed
from .core import BatchSim, episode_seeds
from .demos import policy_obs
from .registry import make_env_task

__all__ = ["EvalResult", "evaluate"]


@dataclass
class EvalResult:
    """Outcome of :func:`evaluate`; per-episode arrays are ``[n_episodes]``.

    Attributes:
        success: episode succeeded. modes: mode the episode used (gap passed / bin reached), −1 none.
        failures: the task's failure flag at the end (``failure_key``: ``collision`` for the
            gap task, ``between_bins`` for the push task). lengths: control steps run.
        seeds: episode seeds. With ``record=True``, per episode: ``qpos`` joint positions
            ``[T+1, nq]`` (for :func:`~mbc_lib.envs.render_trajectory`), ``actions`` ``[T, 2]`` executed,
            ``states`` ``[T+1, obs_dim]`` the state observations (also when the policy sees pixels),
            ``query_steps`` ``[Q]`` the steps at which the policy was queried (step t: before the
            t-th action, 0-based), ``chunks`` ``[Q, H, 2]`` the chunk each query returned and
            ``failure_flags`` ``[T+1]`` the task's failure flag after each step.
        chunk_len: H of the executor; ``executor``: its description (``repr``).
    """

    env_id: str
    K: int
    failure_key: str
    success: np.ndarray
    modes: np.ndarray
    failures: np.ndarray
    lengths: np.ndarray
    seeds: np.ndarray
    qpos: list[np.ndarray] | None = field(default=None, repr=False)
    actions: list[np.ndarray] | None = field(default=None, repr=False)
    states: list[np.ndarray] | None = field(default=None, repr=False)
    query_steps: list[np.ndarray] | None = field(default=None, repr=False)
    chunks: list[np.ndarray] | None = field(default=None, repr=False)
    failure_flags: list[np.ndarray] | None = field(default=None, repr=False)
    chunk_len: int | None = None
    executor: str | None = None

    @property
    def n_episodes(self) -> int:
        return len(self.success)

    @property
    def success_rate(self) -> float:
        return float(self.success.mean())

    @property
    def mode_hist(self) -> np.ndarray:
        """Successful episodes per mode, ``[K]`` (int)."""
        return np.bincount(self.modes[self.success], minlength=self.K)[: self.K]

    @property
    def modes_covered(self) -> int:
        """How many of the K modes at least one successful episode used."""
        return int((self.mode_hist > 0).sum())

    @property
    def failure_count(self) -> int:
        """Episodes that ended with the task's failure flag (collisions / between bins)."""
        return int(self.failures.sum())

    def summary(self) -> dict[str, Any]:
        """The headline numbers as a flat dict (for tables)."""
        return {
            "env_id": self.env_id,
            "K": self.K,
            "episodes": self.n_episodes,
            "success_rate": self.success_rate,
            "modes_covered": self.modes_covered,
            "mode_hist": self.mode_hist.tolist(),
            self.failure_key: self.failure_count,
            "mean_length": float(self.lengths.mean()),
        }

    def __str__(self) -> str:
        s = self.summary()
        return (
            f"{s['env_id']} (K={s['K']}): success {s['success_rate']:.0%} of {s['episodes']}, "
            f"modes covered {s['modes_covered']}/{s['K']} {s['mode_hist']}, {self.failure_key} {s[self.failure_key]}"
        )


def _default_executor(policy) -> ChunkExecutor:
    H = getattr(getattr(policy, "config", None), "chunk_len", None)
    if H is None:
        raise ValueError(
            "cannot infer the chunk length of this policy (it has no .config.chunk_len); "
            "pass executor=ChunkExecutor(chunk_len=H)"
        )
    return ChunkExecutor(H)


def _policy_device(policy, device) -> torch.device:
    if device is not None:
        return torch.device(device)
    dev = getattr(policy, "device", None)
    if isinstance(dev, torch.device):
        return dev
    try:
        return next(policy.parameters()).device
    except (AttributeError, StopIteration, TypeError):
        return torch.device("cpu")


def evaluate(
    policy,
    env_id: str,
    n_episodes: int = 50,
    seed: int = 0,
    executor: ChunkExecutor | None = None,
    batch_size: int = 64,
    progress: bool | None = None,
    *,
    K: int = 2,
    max_steps: int | None = None,
    obs_type: str = "state",
    image_size: int = 64,
    device: torch.device | str | None = None,
    record: bool = False,
) -> EvalResult:
    """Run ``n_episodes`` closed-loop episodes of ``policy`` on ``env_id``, ``batch_size`` at a time.

    Args:
        policy: anything with ``sample(obs [B, obs_dim], n) -> [B, n, H, 2]`` (the policy contract)
            or a callable ``obs -> [B, H, 2]``; actions in m/s.
        env_id: one of :data:`mbc_lib.envs.ENV_IDS`; ``K``, ``max_steps`` configure the task.
        executor: how chunks are executed (default: ``ChunkExecutor(policy.config.chunk_len)``,
            i.e. each chunk executed open-loop in full). It is reset for every batch.
        progress: tqdm bar over episodes (default on unless ``$MBC_PROGRESS=0``).
        obs_type: what the policy sees (``state``, or ``pixels``: flat 3·64·64 images in [0, 1]).
        device: where observations are sent (default: the policy's device).
        record: keep each episode's joint positions (for :func:`mbc_lib.envs.render_trajectory`),
            states, executed actions, and the policy's queries with the chunks they returned (for
            :func:`mbc_lib.envs.attribution.attribute`). Recording never changes the episodes.

    Returns:
        :class:`EvalResult` — success rate, per-episode modes, mode histogram, failure counts.
    """
    seed = check_seed(seed)
    select_device(device)  # one rule for devices and $MBC_DEVICE: an unavailable one fails here
    if isinstance(n_episodes, bool) or not isinstance(n_episodes, (int, np.integer)) or n_episodes < 1:
        raise ValueError(f"n_episodes must be an integer >= 1, got {n_episodes!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if not (hasattr(policy, "sample") or callable(policy)):
        raise TypeError(f"policy must have .sample(obs, n) or be callable obs -> chunk, got {type(policy).__name__}")
    task = make_env_task(env_id, K=K, max_steps=max_steps)
    executor = _default_executor(policy) if executor is None else executor
    dev = _policy_device(policy, device)
    seeds = episode_seeds(seed, n_episodes)
    success, modes, failures, lengths = (np.zeros(n_episodes, t) for t in (bool, np.int64, bool, np.int64))
    qpos_all: list[np.ndarray] = []
    act_all: list[np.ndarray] = []
    state_all: list[np.ndarray] = []
    query_all: list[np.ndarray] = []
    chunk_all: list[np.ndarray] = []
    flag_all: list[np.ndarray] = []

    was_training = getattr(policy, "training", False)
    if hasattr(policy, "eval"):
        policy.eval()
    fork_devices = [dev.index or 0] if dev.type == "cuda" else []
    bar = tqdm(total=n_episodes, desc=f"eval {env_id}", disable=not progress_enabled(progress), leave=False)
    try:
        with torch.random.fork_rng(devices=fork_devices), torch.no_grad():
            torch.manual_seed(seed)
            sim = BatchSim(task, min(batch_size, n_episodes), obs_type=obs_type, image_size=image_size)
            for start in range(0, n_episodes, batch_size):
                sl = slice(start, min(start + batch_size, n_episodes))
                obs = sim.reset([int(s) for s in seeds[sl]])
                executor.reset()
                if hasattr(policy, "begin_episodes"):
                    policy.begin_episodes(sim.n)
                query_log: list[tuple[int, np.ndarray]] = []  # (step, the chunk the executor chose [B, H, d])
                qlog = [[sim.qpos[i].copy()] for i in range(sim.n)] if record else None
                slog = [[s] for s in sim.state()] if record else None
                flog = [[f] for f in sim.flags[task.failure_key]] if record else None
                alog: list[list[np.ndarray]] = [[] for _ in range(sim.n)]
                while not sim.done.all():
                    running = ~sim.done
                    made = executor.queries
                    actions = executor.act(policy_obs(obs, obs_type).to(dev), policy)
                    if record and executor.queries > made:  # running episodes are all at the same step
                        query_log.append((int(sim.steps.max()), executor.last_query[1].detach().to("cpu", torch.float64).numpy()))
                    actions = actions.detach().to("cpu", torch.float64).numpy()
                    if actions.ndim != 2 or actions.shape[0] != sim.n:
                        raise ValueError(f"the executor returned actions of shape {actions.shape}, expected [{sim.n}, 2]")
                    actions = actions.copy()
                    actions[~running] = 0.0  # frozen episodes: their actions are never used
                    obs, *_ = sim.step(actions, active=running)
                    if record:
                        executed = sim.check_actions(actions)  # clipped to the actuator range, as applied
                        state = sim.state()
                        for i in np.flatnonzero(running):
                            qlog[i].append(sim.qpos[i].copy())
                            slog[i].append(state[i])
                            flog[i].append(bool(sim.flags[task.failure_key][i]))
                            alog[i].append(executed[i])
                    bar.update(int(running.sum() - (~sim.done).sum()))
                success[sl] = sim.flags["success"]
                modes[sl] = sim.flags["mode"]
                failures[sl] = sim.flags[task.failure_key]
                lengths[sl] = sim.steps
                if record:
                    qpos_all += [np.stack(q) for q in qlog]
                    state_all += [np.stack(s) for s in slog]
                    flag_all += [np.array(f, bool) for f in flog]
                    act_all += [np.stack(a) if a else np.zeros((0, task.action_dim)) for a in alog]
                    for i in range(sim.n):  # the queries made while episode i was still running
                        mine = [(t, c[i]) for t, c in query_log if t < sim.steps[i]]
                        query_all.append(np.array([t for t, _ in mine], np.int64))
                        chunk_all.append(np.stack([c for _, c in mine]) if mine else np.zeros((0, 0, task.action_dim)))
            sim.close()
    finally:
        bar.close()
        if was_training and hasattr(policy, "train"):
            policy.train()
    return EvalResult(
        env_id=env_id,
        K=task.K,
        failure_key=task.failure_key,
        success=success,
        modes=modes,
        failures=failures,
        lengths=lengths,
        seeds=seeds,
        qpos=qpos_all if record else None,
        actions=act_all if record else None,
        states=state_all if record else None,
        query_steps=query_all if record else None,
        chunks=chunk_all if record else None,
        failure_flags=flag_all if record else None,
        chunk_len=getattr(executor, "chunk_len", None),
        executor=repr(executor),
    )
