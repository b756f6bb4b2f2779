"""The K-branch fork: at a fork in the road, K equally valid paths fan out.

Observation ``s ∈ [−1, 1]`` (obs_dim 1) is the lateral position at the fork. Branch
``k`` moves laterally at a constant rate, so its chunk (``t = 1..H``, ramp ``r_t = t/H``) is

    lateral:  μ_{k,t}(s) = s + c_k · u · r_t,      c_k = k − (K−1)/2,
    forward (action_dim 2 only):  x_t = r_t,

with ``u = Δ_c / ‖r‖`` chosen so that neighbouring branches are exactly ``delta`` apart
as chunks (Euclidean norm over the whole chunk). For symmetric weights and even K the
mean of the modes is the straight path ``μ = s`` — a chunk no demonstrator ever takes.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .base import ModeStructure, Task
from .weights import check_weights


class Fork(Task):
    """K branches of one action chunk each.

    Args:
        K: number of branches (≥ 1).
        delta: Δ_c, distance between neighbouring branch chunks (task units).
        sigma: within-mode noise per action element.
        chunk_len: H.
        action_dim: 1 (lateral only) or 2 (forward, lateral).
        weights: branch probabilities π_k (default uniform); normalised to sum to 1.
        radius: mode radius ρ (default from σ, see :mod:`mbc_lib.tasks.base`).
        rate: if given, neighbouring branches drift apart by ``rate`` per step instead, so
            Δ_c = rate·sqrt(Σ_t t²) grows with H (``delta`` is then ignored) — chapter 2.
        allow_overlap: accept mode balls that overlap (short chunks, large σ).
    """

    name = "fork"
    obs_dim = 1

    def __init__(
        self,
        K: int = 2,
        delta: float = 2.0,
        sigma: float = 0.05,
        chunk_len: int = 8,
        action_dim: int = 1,
        weights: Sequence[float] | None = None,
        radius: float | None = None,
        rate: float | None = None,
        allow_overlap: bool = False,
    ):
        self._validate_common(sigma, chunk_len, radius)
        if rate is not None:
            rate = self._number(rate, "rate", low=0.0, low_open=True, what="branch drift per step")
            delta = rate * float(torch.arange(1, chunk_len + 1, dtype=torch.float64).pow(2).sum().sqrt())
        if action_dim not in (1, 2) or isinstance(action_dim, bool):
            raise ValueError(f"fork: action_dim must be 1 or 2, got {action_dim!r}")
        delta = self._number(delta, "delta", low=0.0, low_open=True, what="branch separation")
        self.K, self.delta, self.sigma = K, float(delta), float(sigma)
        self.weights = check_weights(weights, K, self.name)
        self.chunk_len, self.action_dim = chunk_len, action_dim
        ramp = torch.arange(1, chunk_len + 1, dtype=torch.float32) / chunk_len  # r_t, [H]
        self.ramp = ramp
        self.rate = self.delta / float(ramp.norm())  # u: neighbours are u·t/H apart at step t
        self.offsets = torch.arange(K, dtype=torch.float32) - (K - 1) / 2  # c_k, [K]
        self.radius = self._resolve_radius(radius, self.delta if K > 1 else float("inf"), allow_overlap)

    def sample_obs(self, n: int, generator: torch.Generator) -> Tensor:
        return 2 * torch.rand(n, 1, generator=generator) - 1  # s ~ U[-1, 1]

    def modes(self, obs: Tensor) -> ModeStructure:
        obs = self.check_obs(obs)
        B, K, H = obs.shape[0], self.K, self.chunk_len
        lateral = obs[:, None, None, :] + self.rate * self.offsets[None, :, None, None] * self.ramp[None, None, :, None]
        if self.action_dim == 2:  # [B, K, H, 2]: (forward, lateral)
            forward = self.ramp[None, None, :, None].expand(B, K, H, 1)
            centers = torch.cat([forward, lateral], dim=-1)
        else:
            centers = lateral  # [B, K, H, 1]
        return ModeStructure(centers, self.weights.expand(B, K).clone(), self.sigma, self.radius)
