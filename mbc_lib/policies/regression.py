"""Deterministic chunk regression — the unimodal baseline.

    min_θ  E_{(s, a)} ℓ(a, f_θ(s)),   ℓ = ‖·‖²  (L2)  or  ‖·‖₁  (L1), mean over the H·d elements.

The L2 minimiser is the conditional mean E[a | s], the L1 minimiser the per-coordinate
conditional median: with two symmetric modes both land *between* the modes, which is
the averaging failure of chapter 1. ``sample`` returns the same chunk n times.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..nets import ResMLP
from .base import Policy, PolicyConfig, register


@dataclass
class RegressionConfig(PolicyConfig):
    loss: str = "l2"  # "l2" (mean squared error) or "l1" (mean absolute error, ACT's reconstruction)

    def validate(self) -> None:
        if self.loss not in ("l1", "l2"):
            raise ValueError(f"regression loss must be 'l1' or 'l2', got {self.loss!r}")


@register("regression")
class RegressionPolicy(Policy):
    Config = RegressionConfig

    def __init__(self, config: RegressionConfig):
        super().__init__(config)
        self.net = ResMLP(config.obs_dim, config.chunk_numel, config.backbone)

    @torch.no_grad()
    def predict(self, obs: Tensor) -> Tensor:
        """The regressed chunk ``[B, H, d]`` in task units."""
        obs = self.check_obs(obs)
        out = self.net(self.normalizer.normalize_obs(obs))  # [B, H*d]
        out = out.reshape(-1, self.config.chunk_len, self.config.action_dim)  # [B, H, d]
        return self.normalizer.unnormalize_actions(out)

    def loss(self, batch: dict[str, Tensor], generator: torch.Generator | None = None, *,
             noise: dict[str, Tensor] | None = None, scalars: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        """The L2/L1 regression error (no randomness: ``generator`` and ``noise`` are unused)."""
        obs, chunk = self.check_batch(batch)  # normalised [B, obs_dim], [B, H, d]
        pred = self.net(obs).reshape_as(chunk)
        err = pred - chunk
        loss = err.pow(2).mean() if self.config.loss == "l2" else err.abs().mean()
        return {"loss": loss}

    @torch.no_grad()
    def sample(self, obs: Tensor, n: int = 1, generator: torch.Generator | None = None) -> Tensor:
        n = self.check_n(n)
        return self.predict(obs).unsqueeze(1).expand(-1, n, -1, -1).clone()  # [B, n, H, d]
