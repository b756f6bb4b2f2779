"""Flow matching / rectified flow over action chunks (Lipman et al. 2023; Liu et al. 2023; π0's action head).

Convention: t = 0 is noise, t = 1 is data. With x₀ ~ N(0, I) and x₁ = a (normalised chunk),
the linear (rectified) path and its velocity are

    x_t = (1 − t) · x₀ + t · x₁,        d x_t / dt = x₁ − x₀,

and the network regresses that velocity (conditional flow matching):

    L = E_{s, a, x₀, t} ‖v_θ(s, x_t, t) − (x₁ − x₀)‖²,   mean over the H·d elements.

Time sampling: ``"uniform"`` t ~ U[0, 1], or ``"beta"``, π0's schedule, which favours
the noisy end: t = s·(1 − u), u ~ Beta(1.5, 1), s = 0.999, drawn by inverting Beta(1.5, 1)'s
CDF u^1.5: u = v^(2/3), v ~ U[0, 1). (π0 writes the path the other way round, τ = 1 − t, so
its "p(τ) = Beta((s − τ)/s; 1.5, 1)" is this with τ ↔ t.)

Sampling integrates the ODE dx/dt = v_θ(s, x, t) from x₀ ~ N(0, I) at t = 0 to t = 1 in
``steps`` equal steps, with Euler (1 network call per step) or Heun (2 calls, 2nd order).
The whole solve is a deterministic map x₀ ↦ x₁ — ``transport`` — and all the randomness
of a sample is its base noise x₀.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..nets import ResMLP
from .base import Policy, PolicyConfig, register

__all__ = ["FlowConfig", "FlowPolicy"]


@dataclass
class FlowConfig(PolicyConfig):
    time_sampling: str = "uniform"  # training times: "uniform" U[0,1] | "beta" (π0: favours the noisy end)
    solver: str = "euler"  # ODE integrator: "euler" | "heun" (2nd order, 2 network calls per step)
    steps: int = 10  # default integration steps (π0 uses 10); override per call with sample(..., steps=)

    def validate(self) -> None:
        if self.time_sampling not in ("uniform", "beta"):
            raise ValueError(f"time_sampling must be 'uniform' or 'beta', got {self.time_sampling!r}")
        if self.solver not in ("euler", "heun"):
            raise ValueError(f"solver must be 'euler' or 'heun', got {self.solver!r}")
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {self.steps!r}")


@register("flow")
class FlowPolicy(Policy):
    Config = FlowConfig
    SAMPLING_FIELDS = ("solver", "steps")

    def __init__(self, config: FlowConfig):
        super().__init__(config)
        self.net = ResMLP(config.obs_dim + config.chunk_numel, config.chunk_numel, config.backbone, time_input=True)

    def velocity(self, obs: Tensor, x: Tensor, t: Tensor) -> Tensor:
        """v_θ(s, x_t, t): normalised obs ``[B, obs_dim]``, x_t ``[B, H·d]``, t ``[B]`` -> ``[B, H·d]``."""
        return self.net(torch.cat([obs, x], dim=-1), t)

    # -- training -------------------------------------------------------------------------
    def loss_noise(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """The base noise x₀ ``[B, H·d]`` and the path times t ``[B]``."""
        x0 = self.randn(batch_size, self.config.chunk_numel, generator=generator)  # [B, H·d]
        v = self.rand(batch_size, generator=generator)  # [B]
        if self.config.time_sampling == "uniform":
            return {"x0": x0, "t": v}
        return {"x0": x0, "t": 0.999 * (1.0 - v.pow(2.0 / 3.0))}  # u = v^(2/3) ~ Beta(1.5, 1): mass near t = 0

    def loss(self, batch: dict[str, Tensor], generator: torch.Generator | None = None, *,
             noise: dict[str, Tensor] | None = None, scalars: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        obs, chunk = self.check_batch(batch)  # normalised [B, obs_dim], [B, H, d]
        noise = self.loss_noise(obs.shape[0], generator) if noise is None else noise
        x1 = chunk.flatten(1)  # data, [B, H·d]
        x0, t = noise["x0"], noise["t"]  # noise [B, H·d], times [B]
        x_t = (1 - t[:, None]) * x0 + t[:, None] * x1  # point on the straight path, [B, H·d]
        mse = (self.velocity(obs, x_t, t) - (x1 - x0)).pow(2).mean()
        return {"loss": mse, "mse": mse.detach()}

    # -- sampling: integrate dx/dt = v from t = 0 to 1 ------------------------------------
    def nfe(self) -> int:
        """Velocity evaluations per sampled chunk: one per Euler step, two per Heun step."""
        return self.config.steps * (2 if self.config.solver == "heun" else 1)

    def _integrate(self, obs: Tensor, x: Tensor, steps: int | None, solver: str | None) -> Tensor:
        """ODE solve from x₀ = ``x [B, H·d]`` to x₁ ``[B, H·d]`` (normalised units)."""
        S = self.check_steps(steps, self.config.steps)
        solver = solver or self.config.solver
        if solver not in ("euler", "heun"):
            raise ValueError(f"solver must be 'euler' or 'heun', got {solver!r}")
        dt = 1.0 / S
        # the time grid, allocated once (no per-step host scalars: CUDA-graph friendly), [S, B]
        grid = torch.tensor([i * dt for i in range(S)], device=x.device)[:, None].expand(S, x.shape[0])
        for i in range(S):
            t = grid[i]  # [B]
            v = self.velocity(obs, x, t)  # [B, H·d]
            if solver == "euler":
                x = x + dt * v
            else:  # Heun: average the slope at both ends of the Euler step
                x_euler = x + dt * v
                v_next = self.velocity(obs, x_euler, t + dt)
                x = x + 0.5 * dt * (v + v_next)
        return x

    @torch.no_grad()
    def sample(
        self,
        obs: Tensor,
        n: int = 1,
        generator: torch.Generator | None = None,
        steps: int | None = None,
        solver: str | None = None,
    ) -> Tensor:
        """``n`` chunks per observation, ``[B, n, H, d]`` in task units.

        ``steps`` and ``solver`` (``"euler"`` | ``"heun"``) override the config for this call."""
        n = self.check_n(n)
        cfg = self.config
        s = self.normalizer.normalize_obs(self.check_obs(obs))  # [B, obs_dim]
        B = s.shape[0]
        x0 = self.randn(B, n, cfg.chunk_numel, generator=generator).reshape(B * n, -1)  # [B*n, H·d]
        x1 = self._integrate(s.repeat_interleave(n, 0), x0, steps, solver)  # [B*n, H·d]
        return self.normalizer.unnormalize_actions(x1.reshape(B, n, cfg.chunk_len, cfg.action_dim))

    def transport(self, obs: Tensor, base_noise: Tensor, steps: int | None = None, solver: str | None = None) -> Tensor:
        """The ODE map x₀ ↦ x₁: ``obs [B, obs_dim]``, ``base_noise [B, H, d]`` (standard normal,
        normalised action units) -> chunk ``[B, H, d]`` in task units. Deterministic and
        differentiable with respect to ``base_noise`` (for the Lipschitz diagnostics)."""
        cfg = self.config
        s = self.normalizer.normalize_obs(self.check_obs(obs))  # [B, obs_dim]
        if base_noise.shape != (s.shape[0], cfg.chunk_len, cfg.action_dim):
            raise ValueError(
                f"base_noise must be [B={s.shape[0]}, H={cfg.chunk_len}, d={cfg.action_dim}], "
                f"got shape {tuple(base_noise.shape)}"
            )
        x1 = self._integrate(s, base_noise.to(s).flatten(1), steps, solver)  # [B, H·d]
        return self.normalizer.unnormalize_actions(x1.reshape_as(base_noise))
