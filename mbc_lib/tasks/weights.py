"""Validation of mode counts and mixture weights, shared by the tasks."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def check_weights(weights: Sequence[float] | None, K: int, task: str) -> Tensor:
    """π as a ``[K]`` tensor summing to 1 (uniform when ``weights`` is None)."""
    if not isinstance(K, int) or isinstance(K, bool) or K < 1:
        raise ValueError(f"{task}: the number of modes K must be an integer >= 1, got {K!r}")
    if weights is None:
        return torch.full((K,), 1.0 / K)
    w = torch.as_tensor(weights, dtype=torch.float32).reshape(-1)
    if w.numel() != K:
        raise ValueError(f"{task}: got {w.numel()} weights for K={K} modes")
    if not torch.isfinite(w).all() or (w <= 0).any():
        raise ValueError(f"{task}: mode weights must be finite and > 0, got {w.tolist()}")
    return w / w.sum()
