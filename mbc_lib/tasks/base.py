"""What every synthetic task knows: its exact mode structure at each observation.

At observation ``s`` the demonstrated chunk is drawn as

    k ~ Categorical(π(s)),      a = μ_k(s) + σ ε,   ε ~ N(0, I_{H×d}),

so the ground truth is a Gaussian mixture over chunks with known centres ``μ_k(s)``
(``[K, H, d]``), weights ``π_k(s)`` and within-mode noise ``σ``. A chunk belongs to
mode ``k`` when it lies within the *mode radius* ``ρ`` of ``μ_k`` (Euclidean norm over
the flattened chunk); otherwise it is off-support (label −1). By default
``ρ = σ · sqrt(χ²_{n}(0.999))``, n = H·d, so 99.9% of demonstrations fall inside their
mode. Tasks whose number of modes varies with ``s`` pad to ``K_max`` with weight 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from scipy.stats import chi2
from torch import Tensor

from ..data import ChunkDataset, label_modes
from ..validation import check_real, check_seed

__all__ = ["ModeStructure", "Task", "default_radius"]


def default_radius(sigma: float, n: int, coverage: float = 0.999) -> float:
    """Radius of the ball holding ``coverage`` of N(0, σ² I_n): σ·sqrt(χ²_n quantile)."""
    return float(sigma * math.sqrt(chi2.ppf(coverage, n)))


@dataclass
class ModeStructure:
    """The ground truth at a batch of observations.

    centers ``[B, K, H, d]`` (task units), weights ``[B, K]`` (0 marks an absent mode),
    sigma (within-mode standard deviation per element), radius (mode radius ρ).
    """

    centers: Tensor
    weights: Tensor
    sigma: float
    radius: float

    @property
    def count(self) -> Tensor:
        """Number of present modes per observation, ``[B]``."""
        return (self.weights > 0).sum(-1)

    @property
    def center_distance(self) -> Tensor:
        """Δ_c(s): smallest distance between two present mode centres, ``[B]`` (inf if one mode)."""
        flat = self.centers.flatten(2)  # [B, K, n]
        dist = torch.cdist(flat, flat)  # [B, K, K]
        present = self.weights > 0
        valid = present[:, :, None] & present[:, None, :]
        valid &= ~torch.eye(dist.shape[-1], dtype=torch.bool, device=dist.device)
        return dist.masked_fill(~valid, math.inf).amin(dim=(-1, -2))

    @property
    def separation(self) -> Tensor:
        """Δ(s) = Δ_c(s) − 2ρ: the gap between mode regions (chapter 5; app-counting), ``[B]``."""
        return self.center_distance - 2 * self.radius


class Task:
    """Base class of the synthetic tasks. Subclasses set ``obs_dim``, ``action_dim``,
    ``chunk_len``, ``sigma``, ``radius`` and implement :meth:`sample_obs` and :meth:`modes`."""

    name: str = "?"
    obs_dim: int
    action_dim: int
    chunk_len: int
    sigma: float
    radius: float

    # -- to implement -------------------------------------------------------------
    def sample_obs(self, n: int, generator: torch.Generator) -> Tensor:  # pragma: no cover - abstract
        """``n`` observations ``[n, obs_dim]`` from the task's state distribution."""
        raise NotImplementedError

    def modes(self, obs: Tensor) -> ModeStructure:  # pragma: no cover - abstract
        """The mode structure at ``obs [B, obs_dim]``."""
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------
    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(obs_dim={self.obs_dim}, action_dim={self.action_dim}, "
            f"H={self.chunk_len}, sigma={self.sigma}, radius={self.radius:.3g})"
        )

    def check_obs(self, obs: Tensor) -> Tensor:
        """``obs`` as a float tensor ``[B, obs_dim]`` of finite numbers, else a ``ValueError``."""
        try:
            obs = torch.as_tensor(obs, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"{self.name}: obs must be a tensor or an array of numbers [B, {self.obs_dim}], "
                            f"got {type(obs).__name__} ({err})") from None
        if obs.ndim != 2 or obs.shape[1] != self.obs_dim:
            raise ValueError(f"{self.name}: obs must be [B, {self.obs_dim}], got shape {tuple(obs.shape)}")
        if not torch.isfinite(obs).all():
            raise ValueError(f"{self.name}: obs contains {int((~torch.isfinite(obs)).sum())} non-finite value(s) "
                             "(NaN or inf); observations must be finite numbers")
        return obs

    def _number(self, value: float, name: str, **bounds) -> float:
        """``value`` as a float checked by :func:`mbc_lib.validation.check_real`; the message names the task."""
        try:
            return check_real(value, name, **bounds)
        except (TypeError, ValueError) as err:
            raise type(err)(f"{self.name}: {err}") from None

    def _validate_common(self, sigma: float, chunk_len: int, radius: float | None) -> None:
        if not isinstance(chunk_len, int) or isinstance(chunk_len, bool) or chunk_len < 1:
            raise ValueError(f"{self.name}: chunk_len must be an integer >= 1, got {chunk_len!r}")
        self._number(sigma, "sigma", low=0.0, what="within-mode noise per action element")
        if radius is not None:
            self._number(radius, "radius", low=0.0, low_open=True, what="mode radius")

    def _resolve_radius(self, radius: float | None, min_center_distance: float, allow_overlap: bool = False) -> float:
        """The mode radius, checked so that mode regions do not overlap (unless allowed)."""
        rho = radius if radius is not None else default_radius(self.sigma, self.chunk_len * self.action_dim)
        rho = max(rho, 1e-6)
        if 2 * rho >= min_center_distance and not allow_overlap:
            raise ValueError(
                f"{self.name}: the modes overlap — mode radius {rho:.3g} is at least half the smallest centre "
                f"distance {min_center_distance:.3g}; increase the separation or decrease sigma "
                "(or pass allow_overlap=True to study overlapping modes; assignment is then to the nearest centre)"
            )
        return rho

    def sample(self, obs: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """One demonstration per observation: ``(chunks [B, H, d], modes [B])``."""
        obs = self.check_obs(obs)
        ms = self.modes(obs)
        k = torch.multinomial(ms.weights, 1, generator=generator).squeeze(1)  # [B]
        centers = ms.centers[torch.arange(obs.shape[0]), k]  # [B, H, d]
        noise = torch.randn(centers.shape, generator=generator)
        return centers + self.sigma * noise, k

    def sample_chunks(self, obs: Tensor, n: int = 1, generator: torch.Generator | None = None) -> Tensor:
        """``n`` demonstrator chunks per observation, ``[B, n, H, d]`` — the *perfect* multimodal
        policy, with the same signature as ``Policy.sample``."""
        obs = self.check_obs(obs)
        B = obs.shape[0]
        chunks, _ = self.sample(obs.repeat_interleave(n, 0), generator)
        return chunks.reshape(B, n, self.chunk_len, self.action_dim)

    def dataset(self, n: int, seed: int = 0, device: torch.device | str | None = None) -> ChunkDataset:
        """``n`` demonstrations ``(obs, chunk, mode)`` as a :class:`ChunkDataset`."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n must be an integer >= 1, got {n!r}")
        g = torch.Generator().manual_seed(check_seed(seed))
        obs = self.sample_obs(n, g)
        chunks, modes = self.sample(obs, g)
        return ChunkDataset(obs, chunks, modes, device=device)

    def assign(self, obs: Tensor, chunks: Tensor) -> Tensor:
        """Mode labels of ``chunks``: the nearest present mode if within the radius, else −1.

        ``chunks`` is ``[B, H, d]`` (one per observation) or ``[B, n, H, d]``; the labels are
        ``[B]`` or ``[B, n]``.
        """
        obs = self.check_obs(obs)
        chunks = torch.as_tensor(chunks).detach().float().cpu()
        single = chunks.ndim == 3
        if single:
            chunks = chunks.unsqueeze(1)
        H, d = self.chunk_len, self.action_dim
        if chunks.ndim != 4 or chunks.shape[0] != obs.shape[0] or chunks.shape[2:] != (H, d):
            raise ValueError(
                f"{self.name}: chunks must be [B={obs.shape[0]}, H={H}, d={d}] or [B, n, H, d], "
                f"got shape {tuple(chunks.shape)}"
            )
        ms = self.modes(obs)
        label = label_modes(chunks.flatten(2), ms.centers.flatten(2), self.radius, present=ms.weights > 0)  # [B, n]
        return label[:, 0] if single else label

    def off_support(self, obs: Tensor, chunks: Tensor) -> float:
        """Fraction of ``chunks`` that lie in no mode (the averaging failure, measured)."""
        return float((self.assign(obs, chunks) < 0).float().mean())
