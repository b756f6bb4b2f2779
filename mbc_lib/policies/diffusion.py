"""Denoising diffusion over action chunks (DDPM, Ho et al. 2020; Diffusion Policy, Chi et al. 2023).

Forward (noising) process on the normalised chunk x₀ = a, at integer steps k = 1..T:

    x_k = √ᾱ_k · x₀ + √(1 − ᾱ_k) · ε,    ε ~ N(0, I),

with the **cosine schedule** of Nichol & Dhariwal (2021), ᾱ_k = f(k)/f(0),
f(k) = cos²(((k/T + 0.008)/1.008)·π/2), β_k = 1 − ᾱ_k/ᾱ_{k−1} clipped to 0.999, and
T = ``num_train_steps`` = 100 (Diffusion Policy's setting). ``schedule="linear"`` is
DDPM's linear β from 1e-4 to 0.02, rescaled by 1000/T so that ᾱ_T ≈ 0 for any T.

Training regresses the clean chunk (``prediction="sample"``, the default) or the noise
(``"epsilon"``, DDPM and Diffusion Policy):

    L = E_{s, a, k ~ U{1..T}, ε} ‖ε − ε_θ(s, x_k, k/T)‖²    (or ‖x₀ − x̂_θ(s, x_k, k/T)‖²),  mean over H·d.

Sampling runs S ≤ T steps on the evenly spaced sub-sequence k_S > … > k_1 > k_0 = 0
(ᾱ_0 = 1) with the DDIM update (Song et al. 2021) from k to k' < k:

    x̂₀ = (x_k − √(1−ᾱ_k) ε̂)/√ᾱ_k,    σ = η · √((1−ᾱ_k')/(1−ᾱ_k)) · √(1 − ᾱ_k/ᾱ_k'),
    x_k' = √ᾱ_k' x̂₀ + √(1 − ᾱ_k' − σ²) ε̂ + σ z,     z ~ N(0, I).

η = 1 is the DDPM ancestral sampler (posterior variance β̃; with S = T it is exactly DDPM's),
η = 0 is DDIM: deterministic, so the sampler is a map x_T ↦ x₀ — ``transport``. Any η in [0, 1]
interpolates (``sample(..., eta=0.5)``).

A sampler with η > 0 is still a deterministic map, from a larger Gaussian base: the initial noise x_T
*and* the S − 1 injected draws z (the last step, to k = 0, injects none). ``stochastic_map(obs, x_T, z,
steps, eta)`` is that map, differentiable in all of its noise; its Lipschitz constant with respect to
all of it is the L of the isoperimetric bridge floor (chapter 5; the book's appendix, app-isoperimetry,
whose bound holds for a Lipschitz push-forward of a standard Gaussian of any dimension).

Why x₀-prediction by default: ε-prediction recovers x̂₀ = (x_k − √(1−ᾱ_k) ε̂)/√ᾱ_k, which
multiplies the network's error by 1/√ᾱ_T ≈ 2000 at the first step; at the small training
budgets of the course (≈1k steps) that leaves DDIM samples visibly off the modes
(≈ 80% inside the mode radius on the 4-mode ring versus ≈ 99% with x₀-prediction).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..nets import ResMLP
from .base import Policy, PolicyConfig, register

__all__ = ["DiffusionConfig", "DiffusionPolicy", "alpha_bar_schedule"]


@dataclass
class DiffusionConfig(PolicyConfig):
    num_train_steps: int = 100  # T, noise levels in training (Diffusion Policy: 100)
    schedule: str = "cosine"  # ᾱ schedule: "cosine" (Nichol & Dhariwal) | "linear" (DDPM, rescaled to T)
    prediction: str = "sample"  # network output: "sample" (clean chunk x₀) | "epsilon" (noise, DDPM)
    sampler: str = "ddim"  # default sampler of `sample`: "ddim" (η = 0, deterministic) | "ddpm" (η = 1)
    steps: int = 20  # default sampling steps S (≤ T); override per call with sample(..., steps=)
    clip_sample: float = 3.0  # clamp x̂₀ to [−c, c] (normalised units) while sampling; 0 = no clamp

    def validate(self) -> None:
        T = self.num_train_steps
        if not isinstance(T, int) or isinstance(T, bool) or T < 1:
            raise ValueError(f"num_train_steps must be an integer >= 1, got {T!r}")
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or not 1 <= self.steps <= T:
            raise ValueError(f"steps must be an integer in [1, num_train_steps={T}], got {self.steps!r}")
        if not (isinstance(self.clip_sample, (int, float)) and math.isfinite(self.clip_sample) and self.clip_sample >= 0):
            raise ValueError(f"clip_sample must be a finite number >= 0 (0 disables it), got {self.clip_sample!r}")
        for name, value, allowed in (
            ("schedule", self.schedule, ("cosine", "linear")),
            ("prediction", self.prediction, ("epsilon", "sample")),
            ("sampler", self.sampler, ("ddim", "ddpm")),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")


def alpha_bar_schedule(T: int, schedule: str = "cosine") -> Tensor:
    """ᾱ_k for k = 0..T, ``[T + 1]`` (float64), with ᾱ_0 = 1 and ᾱ decreasing towards 0."""
    k = torch.arange(T + 1, dtype=torch.float64)
    if schedule == "cosine":
        s = 0.008
        f = torch.cos((k / T + s) / (1 + s) * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)  # [T]
    elif schedule == "linear":
        scale = 1000.0 / T
        betas = torch.linspace(scale * 1e-4, scale * 0.02, T, dtype=torch.float64).clamp(max=0.999)
    else:
        raise ValueError(f"schedule must be 'cosine' or 'linear', got {schedule!r}")
    return torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, 0)])


@register("diffusion")
class DiffusionPolicy(Policy):
    Config = DiffusionConfig
    SAMPLING_FIELDS = ("sampler", "steps", "clip_sample")

    def __init__(self, config: DiffusionConfig):
        super().__init__(config)
        self.net = ResMLP(config.obs_dim + config.chunk_numel, config.chunk_numel, config.backbone, time_input=True)
        self.register_buffer("alpha_bar", alpha_bar_schedule(config.num_train_steps, config.schedule).float())

    # -- the network, read as both parameterisations ------------------------------------
    def _predict(self, obs: Tensor, x: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        """(ε̂, x̂₀), each ``[B, H·d]``, from obs ``[B, obs_dim]``, x_k ``[B, H·d]``, step k ``[B]`` (long).

        With ε-prediction x̂₀ = (x_k − √(1−ᾱ_k) ε̂)/√ᾱ_k divides by √ᾱ_T ≈ 5e-4 at the first
        step, so tiny errors in ε̂ become huge x̂₀: like Diffusion Policy we clamp x̂₀ to
        the data range (``clip_sample``) and recompute the ε̂ that agrees with it."""
        out = self.net(torch.cat([obs, x], dim=-1), k.float() / self.config.num_train_steps)  # [B, H·d]
        ab = self.alpha_bar[k][:, None]  # ᾱ_k, [B, 1]
        x0 = (x - (1 - ab).sqrt() * out) / ab.sqrt() if self.config.prediction == "epsilon" else out
        if self.config.clip_sample > 0:
            x0 = x0.clamp(-self.config.clip_sample, self.config.clip_sample)
        eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
        return eps, x0

    # -- training -------------------------------------------------------------------------
    def loss_noise(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """The noise level k ~ U{1..T} ``[B]`` (long) and the noise ε ``[B, H·d]`` of each sample."""
        k = self.randint(1, self.config.num_train_steps + 1, batch_size, generator=generator)  # [B]
        eps = self.randn(batch_size, self.config.chunk_numel, generator=generator)  # [B, H·d]
        return {"k": k, "eps": eps}

    def loss(self, batch: dict[str, Tensor], generator: torch.Generator | None = None, *,
             noise: dict[str, Tensor] | None = None, scalars: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        obs, chunk = self.check_batch(batch)  # normalised [B, obs_dim], [B, H, d]
        noise = self.loss_noise(obs.shape[0], generator) if noise is None else noise
        x0 = chunk.flatten(1)  # [B, H·d]
        T = self.config.num_train_steps
        k, eps = noise["k"], noise["eps"]  # noise level per sample [B], noise [B, H·d]
        ab = self.alpha_bar[k][:, None]  # [B, 1]
        x_k = ab.sqrt() * x0 + (1 - ab).sqrt() * eps  # forward process, [B, H·d]
        out = self.net(torch.cat([obs, x_k], dim=-1), k.float() / T)  # [B, H·d]
        target = eps if self.config.prediction == "epsilon" else x0
        mse = (out - target).pow(2).mean()
        return {"loss": mse, "mse": mse.detach()}

    # -- sampling -------------------------------------------------------------------------
    def nfe(self) -> int:
        """Denoiser evaluations per sampled chunk: one per sampler step (the config's ``steps``)."""
        return self.config.steps

    def timesteps(self, steps: int | None = None) -> list[int]:
        """The sub-sequence k_S > … > k_1 > 0 that a sampler with ``steps`` steps visits, plus 0."""
        S, T = self.check_steps(steps, self.config.steps), self.config.num_train_steps
        if S > T:
            raise ValueError(f"steps must be <= num_train_steps={T}, got {S}")
        ks = torch.linspace(T, 0, S + 1).round().long().tolist()  # evenly spaced, T first, 0 last
        return ks

    def _denoise(
        self, obs: Tensor, x: Tensor, steps: int | None, eta: float, generator: torch.Generator | None,
        injected: Tensor | None = None,
    ) -> Tensor:
        """Run the sampler from x_T = ``x [B, H·d]`` (normalised) to x₀ ``[B, H·d]``.

        With η > 0 each step to k' > 0 adds σ·z: z is ``injected[i]`` (``injected [S − 1, B, H·d]``)
        when given, else a fresh draw from ``generator``."""
        ks = self.timesteps(steps)
        # the step indices, allocated once (no per-step host scalars: CUDA-graph friendly), [S, B]
        kks = torch.tensor(ks[:-1], device=x.device, dtype=torch.long)[:, None].expand(len(ks) - 1, x.shape[0])
        for i, (k, k_prev) in enumerate(zip(ks[:-1], ks[1:])):
            kk = kks[i]  # [B]
            eps, x0 = self._predict(obs, x, kk)  # [B, H·d] each
            ab, ab_prev = self.alpha_bar[k], self.alpha_bar[k_prev]
            sigma = eta * ((1 - ab_prev) / (1 - ab)).sqrt() * (1 - ab / ab_prev).sqrt()
            x = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma**2).clamp_min(0).sqrt() * eps  # [B, H·d]
            if eta > 0 and k_prev > 0:
                z = injected[i] if injected is not None else self.randn(*x.shape, generator=generator)
                x = x + sigma * z
        return x

    @staticmethod
    def check_eta(eta: float) -> float:
        """η as a float in [0, 1] (0: DDIM, 1: DDPM), else a ``ValueError``."""
        if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not math.isfinite(eta) or not 0 <= eta <= 1:
            raise ValueError(f"eta (the sampler's noise scale: 0 = DDIM, 1 = DDPM) must be a number in [0, 1], "
                             f"got {eta!r}")
        return float(eta)

    def num_injections(self, steps: int | None = None) -> int:
        """How many noise draws a sampler with ``steps`` steps injects: S − 1 (none on the last step, to k = 0).
        The whole base of a stochastic sampler has (1 + S − 1)·H·d = S·H·d dimensions."""
        return len(self.timesteps(steps)) - 2

    @torch.no_grad()
    def sample(
        self,
        obs: Tensor,
        n: int = 1,
        generator: torch.Generator | None = None,
        steps: int | None = None,
        sampler: str | None = None,
        eta: float | None = None,
    ) -> Tensor:
        """``n`` chunks per observation, ``[B, n, H, d]`` in task units.

        ``steps`` (default ``config.steps``) and ``sampler`` (``"ddim"`` | ``"ddpm"``,
        default ``config.sampler``) override the config for this call; ``eta`` in [0, 1] sets the
        noise scale η of the update directly (0 is ``"ddim"``, 1 is ``"ddpm"``; give one of
        ``sampler`` and ``eta``, not both). The draws come from ``generator``: x_T for every sample
        first, then one ``[B·n, H·d]`` draw per noisy step."""
        n = self.check_n(n)
        if eta is not None and sampler is not None:
            raise ValueError(f"give sampler ({sampler!r}) or eta ({eta!r}), not both: "
                             "sampler='ddim' is eta=0 and sampler='ddpm' is eta=1")
        if eta is None:
            sampler = sampler or self.config.sampler
            if sampler not in ("ddim", "ddpm"):
                raise ValueError(f"sampler must be 'ddim' or 'ddpm', got {sampler!r}")
            eta = 1.0 if sampler == "ddpm" else 0.0
        eta = self.check_eta(eta)
        cfg = self.config
        s = self.normalizer.normalize_obs(self.check_obs(obs))  # [B, obs_dim]
        B = s.shape[0]
        x_T = self.randn(B, n, cfg.chunk_numel, generator=generator).reshape(B * n, -1)  # [B*n, n_a]
        x0 = self._denoise(s.repeat_interleave(n, 0), x_T, steps, eta, generator)
        chunk = x0.reshape(B, n, cfg.chunk_len, cfg.action_dim)  # [B, n, H, d]
        return self.normalizer.unnormalize_actions(chunk)

    def transport(self, obs: Tensor, base_noise: Tensor, steps: int | None = None) -> Tensor:
        """The deterministic DDIM (η = 0) map x_T ↦ x₀: ``obs [B, obs_dim]``, ``base_noise [B, H, d]``
        (standard normal, normalised action units) -> chunk ``[B, H, d]`` in task units.
        Differentiable with respect to ``base_noise`` (for the Lipschitz diagnostics)."""
        cfg = self.config
        s = self.normalizer.normalize_obs(self.check_obs(obs))  # [B, obs_dim]
        if base_noise.shape != (s.shape[0], cfg.chunk_len, cfg.action_dim):
            raise ValueError(
                f"base_noise must be [B={s.shape[0]}, H={cfg.chunk_len}, d={cfg.action_dim}], "
                f"got shape {tuple(base_noise.shape)}"
            )
        x0 = self._denoise(s, base_noise.to(s).flatten(1), steps, 0.0, None)  # [B, H·d]
        return self.normalizer.unnormalize_actions(x0.reshape_as(base_noise))

    def stochastic_map(self, obs: Tensor, base_noise: Tensor, injected_noise: Tensor, steps: int | None = None,
                       eta: float = 1.0) -> Tensor:
        """The sampler with noise scale η as the deterministic map (x_T, z_1, …, z_{S−1}) ↦ x₀ from *all* of
        its noise: ``obs [B, obs_dim]``, ``base_noise [B, H, d]`` (x_T) and ``injected_noise [B, S − 1, H, d]``
        (the draw added at each step to k' > 0, in the order the steps run; see :meth:`num_injections`),
        standard normal in normalised action units -> chunk ``[B, H, d]`` in task units.

        Fed the draws :meth:`sample` makes it returns the same chunks; η = 0 ignores ``injected_noise`` and
        is :meth:`transport`. Differentiable with respect to both noises, so the Lipschitz diagnostics see
        the whole base of S·H·d dimensions (concatenate the two to one vector per sample)."""
        cfg = self.config
        eta = self.check_eta(eta)
        s = self.normalizer.normalize_obs(self.check_obs(obs))  # [B, obs_dim]
        B, shape = s.shape[0], (cfg.chunk_len, cfg.action_dim)
        m = self.num_injections(steps)
        if base_noise.shape != (B, *shape):
            raise ValueError(f"base_noise must be [B={B}, H={shape[0]}, d={shape[1]}], got shape {tuple(base_noise.shape)}")
        if injected_noise.shape != (B, m, *shape):
            raise ValueError(f"injected_noise must be [B={B}, S-1={m}, H={shape[0]}, d={shape[1]}] for "
                             f"{m + 1} steps, got shape {tuple(injected_noise.shape)}")
        z = injected_noise.to(s).reshape(B, m, -1).transpose(0, 1)  # [S − 1, B, H·d]
        x0 = self._denoise(s, base_noise.to(s).flatten(1), steps, eta, None, injected=z)  # [B, H·d]
        return self.normalizer.unnormalize_actions(x0.reshape(B, *shape))
