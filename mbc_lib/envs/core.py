"""The engine under every robot task: a task description and a batched simulator.

* :class:`EnvTask` — what a robot task *is*: its MJCF model, how an episode starts, what the
  policy observes, when it succeeds, which mode it used. Subclasses live in
  ``path_env.py`` (K gaps in a wall), ``push_env.py`` (K bins for a puck) and
  ``push_divider_env.py`` (bins behind a divider); ``registry.py`` maps env ids to them.
  (The synthetic tasks with known modes are :class:`mbc_lib.tasks.Task`, another thing.)
* :class:`BatchSim` — ``B`` copies of one task stepped in lockstep: one ``MjData`` per
  episode, one shared ``MjModel``, task logic vectorised over the batch in numpy.
  Evaluation, demo collection and the single gymnasium env (``gym_env.py``) all run through
  it, so a seed gives the *same* trajectory whichever of them runs it.

Time: MuJoCo integrates with ``timestep`` (2 ms); one control step holds the action
for ``frame_skip`` physics steps (10), so the policy acts at 50 Hz and an episode of
at most ``max_steps`` (100) control steps lasts at most 2 s of simulated time.
Units: metres, seconds, m/s; actions are planar end-effector velocity commands.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, ClassVar

import mujoco
import numpy as np

from ..validation import check_seed
from .render import make_renderer

__all__ = ["EnvTask", "BatchSim", "OBS_TYPES", "as_generator", "episode_seeds", "planar_scene"]

#: ``state``: low-dimensional state ``[obs_dim]`` (float64);
#: ``pixels``: a top-down RGB image ``[S, S, 3]`` (uint8), ``S = image_size``.
OBS_TYPES = ("state", "pixels")


@functools.lru_cache(maxsize=32)
def _compile(xml: str) -> mujoco.MjModel:
    """MJCF string -> MjModel, compiled once per distinct model (models are read-only here)."""
    return mujoco.MjModel.from_xml_string(xml)


def planar_scene(model: str, timestep: float, world: str, joints: tuple[str, str], kv: float, v_max: float) -> str:
    """MJCF of a top-down table scene shared by the robot tasks.

    ``world``: the task's geoms, sites and bodies inside ``<worldbody>`` (after the light,
    the ``top`` camera and the floor). ``joints``: the x and y slide joints that get velocity
    actuators ``vx``, ``vy`` with gain ``kv`` (N·s/m) and commands limited to ±``v_max`` (m/s).
    """
    v = v_max
    return f"""
<mujoco model="{model}">
  <option timestep="{timestep}" integrator="implicitfast"/>
  <size memory="256K"/>  <!-- arena per MjData: ~3 KB used; the 13 MB default makes B envs slow to allocate -->
  <visual>
    <global offwidth="640" offheight="480"/><quality shadowsize="0"/>
    <headlight ambient=".35 .35 .35" diffuse=".35 .35 .35" specular="0 0 0"/>
  </visual>
  <worldbody>
    <light pos="0 0 1.5" dir="0 0 -1" directional="true" diffuse=".5 .5 .5" specular="0 0 0"/>
    <camera name="top" pos="0 0 0.85" xyaxes="1 0 0 0 1 0" fovy="45"/>
    <geom name="floor" type="plane" size="0.6 0.45 0.01" rgba=".9 .9 .87 1" contype="0" conaffinity="0"/>
{world}
  </worldbody>
  <actuator>
    <velocity name="vx" joint="{joints[0]}" kv="{kv}" ctrlrange="{-v} {v}" ctrllimited="true"/>
    <velocity name="vy" joint="{joints[1]}" kv="{kv}" ctrlrange="{-v} {v}" ctrllimited="true"/>
  </actuator>
