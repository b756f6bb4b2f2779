"""Scripted experts: one feedback controller per mode, chosen at random per episode.

An expert maps the *state* observation and a mode index to a velocity command:
``act(obs [B, obs_dim], modes [B], rngs) -> actions [B, 2]`` (m/s). It is a pure
function of (state, mode) plus optional Gaussian action noise drawn from per-episode
generators, so a demonstration is reproducible from its episode seed alone, whatever
batch it was collected in.

* :class:`PathExpert` — advance towards the wall at a steady pace while steering sideways
  onto the chosen gap, pass it, then head for the target. Its forward progress does not
  depend on the mode, so averaging two modes cancels only the steering: into the wall.
* :class:`PushExpert` — get behind the puck on the line from the chosen bin through the
  puck (walking around the puck if needed), then push along that line, steering
  sideways to keep the contact point centred.
* :class:`PushDividerExpert` — the same pusher for the divider task, lining up more precisely
  behind the puck before it pushes, so the puck heads for its bin, clear of the dividers, from
  the first touch.

All decide the mode in the very first steps (the heading differs per mode), which is
what makes the demonstrations multimodal *at the start state*. :meth:`Expert.chunks`
plans each mode's next H actions from any state: the ground-truth modes of the chunk
distribution there.
"""
from __future__ import annotations

from collections.abc import Sequence

import mujoco
import numpy as np

from .core import EnvTask, as_generator
from .path_env import PathTask
from .push_divider_env import PushDividerTask
from .push_env import PushTask
from .registry import as_env_task

__all__ = ["Expert", "PathExpert", "PushExpert", "PushDividerExpert", "make_expert"]


