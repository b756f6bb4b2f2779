"""Shared backbones: every policy family is built from these, so that families
differ in their parameterisation and not in their capacity.

* :class:`ResMLP` — a residual MLP ``f(x, t) -> y``: an input projection, ``depth``
  pre-norm residual blocks, an output head; an optional scalar "time" (diffusion
  noise level or flow time) enters every block through a sinusoidal embedding.
* :class:`SinusoidalEmbedding` — the transformer/DDPM embedding of a scalar.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["BackboneConfig", "ResMLP", "ResidualBlock", "SinusoidalEmbedding"]


@dataclass
class BackboneConfig:
    width: int = 256  # hidden units per layer
    depth: int = 3  # residual blocks
    time_embed_dim: int = 64  # size of the sinusoidal embedding of t (only used when a time input exists)
    dropout: float = 0.0  # dropout inside each residual block

    def __post_init__(self) -> None:
        if self.width < 1 or self.depth < 0 or self.time_embed_dim < 2 or self.time_embed_dim % 2:
            raise ValueError(
                f"backbone needs width >= 1, depth >= 0 and an even time_embed_dim >= 2; got {self}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


class SinusoidalEmbedding(nn.Module):
    """``t [B] -> [B, dim]``: sin/cos features at geometric frequencies 1 .. 1/max_period."""

    def __init__(self, dim: int, max_period: float = 10_000.0, scale: float = 1000.0):
        super().__init__()
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half) / half)
        self.register_buffer("freqs", freqs)
        self.scale = scale  # t in [0, 1] is stretched to [0, scale] so low frequencies resolve it

    def forward(self, t: Tensor) -> Tensor:
        args = self.scale * t.float().reshape(-1, 1) * self.freqs  # [B, half]
        return torch.cat([args.sin(), args.cos()], dim=-1)  # [B, dim]


class ResidualBlock(nn.Module):
    """``h + W2 · SiLU(W1 · LN(h) + c)``; ``c`` is the projected time embedding (or 0)."""

    def __init__(self, width: int, cond_dim: int = 0, dropout: float = 0.0):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width)
        self.cond = nn.Linear(cond_dim, width) if cond_dim else None
        self.fc2 = nn.Linear(width, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: Tensor, cond: Tensor | None = None) -> Tensor:
        u = self.fc1(self.norm(h))
        if self.cond is not None and cond is not None:
            u = u + self.cond(cond)
        return h + self.drop(self.fc2(nn.functional.silu(u)))


class ResMLP(nn.Module):
    """Residual MLP ``[B, in_dim] (, t [B]) -> [B, out_dim]``.

    Args:
        in_dim: input features (callers concatenate obs with a latent or a noisy chunk).
        out_dim: output features (e.g. ``H * action_dim`` for a chunk).
        config: width/depth/embedding sizes.
        time_input: whether ``forward`` takes a scalar time ``t`` per sample.
    """

    def __init__(self, in_dim: int, out_dim: int, config: BackboneConfig | None = None, time_input: bool = False):
        super().__init__()
        cfg = config or BackboneConfig()
        self.time_embed = (
            nn.Sequential(SinusoidalEmbedding(cfg.time_embed_dim), nn.Linear(cfg.time_embed_dim, cfg.width), nn.SiLU())
            if time_input
            else None
        )
        cond_dim = cfg.width if time_input else 0
        self.inp = nn.Linear(in_dim, cfg.width)
        self.blocks = nn.ModuleList(ResidualBlock(cfg.width, cond_dim, cfg.dropout) for _ in range(cfg.depth))
        self.out = nn.Sequential(nn.LayerNorm(cfg.width), nn.SiLU(), nn.Linear(cfg.width, out_dim))

    def forward(self, x: Tensor, t: Tensor | None = None) -> Tensor:
        if (t is None) != (self.time_embed is None):
            raise ValueError("pass t exactly when the network was built with time_input=True")
        cond = self.time_embed(t) if t is not None else None  # [B, width]
        h = self.inp(x)  # [B, width]
        for block in self.blocks:
            h = block(h, cond)
        return self.out(h)  # [B, out_dim]
