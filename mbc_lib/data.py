"""Demonstration data as action chunks, kept on the training device.

A :class:`ChunkDataset` holds three aligned tensors

* ``obs``    ``[N, obs_dim]``           observations (task units),
* ``chunks`` ``[N, H, action_dim]``     the action chunk demonstrated at that observation,
* ``modes``  ``[N]`` (long)             the mode label of the demonstration (−1 if unknown),

and optionally ``beta`` ``[N]``, a per-sample KL weight (a CVAE trained on the dataset then weighs
each sample's KL with it instead of its config's β: a state-dependent β(s)), all on one device,
so a minibatch is an index gather and never a per-sample Python loop. :class:`Normalizer` holds
per-dimension mean/std statistics; the policies own one (as buffers, saved with their weights) so
that ``sample`` returns actions in task units while networks see standardised inputs.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from .validation import check_int, check_real, check_seed

__all__ = ["ChunkDataset", "Normalizer", "chunk_trajectories", "label_modes"]


def _as_tensor(x, name: str, dtype=torch.float32) -> Tensor:
    if not isinstance(x, Tensor):
        try:
            x = torch.as_tensor(np.asarray(x))  # via numpy: Python floats stay float64 (0.7 is not 0.69999...)
        except Exception as err:
            raise TypeError(f"{name} must be a tensor or an array of numbers, got {type(x).__name__} ({err})") from None
    if x.dtype == torch.bool or not (x.is_floating_point() or x.dtype in _INT_DTYPES):
        raise TypeError(f"{name} must hold real numbers, got a tensor of dtype {x.dtype}")
    return x.to(dtype)


_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _mode_labels(modes, n: int) -> Tensor:
    """Mode labels as a long tensor ``[n]``: whole numbers >= −1 (−1 = unknown). Float labels
    are accepted only when they are whole numbers (1.0, not 0.7): nothing is truncated."""
    exact = isinstance(modes, Tensor) and modes.dtype in _INT_DTYPES  # integer labels: no float round trip
    raw = modes.reshape(-1) if exact else _as_tensor(modes, "modes", dtype=torch.float64).reshape(-1)
    if raw.shape[0] != n:
        raise ValueError(f"modes must be [N={n}] (one label per sample), got shape {tuple(raw.shape)}")
    bad = (raw < -1) if exact else (~torch.isfinite(raw) | (raw != raw.round()) | (raw < -1))
    if bad.any():
        i = int(bad.nonzero()[0, 0])
        raise ValueError(f"modes must be integer labels >= -1 (the mode index, -1 = unknown), got {raw[i].item()} "
                         f"at index {i}; pass whole numbers (cluster or round the labels first)")
    return raw.long()


def label_modes(samples: Tensor, centers: Tensor, radius: float | Tensor, present: Tensor | None = None) -> Tensor:
    """The mode label of each sample: the index of the nearest present centre if the sample lies
    within that mode's radius, else −1 (off every mode). The one rule behind every mode label in
    the library (:meth:`mbc_lib.tasks.Task.assign`, :func:`mbc_lib.diagnostics.assign_modes`).

    Args:
        samples: ``[..., N, D]`` flattened chunks.
        centers: ``[..., K, D]`` mode centres (same leading axes as ``samples``: one set per observation).
        radius: ρ, a number or ``[K]`` (one per mode).
        present: optional ``[..., K]`` booleans; ``False`` marks an absent mode (never assigned).
    Returns: labels ``[..., N]`` (long) in {−1, 0, …, K−1}.
    """
    # exact distances (no ‖x‖² + ‖c‖² − 2x·c shortcut), so a sample on the radius is labelled the same everywhere
    dist = torch.cdist(samples, centers, compute_mode="donot_use_mm_for_euclid_dist")  # [..., N, K]
    if present is not None:
        dist = dist.masked_fill(~present[..., None, :], math.inf)
    best, label = dist.min(-1)  # [..., N]
    rho = radius[label] if isinstance(radius, Tensor) and radius.ndim > 0 else radius
    return torch.where(best <= rho, label, torch.full_like(label, -1))


class Normalizer(nn.Module):
    """Per-dimension standardisation of observations and actions.

    ``normalize_obs(obs)`` = (obs − μ_s)/σ_s and ``normalize_actions(a)`` = (a − μ_a)/σ_a,
    with statistics over all demonstrations (and, for actions, over all chunk steps).
    An identity normalizer (μ = 0, σ = 1) is the default until :meth:`fit` is called.
    """

    def __init__(self, obs_dim: int, action_dim: int):
        super().__init__()
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))
        self.register_buffer("act_mean", torch.zeros(action_dim))
        self.register_buffer("act_std", torch.ones(action_dim))

    @torch.no_grad()
    def fit(self, dataset: ChunkDataset, min_std: float = 1e-3) -> Normalizer:
        """Set the statistics from ``dataset`` (σ floored at ``min_std`` so constant dims stay finite)."""
        if dataset.obs_dim != self.obs_mean.numel() or dataset.action_dim != self.act_mean.numel():
            raise ValueError(
                f"normalizer is for obs_dim={self.obs_mean.numel()}, action_dim={self.act_mean.numel()}; "
                f"dataset has obs_dim={dataset.obs_dim}, action_dim={dataset.action_dim}"
            )
        acts = dataset.chunks.reshape(-1, dataset.action_dim)
        self.obs_mean.copy_(dataset.obs.mean(0))
        self.obs_std.copy_(dataset.obs.std(0, unbiased=False).clamp_min(min_std))
        self.act_mean.copy_(acts.mean(0))
        self.act_std.copy_(acts.std(0, unbiased=False).clamp_min(min_std))
        return self

    def normalize_obs(self, obs: Tensor) -> Tensor:
        return (obs - self.obs_mean) / self.obs_std

    def normalize_actions(self, a: Tensor) -> Tensor:
        """``a`` is ``[..., action_dim]``."""
        return (a - self.act_mean) / self.act_std

    def unnormalize_actions(self, a: Tensor) -> Tensor:
        return a * self.act_std + self.act_mean


@dataclass
class ChunkDataset:
    """Aligned (observation, action chunk, mode label) tensors on one device.

    Args:
        obs: ``[N, obs_dim]`` observations.
        chunks: ``[N, H, action_dim]`` action chunks.
        modes: ``[N]`` integer mode labels, −1 where unknown; ``None`` means all unknown.
        device: where the tensors live (default: where ``obs`` already is).
        beta: optional ``[N]`` per-sample KL weights (finite, >= 0); batches then carry them as
            ``"beta"``. Only a one-model :func:`mbc_lib.train.train` reads them (a stacked run gathers
            ``obs`` and ``chunks`` only).
    """

    obs: Tensor
    chunks: Tensor
    modes: Tensor | None = None
    device: torch.device | str | None = None
    beta: Tensor | None = None

    def __post_init__(self) -> None:
        obs = _as_tensor(self.obs, "obs")
        chunks = _as_tensor(self.chunks, "chunks")
        if obs.ndim != 2:
            raise ValueError(f"obs must be [N, obs_dim], got shape {tuple(obs.shape)}")
        if chunks.ndim != 3:
            raise ValueError(f"chunks must be [N, H, action_dim], got shape {tuple(chunks.shape)}")
        if obs.shape[0] != chunks.shape[0]:
            raise ValueError(
                f"obs and chunks disagree on the number of samples: {obs.shape[0]} vs {chunks.shape[0]}"
            )
        if obs.shape[0] == 0:
            raise ValueError("a ChunkDataset needs at least one sample")
        for name, t in (("obs", obs), ("chunks", chunks)):
            if not torch.isfinite(t).all():
                bad = int((~torch.isfinite(t)).sum())
                raise ValueError(f"{name} contains {bad} non-finite values (NaN or inf); clean the data first")
        if self.modes is None:
            modes = torch.full((obs.shape[0],), -1, dtype=torch.long)
        else:
            modes = _mode_labels(self.modes, obs.shape[0])
        device = torch.device(self.device) if self.device is not None else obs.device
        if self.beta is not None:
            beta = _as_tensor(self.beta, "beta").reshape(-1)
            if beta.shape[0] != obs.shape[0]:
                raise ValueError(f"beta must be [N={obs.shape[0]}] (one KL weight per sample), got shape "
                                 f"{tuple(torch.as_tensor(self.beta).shape)}")
            if not (torch.isfinite(beta).all() and (beta >= 0).all()):
                raise ValueError("beta (per-sample KL weights) must be finite numbers >= 0")
            self.beta = beta.to(device)
        self.obs, self.chunks, self.modes = obs.to(device), chunks.to(device), modes.to(device)
        self.device = device

    # -- sizes ---------------------------------------------------------------
    def __len__(self) -> int:
        return self.obs.shape[0]

    @property
    def obs_dim(self) -> int:
        return self.obs.shape[1]

    @property
    def chunk_len(self) -> int:
        return self.chunks.shape[1]

    @property
    def action_dim(self) -> int:
        return self.chunks.shape[2]

    # -- moving and slicing ----------------------------------------------------
    def to(self, device: torch.device | str) -> ChunkDataset:
        """A copy on ``device`` (pinned, non-blocking copy when moving CPU → CUDA)."""
        device = torch.device(device)
        if device == self.device:
            return self
        tensors = [self.obs, self.chunks, self.modes] + ([self.beta] if self.beta is not None else [])
        if device.type == "cuda" and self.device.type == "cpu":
            tensors = [t.pin_memory() for t in tensors]
        obs, chunks, modes, *beta = (t.to(device, non_blocking=True) for t in tensors)
        return ChunkDataset(obs, chunks, modes, device=device, beta=beta[0] if beta else None)

    def subset(self, index: Tensor) -> ChunkDataset:
        """The samples at ``index`` (a long tensor or boolean mask), on the same device."""
        index = index.to(self.device)
        return ChunkDataset(self.obs[index], self.chunks[index], self.modes[index], device=self.device,
                            beta=self.beta[index] if self.beta is not None else None)

    def split(self, val_fraction: float = 0.1, seed: int = 0) -> tuple[ChunkDataset, ChunkDataset]:
        """A seeded random train/validation split; the same seed gives the same split."""
        check_real(val_fraction, "val_fraction", low=0.0, high=1.0, low_open=True, high_open=True)
        seed = check_seed(seed)
        n_val = max(1, int(round(len(self) * val_fraction)))
        if n_val >= len(self):
            raise ValueError(f"dataset of {len(self)} samples is too small for a validation split")
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(self), generator=g)
        return self.subset(perm[n_val:]), self.subset(perm[:n_val])

    def batch(self, index: Tensor) -> dict[str, Tensor]:
        """The minibatch at ``index``: ``{"obs": [B, obs_dim], "chunk": [B, H, d], "mode": [B]}``, plus
        ``"beta": [B]`` when the dataset carries per-sample KL weights."""
        batch = {"obs": self.obs[index], "chunk": self.chunks[index], "mode": self.modes[index]}
        if self.beta is not None:
            batch["beta"] = self.beta[index]
        return batch

    def batches(self, batch_size: int, generator: torch.Generator | None = None) -> Iterator[dict[str, Tensor]]:
        """An endless stream of shuffled minibatches (one permutation per epoch, drawn on-device)."""
        return map(self.batch, self.batch_indices(batch_size, generator))

    def batch_indices(self, batch_size: int, generator: torch.Generator | None = None) -> Iterator[Tensor]:
        """The indices behind :meth:`batches`: an endless stream of ``[min(batch_size, N)]`` long
        tensors on this dataset's device, one random permutation per epoch (drawn on the generator's
        device) cut into whole batches (the last partial batch of an epoch is dropped)."""
        check_int(batch_size, "batch_size", minimum=1)
        return self._batch_indices(min(batch_size, len(self)), generator)

    def _batch_indices(self, batch_size: int, generator: torch.Generator | None) -> Iterator[Tensor]:
        while True:
            perm = torch.randperm(len(self), generator=generator, device=generator.device if generator else "cpu")
            perm = perm.to(self.device)
            for start in range(0, len(self) - batch_size + 1, batch_size):
                yield perm[start : start + batch_size]

    def normalizer(self) -> Normalizer:
        """A :class:`Normalizer` fitted to this dataset."""
        return Normalizer(self.obs_dim, self.action_dim).to(self.device).fit(self)

    def mode_counts(self) -> dict[int, int]:
        """How many demonstrations carry each mode label."""
        labels, counts = torch.unique(self.modes.cpu(), return_counts=True)
        return {int(k): int(c) for k, c in zip(labels, counts)}

    @classmethod
    def from_trajectories(
        cls,
        observations: Sequence[Tensor],
        actions: Sequence[Tensor],
        chunk_len: int,
        modes: Sequence[int] | None = None,
        pad: bool = False,
        device: torch.device | str | None = None,
    ) -> ChunkDataset:
        """Cut trajectories into (obs_t, a_{t:t+H}) pairs; see :func:`chunk_trajectories`."""
        obs, chunks, labels = chunk_trajectories(observations, actions, chunk_len, modes, pad)
        return cls(obs, chunks, labels, device=device)


def chunk_trajectories(
    observations: Sequence[Tensor],
    actions: Sequence[Tensor],
    chunk_len: int,
    modes: Sequence[int] | None = None,
    pad: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """Slice each trajectory into overlapping chunks.

    Trajectory ``i`` has observations ``[T_i, obs_dim]`` and actions ``[T_i, action_dim]``;
    step ``t`` yields ``(obs_t, actions[t : t+H])``. Without ``pad`` only the ``T_i − H + 1``
    windows that fit are kept; with ``pad`` every step yields a chunk, the tail repeating
    the last action (ACT pads the same way, there with a mask).

    Returns ``obs [N, obs_dim]``, ``chunks [N, H, action_dim]``, ``modes [N]``.
    """
    if not isinstance(chunk_len, int) or isinstance(chunk_len, bool) or chunk_len < 1:
        raise ValueError(f"chunk_len must be an integer >= 1, got {chunk_len!r}")
    if len(observations) != len(actions):
        raise ValueError(f"got {len(observations)} observation sequences but {len(actions)} action sequences")
    if len(observations) == 0:
        raise ValueError("no trajectories given")
    if modes is not None and len(modes) != len(observations):
        raise ValueError(f"got {len(modes)} mode labels for {len(observations)} trajectories")
    all_obs, all_chunks, all_modes = [], [], []
    for i, (o, a) in enumerate(zip(observations, actions)):
        o, a = _as_tensor(o, "observations"), _as_tensor(a, "actions")
        if o.ndim != 2 or a.ndim != 2 or o.shape[0] != a.shape[0]:
            raise ValueError(
                f"trajectory {i}: observations must be [T, obs_dim] and actions [T, action_dim] with the same T; "
                f"got {tuple(o.shape)} and {tuple(a.shape)}"
            )
        T = a.shape[0]
        if T == 0:
            raise ValueError(f"trajectory {i} is empty (T=0 steps); drop empty trajectories before chunking")
        if not pad and chunk_len > T:
            raise ValueError(
                f"chunk_len={chunk_len} is longer than trajectory {i} (T={T}); "
                "use a shorter chunk, longer trajectories, or pad=True"
            )
        if pad:
            a = torch.cat([a, a[-1:].expand(chunk_len - 1, -1)], dim=0)
            n = T
        else:
            n = T - chunk_len + 1
        windows = a.unfold(0, chunk_len, 1)[:n].transpose(1, 2)  # [n, H, action_dim]
        all_obs.append(o[:n])
        all_chunks.append(windows)
        label = -1 if modes is None else int(_mode_labels([modes[i]], 1)[0])
        all_modes.append(torch.full((n,), label, dtype=torch.long))
    return torch.cat(all_obs), torch.cat(all_chunks), torch.cat(all_modes)
