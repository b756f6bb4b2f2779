"""Every experiment of the book as a named function (DESIGN.md §2).

Notebooks, tests and benchmarks call these; each takes ``profile`` (sizes come from
:data:`mbc_lib.profiles.BUDGETS`) and ``seed``, and returns tidy results.
``python -m mbc_lib run NAME`` runs one from the shell and prints its summary.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import averaging

__all__ = ["EXPERIMENTS", "run", "averaging"]


def _averaging(profile: str | None = None, seed: int = 0) -> list[dict[str, Any]]:
    return averaging.summary(averaging.sweep(profile=profile, seed=seed))


#: name -> callable(profile=..., seed=...) returning a list of tidy rows
EXPERIMENTS: dict[str, Callable[..., list[dict[str, Any]]]] = {"averaging": _averaging}


def run(name: str, profile: str | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """Run experiment ``name`` and return its summary rows."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose one of: {', '.join(sorted(EXPERIMENTS))}")
    return EXPERIMENTS[name](profile=profile, seed=seed)
