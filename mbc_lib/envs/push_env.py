"""Task 2, *goal multimodality*: push a puck into any one of K bins.

Top view (metres)::

     0.13 |        (1)     (0)              bins on an arc of radius 0.25 around the
          |                                 puck's nominal start, K = 2 here
    -0.12 |           (P)                   P = puck (radius 2.5 cm), slides with friction
    -0.24 |           (E)                   E = pusher (radius 1.5 cm), velocity-controlled
          +---------------------------- x

Bin ``k`` sits at angle ``θ_k = 90° + (k − (K−1)/2)·Δθ`` (Δθ = min(50°, 130°/(K−1))), so
bin 0 is on the right. A pusher that averages two bins' pushes drives the puck to the
angle in between — out to the ring of bins, into none of them.

Physics: pusher and puck are each on two slide joints (no rotation is needed for round
bodies); the puck's joints carry viscous damping and dry friction (``frictionloss``)
standing in for table friction, so it stops soon after the pusher stops. The pusher–puck
contact is frictionless (``condim = 1``): a push acts along the line of centres.

Action ``(vx, vy)`` of the pusher in m/s, each in [−0.5, 0.5]. Observation
``[pusher x, y, vx, vy, puck x, y, vx, vy]``. ``info``: ``success`` (puck centre within
4 cm of a bin centre), ``mode`` (that bin, −1 if none), ``between_bins`` (the puck is
out at the ring — moved at least half the bin radius R from its start — but in no bin).
"""
from __future__ import annotations

import functools

import numpy as np

from .core import EnvTask, planar_scene
from .path_env import MODE_COLORS, rgba

__all__ = ["PushTask"]


class PushTask(EnvTask):
    """Push the puck into one of ``K`` bins (see the module docstring)."""

    env_id = "mbc/PushBins-v0"
    failure_key = "between_bins"
    obs_dim = 8
    obs_names = ("pusher_x", "pusher_y", "pusher_vx", "pusher_vy", "puck_x", "puck_y", "puck_vx", "puck_vy")

    half_width = 0.33  # m, pusher |x| bound
    y_range = (-0.3, 0.3)  # m, pusher y range
    pusher_radius = 0.015  # m
    puck_radius = 0.025  # m
    puck_start = (0.0, -0.12)  # m, nominal; the bins are placed around this point
    puck_jitter = 0.015  # m, uniform ± in x and y
    pusher_start = (0.0, -0.24)  # m
    pusher_jitter = (0.02, 0.01)  # m
    ring_radius = 0.25  # m, R: distance of the bins from the puck's nominal start
    bin_radius = 0.04  # m, success tolerance on the puck centre
    kv = 10.0  # N·s/m, pusher velocity gain (mass 0.2 kg)
    puck_damping = 1.0  # N·s/m, viscous "table" friction of the puck
    puck_friction = 0.2  # N, dry friction of the puck

    @functools.cached_property
    def bin_angles(self) -> np.ndarray:
        """Angle of each bin around the puck start, ``[K]`` (radians, 0 = +x)."""
        step = np.deg2rad(50.0) if self.K < 2 else min(np.deg2rad(50.0), np.deg2rad(130.0) / (self.K - 1))
        return np.pi / 2 + (np.arange(self.K) - (self.K - 1) / 2) * step

    @functools.cached_property
    def bin_centers(self) -> np.ndarray:
        """Bin centres ``[K, 2]`` (m)."""
        a = self.bin_angles
        return np.asarray(self.puck_start) + self.ring_radius * np.stack([np.cos(a), np.sin(a)], axis=1)

    def xml(self) -> str:
        A, rp, rb = self.half_width, self.pusher_radius, self.puck_radius
        bins = "\n".join(
            f'<site name="bin{k}" pos="{c[0]:.5f} {c[1]:.5f} 0.001" type="cylinder" '
            f'size="{self.bin_radius + 0.01} 0.001" rgba="{rgba(MODE_COLORS[k % len(MODE_COLORS)][:3] + (0.55,))}"/>'
            for k, c in enumerate(self.bin_centers)
        )
        z = 0.015
        world = f"""    {bins}
    <body name="pusher" pos="0 0 {z}">
      <joint name="pusher_x" type="slide" axis="1 0 0" range="{-A + rp} {A - rp}" limited="true"/>
      <joint name="pusher_y" type="slide" axis="0 1 0" range="{self.y_range[0]} {self.y_range[1]}" limited="true"/>
      <geom name="pusher" type="sphere" size="{rp}" mass="0.2" rgba=".85 .2 .2 1" condim="1"
            contype="1" conaffinity="1"/>
    </body>
    <body name="puck" pos="0 0 {z}">
      <joint name="puck_x" type="slide" axis="1 0 0" damping="{self.puck_damping}" frictionloss="{self.puck_friction}"/>
      <joint name="puck_y" type="slide" axis="0 1 0" damping="{self.puck_damping}" frictionloss="{self.puck_friction}"/>
      <geom name="puck" type="cylinder" size="{rb} {z}" mass="0.2" rgba=".25 .25 .28 1" condim="1"
            contype="1" conaffinity="1"/>
    </body>
"""
        return planar_scene(f"push_bins_K{self.K}", self.timestep, world.rstrip("\n"), ("pusher_x", "pusher_y"), self.kv, self.v_max)

    def initial_qpos(self, rng: np.random.Generator) -> np.ndarray:
        pusher = np.asarray(self.pusher_start) + rng.uniform(-1.0, 1.0, 2) * np.asarray(self.pusher_jitter)
        puck = np.asarray(self.puck_start) + rng.uniform(-1.0, 1.0, 2) * self.puck_jitter
        # Joint positions are offsets from the bodies' reference positions (both at the origin).
        return np.concatenate([pusher, puck])

    def observe(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        return np.concatenate([qpos[:, :2], qvel[:, :2], qpos[:, 2:], qvel[:, 2:]], axis=1)  # [B, 8]

    def state_from_obs(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return obs[:, [0, 1, 4, 5]], obs[:, [2, 3, 6, 7]]

    def new_flags(self, n, qpos):
        flags = super().new_flags(n, qpos)
        flags["_puck0"] = qpos[:, 2:4].copy()  # private (not in info): where each puck started
        return flags

    def bin_of(self, puck: np.ndarray) -> np.ndarray:
        """Index of the bin containing each puck centre ``[B, 2]`` -> ``[B]`` (−1: none)."""
        dist = np.linalg.norm(puck[:, None, :] - self.bin_centers[None], axis=2)  # [B, K]
        k = dist.argmin(axis=1)
        return np.where(dist[np.arange(len(k)), k] < self.bin_radius, k, -1)

    def update(self, flags, qpos, qvel, contact, idx) -> np.ndarray:
        puck = qpos[idx, 2:4]
        k = self.bin_of(puck)
        inside = k >= 0
        flags["mode"][idx] = k
        flags["success"][idx] = inside
        moved = np.linalg.norm(puck - flags["_puck0"][idx], axis=1)
        flags["between_bins"][idx] = ~inside & (moved >= 0.5 * self.ring_radius)
        return inside  # the episode ends when the puck reaches a bin
