"""Task 3, *goal multimodality with an early commitment*: push a puck past a divider into one of K bins.

Top view (metres), K = 2::

     0.13 |             |                   divider: a wall between the bins, from its tip
     0.01 | (1)         |         (0)       about 3 cm in front of the puck out to the ring
    -0.07 |             '                   of bins (R = 0.25 around the puck's start)
    -0.12 |            (P)                  P = puck (radius 2.5 cm)
    -0.24 |            (E)                  E = pusher (radius 1.5 cm)
          +---------------------------------- x

The puck, the pusher, their physics, the start jitter, actions and observations are those of
``mbc/PushBins-v0`` (:class:`~mbc_lib.envs.PushTask`); what differs is the geometry. Bin ``k`` sits
at angle ``θ_k = 90° + (k − (K−1)/2)·Δθ`` with ``Δθ = 120°/(K−1)`` (for K = 2 the bins are 60° to
either side of straight ahead; bin 0 is on the right), and a thin wall — a *divider* — runs
radially between each pair of neighbouring bins, from a tip close to the puck out to the ring.
Each tip is as close to the puck as a straight push at a bin from the nominal start allows
(1.7 cm of clearance to spare).

Why averaging fails here in closed loop too: the expert (:class:`~mbc_lib.envs.PushDividerExpert`)
chooses its side before the puck moves — it walks round the puck to a point behind it on the line
from its bin, and only then pushes, so the puck leaves towards its bin from the first touch. The
average of two neighbouring bins' plans walks straight up behind the puck and pushes it straight
ahead, and the divider's tip is too close for any side the moving puck reveals afterwards to be
taken: the puck runs into the divider. (On ``PushBins`` the same start is broken by the puck's
jitter after the first touch, and a regression of the modes' average often reaches a bin.)

For odd K the middle bin lies straight ahead, on the average of all the bins' directions (as the
middle gap does on ``mbc/PathGaps-v0``); the average of two *neighbouring* bins hits the divider
between them for every K.

``info``: ``success`` (the puck centre within 4 cm of a bin centre, and neither the puck nor the
pusher touched a divider during the episode), ``mode`` (the bin holding the puck, −1 if none)
and ``collision`` (the puck or the pusher touched a divider: came within 1 mm of it at the end
of a control step; dividers are solid, so a push into one holds the puck against it).
"""
from __future__ import annotations

import functools

import numpy as np

from .push_env import PushTask

__all__ = ["PushDividerTask"]


class PushDividerTask(PushTask):
    """Push the puck past a divider into one of ``K`` bins (see the module docstring)."""

    env_id = "mbc/PushDivider-v0"
    failure_key = "collision"
    max_K = 3  # with four bins the dividers are too close to the two middle bins' pushes for the puck's jitter

    spread = 120.0  # degrees between the outer bins (Δθ·(K−1)); 60° to either side of straight ahead for K = 2
    divider_half = 0.005  # m, half thickness of a divider
    divider_clearance = 0.017  # m, gap between a divider and the puck pushed straight at a bin from the nominal start
    touch_tolerance = 0.001  # m, a body this close to a divider counts as touching it
    failure_is_final = True  # success needs an episode that never touched a divider

    @functools.cached_property
    def bin_angles(self) -> np.ndarray:
        """Angle of each bin around the puck start, ``[K]`` (radians, 0 = +x)."""
        step = 0.0 if self.K < 2 else np.deg2rad(self.spread) / (self.K - 1)
        return np.pi / 2 + (np.arange(self.K) - (self.K - 1) / 2) * step

    @functools.cached_property
    def divider_angles(self) -> np.ndarray:
        """Angle of each divider around the puck start, ``[K − 1]`` (radians): midway between neighbouring bins."""
        a = self.bin_angles
        return 0.5 * (a[:-1] + a[1:])

    @property
    def divider_tip(self) -> float:
        """Distance of the dividers' tips from the puck's nominal start (m).

        A puck pushed straight at a bin passes a divider at the angle ``Δθ/2`` from it; the tip is
        where that path is ``puck_radius + divider_half + divider_clearance`` from the divider.
        """
        if self.K < 2:
            return self.ring_radius
        half = 0.5 * (self.bin_angles[1] - self.bin_angles[0])
        return float((self.puck_radius + self.divider_half + self.divider_clearance) / np.sin(half))

    @functools.cached_property
    def dividers(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(centres [K−1, 2], unit directions [K−1, 2], half lengths [K−1])`` of the dividers (m)."""
        a = self.divider_angles
        e = np.stack([np.cos(a), np.sin(a)], axis=1)
        r0, r1 = self.divider_tip, self.ring_radius
        centres = np.asarray(self.puck_start) + 0.5 * (r0 + r1) * e
        return centres, e, np.full(len(a), 0.5 * (r1 - r0))

    def xml(self) -> str:
        base = super().xml()
        centres, e, half = self.dividers
        walls = "\n".join(
            f'    <geom name="divider{j}" type="box" pos="{c[0]:.5f} {c[1]:.5f} 0.015" '
            f'size="{h:.5f} {self.divider_half} 0.015" euler="0 0 {np.degrees(np.arctan2(u[1], u[0])):.4f}" '
            f'rgba=".25 .25 .3 1" contype="1" conaffinity="1"/>'
            for j, (c, u, h) in enumerate(zip(centres, e, half))
        )
        # The bins and bodies of PushBins, plus the dividers; renamed so the two models never share a cache entry.
        if walls:
            base = base.replace('    <body name="pusher"', walls + '\n    <body name="pusher"', 1)
        return base.replace(f'model="push_bins_K{self.K}"', f'model="push_divider_K{self.K}"', 1)

    def distance_to_dividers(self, points: np.ndarray) -> np.ndarray:
        """Distance from each point ``[B, 2]`` to the nearest divider (its box outline), ``[B]`` (m); inf without dividers."""
        centres, e, half = self.dividers
        if len(centres) == 0:
            return np.full(len(points), np.inf)
        rel = points[:, None, :] - centres[None]  # [B, J, 2]
        n = np.stack([-e[:, 1], e[:, 0]], axis=1)  # divider normals [J, 2]
        along = np.abs(np.sum(rel * e[None], axis=2)) - half[None]
        across = np.abs(np.sum(rel * n[None], axis=2)) - self.divider_half
        dist = np.hypot(np.maximum(along, 0.0), np.maximum(across, 0.0))
        inside = (along < 0) & (across < 0)  # penetrating: counts as touching
        return np.where(inside, 0.0, dist).min(axis=1)

    def touching(self, qpos: np.ndarray) -> np.ndarray:
        """``[B]`` bool: the puck or the pusher is within ``touch_tolerance`` of a divider."""
        tol = self.touch_tolerance
        puck = self.distance_to_dividers(qpos[:, 2:4]) < self.puck_radius + tol
        pusher = self.distance_to_dividers(qpos[:, 0:2]) < self.pusher_radius + tol
        return puck | pusher

    def update(self, flags, qpos, qvel, contact, idx) -> np.ndarray:
        q = qpos[idx]
        flags["collision"][idx] |= self.touching(q)
        k = self.bin_of(q[:, 2:4])
        inside = k >= 0
        flags["mode"][idx] = k
        flags["success"][idx] = inside & ~flags["collision"][idx]
        return inside  # the episode ends when the puck reaches a bin (a success only if no divider was touched)
