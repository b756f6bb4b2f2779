"""Chapter 6: sharp transitions and bridges in trained flow and diffusion policies.

A trained transport policy is a map ``a = G_s(ε)`` from base noise to chunks (chapter 5). To
put little mass between K modes it must be *sharp*: Gaussian isoperimetry (chapter 5; the book's
appendix, app-isoperimetry) ties the mass in no mode — the *bridge* b — to the Lipschitz constant L
of the whole sampler. We train flow and diffusion policies on the K-branch fork and measure, at a
few observations (the diagnostics of the book's appendix, app-diagnostics):

* **Lipschitz estimates**: the Jacobian spectral norm by power iteration at random base points, at
  base points whose sample fell in the bridge and inside the transitions, and the largest
  finite-difference stretch along random base segments. All are *lower* bounds on L; L̂ is
  their maximum.
* **Bridge mass** b̂: the fraction of samples in no mode, against the isoperimetric floor at L̂
  (:func:`mbc_lib.theory.bridge_floor`: the two-mode floor, or its K-mode corollary) and the smallest
  L consistent with b̂ (:func:`mbc_lib.theory.implied_min_lipschitz`).
* **Transition width** (:func:`mbc_lib.measure.transitions`): where a base segment passes from one mode to another,
  the base length between a point in one and a point in the other, located by bisection, against
  Δ/J with J the largest Jacobian norm measured inside the transition. A map whose stretch there is
  at most J needs at least Δ/J of base length to cross a gap Δ; since J is measured at finitely many
  points, the check could fail if they missed the steepest one.

…as the number of integration steps, K and the gap Δ = Δ_c − 2ρ vary (:func:`sweep`). The measurement of
one model is :func:`mbc_lib.measure.measure_bridges` (chapter 7 holds its samplers to the same floor);
the figures are in :mod:`mbc_lib.figures.bridges`.
Units: base noise in standard-normal units; chunks in task units; L in task units per base unit.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from tqdm.auto import tqdm

from .. import tasks
from ..fitting import fit as fit_policy
from ..measure import BridgeStats, TrainedTransport, measure_bridges
from ..profiles import budget
from ..runtime import progress_enabled

__all__ = ["MODELS", "fit", "sweep", "summary"]

#: the models chapter 6 trains: (family, K, Δ_c) — a K sweep and a Δ sweep through (flow, 2, 3.0)
MODELS: tuple[tuple[str, int, float], ...] = (
    ("flow", 2, 3.0), ("diffusion", 2, 3.0), ("flow", 3, 3.0), ("flow", 4, 3.0), ("flow", 2, 1.5), ("flow", 2, 6.0),
)


def fit(
    family: str = "flow", K: int = 2, delta: float = 3.0, sigma: float = 0.1, chunk_len: int = 8, seed: int = 0,
    profile: str | None = None, progress: bool | None = None, task: str = "fork",
) -> TrainedTransport:
    """Train ``family`` ("flow" | "diffusion") with the profile's budget on ``task``: the K-branch
    ``"fork"`` or K modes on the ``"ring"``, with neighbouring mode centres ``delta`` apart as chunks
    (for the ring this sets the ring radius), within-mode noise ``sigma`` and chunk length ``chunk_len``."""
    if family not in ("flow", "diffusion"):
        raise ValueError(f"family must be 'flow' or 'diffusion' (the transport policies), got {family!r}")
    b = budget("bridges", profile)
    if task == "fork":
        task = tasks.make("fork", K=K, delta=delta, sigma=sigma, chunk_len=chunk_len)
    elif task == "ring":
        ramp_norm = math.sqrt(sum((t / chunk_len) ** 2 for t in range(1, chunk_len + 1)))
        radius = delta / (2 * math.sin(math.pi / K) * ramp_norm)  # Δ_c = 2R·sin(π/K)·‖r‖ (tasks.Ring)
        task = tasks.make("ring", K=K, ring_radius=radius, sigma=sigma, chunk_len=chunk_len)
    else:
        raise ValueError(f"task must be 'fork' or 'ring', got {task!r}")
    data = task.dataset(b["n_demos"], seed=seed)
    # trained on the fastest device (CUDA at the full profile when present), returned on the CPU
    policy, history = fit_policy(family, data, budget=b, seed=seed, progress=progress,
                                 desc=f"{family} K={K} Δc={delta:g}")
    return TrainedTransport(family, K, float(delta), task, policy, history)


# ---------------------------------------------------------------------------------------
# the chapter's sweep
# ---------------------------------------------------------------------------------------
def sweep(
    models: Sequence[tuple[str, int, float]] = MODELS, steps: Sequence[int] | None = None, seed: int = 0,
    profile: str | None = None, progress: bool | None = None,
) -> tuple[dict[tuple[str, int, float], TrainedTransport], dict[tuple[str, int, float, int], BridgeStats]]:
    """Train every ``(family, K, Δ_c)`` in ``models`` and measure it at every sampler step count
    (default: the profile's ``sampler_steps``; Euler steps for flow, DDIM steps for diffusion).

    Returns ``(trained, stats)``: ``trained[(family, K, Δ_c)]`` is the :class:`~mbc_lib.measure.TrainedTransport`,
    ``stats[(family, K, Δ_c, steps)]`` its :class:`~mbc_lib.measure.BridgeStats`."""
    b = budget("bridges", profile)
    steps = b["sampler_steps"] if steps is None else steps
    trained, stats = {}, {}
    bar = tqdm(list(models), desc="bridges sweep", disable=not progress_enabled(progress))
    for family, K, delta in bar:
        key = (family, int(K), float(delta))
        trained[key] = fit(family, K, delta, seed=seed, profile=profile, progress=False)
        for s in steps:
            stats[(*key, int(s))] = measure_bridges(trained[key], int(s), b, seed=seed)
    return trained, stats


def summary(stats: dict[tuple[str, int, float, int], BridgeStats]) -> list[dict[str, float]]:
    """One tidy row per (model, steps): averages over the observations."""
    return [s.row() for s in stats.values()]
