"""Chapter 2: what chunking and chunk execution do to the modes.

Two experiments, both on the fork task with its *perfect* multimodal policy (the
demonstrator itself, ``task.sample_chunks``), so that everything we see comes from
chunking and execution rather than from a learning failure:

1. **Separation grows with the chunk length.** Branches drifting apart by ``rate`` per step
   are ``Δ_c(H) = rate·sqrt(Σ_{t≤H} t²)`` apart as chunks, while within-mode noise grows only
   like ``σ·sqrt(H)``. The nearest-centre rule confuses modes with probability
   ``Φ(−Δ_c(H)/2σ)`` (two Gaussians, equal weights) — measured against predicted.
2. **Closed-loop execution.** In the *fork world* the state is the lateral position ``x``, and
   executing an action moves there (``x_{t+1} = a_t``). At every query the demonstrator picks a
   branch afresh. We execute its chunks with an action queue (re-plan every ``n_action_steps``
   steps, r in chapter 2)
   or with ACT's temporal ensembling, and measure each executed step's lateral velocity:
   on a branch (``|v| ≈ rate/2``), between branches (``|v| ≈ 0``, the averaged path), and how
   often the direction switches.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from scipy.stats import norm
from torch import Tensor

from .. import tasks
from ..control import ExecutorSpec

__all__ = ["separation_vs_horizon", "ExecutorSpec", "EXECUTORS", "closed_loop", "RolloutStats", "executor_sweep"]


def separation_vs_horizon(
    Hs: Sequence[int] = (1, 2, 3, 4, 6, 8, 12, 16),
    rate: float = 0.05,
    sigma: float = 0.05,
    n: int = 4000,
    seed: int = 0,
) -> list[dict[str, float]]:
    """For each chunk length H: Δ_c, mode radius ρ, measured mode confusion of the nearest-centre
    rule on ``n`` demonstrations, and the prediction Φ(−Δ_c/2σ)."""
    rows = []
    for H in Hs:
        task = tasks.make("fork", K=2, rate=rate, sigma=sigma, chunk_len=H, allow_overlap=True)
        data = task.dataset(n, seed=seed)
        centers = task.modes(data.obs).centers.flatten(2)  # [n, K, H*d]
        nearest = torch.cdist(data.chunks.flatten(1)[:, None], centers)[:, 0].argmin(-1)  # [n]
        rows.append({
            "H": H, "delta_c": task.delta, "radius": task.radius,
            "confusion": float((nearest != data.modes).float().mean()),
            "confusion_predicted": float(norm.cdf(-task.delta / (2 * sigma))),
        })
    return rows


#: the executors chapter 2 compares, by label (:class:`mbc_lib.control.ExecutorSpec`)
EXECUTORS: dict[str, ExecutorSpec] = {
    s.label: s
    for s in (
        ExecutorSpec("re-plan every step", n_action_steps=1),
        ExecutorSpec("half chunk", n_action_steps="H/2"),
        ExecutorSpec("whole chunk", n_action_steps="H"),
        ExecutorSpec("ensemble m=0", temporal_ensemble=0.0),
        ExecutorSpec("ensemble m=0.5", temporal_ensemble=0.5),
        ExecutorSpec("ensemble m=5", temporal_ensemble=5.0),
    )
}


@dataclass
class RolloutStats:
    """Closed-loop fork-world rollouts: positions ``[n, T+1]`` and per-step classification."""

    label: str
    H: int
    positions: Tensor
    on_branch: float  # fraction of steps moving at branch speed (|v| within rate/4 of rate/2)
    between: float  # fraction of steps moving at < rate/4: the averaged, between-branch path
    switches: float  # fraction of steps whose direction flips relative to the previous step


def closed_loop(
    spec: ExecutorSpec | str, H: int = 8, steps: int = 48, n: int = 64, rate: float = 0.2, sigma: float = 0.005,
    seed: int = 0,
) -> RolloutStats:
    """Run ``n`` fork-world episodes of ``steps`` steps, executing the demonstrator's chunks with ``spec``."""
    if isinstance(spec, str):
        if spec not in EXECUTORS:
            raise ValueError(f"unknown executor {spec!r}; choose one of: {', '.join(EXECUTORS)}")
        spec = EXECUTORS[spec]
    task = tasks.make("fork", K=2, rate=rate, sigma=sigma, chunk_len=H, allow_overlap=True)
    g = torch.Generator().manual_seed(seed)
    executor = spec.build(H)
    x = torch.zeros(n, 1)  # lateral position = observation
    path = [x[:, 0]]
    for _ in range(steps):
        x = executor.act(x, lambda obs: task.sample_chunks(obs, 1, g)[:, 0])  # [n, 1]
        path.append(x[:, 0])
    pos = torch.stack(path, 1)  # [n, T+1]
    v = pos.diff(dim=1) / (rate / 2)  # velocity in units of branch speed
    speed = v.abs()
    moving = speed > 0.5
    flips = (torch.sign(v[:, 1:]) != torch.sign(v[:, :-1])) & moving[:, 1:] & moving[:, :-1]
    return RolloutStats(spec.label, H, pos, float(((speed - 1).abs() < 0.5).float().mean()),
                        float((speed < 0.5).float().mean()), float(flips.float().mean()))


def executor_sweep(
    Hs: Sequence[int] = (4, 8, 16), labels: Sequence[str] | None = None, seed: int = 0, **kwargs
) -> dict[tuple[int, str], RolloutStats]:
    """:func:`closed_loop` for every (H, executor) pair."""
    labels = list(EXECUTORS) if labels is None else list(labels)
    return {(H, lab): closed_loop(lab, H=H, seed=seed, **kwargs) for H in Hs for lab in labels}
