"""K modes on a ring: K straight paths from the origin to K points on a circle.

Observation ``s = (cos φ, sin φ)`` (obs_dim 2) rotates the ring, so the policy must use
it. Mode ``k`` heads to angle ``θ_k = φ + 2πk/K`` at ring radius R:

    μ_{k,t}(s) = R · r_t · (cos θ_k, sin θ_k),   r_t = t/H,   t = 1..H   (action_dim 2).

Neighbouring chunks are ``Δ_c = 2R·sin(π/K)·‖r‖`` apart; the mode average is the
zero path at the centre, off every mode for K ≥ 2.

``arc`` limits the orientations to ``φ ∈ [−arc, arc]`` (default π, the whole circle). Over the
whole circle, for K ≥ 3, E[a|s] = 0 and Cov[a|s] ∝ I do not depend on s: the observation
acts only through higher moments, which conditional generative policies learn slowly at
CPU budgets (they fit the rotation-averaged marginal first). A narrow arc keeps the task
multimodal at every s while making the conditioning easy.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from .base import ModeStructure, Task
from .weights import check_weights


class Ring(Task):
    """Args: K modes, ring_radius R, sigma, chunk_len H, weights, radius (mode radius ρ),
    arc (half-width of the orientation range, radians, in (0, π])."""

    name = "ring"
    obs_dim = 2
    action_dim = 2

    def __init__(
        self,
        K: int = 4,
        ring_radius: float = 1.0,
        sigma: float = 0.05,
        chunk_len: int = 8,
        weights: Sequence[float] | None = None,
        radius: float | None = None,
        arc: float = math.pi,
    ):
        self._validate_common(sigma, chunk_len, radius)
        self.arc = self._number(arc, "arc", low=0.0, high=math.pi, low_open=True, what="half-angle of the arc of states")
        ring_radius = self._number(ring_radius, "ring_radius", low=0.0, low_open=True)
        self.K, self.ring_radius, self.sigma, self.chunk_len = K, float(ring_radius), float(sigma), chunk_len
        self.weights = check_weights(weights, K, self.name)
        self.ramp = torch.arange(1, chunk_len + 1, dtype=torch.float32) / chunk_len  # r_t, [H]
        self.delta = 2 * self.ring_radius * math.sin(math.pi / K) * float(self.ramp.norm()) if K > 1 else math.inf
        self.radius = self._resolve_radius(radius, self.delta)

    def sample_obs(self, n: int, generator: torch.Generator) -> Tensor:
        phi = (2 * torch.rand(n, generator=generator) - 1) * self.arc  # φ ~ U[−arc, arc]
        return torch.stack([phi.cos(), phi.sin()], dim=-1)  # [n, 2]

    def modes(self, obs: Tensor) -> ModeStructure:
        obs = self.check_obs(obs)
        B, K = obs.shape[0], self.K
        phi = torch.atan2(obs[:, 1], obs[:, 0])  # [B]
        theta = phi[:, None] + 2 * math.pi * torch.arange(K) / K  # [B, K]
        direction = torch.stack([theta.cos(), theta.sin()], dim=-1)  # [B, K, 2]
        centers = self.ring_radius * self.ramp[None, None, :, None] * direction[:, :, None, :]  # [B, K, H, 2]
        return ModeStructure(centers, self.weights.expand(B, K).clone(), self.sigma, self.radius)