def _unit(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise unit vectors and norms of ``v [B, 2]`` (zero rows stay zero)."""
    n = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.maximum(n, 1e-9), n[:, 0]


class Expert:
    """Base class: validation, noise, clipping. Subclasses implement :meth:`command`.

    Args:
        task: the task (or build one with :func:`make_expert`).
        action_noise: std of Gaussian noise added to each command component (m/s).
        speed: cruise speed (m/s), at most the task's ``v_max``.
    """

    def __init__(self, task: EnvTask, action_noise: float = 0.0, speed: float | None = None):
        if not np.isfinite(action_noise) or action_noise < 0:
            raise ValueError(f"action_noise must be a finite std >= 0 (m/s), got {action_noise!r}")
        speed = 0.9 * task.v_max if speed is None else float(speed)
        if not 0 < speed <= task.v_max:
            raise ValueError(f"speed must be in (0, {task.v_max}] m/s, got {speed!r}")
        self.task, self.action_noise, self.speed = task, float(action_noise), speed
        self._scratch: list = []  # MjData for planning in chunks()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(K={self.task.K}, action_noise={self.action_noise}, speed={self.speed})"

    @property
    def K(self) -> int:
        return self.task.K

    def act(
        self,
        obs: np.ndarray,
        modes: Sequence[int] | np.ndarray,
        rngs: Sequence[np.random.Generator] | np.random.Generator | None = None,
    ) -> np.ndarray:
        """Velocity commands ``[B, 2]`` (m/s) for state observations ``obs [B, obs_dim]``.

        ``modes [B]`` picks the gap/bin per row; ``rngs`` (one Generator per row, or one
        shared) draws the action noise; ``None`` with ``action_noise > 0`` is an error.
        """
        obs = np.asarray(obs, dtype=np.float64)
        if obs.ndim == 1:
            obs = obs[None]
        if obs.ndim != 2 or obs.shape[1] != self.task.obs_dim:
            raise ValueError(f"obs must be [B, {self.task.obs_dim}] state observations, got {obs.shape}")
        modes = np.broadcast_to(np.asarray(modes, dtype=np.int64), (obs.shape[0],))
        if ((modes < 0) | (modes >= self.K)).any():
            raise ValueError(f"modes must be in [0, K={self.K}), got {np.unique(modes).tolist()}")
        a = self.command(obs, modes)
        if self.action_noise > 0:
            if rngs is None:
                raise ValueError("action_noise > 0 needs rngs (a Generator per episode) for reproducible noise")
            if isinstance(rngs, np.random.Generator):
                noise = rngs.normal(size=a.shape)
            else:
                if len(rngs) != len(a):
                    raise ValueError(f"need one generator per row: {len(rngs)} for {len(a)} rows")
                noise = np.stack([as_generator(r).normal(size=a.shape[1]) for r in rngs])
            a = a + self.action_noise * noise
        return np.clip(a, -self.task.v_max, self.task.v_max)

    def command(self, obs: np.ndarray, modes: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def chunks(self, obs: np.ndarray, modes: Sequence[int] | np.ndarray, H: int) -> np.ndarray:
        """The expert's next ``H`` actions from each state, ``[B, H, 2]`` (noise-free).

        State observations hold the full physics state, so the expert can *plan*: restore
        each state in a scratch simulator and run its own controller ``H`` control steps ahead.
        Calling this for every mode gives the ground-truth mode centres of the chunk
        distribution at ``obs`` — what a chunk policy should put its mass on.
        """
        obs = np.asarray(obs, dtype=np.float64)
        if obs.ndim != 2 or obs.shape[1] != self.task.obs_dim:
            raise ValueError(f"obs must be [B, {self.task.obs_dim}] state observations, got {obs.shape}")
        if not isinstance(H, (int, np.integer)) or H < 1:
            raise ValueError(f"H must be an integer >= 1, got {H!r}")
        B, m = len(obs), self.task.model
        modes = np.broadcast_to(np.asarray(modes, dtype=np.int64), (B,))
        if ((modes < 0) | (modes >= self.K)).any():
            raise ValueError(f"modes must be in [0, K={self.K}), got {np.unique(modes).tolist()}")
        while len(self._scratch) < B:
            self._scratch.append(mujoco.MjData(m))
        qpos, qvel = self.task.state_from_obs(obs)
        out = np.empty((B, H, self.task.action_dim))
        state = obs.copy()
        for i in range(B):
            d = self._scratch[i]
            mujoco.mj_resetData(m, d)
            d.qpos[:], d.qvel[:] = qpos[i], qvel[i]
        for h in range(H):  # noise-free closed loop inside the plan
            out[:, h] = a = np.clip(self.command(state, modes), -self.task.v_max, self.task.v_max)
            for i in range(B):
                d = self._scratch[i]
                d.ctrl[:] = a[i]
                mujoco.mj_step(m, d, self.task.frame_skip)
            q = np.stack([self._scratch[i].qpos for i in range(B)])
            v = np.stack([self._scratch[i].qvel for i in range(B)])
            state = self.task.observe(q, v)
        return out


class PathExpert(Expert):
    """Through gap ``mode`` to the target (see the module docstring).

    Below the wall the expert is *committed*: it advances at a constant forward speed
    ``v_k`` (one per gap) and steers sideways onto the gap with a saturated P-controller,
    ``vx = clip(k·(x_k − x), ±v_lat)``. ``v_k`` is as fast as allows the steering to finish
    (to a quarter of the gap's clearance) before the wall from every start the task draws. Past the
    wall it heads straight for the target. Because forward progress does not depend on
    the mode, a policy that averages two modes keeps advancing while its sideways
    commands cancel — straight into the wall between the gaps, even in closed loop.
    """

    task: PathTask

    def __init__(
        self,
        task: PathTask,
        action_noise: float = 0.0,
        speed: float | None = None,
        steer_gain: float = 15.0,
        lateral_speed: float = 0.5,
    ):
        super().__init__(task, action_noise, speed)
        if steer_gain <= 0 or not 0 < lateral_speed <= task.v_max:
            raise ValueError(f"need steer_gain > 0 and lateral_speed in (0, {task.v_max}]")
        self.steer_gain = steer_gain  # 1/s, sideways P gain (time constant 1/k)
        self.lateral_speed = lateral_speed  # m/s, sideways speed limit
        self.forward = self._forward_speeds()  # [K] m/s

    def _forward_speeds(self) -> np.ndarray:
        t, k, v = self.task, self.steer_gain, self.lateral_speed
        lateral = np.abs(t.gap_centers - t.start[0]) + t.start_jitter[0]  # worst-case sideways distance (m)
        tol = 0.25 * (t.gap_width / 2 - t.radius)  # m, residual offset allowed at the wall
        saturated = np.maximum(lateral - v / k, 0.0) / v  # s at full sideways speed ...
        tail = np.log(np.maximum(np.minimum(lateral, v / k) / tol, 1.0)) / k  # ... then exponential approach
        t_align = 1.15 * (saturated + tail) + 0.04  # margin for the actuator lag and noise
        room = (t.wall_y - t.wall_half - t.radius) - (t.start[1] + t.start_jitter[1])  # m before the wall
        return np.minimum(self.speed, room / t_align)

    def command(self, obs: np.ndarray, modes: np.ndarray) -> np.ndarray:
        t = self.task
        p = obs[:, :2]
        gx = t.gap_centers[modes]  # [B]
        steer = np.clip(self.steer_gain * (gx - p[:, 0]), -self.lateral_speed, self.lateral_speed)
        approach = np.stack([steer, self.forward[modes]], axis=1)  # below the wall and through the gap
        to_target, _ = _unit(np.asarray(t.target)[None] - p)
        past = p[:, 1] > t.wall_top + 0.01  # clear of the wall (1 cm margin)
        return np.where(past[:, None], self.speed * to_target, approach)


class PushExpert(Expert):
    """Push the puck into bin ``mode`` (see the module docstring)."""

    task: PushTask

    def __init__(
        self,
        task: PushTask,
        action_noise: float = 0.0,
        speed: float | None = None,
        push_speed: float = 0.35,
        standoff: float = 0.025,
        push_angle: float = 30.0,
    ):
        super().__init__(task, action_noise, speed)
        self.push_angle = push_angle  # degrees: push once this close to behind the puck
        self.push_speed = push_speed  # m/s along the push line
        self.standoff = standoff  # m, gap kept from the puck while walking behind it

    def command(self, obs: np.ndarray, modes: np.ndarray) -> np.ndarray:
        t = self.task
        p, q = obs[:, 0:2], obs[:, 4:6]  # pusher, puck  [B, 2]
        u, _ = _unit(t.bin_centers[modes] - q)  # push direction: puck -> bin
        rs = t.pusher_radius + t.puck_radius  # centre distance at contact
        rel = p - q
        rel_dir, dist = _unit(rel)
        cos_behind = np.sum(rel_dir * -u, axis=1)  # 1 when the pusher is exactly behind the puck
        aligned = (cos_behind > np.cos(np.deg2rad(self.push_angle))) & (dist < rs + self.standoff + 0.012)

        # Push: along u, plus a sideways correction that re-centres the pusher behind the puck.
        lateral = rel - np.sum(rel * -u, axis=1, keepdims=True) * -u  # offset perpendicular to the line
        v_push = self.push_speed * u - 8.0 * lateral

        # Walk to the staging point behind the puck; go around the puck if the way is blocked.
        stage = q - (rs + self.standoff) * u
        seg = stage - p
        lam = np.clip(np.sum((q - p) * seg, axis=1) / np.maximum(np.sum(seg * seg, axis=1), 1e-12), 0.0, 1.0)
        closest = np.linalg.norm(p + lam[:, None] * seg - q, axis=1)
        blocked = closest < rs + 0.008
        to_stage, d_stage = _unit(seg)
        v_stage = to_stage * np.minimum(self.speed, 12.0 * d_stage + 0.1)[:, None]
        # Tangential detour: rotate around the puck towards the side facing away from the bin,
        # while holding the standoff radius.
        tangent = np.stack([-rel_dir[:, 1], rel_dir[:, 0]], axis=1)  # +90° around the puck
        cross = rel_dir[:, 0] * -u[:, 1] - rel_dir[:, 1] * -u[:, 0]  # z of rel_dir × (−u)
        turn = np.sign(cross)[:, None]  # which way round is shorter
        turn = np.where(turn == 0, 1.0, turn)
        radial = (rs + self.standoff - dist)[:, None] * rel_dir * 8.0
        v_around = self.speed * turn * tangent + radial

        return np.where(aligned[:, None], v_push, np.where(blocked[:, None], v_around, v_stage))


class PushDividerExpert(PushExpert):
    """Push the puck past the dividers into bin ``mode`` (``mbc/PushDivider-v0``).

    :class:`PushExpert` with a tighter alignment before pushing (within ``push_angle`` = 10° of
    the line from the bin through the puck, instead of 30°): a push that starts further off that
    line sends the puck closer to straight ahead, into the divider's tip. The side is chosen
    when the pusher starts to walk round the puck, before the puck moves.
    """

    task: PushDividerTask

    def __init__(self, task: PushDividerTask, action_noise: float = 0.0, speed: float | None = None,
                 push_speed: float = 0.35, standoff: float = 0.025, push_angle: float = 10.0):
        super().__init__(task, action_noise, speed, push_speed=push_speed, standoff=standoff, push_angle=push_angle)


def make_expert(env: str | EnvTask, action_noise: float = 0.0, **kwargs) -> Expert:
    """The scripted expert of a task, from an env id (``K=...`` etc. go to the task) or an EnvTask."""
    task = as_env_task(env, **{k: kwargs.pop(k) for k in list(kwargs) if k in ("K", "max_steps")})
    if isinstance(task, PathTask):
        return PathExpert(task, action_noise=action_noise, **kwargs)
    if isinstance(task, PushDividerTask):
        return PushDividerExpert(task, action_noise=action_noise, **kwargs)
    if isinstance(task, PushTask):
        return PushExpert(task, action_noise=action_noise, **kwargs)
    raise ValueError(f"no scripted expert for task {type(task).__name__}")  # pragma: no cover
