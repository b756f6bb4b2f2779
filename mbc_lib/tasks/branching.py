"""An observation-dependent task: the number of modes and their separation grow with s.

Observation ``s ∈ [0, 1]`` (obs_dim 1), e.g. progress along a corridor that widens.
At ``s`` there are

    K(s) = min(K_max, 1 + ⌊s·K_max⌋)  modes,   separated by   Δ_c(s) = Δ_min + (Δ_max − Δ_min)·s,

laid out like the fork's branches (lateral offsets ``c_k·u(s)·r_t``, action_dim 1), with
equal weights among the present modes. Early states are unimodal; late states have
``K_max`` well-separated modes — the setting in which the per-state collapse threshold
β*(s) (chapter 3; app-collapse-l2) and the gap Δ(s) of the transport bounds (chapter 5) both vary
with the observation.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .base import ModeStructure, Task
from .weights import check_weights


class Branching(Task):
    """Args: K_max (≥ 1), delta_min, delta_max (Δ_c range), sigma, chunk_len H, radius."""

    name = "branching"
    obs_dim = 1
    action_dim = 1

    def __init__(
        self,
        K_max: int = 3,
        delta_min: float = 1.0,
        delta_max: float = 3.0,
        sigma: float = 0.05,
        chunk_len: int = 8,
        radius: float | None = None,
    ):
        self._validate_common(sigma, chunk_len, radius)
        check_weights(None, K_max, self.name)  # validates K_max
        delta_min = self._number(delta_min, "delta_min", low=0.0, low_open=True)
        delta_max = self._number(delta_max, "delta_max", low=0.0, low_open=True)
        if not delta_min <= delta_max:
            raise ValueError(f"branching: need 0 < delta_min <= delta_max, got {delta_min}, {delta_max}")
        self.K, self.delta_min, self.delta_max = K_max, float(delta_min), float(delta_max)
        self.sigma, self.chunk_len = float(sigma), chunk_len
        self.ramp = torch.arange(1, chunk_len + 1, dtype=torch.float32) / chunk_len  # r_t, [H]
        self.radius = self._resolve_radius(radius, self.delta_min if K_max > 1 else float("inf"))

    def sample_obs(self, n: int, generator: torch.Generator) -> Tensor:
        return torch.rand(n, 1, generator=generator)  # s ~ U[0, 1]

    def count(self, obs: Tensor) -> Tensor:
        """K(s), ``[B]``."""
        s = self.check_obs(obs)[:, 0].clamp(0, 1)
        return torch.clamp(1 + torch.floor(s * self.K).long(), max=self.K)

    def modes(self, obs: Tensor) -> ModeStructure:
        obs = self.check_obs(obs)
        s = obs[:, 0].clamp(0, 1)  # [B]
        k_s = self.count(obs)  # [B]
        delta = self.delta_min + (self.delta_max - self.delta_min) * s  # Δ_c(s), [B]
        rate = delta / self.ramp.norm()  # u(s), [B]
        idx = torch.arange(self.K, dtype=torch.float32)  # [K]
        offsets = idx[None, :] - (k_s[:, None] - 1) / 2  # c_k for the present modes, [B, K]
        present = idx[None, :] < k_s[:, None]  # [B, K]
        offsets = torch.where(present, offsets, torch.zeros_like(offsets))
        centers = (rate[:, None, None] * offsets[:, :, None] * self.ramp[None, None, :])[..., None]  # [B, K, H, 1]
        weights = present.float() / k_s[:, None].float()  # [B, K]
        return ModeStructure(centers, weights, self.sigma, self.radius)
