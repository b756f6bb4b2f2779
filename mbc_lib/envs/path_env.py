"""Task 1, *path multimodality*: reach a target behind a wall through one of K gaps.

Top view (metres)::

        y
     0.2 |              (T)                 T = target, success within 3 cm
         |
     0.0 |=====  ======  ======  =====      wall with K gaps (here K = 3)
         |
    -0.2 |              (E)                 E = end effector at the start (± jitter)
         +------------------------------- x   arena x ∈ [-0.3, 0.3]

The end effector is a sphere on two slide joints driven by velocity actuators
(force = k_v·(u − ẋ), time constant 20 ms). Action ``u = (vx, vy)`` in m/s, each
component in [−0.5, 0.5]. Observation ``[x, y, vx, vy]`` (m, m/s).

Gap ``k`` is centred at ``x_k = −0.3 + (k + ½)·0.6/K``; walls fill the space between
gaps, so the *average* of two neighbouring gap paths runs straight into the wall —
the failure a mode-averaging policy shows. ``info``: ``success`` (target reached with
no wall contact in the whole episode), ``mode`` (index of the gap the effector first
passed, −1 before), ``collision`` (any wall contact so far).
"""
from __future__ import annotations

import functools

import numpy as np

from .core import EnvTask, planar_scene

__all__ = ["PathTask", "MODE_COLORS"]

#: One RGBA colour per mode index (gaps, bins) — also used by the book's figures.
MODE_COLORS = (
    (0.12, 0.47, 0.71, 1), (1.00, 0.50, 0.05, 1), (0.17, 0.63, 0.17, 1),
    (0.84, 0.15, 0.16, 1), (0.58, 0.40, 0.74, 1), (0.55, 0.34, 0.29, 1),
)  # fmt: skip


def rgba(c) -> str:
    return " ".join(f"{v:.3g}" for v in c)


class PathTask(EnvTask):
    """Reach the target behind a wall through one of ``K`` gaps (see the module docstring)."""

    env_id = "mbc/PathGaps-v0"
    failure_key = "collision"
    obs_dim = 4
    obs_names = ("x", "y", "vx", "vy")
    check_contacts = True  # the only contact pair in this model is effector–wall
    failure_is_final = True  # success needs a collision-free episode

    half_width = 0.3  # m, arena |x| bound (joint range of the effector, minus its radius)
    y_range = (-0.25, 0.25)  # m, joint range of y
    radius = 0.012  # m, effector sphere
    wall_y, wall_half = 0.0, 0.01  # m, wall centre line and half thickness
    start = (0.0, -0.2)  # m, nominal start; jitter below
    start_jitter = (0.03, 0.01)  # m, uniform ± in x, y
    target = (0.0, 0.2)  # m
    target_radius = 0.03  # m, success distance
    kv = 10.0  # N·s/m, velocity-actuator gain (mass 0.2 kg -> 20 ms time constant)

    @functools.cached_property
    def gap_centers(self) -> np.ndarray:
        """x position of each gap centre, ``[K]`` (m)."""
        spacing = 2 * self.half_width / self.K
        return -self.half_width + (np.arange(self.K) + 0.5) * spacing

    @property
    def gap_width(self) -> float:
        """Opening of each gap (m): 8 cm, or half the spacing when K is large."""
        return float(min(0.08, 0.5 * 2 * self.half_width / self.K))

    @property
    def wall_top(self) -> float:
        """y above which the effector is past the wall (m)."""
        return self.wall_y + self.wall_half + self.radius

    def xml(self) -> str:
        A, r, wy, wh = self.half_width, self.radius, self.wall_y, self.wall_half
        edges = [-A - 0.03]
        for g in self.gap_centers:
            edges += [g - self.gap_width / 2, g + self.gap_width / 2]
        edges.append(A + 0.03)
        walls = []
        for j in range(0, len(edges), 2):  # wall segments between consecutive gaps
            lo, hi = edges[j], edges[j + 1]
            walls.append(
                f'<geom name="wall{j // 2}" type="box" pos="{(lo + hi) / 2:.5f} {wy} 0.015" '
                f'size="{(hi - lo) / 2:.5f} {wh} 0.015" rgba=".25 .25 .3 1" contype="2" conaffinity="1"/>'
            )
        markers = "\n".join(
            f'<site name="gap{k}" pos="{g:.5f} {wy} 0.001" type="box" size="{self.gap_width / 2:.5f} {wh} 0.001" '
            f'rgba="{rgba(MODE_COLORS[k % len(MODE_COLORS)][:3] + (0.6,))}"/>'  # the gap, coloured by mode
            for k, g in enumerate(self.gap_centers)
        )
        world = f"""    {"".join(walls)}
    {markers}
    <site name="target" pos="{self.target[0]} {self.target[1]} 0.001" type="cylinder"
          size="{self.target_radius} 0.001" rgba=".15 .15 .15 .3"/>
    <body name="effector" pos="0 0 {r}">
      <joint name="x" type="slide" axis="1 0 0" range="{-A + r} {A - r}" limited="true"/>
      <joint name="y" type="slide" axis="0 1 0" range="{self.y_range[0]} {self.y_range[1]}" limited="true"/>
      <geom name="effector" type="sphere" size="{r}" mass="0.2" rgba=".85 .2 .2 1" contype="1" conaffinity="2"/>
    </body>
"""
        return planar_scene(f"path_gaps_K{self.K}", self.timestep, world.rstrip("\n"), ("x", "y"), self.kv, self.v_max)

    def initial_qpos(self, rng: np.random.Generator) -> np.ndarray:
        jitter = rng.uniform(-1.0, 1.0, size=2) * np.asarray(self.start_jitter)
        return np.asarray(self.start) + jitter

    def observe(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        return np.concatenate([qpos, qvel], axis=1)  # [B, 4] = (x, y, vx, vy)

    def state_from_obs(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return obs[:, :2], obs[:, 2:4]

    def contact_possible(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        # The effector cannot reach the wall within one control step when it is further away
        # than it can travel: |Δy| ≤ (max(|vy|, v_max) + 0.1 m/s)·Δt. Far from the wall the
        # simulator may then run the whole control step in one C call (no per-substep check).
        reach = (np.maximum(np.abs(qvel[:, 1]), self.v_max) + 0.1) * self.control_dt
        gap = np.abs(qpos[:, 1] - self.wall_y) - self.wall_half - self.radius
        return gap < reach

    def update(self, flags, qpos, qvel, contact, idx) -> np.ndarray:
        p = qpos[idx]  # [b, 2]
        flags["collision"][idx] |= contact[idx]
        # The gap used: the one nearest to x when the effector is first seen past the wall.
        crossed = (p[:, 1] > self.wall_top) & (flags["mode"][idx] < 0)
        if crossed.any():
            nearest = np.abs(p[crossed, :1] - self.gap_centers[None]).argmin(axis=1)
            flags["mode"][idx[crossed]] = nearest
        reached = np.linalg.norm(p - np.asarray(self.target), axis=1) < self.target_radius
        flags["success"][idx] = reached & ~flags["collision"][idx]
        return reached  # reaching the target ends the episode (a success only if collision-free)
