"""The robot tasks by env id: :data:`ENV_TASKS`, :data:`ENV_IDS`, :func:`make_env_task`.

Importing this module also registers the ids with gymnasium, so that
``gymnasium.make("mbc/PathGaps-v0", K=3)`` builds a :class:`~mbc_lib.envs.gym_env.MultimodalEnv`.
"""
from __future__ import annotations

from typing import Any

import gymnasium

from .core import EnvTask
from .path_env import PathTask
from .push_divider_env import PushDividerTask
from .push_env import PushTask

__all__ = ["ENV_TASKS", "ENV_IDS", "make_env_task", "as_env_task"]

#: env id -> robot task class
ENV_TASKS: dict[str, type[EnvTask]] = {
    PathTask.env_id: PathTask, PushTask.env_id: PushTask, PushDividerTask.env_id: PushDividerTask,
}
#: The registered env ids (gymnasium ids too: ``gymnasium.make("mbc/PathGaps-v0", K=3)``).
ENV_IDS: tuple[str, ...] = tuple(ENV_TASKS)


def make_env_task(env_id: str, K: int = 2, max_steps: int | None = None) -> EnvTask:
    """The :class:`~mbc_lib.envs.core.EnvTask` (model + episode logic, no simulator state) of ``env_id``."""
    if env_id not in ENV_TASKS:
        raise ValueError(f"unknown env id {env_id!r}; known ids: {', '.join(ENV_IDS)}")
    return ENV_TASKS[env_id](K=K, max_steps=max_steps)


def as_env_task(env: Any, **task_kwargs: Any) -> EnvTask:
    """The task behind ``env``: an :class:`~mbc_lib.envs.core.EnvTask` as it is, an env made by
    :func:`mbc_lib.envs.make` or ``gymnasium.make`` (its ``task``), or an env id (built with
    ``task_kwargs``, e.g. ``K=3``)."""
    env = getattr(env, "unwrapped", env)  # gymnasium.make() wraps the env
    if isinstance(env, EnvTask):
        return env
    task = getattr(env, "task", None)
    return task if isinstance(task, EnvTask) else make_env_task(env, **task_kwargs)


for _id in ENV_IDS:
    if _id not in gymnasium.registry:
        gymnasium.register(id=_id, entry_point="mbc_lib.envs.gym_env:MultimodalEnv", kwargs={"env_id": _id})