</mujoco>"""


def as_float_array(x: Any, name: str, what: str) -> np.ndarray:
    """``x`` as a float64 array, or a ``TypeError`` that says what was expected."""
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be numbers ({what}), got {x!r:.80} ({err})") from None
    return a


def episode_seeds(seed: int, n: int) -> np.ndarray:
    """``n`` per-episode seeds (uint32) derived from one ``seed``.

    Episode ``i`` of ``evaluate(..., seed)`` / ``collect_demos(..., seed)`` starts exactly
    like ``env.reset(seed=int(episode_seeds(seed, n)[i]))`` — replay any single episode.
    """
    seed = check_seed(seed)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n (number of episodes) must be an integer >= 0, got {n!r}")
    return np.random.SeedSequence(seed).generate_state(max(int(n), 1), dtype=np.uint32)[:n]


def as_generator(seed: int | np.random.Generator | None) -> np.random.Generator:
    """A numpy Generator from a seed (same rule as gymnasium's ``reset(seed=...)``): a
    Generator is used as is, None draws fresh entropy, an int must be a valid seed."""
    if isinstance(seed, np.random.Generator) or seed is None:
        return seed if seed is not None else np.random.default_rng()
    return np.random.default_rng(check_seed(seed))


class EnvTask:
    """What a robot task is. Subclasses fill in the model and the episode logic.

    Args:
        K: number of modes (gaps / bins), ``1 <= K <= max_K``.
        max_steps: control steps before an episode is truncated (default per task).
    """

    env_id: ClassVar[str] = "?"
    max_K: ClassVar[int] = 6
    failure_key: ClassVar[str] = "?"  # the info flag that names this task's typical failure
    action_dim: ClassVar[int] = 2  # planar velocity command (vx, vy) in m/s
    obs_dim: ClassVar[int] = 0
    obs_names: ClassVar[tuple[str, ...]] = ()
    timestep: ClassVar[float] = 0.002  # s, MuJoCo integration step
    frame_skip: ClassVar[int] = 10  # physics steps per control step -> 50 Hz control
    default_max_steps: ClassVar[int] = 100
    v_max: ClassVar[float] = 0.5  # m/s, bound of each action component
    check_contacts: ClassVar[bool] = False  # record any contact in a substep as a "collision"
    failure_is_final: ClassVar[bool] = False  # once the failure flag is set, the episode cannot succeed any more

    def __init__(self, K: int = 2, max_steps: int | None = None):
        if isinstance(K, bool) or not isinstance(K, (int, np.integer)):
            raise ValueError(f"K (number of modes) must be an integer, got {K!r}")
        if not 1 <= K <= self.max_K:
            raise ValueError(
                f"{self.env_id}: K (number of modes) must be in [1, {self.max_K}], got {K}; "
                f"more modes do not fit the arena with the clearances the expert needs"
            )
        max_steps = self.default_max_steps if max_steps is None else max_steps
        if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
            raise ValueError(f"max_steps must be an integer >= 1, got {max_steps!r}")
        self.K = int(K)
        self.max_steps = int(max_steps)
        self.model = _compile(self.xml())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(K={self.K}, max_steps={self.max_steps})"

    @property
    def control_dt(self) -> float:
        """Seconds per control step."""
        return self.timestep * self.frame_skip

    # -- to be provided by each task ----------------------------------------------
    def xml(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def initial_qpos(self, rng: np.random.Generator) -> np.ndarray:  # pragma: no cover - abstract
        """Joint positions ``[nq]`` at the start of an episode, drawn with ``rng``."""
        raise NotImplementedError

    def observe(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """State observations ``[B, obs_dim]`` from ``qpos [B, nq]``, ``qvel [B, nv]``."""
        raise NotImplementedError

    def state_from_obs(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - abstract
        """Inverse of :meth:`observe`: ``(qpos [B, nq], qvel [B, nv])`` (state obs hold the full state)."""
        raise NotImplementedError

    def contact_possible(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        """``[B]`` bool: could a contact that counts as a collision happen within the next control step?

        Only consulted when ``check_contacts``; episodes where it is False are stepped in one
        C call instead of substep by substep (the default, True everywhere, is always correct).
        """
        return np.ones(len(qpos), bool)

    def new_flags(self, n: int, qpos: np.ndarray) -> dict[str, np.ndarray]:
        """Per-episode bookkeeping arrays at reset (``success``, ``mode``, the failure flag...)."""
        return {
            "success": np.zeros(n, bool),
            "mode": np.full(n, -1, np.int64),
            self.failure_key: np.zeros(n, bool),
        }

    def update(
        self, flags: dict[str, np.ndarray], qpos: np.ndarray, qvel: np.ndarray, contact: np.ndarray, idx: np.ndarray
    ) -> np.ndarray:  # pragma: no cover - abstract
        """Advance the bookkeeping of episodes ``idx`` after a control step; return ``terminated [len(idx)]``."""
        raise NotImplementedError


class BatchSim:
    """``B`` episodes of one task, stepped together.

    Physics stays exact MuJoCo (one ``MjData`` per episode); what is batched is everything
    around it: the policy call, observation assembly, success and mode logic (numpy over
    ``[B, ...]``). A control step is one ``mj_step(nstep=frame_skip)`` C call per episode,
    or — for tasks that count contacts, and only where the task says a contact is possible
    — ``frame_skip`` single steps with a contact check after each. Episodes that have
    ended are frozen (not stepped).

    Args:
        task: an :class:`EnvTask`.
        n_envs: B, the number of episodes run in lockstep (each :meth:`reset` may change it).
        obs_type: ``"state"`` or ``"pixels"`` (see :data:`OBS_TYPES`).
        image_size: side S of pixel observations (pixels).
    """

    def __init__(self, task: EnvTask, n_envs: int, obs_type: str = "state", image_size: int = 64):
        if not isinstance(n_envs, (int, np.integer)) or n_envs < 1:
            raise ValueError(f"n_envs must be an integer >= 1, got {n_envs!r}")
        if obs_type not in OBS_TYPES:
            raise ValueError(f"obs_type must be one of {OBS_TYPES}, got {obs_type!r}")
        if not isinstance(image_size, (int, np.integer)) or not 8 <= image_size <= 480:
            raise ValueError(f"image_size must be an integer in [8, 480], got {image_size!r}")
        self.task = task
        self.model = task.model
        self.obs_type = obs_type
        self.image_size = int(image_size)
        self.datas: list[mujoco.MjData] = []  # grows on demand; an MjData costs ~0.5 ms to allocate
        self._resize(int(n_envs))
        self.done[:] = True  # nothing runs before reset()
        self.flags: dict[str, np.ndarray] = {}
        self._renderer = None
        lo, hi = self.model.actuator_ctrlrange.T
        self._lo, self._hi = lo.copy(), hi.copy()

    def _resize(self, n: int) -> None:
        while len(self.datas) < n:
            self.datas.append(mujoco.MjData(self.model))
        self.n = n
        self.qpos = np.zeros((n, self.model.nq))
        self.qvel = np.zeros((n, self.model.nv))
        self.steps = np.zeros(n, np.int64)
        self.done = np.zeros(n, bool)

    # -- episode start ------------------------------------------------------------
    def reset(self, seeds: Sequence[int | np.random.Generator | None]) -> np.ndarray:
        """Start ``B = len(seeds)`` new episodes, episode ``i`` drawn from ``seeds[i]``; returns observations.

        ``B`` may differ from the previous batch (simulators are reused and added as needed).
        """
        if len(seeds) < 1:
            raise ValueError("need at least one seed (one per episode)")
        self._resize(len(seeds))
        for d, s in zip(self.datas, seeds):
            mujoco.mj_resetData(self.model, d)
            d.qpos[:] = self.task.initial_qpos(as_generator(s))
            mujoco.mj_forward(self.model, d)
        self._gather(np.arange(self.n))
        self.steps[:] = 0
        self.done[:] = False
        self.flags = self.task.new_flags(self.n, self.qpos)
        return self.observe()

    # -- one control step ---------------------------------------------------------
    def check_actions(self, actions: Any) -> np.ndarray:
        """Validate and clip actions ``[B, action_dim]`` (m/s); raise ``ValueError`` on bad input."""
        a = as_float_array(actions, f"{self.task.env_id}: actions", "one planar velocity (vx, vy) in m/s per episode")
        shape = (self.n, self.task.action_dim)
        if a.shape != shape:
            raise ValueError(
                f"{self.task.env_id}: actions must have shape {shape} (one planar velocity command "
                f"(vx, vy) in m/s per episode), got {a.shape}"
            )
        bad = ~np.isfinite(a).all(axis=1)
        if bad.any():
            raise ValueError(
                f"{self.task.env_id}: non-finite actions (NaN/inf) for episode(s) {np.flatnonzero(bad).tolist()}; "
                "check the policy output (e.g. diverged training or a missing normaliser)"
            )
        # Out-of-range commands are clipped, as the actuators' ctrlrange would do anyway.
        return np.clip(a, self._lo, self._hi)

    def step(self, actions: Any, active: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """Apply ``actions [B, 2]`` for one control step to the running episodes.

        Returns ``(obs, reward [B], terminated [B], truncated [B])``; per-episode
        bookkeeping (``success``, ``mode``, failure flag) is in :attr:`flags`.
        Episodes already done (or outside ``active``) are not stepped.
        """
        a = self.check_actions(actions)
        run = ~self.done if active is None else (~self.done & np.asarray(active, bool))
        idx = np.flatnonzero(run)
        contact = np.zeros(self.n, bool)
        m, fs, mj_step = self.model, self.task.frame_skip, mujoco.mj_step
        near = self.task.check_contacts & self.task.contact_possible(self.qpos, self.qvel)  # [B]
        for i in idx:
            d = self.datas[i]
            d.ctrl[:] = a[i]
            if near[i]:
                # Step substep by substep so that a brief touch inside a control step is not missed.
                hit = False
                for _ in range(fs):
                    mj_step(m, d)
                    hit = hit or d.ncon > 0
                contact[i] = hit
            else:
                mj_step(m, d, fs)
        self._gather(idx)
        self.steps[idx] += 1
        terminated = np.zeros(self.n, bool)
        was_success = self.flags["success"].copy()
        terminated[idx] = self.task.update(self.flags, self.qpos, self.qvel, contact, idx)
        truncated = np.zeros(self.n, bool)
        truncated[idx] = ~terminated[idx] & (self.steps[idx] >= self.task.max_steps)
        self.done |= terminated | truncated
        reward = (self.flags["success"] & ~was_success).astype(np.float64)  # sparse: 1 on the success step
        return self.observe(), reward, terminated, truncated

    def _gather(self, idx: np.ndarray) -> None:
        for i in idx:
            self.qpos[i] = self.datas[i].qpos
            self.qvel[i] = self.datas[i].qvel

    # -- observations -------------------------------------------------------------
    def state(self) -> np.ndarray:
        """Low-dimensional state observations ``[B, obs_dim]`` (float64; what experts read)."""
        return self.task.observe(self.qpos, self.qvel)

    def observe(self) -> np.ndarray:
        """Observations of the chosen ``obs_type``: ``[B, obs_dim]`` or ``[B, S, S, 3]`` uint8."""
        if self.obs_type == "state":
            return self.state()
        if self._renderer is None:
            self._renderer = make_renderer(self.model, self.image_size, self.image_size)
        frames = np.empty((self.n, self.image_size, self.image_size, 3), np.uint8)
        for i, d in enumerate(self.datas[: self.n]):
            self._renderer.update_scene(d, camera="top")
            frames[i] = self._renderer.render()
        return frames

    def info(self, i: int) -> dict[str, Any]:
        """The gymnasium ``info`` dict of episode ``i`` (python scalars)."""
        out = {k: v[i].item() for k, v in self.flags.items() if not k.startswith("_")}
        out["steps"] = int(self.steps[i])
        return out

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
