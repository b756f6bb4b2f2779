"""Synthetic multimodal tasks whose mode structure is known exactly (chapters 1–7).

``make(name, **config)`` builds one; ``task.dataset(n, seed)`` samples demonstrations;
``task.modes(obs)`` gives centres ``[B, K, H, d]``, weights, σ and the separation Δ(s);
``task.assign(obs, chunks)`` labels chunks with their mode or −1 (off-support).
"""
from __future__ import annotations

from typing import Any

from .base import ModeStructure, Task, default_radius
from .branching import Branching
from .fork import Fork
from .ring import Ring

__all__ = ["TASKS", "make", "Task", "ModeStructure", "Fork", "Ring", "Branching", "default_radius"]

#: task name -> class
TASKS: dict[str, type[Task]] = {"fork": Fork, "ring": Ring, "branching": Branching}


def make(name: str, **config: Any) -> Task:
    """Build the task ``name`` (one of :data:`TASKS`) with its keyword config."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of: {', '.join(sorted(TASKS))}")
    try:
        return TASKS[name](**config)
    except TypeError as err:
        if "argument" not in str(err):  # a value of the wrong kind: its own message says what is expected
            raise
        import inspect

        params = [p for p in inspect.signature(TASKS[name]).parameters]
        raise TypeError(f"task {name!r}: {err}; valid options: {params}") from None
