"""Mixture-density policy: K diagonal Gaussians over the whole chunk (robomimic's BC-GMM idea).

    p_θ(a | s) = Σ_k π_k(s) · N(a; μ_k(s), diag σ_k²(s)),      π(s) = softmax(w(s)),

    L = − E_{(s, a)} log p_θ(a | s)
      = − E log Σ_k exp( log π_k(s) + Σ_j log N(a_j; μ_kj(s), σ_kj²(s)) )     (log-sum-exp, j over H·d),

on normalised actions, divided by n = H·d so the loss is in nats per chunk element.
σ = softplus(·) + ``min_std``: the floor stops a component from shrinking onto a single
demonstration (the likelihood is unbounded otherwise). Sampling draws a component
k ~ Categorical(π(s)), then a = μ_k + σ_k ε — one draw of the mixture, mode and all.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from ..nets import ResMLP
from .base import Policy, PolicyConfig, register

__all__ = ["MixtureConfig", "MixturePolicy"]


@dataclass
class MixtureConfig(PolicyConfig):
    num_components: int = 5  # K Gaussians per observation (robomimic's BC-GMM uses 5)
    min_std: float = 0.01  # floor on each σ, in normalised action units
    std_scale: float = 1.0  # multiplies σ at sampling time (robomimic's "low noise" eval uses ~0)

    def validate(self) -> None:
        K = self.num_components
        if not isinstance(K, int) or isinstance(K, bool) or K < 1:
            raise ValueError(f"num_components (K) must be an integer >= 1, got {K!r}")
        if not (isinstance(self.min_std, (int, float)) and not isinstance(self.min_std, bool)
                and math.isfinite(self.min_std) and self.min_std > 0):
            raise ValueError(f"min_std must be a finite number > 0 (a floor on σ in normalised units, e.g. 0.01), "
                             f"got {self.min_std!r}")
        if not (isinstance(self.std_scale, (int, float)) and not isinstance(self.std_scale, bool)
                and math.isfinite(self.std_scale) and self.std_scale >= 0):
            raise ValueError(f"std_scale must be a finite number >= 0 (1 samples the mixture as learned), "
                             f"got {self.std_scale!r}")


@register("mixture")
class MixturePolicy(Policy):
    Config = MixtureConfig
    SCALAR_FIELDS = ("min_std",)
    SAMPLING_FIELDS = ("std_scale",)

    def __init__(self, config: MixtureConfig):
        super().__init__(config)
        K, chunk_numel = config.num_components, config.chunk_numel
        self.net = ResMLP(config.obs_dim, K * (1 + 2 * chunk_numel), config.backbone)  # s -> (w, μ, raw σ)

    def _params(self, obs: Tensor, min_std: float | Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Normalised obs ``[B, obs_dim]`` -> log π ``[B, K]``, μ ``[B, K, H·d]``, σ ``[B, K, H·d]``
        (σ floored at ``min_std``, default the config's)."""
        min_std = self.config.min_std if min_std is None else min_std
        K, chunk_numel = self.config.num_components, self.config.chunk_numel
        out = self.net(obs)  # [B, K(1 + 2·H·d)]
        logits, mu, raw_std = out.split([K, K * chunk_numel, K * chunk_numel], dim=-1)
        log_pi = logits.log_softmax(-1)  # [B, K]
        mu = mu.reshape(-1, K, chunk_numel)  # [B, K, H·d]
        std = F.softplus(raw_std.reshape(-1, K, chunk_numel)) + min_std  # [B, K, H·d]
        return log_pi, mu, std

    def mixture(self, obs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The mixture at ``obs [B, obs_dim]`` in *normalised* action units:
        weights π ``[B, K]``, means ``[B, K, H, d]``, standard deviations ``[B, K, H, d]``."""
        log_pi, mu, std = self._params(self.normalizer.normalize_obs(self.check_obs(obs)))
        shape = (-1, self.config.num_components, self.config.chunk_len, self.config.action_dim)
        return log_pi.exp(), mu.reshape(shape), std.reshape(shape)

    def log_prob(self, obs: Tensor, chunk: Tensor) -> Tensor:
        """log p_θ(a|s) of ``chunk [B, H, d]`` under the mixture, in nats, ``[B]`` (normalised actions)."""
        s, a = self.check_batch({"obs": obs, "chunk": chunk})
        return self._log_prob(s, a)

    def _log_prob(self, obs: Tensor, chunk: Tensor, min_std: float | Tensor | None = None) -> Tensor:
        log_pi, mu, std = self._params(obs, min_std)  # [B, K], [B, K, H·d], [B, K, H·d]
        a = chunk.flatten(1)[:, None, :]  # [B, 1, H·d]
        z = (a - mu) / std  # [B, K, H·d]
        log_normal = -0.5 * z.pow(2) - std.log() - 0.5 * math.log(2 * math.pi)  # [B, K, H·d]
        return torch.logsumexp(log_pi + log_normal.sum(-1), dim=-1)  # [B]

    def loss(self, batch: dict[str, Tensor], generator: torch.Generator | None = None, *,
             noise: dict[str, Tensor] | None = None, scalars: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        """The negative log-likelihood (no randomness: ``generator`` and ``noise`` are unused)."""
        obs, chunk = self.check_batch(batch)  # normalised [B, obs_dim], [B, H, d]
        log_p = self._log_prob(obs, chunk, self.scalar("min_std", scalars))  # [B]
        nll = -log_p.mean() / self.config.chunk_numel  # nats per element
        return {"loss": nll, "nll": nll.detach()}

    @torch.no_grad()
    def sample(self, obs: Tensor, n: int = 1, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws of the mixture per observation, ``[B, n, H, d]`` in task units."""
        n = self.check_n(n)
        cfg = self.config
        log_pi, mu, std = self._params(self.normalizer.normalize_obs(self.check_obs(obs)))
        B, K, chunk_numel = mu.shape
        k = self.categorical(log_pi[:, None, :].expand(B, n, K), generator)  # component per sample, [B, n]
        eps = self.randn(B, n, chunk_numel, generator=generator)  # [B, n, H·d]
        idx = k[..., None].expand(B, n, chunk_numel)  # [B, n, H·d]
        a = mu.gather(1, idx) + cfg.std_scale * std.gather(1, idx) * eps  # [B, n, H·d]
        a = a.reshape(B, n, cfg.chunk_len, cfg.action_dim)  # [B, n, H, d]
        return self.normalizer.unnormalize_actions(a)
