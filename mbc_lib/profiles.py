"""Run profiles: one notebook, three budgets (DESIGN.md §6).

``MBC_PROFILE`` selects how much compute an experiment spends:

* ``fast``     — CI and nbval: seconds per notebook on 2 CPU cores, tiny models;
* ``standard`` — the CPU default: minutes per notebook;
* ``full``     — the CUDA default: the numbers the book quotes.

Experiments never branch on the profile by hand: they call :func:`budget` with
their own name and get the sizes from :data:`BUDGETS`, the one table of sizes.
"""
from __future__ import annotations

import os
from typing import Any

import torch

PROFILES = ("fast", "standard", "full")

#: The one table of sizes: experiment name -> profile -> keyword arguments.
BUDGETS: dict[str, dict[str, dict[str, Any]]] = {
    # chapter 1: regression on the fork task, one model per (K, Δ) grid point
    "averaging": {
        "fast": dict(n_demos=512, steps=300, width=64, depth=2, batch_size=256, n_eval=64),
        "standard": dict(n_demos=4096, steps=2000, width=128, depth=3, batch_size=256, n_eval=256),
        "full": dict(n_demos=16384, steps=6000, width=256, depth=3, batch_size=512, n_eval=512),
    },
}


def profile() -> str:
    """The active profile: ``$MBC_PROFILE`` if set, else ``full`` on CUDA and ``standard`` elsewhere."""
    name = os.environ.get("MBC_PROFILE", "").strip().lower()
    if not name:
        return "full" if torch.cuda.is_available() else "standard"
    if name not in PROFILES:
        raise ValueError(
            f"unknown profile MBC_PROFILE={name!r}; expected one of {', '.join(PROFILES)} "
            "(unset it to get the default: full on CUDA, standard elsewhere)"
        )
    return name


def budget(experiment: str, profile_name: str | None = None) -> dict[str, Any]:
    """Sizes for ``experiment`` under ``profile_name`` (default: the active profile)."""
    if experiment not in BUDGETS:
        raise ValueError(f"no budget for experiment {experiment!r}; known: {', '.join(sorted(BUDGETS))}")
    name = profile() if profile_name is None else profile_name
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; expected one of {', '.join(PROFILES)}")
    return dict(BUDGETS[experiment][name])
