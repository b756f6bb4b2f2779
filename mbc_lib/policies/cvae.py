"""ACT-style conditional VAE over action chunks (Zhao et al. 2023, "ACT").

Encoder q_φ(z|s,a), decoder D_θ(s,z), prior p(z|s). With regulariser ``"kl"``:

    L = mean_{H·d elements} ℓ(a, D_θ(s, z)) + β · Σ_j KL(q_φ(z_j|s,a) ‖ p(z_j|s)),   z ~ q_φ(·|s,a),

ℓ = |·| (L1, ACT) or (·)² (L2), computed on *normalised* actions. A batch with a ``"beta"`` entry
``[B]`` (a :class:`~mbc_lib.data.ChunkDataset` built with per-sample ``beta``) weighs each sample's
KL with its own β_i instead: β·E KL becomes E[β_i KL_i], a state-dependent β(s). The reconstruction is
mean-reduced over the n = H·d chunk elements and the KL is summed over the latent
dimensions — exactly ACT's scaling (ACT: L1, β = "kl_weight" = 10). In the notation of the collapse
criterion (chapter 3; book appendix, app-collapse and app-act), J = E d(a, D(z))/c + β E KL, this is d = ‖·‖₁/n (L1) or d = ‖·‖²/n (L2) with
c = 1, so the collapse temperature is simply **T = β**. For L2 that reads σ_d² = n/2,
hence β* = 2v'/n with v' the sub-Gaussian variance proxy of the normalised chunk.

With regulariser ``"aggregate"`` (the WAE idea, Tolstikhin et al. 2018) the per-sample KL
is replaced by a divergence between the batch's aggregate posterior and prior samples:

    L = mean ℓ(a, D_θ(s, z)) + λ · 𝔻( {(s_i, z_i)}, z_i ~ q_φ(·|s_i,a_i) ;  {(s_i, z'_i)}, z'_i ~ p(·|s_i) ),

𝔻 = MMD² with an inverse-multiquadric kernel or the debiased Sinkhorn divergence (POT).
Pairs (s, z) are compared, so the penalty pushes q̄(z|s) towards p(z|s) at each s, not
only the marginals. It controls only the second term of the rate decomposition (app-rate, app-aggregate): I(A;Z|S) is free.

At test time the decoder is fed prior samples (``decode_from="prior"``), z = 0
(``"zero"``, ACT's deterministic choice) or the prior mean (``"mean"``).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from ..diagnostics.information import gaussian_kl_per_dim  # one KL formula for the loss and the diagnostics
from ..nets import ResMLP
from .base import Policy, PolicyConfig, register

__all__ = ["CVAEConfig", "CVAEPolicy", "gaussian_kl_per_dim", "mmd_imq", "sinkhorn_regularizer"]


@dataclass
class CVAEConfig(PolicyConfig):
    latent_dim: int = 4  # dz, size of z (ACT uses 32; these short chunks need few)
    prior: str = "fixed"  # "fixed": N(0, I) (ACT) | "learned": N(μ_ψ(s), diag σ²_ψ(s))
    regularizer: str = "kl"  # "kl": β·per-sample KL (ACT) | "aggregate": λ·D(q̄, p) (WAE)
    beta: float = 0.1  # β, weight of the KL; T = β in the collapse criterion (app-act; collapse above β*)
    free_bits: float = 0.0  # nats per latent dim whose batch-mean KL goes unpenalised (Kingma et al. 2016)
    beta_warmup: int = 0  # training steps over which β rises linearly from 0 (0: no warm-up)
    aggregate: str = "mmd"  # aggregate divergence: "mmd" (IMQ kernel) | "sinkhorn" (debiased, POT)
    agg_weight: float = 10.0  # λ, weight of the aggregate divergence (WAE uses 10)
    sinkhorn_eps: float = 0.5  # entropic regularisation ε of the Sinkhorn divergence (squared-distance units)
    recon: str = "l1"  # reconstruction ℓ: "l1" (ACT) | "l2"
    decode_from: str = "prior"  # test-time z: "prior" sample | "zero" (ACT) | "mean" of the prior

    def validate(self) -> None:
        _choice("prior", self.prior, ("fixed", "learned"))
        _choice("regularizer", self.regularizer, ("kl", "aggregate"))
        _choice("aggregate", self.aggregate, ("mmd", "sinkhorn"))
        _choice("recon", self.recon, ("l1", "l2"))
        _choice("decode_from", self.decode_from, ("prior", "zero", "mean"))
        if not isinstance(self.latent_dim, int) or isinstance(self.latent_dim, bool) or self.latent_dim < 1:
            raise ValueError(f"latent_dim must be an integer >= 1, got {self.latent_dim!r}")
        for name in ("beta", "free_bits", "agg_weight"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not isinstance(self.beta_warmup, int) or isinstance(self.beta_warmup, bool) or self.beta_warmup < 0:
            raise ValueError(f"beta_warmup must be an integer >= 0 (steps), got {self.beta_warmup!r}")
        if not (isinstance(self.sinkhorn_eps, (int, float)) and math.isfinite(self.sinkhorn_eps) and self.sinkhorn_eps > 0):
            raise ValueError(f"sinkhorn_eps must be a finite number > 0, got {self.sinkhorn_eps!r}")


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")


# -- divergences -----------------------------------------------------------------------
def mmd_imq(x: Tensor, y: Tensor) -> Tensor:
    """Unbiased MMD² between samples ``x, y [N, D]`` with the inverse-multiquadric kernel

        k(u, v) = Σ_{c ∈ C} c / (c + ‖u − v‖²),   C = 2D · {0.1, 0.2, 0.5, 1, 2, 5, 10},

    WAE's kernel (2D is the expected ‖u − v‖² under N(0, I_D); the sum over scales keeps
    gradients alive at every distance). Can be slightly negative (unbiased estimator)."""
    N = x.shape[0]
    xy = torch.cat([x, y])  # [2N, D]
    d2 = torch.cdist(xy, xy).pow(2)  # [2N, 2N]
    k = sum(c / (c + d2) for c in (2.0 * x.shape[1] * s for s in (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)))
    off = 1.0 - torch.eye(N, device=x.device)  # drop the i = j terms of the U-statistic
    kxx = (k[:N, :N] * off).sum() / (N * (N - 1))
    kyy = (k[N:, N:] * off).sum() / (N * (N - 1))
    kxy = k[:N, N:].mean()
    return kxx + kyy - 2.0 * kxy


def sinkhorn_regularizer(x: Tensor, y: Tensor, eps: float) -> Tensor:
    """The training penalty: debiased Sinkhorn divergence S_ε = OT_ε(x, y) − ½OT_ε(x, x) − ½OT_ε(y, y)
    between the empirical measures of ``x, y [N, D]`` with squared-Euclidean cost, differentiable
    (POT's solver on torch tensors; gradients by the envelope theorem, i.e. through the optimal
    dual potentials). The measurement on samples is :func:`mbc_lib.diagnostics.sinkhorn_distance`."""
    from ..pot import import_pot  # imported here so the rest of the library does not need POT

    ot = import_pot()

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sinkhorn did not converge")
        res = ot.solve_sample(x, y, reg=eps, max_iter=200, grad="envelope", debias=True)
    return res.value


def _free_bits(kl_dims: Tensor, kl: Tensor, free_bits: float | Tensor) -> Tensor:
    """The KL term with free bits: Σ_j max(free_bits, batch-mean KL_j) when free_bits > 0 (each
    latent dim may carry ``free_bits`` nats at no cost), else the KL ``kl`` itself."""
    if isinstance(free_bits, Tensor):  # one value per model in a batched run: both branches, then select
        return torch.where(free_bits > 0, kl_dims.mean(0).clamp_min(free_bits).sum(), kl)
    return kl_dims.mean(0).clamp_min(free_bits).sum() if free_bits > 0 else kl


def _warmed_up(beta: float | Tensor, warmup: int | Tensor, step: Tensor) -> float | Tensor:
    """β · min(1, step / warm-up), or β when warm-up = 0; kept on the device (no host sync)."""
    if isinstance(warmup, Tensor):  # one value per model in a batched run
        return torch.where(warmup > 0, beta * (step.float() / warmup.clamp_min(1)).clamp(max=1.0), beta)
    return beta * (step.float() / warmup).clamp(max=1.0) if warmup > 0 else beta


# -- the policy --------------------------------------------------------------------------
@register("cvae")
class CVAEPolicy(Policy):
    Config = CVAEConfig
    SCALAR_FIELDS = ("beta", "free_bits", "beta_warmup", "agg_weight")
    SAMPLING_FIELDS = ("decode_from",)

    def __init__(self, config: CVAEConfig):
        super().__init__(config)
        chunk_numel, dz, bb = config.chunk_numel, config.latent_dim, config.backbone
        # ACT's encoder is a transformer over [CLS, joints, a_1..a_H]; an MLP over the
        # flattened chunk is the same function class for these small chunks.
        self.encoder = ResMLP(config.obs_dim + chunk_numel, 2 * dz, bb)  # (s, a) -> (μ_q, log σ_q²)
        self.decoder = ResMLP(config.obs_dim + dz, chunk_numel, bb)  # (s, z) -> chunk
        self.prior_net = ResMLP(config.obs_dim, 2 * dz, bb) if config.prior == "learned" else None
        self.register_buffer("step", torch.zeros((), dtype=torch.long))  # training steps, for β warm-up

    # -- the three distributions (normalised units) -------------------------------------
    def _encode(self, obs: Tensor, chunk: Tensor) -> tuple[Tensor, Tensor]:
        h = self.encoder(torch.cat([obs, chunk.flatten(1)], dim=-1))  # [B, 2dz]
        mu, logvar = h.chunk(2, dim=-1)  # [B, dz] each
        return mu, logvar.clamp(-12.0, 6.0)

    def _prior(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        if self.prior_net is None:
            zeros = obs.new_zeros(obs.shape[0], self.config.latent_dim)  # [B, dz]
            return zeros, zeros
        mu, logvar = self.prior_net(obs).chunk(2, dim=-1)  # [B, dz] each
        return mu, logvar.clamp(-12.0, 6.0)

    def _decode(self, obs: Tensor, z: Tensor) -> Tensor:
        out = self.decoder(torch.cat([obs, z], dim=-1))  # [B, H*d]
        return out.reshape(-1, self.config.chunk_len, self.config.action_dim)  # [B, H, d]

    # -- public views in task units, for the diagnostics --------------------------------
    def encode(self, obs: Tensor, chunk: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior q_φ(z|s,a) = N(μ, diag exp(logvar)): ``(mu, logvar)``, each ``[B, dz]``.
        ``obs [B, obs_dim]`` and ``chunk [B, H, d]`` in task units."""
        s, a = self.check_batch({"obs": obs, "chunk": chunk})
        return self._encode(s, a)

    def prior(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """Prior p(z|s) = N(μ, diag exp(logvar)): ``(mu, logvar)``, each ``[B, dz]`` (zeros if fixed)."""
        return self._prior(self.normalizer.normalize_obs(self.check_obs(obs)))

    def kl(self, obs: Tensor, chunk: Tensor) -> Tensor:
        """Per-sample KL(q_φ(·|s,a) ‖ p(·|s)) in nats, summed over latent dims: ``[B]``."""
        s, a = self.check_batch({"obs": obs, "chunk": chunk})
        return gaussian_kl_per_dim(*self._encode(s, a), *self._prior(s)).sum(-1)

    def decode(self, obs: Tensor, z: Tensor) -> Tensor:
        """D(s, z): ``obs [B, obs_dim]`` (task units), ``z [B, dz]`` -> chunk ``[B, H, d]`` (task units)."""
        s = self.normalizer.normalize_obs(self.check_obs(obs))
        return self.normalizer.unnormalize_actions(self._decode(s, z.to(s)))

    def current_beta(self) -> float:
        """β after the linear warm-up (equal to ``beta`` once ``step >= beta_warmup``)."""
        cfg = self.config
        if cfg.beta_warmup == 0:
            return float(cfg.beta)
        return float(cfg.beta) * min(1.0, int(self.step) / cfg.beta_warmup)

    # -- training ---------------------------------------------------------------------------
    def loss_noise(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """ε for z = μ_q + σ_q ε, and with the aggregate regulariser ε' for z' ~ p(·|s): ``[B, dz]`` each."""
        dz = self.config.latent_dim
        noise = {"eps_q": self.randn(batch_size, dz, generator=generator)}
        if self.config.regularizer == "aggregate":
            noise["eps_p"] = self.randn(batch_size, dz, generator=generator)
        return noise

    def loss(self, batch: dict[str, Tensor], generator: torch.Generator | None = None, *,
             noise: dict[str, Tensor] | None = None, scalars: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        cfg = self.config
        obs, chunk = self.check_batch(batch)  # normalised [B, obs_dim], [B, H, d]
        noise = self.loss_noise(obs.shape[0], generator) if noise is None else noise
        mu_q, logvar_q = self._encode(obs, chunk)  # [B, dz] each
        z = mu_q + (0.5 * logvar_q).exp() * noise["eps_q"].to(mu_q.dtype)  # reparameterised z ~ q, [B, dz]
        recon_chunk = self._decode(obs, z)  # [B, H, d]
        err = recon_chunk - chunk
        recon = err.abs().mean() if cfg.recon == "l1" else err.pow(2).mean()  # mean over B·H·d

        mu_p, logvar_p = self._prior(obs)  # [B, dz] each
        kl_dims = gaussian_kl_per_dim(mu_q, logvar_q, mu_p, logvar_p)  # [B, dz]
        kl = kl_dims.sum(-1).mean()  # E_batch Σ_j KL_j, nats per sample
        if cfg.regularizer == "kl" and batch.get("beta") is not None:  # per-sample β_i: E[β_i KL_i]
            reg, weight = self._per_sample_kl(batch["beta"], kl_dims, scalars)
        elif cfg.regularizer == "kl":
            reg = _free_bits(kl_dims, kl, self.scalar("free_bits", scalars))
            weight = _warmed_up(self.scalar("beta", scalars), self.scalar("beta_warmup", scalars), self.step)
        else:
            z_p = mu_p + (0.5 * logvar_p).exp() * noise["eps_p"].to(mu_p.dtype)  # z' ~ p(·|s), [B, dz]
            joint_q = torch.cat([obs, z], dim=-1)  # (s, z ~ q), [B, obs_dim + dz]
            joint_p = torch.cat([obs, z_p], dim=-1)  # (s, z' ~ p), [B, obs_dim + dz]
            if cfg.aggregate == "mmd":
                reg = mmd_imq(joint_q, joint_p)
            else:
                reg = sinkhorn_regularizer(joint_q, joint_p, cfg.sinkhorn_eps)
            weight = self.scalar("agg_weight", scalars)
            weight = float(weight) if not isinstance(weight, Tensor) else weight
        if self.training and torch.is_grad_enabled():
            self.step += 1
        loss = recon + weight * reg
        parts = {"loss": loss, "recon": recon.detach(), "kl": kl.detach(), "reg": reg.detach()}
        if cfg.regularizer == "aggregate":
            parts[cfg.aggregate] = reg.detach()
        return parts

    def _per_sample_kl(self, beta: Tensor, kl_dims: Tensor,
                       scalars: dict[str, Tensor] | None) -> tuple[Tensor, float | Tensor]:
        """(E_batch[β_i · Σ_j KL_ij], the warm-up factor) for per-sample KL weights ``beta [B]``; the
        config's β is not used, its warm-up is (the factor rises from 0 to 1)."""
        if not isinstance(beta, Tensor):
            beta = torch.as_tensor(beta, dtype=torch.float32)
        if beta.shape != kl_dims.shape[:1]:
            raise ValueError(f"batch['beta'] must be [B={kl_dims.shape[0]}] (one KL weight per sample), "
                             f"got shape {tuple(beta.shape)}")
        free_bits = self.scalar("free_bits", scalars)
        if isinstance(free_bits, Tensor) or free_bits > 0:
            raise ValueError("per-sample KL weights (batch['beta']) and free_bits > 0 do not combine: free bits "
                             "clamp the batch-mean KL per latent dim, which has no per-sample weight")
        weighted = (beta.to(kl_dims) * kl_dims.sum(-1)).mean()  # E_batch β_i KL_i
        return weighted, _warmed_up(1.0, self.scalar("beta_warmup", scalars), self.step)

    @classmethod
    def unbatchable(cls, config: CVAEConfig) -> str | None:
        if config.regularizer == "aggregate" and config.aggregate == "sinkhorn":
            return "the Sinkhorn regulariser runs POT's solver, which torch.vmap cannot trace"
        return super().unbatchable(config)

    # -- sampling ---------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        obs: Tensor,
        n: int = 1,
        generator: torch.Generator | None = None,
        decode_from: str | None = None,
    ) -> Tensor:
        """``n`` chunks per observation, ``[B, n, H, d]`` in task units.

        ``decode_from`` overrides the config: ``"prior"`` (z ~ p(z|s), from ``generator``),
        ``"zero"`` (z = 0: ACT, deterministic) or ``"mean"`` (z = prior mean)."""
        n = self.check_n(n)
        mode = decode_from or self.config.decode_from
        _choice("decode_from", mode, ("prior", "zero", "mean"))
        s = self.normalizer.normalize_obs(self.check_obs(obs))  # [B, obs_dim]
        B, dz = s.shape[0], self.config.latent_dim
        s = s.repeat_interleave(n, dim=0)  # [B*n, obs_dim], sample j of obs b at row b*n + j
        mu_p, logvar_p = self._prior(s)  # [B*n, dz] each
        if mode == "prior":
            eps = self.randn(B, n, dz, generator=generator).reshape(B * n, dz)  # [B*n, dz]
            z = mu_p + (0.5 * logvar_p).exp() * eps
        elif mode == "mean":
            z = mu_p
        else:
            z = torch.zeros_like(mu_p)
        chunk = self.normalizer.unnormalize_actions(self._decode(s, z))  # [B*n, H, d]
        return chunk.reshape(B, n, self.config.chunk_len, self.config.action_dim)
