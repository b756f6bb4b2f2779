"""Frames of a recorded trajectory, replayed from its joint positions (no re-simulation)."""
from __future__ import annotations

import mujoco
import numpy as np

from .registry import as_env_task
from .render import make_renderer

__all__ = ["render_trajectory"]


def render_trajectory(
    env,
    qpos: np.ndarray,
    height: int = 240,
    width: int = 320,
    camera: str = "top",
    **task_kwargs,
) -> np.ndarray:
    """Frames ``[T, H, W, 3]`` (uint8) of joint positions ``qpos [T, nq]`` (no re-simulation).

    ``env`` is an env id (then ``K=...`` goes in ``task_kwargs``), an :class:`~mbc_lib.envs.EnvTask`,
    or an env made by :func:`mbc_lib.envs.make`. Trajectories come from ``collect_demos(...,
    return_trajectories=True)`` or ``evaluate(..., record=True)``.
    """
    task = as_env_task(env, **task_kwargs)
    qpos = np.asarray(qpos, dtype=np.float64)
    if qpos.ndim != 2 or qpos.shape[1] != task.model.nq:
        raise ValueError(f"qpos must be [T, nq={task.model.nq}], got {qpos.shape}")
    d = mujoco.MjData(task.model)
    renderer = make_renderer(task.model, height, width)
    frames = np.empty((len(qpos), height, width, 3), np.uint8)
    try:
        for t, q in enumerate(qpos):
            d.qpos[:] = q
            mujoco.mj_kinematics(task.model, d)  # body, geom and site poses ...
            mujoco.mj_camlight(task.model, d)  # ... and camera/light poses: all a picture needs
            renderer.update_scene(d, camera=camera)
            frames[t] = renderer.render()
    finally:
        renderer.close()
    return frames
