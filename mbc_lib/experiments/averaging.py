"""Chapter 1: regression averages the modes.

Train the deterministic ``regression`` policy on the fork task and measure where its
chunks land: the L2 optimum is the conditional mean E[a|s], which for a symmetric
two-branch fork is the straight path between the branches — off every mode — and for
odd K lands on the middle branch, so the other K−1 modes are never produced. The L1
optimum (a coordinate-wise median) is unique for Gaussian within-mode noise, but the
expected L1 loss is nearly flat across the gap between two modes (:func:`l1_slope`), so a
trained network's chunks can end anywhere in it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from scipy.stats import norm
from torch import Tensor
from tqdm.auto import tqdm

from .. import policies, tasks
from ..fitting import fit
from ..profiles import budget
from ..runtime import progress_enabled
from ..train import History

__all__ = ["AveragingResult", "fit_regression", "sweep", "distances", "summary", "l1_slope"]


@dataclass
class AveragingResult:
    """One trained regression policy on one fork, evaluated at ``n_eval`` fresh observations."""

    K: int
    delta: float
    loss: str
    task: tasks.Task = field(repr=False)
    policy: policies.Policy = field(repr=False)
    history: History = field(repr=False)
    obs: Tensor = field(repr=False)  # [n_eval, 1]
    demos: Tensor = field(repr=False)  # [n_eval, H, d_a], one demonstration per observation
    demo_labels: Tensor = field(repr=False)  # [n_eval]
    preds: Tensor = field(repr=False)  # [n_eval, H, d_a], the policy's chunk
    pred_labels: Tensor = field(repr=False)  # [n_eval], mode of each prediction (−1 off-support)

    @property
    def off_support_demos(self) -> float:
        return float((self.demo_labels < 0).float().mean())

    @property
    def off_support_policy(self) -> float:
        return float((self.pred_labels < 0).float().mean())

    def modes_reached(self, min_mass: float = 0.1) -> int:
        """Modes that receive at least ``min_mass`` of the policy's chunks."""
        lab = self.pred_labels[self.pred_labels >= 0]
        if lab.numel() == 0:
            return 0
        mass = torch.bincount(lab, minlength=self.K).float() / self.pred_labels.numel()
        return int((mass >= min_mass).sum())


def fit_regression(
    K: int = 2,
    delta: float = 2.0,
    loss: str = "l2",
    seed: int = 0,
    profile: str | None = None,
    progress: bool | None = None,
    **task_config,
) -> AveragingResult:
    """Train ``regression`` (loss ``"l2"`` or ``"l1"``) on ``fork(K, delta)`` with the profile's budget
    (:func:`mbc_lib.fitting.fit`, on the CPU) and evaluate it at ``n_eval`` fresh observations.

    ``delta`` is the fork's centre distance Δ_c between neighbouring branches (task units)."""
    b = budget("averaging", profile)
    task = tasks.make("fork", K=K, delta=delta, **task_config)
    data = task.dataset(b["n_demos"], seed=seed)
    policy, history = fit("regression", data, budget=b, loss=loss, seed=seed, device="cpu", progress=progress,
                          desc=f"regression K={K} Δc={delta:g}")
    g = torch.Generator().manual_seed(seed + 1)
    obs = task.sample_obs(b["n_eval"], g)
    demos, demo_labels = task.sample(obs, g)
    preds = policy.sample(obs, 1)[:, 0]
    return AveragingResult(K, float(delta), loss, task, policy, history, obs, demos, demo_labels, preds,
                           task.assign(obs, preds))


def sweep(
    Ks: Sequence[int] = (2, 3, 4),
    deltas: Sequence[float] = (1.0, 2.0, 4.0),
    loss: str = "l2",
    seed: int = 0,
    profile: str | None = None,
    progress: bool | None = None,
) -> dict[tuple[int, float], AveragingResult]:
    """One regression policy per (K, Δ_c) grid point, keyed by ``(K, delta)``."""
    grid = [(K, float(d)) for K in Ks for d in deltas]
    out = {}
    for K, d in tqdm(grid, desc="averaging sweep", disable=not progress_enabled(progress)):
        out[(K, d)] = fit_regression(K, d, loss=loss, seed=seed, profile=profile, progress=False)
    return out


def summary(results: dict[tuple[int, float], AveragingResult]) -> list[dict[str, float]]:
    """Tidy rows: K, Δ_c (key ``delta``), off-support fraction of demos and policy, modes reached."""
    return [
        {"K": r.K, "delta": r.delta, "off_support_demos": r.off_support_demos,
         "off_support_policy": r.off_support_policy, "modes_reached": r.modes_reached()}
        for r in results.values()
    ]


def distances(res: AveragingResult) -> dict[str, Tensor]:
    """Distance of each regression chunk to the analytic conditional mean Σ_k π_k μ_k(s)
    (``"to_mean"``) and to the nearest mode centre (``"to_modes"``), each ``[n_eval]``."""
    ms = res.task.modes(res.obs)
    centers, weights = ms.centers, ms.weights  # [n_eval, K, H, d_a], [n_eval, K]
    mean = (weights[:, :, None, None] * centers).sum(1)  # [n_eval, H, d_a]
    return {
        "to_mean": (res.preds - mean).flatten(1).norm(dim=1),
        "to_modes": torch.cdist(res.preds.flatten(1)[:, None], centers.flatten(2))[:, 0].amin(-1),
    }


def l1_slope(task: tasks.Task, obs: Tensor, y: float, step: int = -1, dim: int = -1) -> float:
    """Slope of the expected ℓ1 loss y ↦ E|a_j − y| of one chunk coordinate at ``y``: P(a_j < y) − P(a_j > y).

    The coordinate is step ``step``, action dimension ``dim`` (the fork's lateral position) of the
    demonstrations at the single observation ``obs [1, obs_dim]``, a Gaussian mixture Σ_k π_k N(μ_kj, σ²);
    the slope is Σ_k π_k (2Φ((y − μ_kj)/σ) − 1). It vanishes only at the (unique) median and is tiny anywhere in
    the gap between two modes that are many σ apart: the loss is nearly flat there (chapter 1).
    """
    if obs.ndim != 2 or obs.shape[0] != 1:
        raise ValueError(f"l1_slope takes one observation [1, obs_dim] (got shape {tuple(obs.shape)})")
    ms = task.modes(obs)
    mu = ms.centers[0, :, step, dim].double().numpy()  # [K]
    w = ms.weights[0].double().numpy()  # [K]
    return float((w * (2 * norm.cdf((y - mu) / task.sigma) - 1)).sum())
