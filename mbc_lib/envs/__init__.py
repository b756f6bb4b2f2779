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

Modules: ``core`` (:class:`EnvTask`, what a robot task is, and :class:`BatchSim`, B episodes
in lockstep), one module per task (``path_env``, ``push_env``, ``push_divider_env``),
``registry`` (env id → task: :func:`make_env_task`, and the gymnasium ids), ``gym_env``
(:class:`MultimodalEnv`, :func:`make`). Around the tasks: scripted experts
(:func:`make_expert`), demonstrations as a :class:`~mbc_lib.data.ChunkDataset`
(:func:`collect_demos`), batched closed-loop evaluation of chunk policies (:func:`evaluate`),
and rendering (:func:`doctor`, :func:`render_trajectory`, :func:`save_video`).

Headless rendering: on Linux ``MUJOCO_GL`` defaults to ``egl`` here *if mujoco has not
been imported yet* (the backend is fixed when mujoco is first imported). Whatever
``MUJOCO_GL`` says, importing this package works: when the requested backend's library is
missing, mujoco is loaded without rendering and :func:`doctor` says what to install or set.
"""
from __future__ import annotations

from . import _gl

_gl.prepare()  # must happen before the first `import mujoco`

import gymnasium  # noqa: E402, F401  (registers the mbc/ environments below with it)

from .core import OBS_TYPES, BatchSim, EnvTask, episode_seeds  # noqa: E402
from .demos import Trajectory, collect_demos  # noqa: E402
from .evaluate import EvalResult, evaluate  # noqa: E402
from .experts import Expert, PathExpert, PushDividerExpert, PushExpert, make_expert  # noqa: E402
from .gym_env import MultimodalEnv, make  # noqa: E402
from .path_env import MODE_COLORS, PathTask  # noqa: E402
from .push_divider_env import PushDividerTask  # noqa: E402
from .push_env import PushTask  # noqa: E402
from .registry import ENV_IDS, ENV_TASKS, as_env_task, make_env_task  # noqa: E402  (also registers the gymnasium ids)
from .render import RenderDoctor, doctor, mp4_available, save_video, show_video, tile_videos  # noqa: E402
from .replay import render_trajectory  # noqa: E402

__all__ = [
    "ENV_IDS", "ENV_TASKS", "make", "make_env_task", "as_env_task", "EnvTask", "PathTask", "PushTask",
    "PushDividerTask", "BatchSim", "MultimodalEnv", "OBS_TYPES", "MODE_COLORS", "episode_seeds", "Expert",
    "PathExpert", "PushExpert", "PushDividerExpert", "make_expert",
    "Trajectory", "collect_demos", "EvalResult", "evaluate", "RenderDoctor", "doctor", "render_trajectory",
    "save_video", "show_video", "tile_videos", "mp4_available",
]  # fmt: skip
