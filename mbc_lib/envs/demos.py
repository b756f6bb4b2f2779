"""Demonstrations from the scripted experts, as trajectories and as a :class:`ChunkDataset`.

Episode ``i`` of ``collect_demos(env_id, n, seed)`` is fixed by its episode seed
``s_i = episode_seeds(seed, n)[i]`` alone: the start state is drawn from
``default_rng(s_i)`` (exactly as ``env.reset(seed=s_i)``), the expert's mode and action
noise from ``default_rng([s_i, 1])``. Episodes run in batches through
:class:`~mbc_lib.envs.core.BatchSim`, and batching never changes a trajectory.

The dataset's mode label of every chunk is the mode the expert *chose* for that
episode; ``Trajectory.mode_used`` is the mode the task *observed* (gap passed, bin
reached), equal for a successful expert.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..data import ChunkDataset
from ..runtime import progress_enabled, select_device
from ..validation import check_seed
from .core import BatchSim, episode_seeds
from .experts import make_expert
from .registry import make_env_task

__all__ = ["Trajectory", "collect_demos", "policy_obs"]


@dataclass
class Trajectory:
    """One expert episode.

    Attributes:
        obs: ``[T, obs_dim]`` float32, what a policy sees at each step (see :func:`policy_obs`).
        actions: ``[T, 2]`` float64, the velocity command executed at each step (m/s).
        qpos: ``[T+1, nq]`` joint positions from start to end (for rendering).
        mode: the mode the expert chose; mode_used: the mode the task observed (−1: none).
        success: whether the episode succeeded; seed: its episode seed.
    """

    obs: np.ndarray
    actions: np.ndarray
    qpos: np.ndarray
    mode: int
    mode_used: int
    success: bool
    seed: int

    def __len__(self) -> int:
        return len(self.actions)


def policy_obs(obs: np.ndarray, obs_type: str = "state") -> Tensor:
    """Env observations -> the float32 tensor a policy receives, ``[B, obs_dim]``.

    ``state``: as is. ``pixels`` ``[B, S, S, 3]`` uint8 -> ``[B, 3·S·S]`` in [0, 1], channels
    first, so that an image policy recovers the image with ``obs.view(B, 3, S, S)`` and the
    same flat layout fits a :class:`ChunkDataset`.
    """
    if obs_type == "pixels":
        x = torch.from_numpy(np.ascontiguousarray(obs.transpose(0, 3, 1, 2))).reshape(len(obs), -1)
        return x.float().div_(255.0)
    return torch.from_numpy(np.asarray(obs, dtype=np.float32))


def _check_probs(mode_probs: Sequence[float] | None, K: int) -> np.ndarray:
    if mode_probs is None:
        return np.full(K, 1.0 / K)
    p = np.asarray(mode_probs, dtype=np.float64)
    if p.shape != (K,) or (p < 0).any() or not np.isfinite(p).all() or p.sum() <= 0:
        raise ValueError(f"mode_probs must be {K} non-negative weights (one per mode), got {mode_probs!r}")
    return p / p.sum()


def collect_demos(
    env_id: str,
    n_episodes: int,
    seed: int,
    chunk_len: int = 8,
    *,
    K: int = 2,
    action_noise: float = 0.0,
    mode_probs: Sequence[float] | None = None,
    pad: bool = True,
    successful_only: bool = True,
    batch_size: int = 256,
    obs_type: str = "state",
    image_size: int = 64,
    max_steps: int | None = None,
    device: torch.device | str | None = None,
    return_trajectories: bool = False,
    progress: bool | None = None,
    **expert_kwargs,
) -> ChunkDataset | tuple[ChunkDataset, list[Trajectory]]:
    """Run the scripted expert for ``n_episodes`` and cut the episodes into action chunks.

    Args:
        env_id: one of :data:`mbc_lib.envs.ENV_IDS`; ``K``, ``max_steps`` configure the task.
        n_episodes: episodes to run (before filtering); seed: fixes every episode (module docstring).
        chunk_len: H of the chunks; ``pad`` repeats each episode's last action so every step yields one
            (see :func:`mbc_lib.data.chunk_trajectories`).
        action_noise: std of the expert's Gaussian action noise (m/s); ``mode_probs``: the expert's
            probability of each mode (default uniform); other keywords go to the expert.
        successful_only: keep only successful episodes (the usual filtered demonstrations).
        obs_type: ``state`` or ``pixels`` (64×64 images, flattened; see :func:`policy_obs`).
        return_trajectories: also return the list of :class:`Trajectory`.

    Returns:
        A :class:`ChunkDataset` (obs ``[N, obs_dim]``, chunks ``[N, H, 2]``, mode labels ``[N]`` = the
        expert's chosen mode), and with ``return_trajectories`` the trajectories too.
    """
    seed = check_seed(seed)
    select_device(device)  # one rule for devices and $MBC_DEVICE: an unavailable one fails here
    if isinstance(n_episodes, bool) or not isinstance(n_episodes, (int, np.integer)) or n_episodes < 1:
        raise ValueError(f"n_episodes must be an integer >= 1, got {n_episodes!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    task = make_env_task(env_id, K=K, max_steps=max_steps)
    expert = make_expert(task, action_noise=action_noise, **expert_kwargs)
    probs = _check_probs(mode_probs, task.K)
    seeds = episode_seeds(seed, n_episodes)

    trajectories: list[Trajectory] = []
    sim = BatchSim(task, min(batch_size, n_episodes), obs_type=obs_type, image_size=image_size)
    with tqdm(total=n_episodes, desc=f"demos {env_id}", disable=not progress_enabled(progress), leave=False) as bar:
        for start in range(0, n_episodes, batch_size):
            batch_seeds = [int(s) for s in seeds[start : start + batch_size]]
            trajectories += _run_batch(sim, expert, batch_seeds, probs)
            bar.update(len(batch_seeds))
    sim.close()

    kept = [t for t in trajectories if t.success] if successful_only else trajectories
    if not kept:
        raise RuntimeError(
            f"none of the {n_episodes} expert episodes on {env_id} succeeded; lower action_noise "
            f"(now {action_noise}) or raise max_steps"
        )
    dataset = ChunkDataset.from_trajectories(
        [torch.from_numpy(t.obs) for t in kept],
        [torch.from_numpy(t.actions) for t in kept],
        chunk_len,
        modes=[t.mode for t in kept],
        pad=pad,
        device=device,
    )
    return (dataset, trajectories) if return_trajectories else dataset


def _run_batch(sim: BatchSim, expert, seeds: list[int], probs: np.ndarray) -> list[Trajectory]:
    """Run one batch of expert episodes to the end on ``sim``; one :class:`Trajectory` per seed."""
    B, task, obs_type = len(seeds), sim.task, sim.obs_type
    rngs = [np.random.default_rng([s, 1]) for s in seeds]  # the expert's own stream per episode
    modes = np.array([r.choice(task.K, p=probs) for r in rngs])
    obs = sim.reset(seeds)
    obs_log: list[list[np.ndarray]] = [[] for _ in range(B)]
    act_log: list[list[np.ndarray]] = [[] for _ in range(B)]
    qpos_log: list[list[np.ndarray]] = [[sim.qpos[i].copy()] for i in range(B)]
    pobs = policy_obs(obs, obs_type).numpy()
    while not sim.done.all():
        run = np.flatnonzero(~sim.done)
        actions = np.zeros((B, task.action_dim))
        # Only running episodes draw noise, so an episode's stream never depends on its batch-mates.
        actions[run] = expert.act(sim.state()[run], modes[run], [rngs[i] for i in run])
        for i in run:
            obs_log[i].append(pobs[i])
            act_log[i].append(actions[i].copy())
        obs, *_ = sim.step(actions, active=~sim.done)
        pobs = policy_obs(obs, obs_type).numpy()
        for i in run:
            qpos_log[i].append(sim.qpos[i].copy())
    return [
        Trajectory(
            obs=np.stack(obs_log[i]),
            actions=np.stack(act_log[i]),
            qpos=np.stack(qpos_log[i]),
            mode=int(modes[i]),
            mode_used=int(sim.flags["mode"][i]),
            success=bool(sim.flags["success"][i]),
            seed=seeds[i],
        )
        for i in range(B)
    ]
