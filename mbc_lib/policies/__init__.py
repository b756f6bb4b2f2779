"""Policy families behind one interface; build one with :func:`make`.

Each family lives in its own module and registers itself on import.
"""
from __future__ import annotations

from typing import Any

import torch

from ..validation import check_seed
from .base import REGISTRY, Policy, PolicyConfig, register
from . import regression  # noqa: F401  (registers "regression")
from . import autoregressive, cvae, diffusion, flow, mixture, vq  # noqa: F401  (register the other families)

__all__ = ["make", "families", "Policy", "PolicyConfig", "register", "REGISTRY"]


def families() -> list[str]:
    """Names accepted by :func:`make`."""
    return sorted(REGISTRY)


def make(name: str, seed: int | None = None, **config: Any) -> Policy:
    """Build policy family ``name`` with ``config`` (fields of its config dataclass;
    ``width``/``depth`` set the shared backbone). ``seed`` fixes the initial weights."""
    if name not in REGISTRY:
        raise ValueError(f"unknown policy family {name!r}; choose one of: {', '.join(families())}")
    cls = REGISTRY[name]
    cfg = cls.Config.from_kwargs(**config)
    if seed is None:
        return cls(cfg)
    seed = check_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(cfg)
