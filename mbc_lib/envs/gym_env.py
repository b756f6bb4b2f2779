"""The gymnasium API on the robot tasks: :class:`MultimodalEnv` (one episode at a time) and :func:`make`.

The env is a :class:`~mbc_lib.envs.core.BatchSim` of size one, so an episode run here and the
same episode run inside :func:`mbc_lib.envs.evaluate` or :func:`mbc_lib.envs.collect_demos`
(same seed) are the same trajectory. Its ids are registered with gymnasium by
:mod:`mbc_lib.envs.registry`.
"""
from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

from ..validation import check_seed
from .core import BatchSim, as_float_array
from .registry import ENV_IDS, ENV_TASKS, make_env_task
from .render import make_renderer

__all__ = ["MultimodalEnv", "make"]


def make(env_id: str, **kwargs) -> MultimodalEnv:
    """A gymnasium env for ``env_id`` (keyword arguments: see :class:`MultimodalEnv`).

    Same as ``gymnasium.make(env_id, ...)`` without gymnasium's wrappers (faster; the
    env enforces its own time limit).
    """
    if env_id not in ENV_TASKS:
        raise ValueError(f"unknown env id {env_id!r}; known ids: {', '.join(ENV_IDS)}")
    return MultimodalEnv(env_id, **kwargs)


class MultimodalEnv(gymnasium.Env):
    """Gymnasium API for one episode at a time (a :class:`BatchSim` with ``B = 1``).

    Build it with :func:`mbc_lib.envs.make` or ``gymnasium.make(env_id, ...)``.

    Args:
        env_id: one of :data:`mbc_lib.envs.ENV_IDS`.
        K: number of modes (gaps / bins).
        obs_type: ``"state"`` (default) or ``"pixels"`` (64×64 top-down image).
        image_size: side of pixel observations.
        render_mode: ``None`` or ``"rgb_array"`` (``render()`` returns ``[H, W, 3]`` uint8).
        render_size: ``(height, width)`` of ``render()`` frames.
        max_steps: control steps before truncation (task default: 100).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(
        self,
        env_id: str,
        K: int = 2,
        obs_type: str = "state",
        image_size: int = 64,
        render_mode: str | None = None,
        render_size: tuple[int, int] = (240, 320),
        max_steps: int | None = None,
    ):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.task = make_env_task(env_id, K=K, max_steps=max_steps)
        self.sim = BatchSim(self.task, 1, obs_type=obs_type, image_size=image_size)
        self.render_mode = render_mode
        self.render_size = tuple(render_size)
        self._frame_renderer = None
        v = self.task.v_max
        self.action_space = gymnasium.spaces.Box(-v, v, shape=(self.task.action_dim,), dtype=np.float64)
        if obs_type == "state":
            self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, shape=(self.task.obs_dim,), dtype=np.float64)
        else:
            self.observation_space = gymnasium.spaces.Box(0, 255, shape=(image_size, image_size, 3), dtype=np.uint8)
        self.metadata = dict(self.metadata, render_fps=round(1.0 / self.task.control_dt))

    @property
    def K(self) -> int:
        return self.task.K

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=None if seed is None else check_seed(seed))  # seeds self.np_random exactly like np.random.default_rng(seed)
        obs = self.sim.reset([self.np_random])
        return obs[0], self.sim.info(0)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        if not self.sim.flags:
            raise RuntimeError("call reset() before step()")
        a = as_float_array(action, f"{self.task.env_id}: action", "a planar velocity (vx, vy) in m/s")
        if a.shape != (self.task.action_dim,):
            raise ValueError(
                f"{self.task.env_id}: action must have shape ({self.task.action_dim},) "
                f"(planar velocity (vx, vy) in m/s), got {a.shape}"
            )
        if self.sim.done[0]:
            raise RuntimeError("the episode has ended (terminated or truncated); call reset()")
        obs, reward, terminated, truncated = self.sim.step(a[None])
        return obs[0], float(reward[0]), bool(terminated[0]), bool(truncated[0]), self.sim.info(0)

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        if self._frame_renderer is None:
            self._frame_renderer = make_renderer(self.task.model, *self.render_size)
        self._frame_renderer.update_scene(self.sim.datas[0], camera="top")
        return self._frame_renderer.render()

    def close(self) -> None:
        self.sim.close()
        if self._frame_renderer is not None:
            self._frame_renderer.close()
            self._frame_renderer = None
