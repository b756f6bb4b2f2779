"""Discrete-latent policy: a vector-quantised chunk code with a learned categorical prior
(VQ-VAE, van den Oord et al. 2017; VQ-BeT's idea, Lee et al. 2024, simplified to one codebook).

Encoder e = E_φ(s, a) ∈ R^D, codebook {c_1..c_K}, code k*(s,a) = argmin_k ‖e − c_k‖²,
decoder D_θ(s, c_k), prior p_ψ(k|s) = softmax(ℓ_ψ(s)). One objective trains all four:

    L = mean_{H·d} ‖a − D_θ(s, e + sg[c_k* − e])‖²       reconstruction, straight-through gradient
      + ‖sg[e] − c_k*‖²                                 codebook: move the code to its encodings
      + β_c · ‖e − sg[c_k*]‖²                           commitment: keep encodings near their code
      − log p_ψ(k* | s)                                 prior: cross-entropy on the assigned codes

(sg = stop-gradient; squared norms averaged over D). Since the posterior is a point mass on
k*, the last term is exactly the per-sample KL(q(k|s,a) ‖ p_ψ(k|s)) = −log p_ψ(k*|s) of the
rate decomposition (book appendix, app-rate); it is exposed as ``kl``. The prior gets no gradient into the encoder.

Dead codes: a code unused for ``dead_code_after`` training steps is restarted at a random
encoding of the current batch, so that the whole codebook stays in play.

Sampling draws k ~ p_ψ(k|s) and decodes D_θ(s, c_k): every sample is one of K chunks per
observation (no within-code noise; VQ-BeT adds a continuous offset head for that).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..nets import ResMLP
from .base import Policy, PolicyConfig, register

__all__ = ["VQConfig", "VQPolicy"]


@dataclass
class VQConfig(PolicyConfig):
    num_codes: int = 16  # K, codebook size (VQ-BeT: 16 per residual layer)
    code_dim: int = 8  # D, size of each code vector
    commitment: float = 0.25  # β_c, weight of the commitment loss (VQ-VAE's value)
    dead_code_after: int = 50  # restart a code unused for this many training steps (0: never)

    def validate(self) -> None:
        for name in ("num_codes", "code_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not (isinstance(self.commitment, (int, float)) and math.isfinite(self.commitment) and self.commitment >= 0):
            raise ValueError(f"commitment must be a finite number >= 0, got {self.commitment!r}")
        if not isinstance(self.dead_code_after, int) or isinstance(self.dead_code_after, bool) or self.dead_code_after < 0:
            raise ValueError(f"dead_code_after must be an integer >= 0 (steps), got {self.dead_code_after!r}")


@register("vq")
class VQPolicy(Policy):
    Config = VQConfig

    def __init__(self, config: VQConfig):
        super().__init__(config)
        K, D, chunk_numel, bb = config.num_codes, config.code_dim, config.chunk_numel, config.backbone
        self.encoder = ResMLP(config.obs_dim + chunk_numel, D, bb)  # (s, a) -> e
        self.codebook = nn.Parameter(torch.randn(K, D))  # c_k, [K, D]
        self.decoder = ResMLP(config.obs_dim + D, chunk_numel, bb)  # (s, c) -> chunk
        self.prior_net = ResMLP(config.obs_dim, K, bb)  # s -> logits of p_ψ(k|s)
        self.register_buffer("unused_for", torch.zeros(K, dtype=torch.long))  # steps since each code was used

    # -- pieces (normalised units) ----------------------------------------------------------
    def _embed(self, obs: Tensor, chunk: Tensor) -> Tensor:
        return self.encoder(torch.cat([obs, chunk.flatten(1)], dim=-1))  # [B, D]

    def _nearest(self, e: Tensor) -> Tensor:
        with torch.no_grad():
            return torch.cdist(e, self.codebook).argmin(-1)  # k*, [B]

    def _decode(self, obs: Tensor, code: Tensor) -> Tensor:
        out = self.decoder(torch.cat([obs, code], dim=-1))  # [B, H*d]
        return out.reshape(-1, self.config.chunk_len, self.config.action_dim)  # [B, H, d]

    # -- public views in task units, for the diagnostics ------------------------------------
    def encode(self, obs: Tensor, chunk: Tensor) -> Tensor:
        """The code k*(s, a) of each chunk, ``[B]`` (long): the posterior is a point mass on it."""
        s, a = self.check_batch({"obs": obs, "chunk": chunk})
        return self._nearest(self._embed(s, a))

    def prior(self, obs: Tensor) -> Tensor:
        """log p_ψ(k|s), ``[B, K]``."""
        return self.prior_net(self.normalizer.normalize_obs(self.check_obs(obs))).log_softmax(-1)

    def kl(self, obs: Tensor, chunk: Tensor) -> Tensor:
        """Per-sample KL(q(k|s,a) ‖ p_ψ(k|s)) = −log p_ψ(k*|s) in nats, ``[B]``."""
        s, a = self.check_batch({"obs": obs, "chunk": chunk})
        k = self._nearest(self._embed(s, a))
        return -self.prior_net(s).log_softmax(-1).gather(1, k[:, None])[:, 0]

    def decode(self, obs: Tensor, codes: Tensor) -> Tensor:
        """D_θ(s, c_k): ``obs [B, obs_dim]`` (task units), code indices ``[B]`` -> chunk ``[B, H, d]``."""
        s = self.normalizer.normalize_obs(self.check_obs(obs))
        return self.normalizer.unnormalize_actions(self._decode(s, self.codebook[codes.to(s.device)]))

    # -- training -----------------------------------------------------------------------------
    @torch.no_grad()
    def _restart_dead_codes(self, e: Tensor, generator: torch.Generator | None) -> None:
        """Move codes unused for ``dead_code_after`` steps onto random encodings ``e [B, D]``
        (drawn from ``generator``)."""
        dead = (self.unused_for >= self.config.dead_code_after).nonzero().flatten()
        if len(dead):
            pick = self.randint(0, e.shape[0], len(dead), generator=generator)
            self.codebook[dead] = e[pick].to(self.codebook.dtype)  # e is bf16 under CUDA autocast
            self.unused_for[dead] = 0

    def loss(self, batch: dict[str, Tensor], generator: torch.Generator | None = None, *,
             noise: dict[str, Tensor] | None = None, scalars: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        """The VQ objective. Its only randomness, the encodings that restart dead codes, is drawn
        from ``generator`` inside the loss (how many depends on the batch), so ``noise`` is unused."""
        cfg = self.config
        obs, chunk = self.check_batch(batch)  # normalised [B, obs_dim], [B, H, d]
        e = self._embed(obs, chunk)  # [B, D]
        updating = self.training and torch.is_grad_enabled()
        if updating and cfg.dead_code_after > 0:
            self._restart_dead_codes(e.detach(), generator)
        k = self._nearest(e)  # [B]
        c = self.codebook[k]  # [B, D]
        if updating:  # bookkeeping for dead-code restarts
            used = torch.zeros_like(self.unused_for, dtype=torch.bool).index_fill_(0, k, True)
            self.unused_for.add_(1).masked_fill_(used, 0)

        c_st = e + (c - e).detach()  # straight-through: forward uses c, gradient flows to e
        recon = (self._decode(obs, c_st) - chunk).pow(2).mean()
        codebook = (c - e.detach()).pow(2).mean()
        commit = (e - c.detach()).pow(2).mean()
        prior_ce = F.cross_entropy(self.prior_net(obs), k)  # = E KL(q ‖ p_ψ), nats
        loss = recon + codebook + cfg.commitment * commit + prior_ce

        usage = torch.bincount(k, minlength=cfg.num_codes).float() / k.numel()  # [K]
        perplexity = torch.exp(-(usage * usage.clamp_min(1e-12).log()).sum())  # effective codes in use
        return {
            "loss": loss,
            "recon": recon.detach(),
            "codebook": codebook.detach(),
            "commit": commit.detach(),
            "kl": prior_ce.detach(),
            "perplexity": perplexity,
        }

    @classmethod
    def unbatchable(cls, config: VQConfig) -> str | None:
        return ("its loss rewrites the codebook in place (dead-code restarts, usage counters), with a "
                "batch-dependent number of random draws")

    # -- sampling -----------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, obs: Tensor, n: int = 1, generator: torch.Generator | None = None) -> Tensor:
        """``n`` chunks per observation, ``[B, n, H, d]`` in task units: k ~ p_ψ(k|s), then D_θ(s, c_k)."""
        n = self.check_n(n)
        cfg = self.config
        s = self.normalizer.normalize_obs(self.check_obs(obs))  # [B, obs_dim]
        B = s.shape[0]
        logits = self.prior_net(s)  # [B, K]
        k = self.categorical(logits[:, None, :].expand(B, n, cfg.num_codes), generator)  # [B, n]
        chunk = self._decode(s.repeat_interleave(n, 0), self.codebook[k.flatten()])  # [B*n, H, d]
        return self.normalizer.unnormalize_actions(chunk.reshape(B, n, cfg.chunk_len, cfg.action_dim))
