"""MuJoCo robot tasks that are multimodal by construction (chapters 8–9).

Three tasks, own MJCF models, gymnasium API, registered ids:

============================  =========================================  =======  ========
id                            what                                       obs dim  action
============================  =========================================  =======  ========
``mbc/PathGaps-v0``           reach a target through one of K gaps       4        (vx, vy)
``mbc/PushBins-v0``           push a puck into one of K bins             8        (vx, vy)
``mbc/PushDivider-v0``        push a puck past a divider into a bin      8        (vx, vy)
============================  =========================================  =======  ========

Actions are planar velocity commands in m/s (|component| ≤ 0.5), control at 50 Hz,
episodes of at most 100 steps (2 s). ``info`` carries ``success``, ``mode`` (gap/bin
index, −1 if none) and the task's failure flag (``collision`` with the wall or a
divider / ``between_bins``).

Around the tasks: scripted experts (:func:`make_expert`), demonstrations as a
:class:`~mbc_lib.data.ChunkDataset` (:func:`collect_demos`), batched closed-loop
evaluation of chunk policies (:func:`evaluate`), and rendering (:func:`doctor`,
:func:`render_trajectory`, :func:`save_video`).

Headless rendering: on Linux ``MUJOCO_GL`` defaults to ``egl`` here *if mujoco has not
been imported yet* (the backend is fixed when mujoco is first imported). Whatever
``MUJOCO_GL`` says, importing this package works: when the requested backend's library is
missing, mujoco is loaded without rendering and :func:`doctor` says what to install or set.
"""
from __future__ import annotations

from . import _gl

_gl.prepare()  # must happen before the first `import mujoco`

import gymnasium  # noqa: E402

from .core import OBS_TYPES, BatchSim, MultimodalEnv, Task, episode_seeds  # noqa: E402
from .demos import Trajectory, collect_demos  # noqa: E402
from .evaluate import EvalResult, evaluate  # noqa: E402
from .experts import Expert, PathExpert, PushDividerExpert, PushExpert, make_expert  # noqa: E402
from .path_env import MODE_COLORS, PathTask  # noqa: E402
from .push_divider_env import PushDividerTask  # noqa: E402
from .push_env import PushTask  # noqa: E402
from .render import RenderDoctor, doctor, mp4_available, render_trajectory, save_video, show_video, tile_videos  # noqa: E402

__all__ = [
    "ENV_IDS", "TASKS", "make", "make_task", "Task", "PathTask", "PushTask", "PushDividerTask", "BatchSim", "MultimodalEnv",
    "OBS_TYPES", "MODE_COLORS", "episode_seeds", "Expert", "PathExpert", "PushExpert", "PushDividerExpert",
    "make_expert",
    "Trajectory", "collect_demos", "EvalResult", "evaluate", "RenderDoctor", "doctor", "render_trajectory",
    "save_video", "show_video", "tile_videos", "mp4_available",
]  # fmt: skip

#: env id -> task class
TASKS: dict[str, type[Task]] = {
    PathTask.env_id: PathTask, PushTask.env_id: PushTask, PushDividerTask.env_id: PushDividerTask,
}
#: The registered env ids (gymnasium ids too: ``gymnasium.make("mbc/PathGaps-v0", K=3)``).
ENV_IDS: tuple[str, ...] = tuple(TASKS)


def make_task(env_id: str, K: int = 2, max_steps: int | None = None) -> Task:
    """The :class:`Task` (model + episode logic, no simulator state) of ``env_id``."""
    if env_id not in TASKS:
        raise ValueError(f"unknown env id {env_id!r}; known ids: {', '.join(ENV_IDS)}")
    return TASKS[env_id](K=K, max_steps=max_steps)


def make(env_id: str, **kwargs) -> MultimodalEnv:
    """A gymnasium env for ``env_id`` (keyword arguments: see :class:`MultimodalEnv`).

    Same as ``gymnasium.make(env_id, ...)`` without gymnasium's wrappers (faster; the
    env enforces its own time limit).
    """
    if env_id not in TASKS:
        raise ValueError(f"unknown env id {env_id!r}; known ids: {', '.join(ENV_IDS)}")
    return MultimodalEnv(env_id, **kwargs)


for _id in ENV_IDS:
    if _id not in gymnasium.registry:
        gymnasium.register(id=_id, entry_point="mbc_lib.envs.core:MultimodalEnv", kwargs={"env_id": _id})
