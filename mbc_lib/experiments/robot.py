"""Chapter 8: every policy family on the MuJoCo tasks — success, mode coverage, failures and their causes.

The tasks (:mod:`mbc_lib.envs`) are multimodal by construction: the scripted
expert picks one of K gaps (``mbc/PathGaps-v0``) or K bins (``mbc/PushDivider-v0``, ``mbc/PushBins-v0``)
at random per episode. Averaging two gap paths runs into the wall between them (``collision``); averaging
two push directions runs the puck into the divider between two bins (``collision`` on ``PushDivider``,
where the mode must be chosen before the puck moves) or sends it between two bins (``between_bins`` on
``PushBins``, where the puck's jitter can break the tie in closed loop). For each task we

1. collect ``n_demos`` expert episodes (:func:`demos`) and train every policy variant of
   :data:`POLICIES` on them with the one training loop (:func:`fit`, :func:`mbc_lib.train.train`);
2. run ``n_eval`` closed-loop episodes per (policy, executor) (:func:`rollout`): the executor
   (:data:`EXECUTORS`, :class:`~mbc_lib.control.ChunkExecutor`) decides how many actions of each
   chunk are executed before re-planning, or averages overlapping chunks (temporal ensembling);
3. tabulate success rate (with a 95% Wilson interval), the fraction of episodes through each mode,
   the failure rate, and the modes used (:func:`summary`);
4. give every failed episode its first cause — an averaged, off-support or bridge chunk, a mode switch
   or closed-loop drift — and count mode switches per episode (:mod:`mbc_lib.envs.attribution`, against
   the demonstrations' :func:`~mbc_lib.envs.attribution.reference`).

Sizes come from ``BUDGETS["robot"]`` (:mod:`mbc_lib.profiles`); the figures, tables, sentences and
videos are in :mod:`mbc_lib.figures.robot`. Units: metres, m/s; rates are fractions of episodes.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import envs, policies
from ..control import ChunkExecutor, ExecutorSpec
from ..diagnostics import wilson_interval
from ..envs import attribution
from ..fitting import fit as fit_policy
from ..profiles import budget
from ..profiles import profile as active_profile
from ..runtime import on_compute_device, progress_enabled
from ..train import History
from .tables import by_key, executor_effect

__all__ = [
    "ENVS", "POLICIES", "EXECUTORS", "env_id", "executor", "demos", "TrainedPolicy", "fit", "rollout", "RobotSweep",
    "sweep", "summary", "short_name", "modes_used", "row_of", "executor_effect",
]

#: short task names used in tables -> registered env ids
ENVS: dict[str, str] = {"PathGaps": "mbc/PathGaps-v0", "PushDivider": "mbc/PushDivider-v0",
                        "PushBins": "mbc/PushBins-v0"}


#: policy variants chapter 8 trains: label -> (family for :func:`mbc_lib.policies.make`, its config).
#: Two CVAEs: a weakly regularised one, and one whose strong KL weight makes the decoder ignore z. The token
#: head's causal network is 64 wide at every profile: each of its H·d_a = 16 sequential token evaluations costs
#: as the width squared, and at width 128 it trained 8x slower than a CVAE on PathGaps (74 s against 8.7 s at
#: the standard profile) for the same success (92%).
POLICIES: dict[str, tuple[str, dict[str, Any]]] = {
    "regression": ("regression", {}),
    "cvae": ("cvae", {"beta": 0.01}),
    "cvae β=10": ("cvae", {"beta": 10.0}),
    "vq": ("vq", {}),
    "mixture": ("mixture", {}),
    "diffusion": ("diffusion", {}),
    "flow": ("flow", {}),
    "autoregressive": ("autoregressive", {"decoder_width": 64}),
}


#: the executor settings compared (chapter 2's knob), by label; "H" = the policy's chunk length
EXECUTORS: dict[str, ExecutorSpec] = {
    s.label: s
    for s in (
        ExecutorSpec("whole chunk", n_action_steps="H"),
        ExecutorSpec("half chunk", n_action_steps="H/2"),
        ExecutorSpec("every step", n_action_steps=1),
        ExecutorSpec("ensemble m=0.01", temporal_ensemble=0.01),  # ACT's coefficient
        ExecutorSpec("ensemble m=0.5", temporal_ensemble=0.5),
        # 8 chunks drawn per query, the one that best continues the previous chunk kept (control.ChunkExecutor)
        ExecutorSpec("whole chunk, coherent", n_action_steps="H", coherence=8),
        ExecutorSpec("half chunk, coherent", n_action_steps="H/2", coherence=8),
    )
}


def env_id(env: str) -> str:
    """A short name (``"PathGaps"``) or a registered id (``"mbc/PathGaps-v0"``) -> the id."""
    if env in ENVS:
        return ENVS[env]
    if env in ENVS.values():
        return env
    raise ValueError(f"unknown robot task {env!r}; choose one of: {', '.join(ENVS)} "
                     f"(or their ids {', '.join(ENVS.values())})")


def short_name(env: str) -> str:
    """A short name or a registered id -> the short name (``"PathGaps"``)."""
    eid = env_id(env)
    return next(k for k, v in ENVS.items() if v == eid)


def executor(spec: ExecutorSpec | str | dict[str, Any], chunk_len: int) -> tuple[str, ChunkExecutor]:
    """``(label, ChunkExecutor)`` for a policy with chunks of ``chunk_len`` steps.

    ``spec`` is a label of :data:`EXECUTORS`, an :class:`~mbc_lib.control.ExecutorSpec`,
    or a dict ``{"n_action_steps": int, "temporal_ensemble": float | None, "coherence": int | None}``. Raises ``ValueError``
    for an unknown label, ``n_action_steps`` outside ``[1, chunk_len]`` or a negative coefficient.
    """
    if isinstance(spec, str):
        if spec not in EXECUTORS:
            raise ValueError(f"unknown executor {spec!r}; choose one of: {', '.join(EXECUTORS)}, or pass "
                             "{'n_action_steps': n} / {'temporal_ensemble': m}")
        spec = EXECUTORS[spec]
    elif isinstance(spec, dict):
        unknown = set(spec) - {"n_action_steps", "temporal_ensemble", "coherence"}
        if unknown:
            raise ValueError(f"executor settings are n_action_steps, temporal_ensemble and coherence, got {sorted(unknown)}")
        n, m, c = spec.get("n_action_steps"), spec.get("temporal_ensemble"), spec.get("coherence")
        label = f"ensemble m={m:g}" if m is not None else f"{n if n is not None else 'H'} of {chunk_len} steps"
        label += f", coherent of {c}" if c is not None else ""
        spec = ExecutorSpec(label, n_action_steps=n if n is not None else "H", temporal_ensemble=m, coherence=c)
    elif not isinstance(spec, ExecutorSpec):
        raise ValueError(f"executor must be a label, an ExecutorSpec or a dict, got {type(spec).__name__}")
    m = spec.temporal_ensemble
    if m is not None and not (isinstance(m, (int, float)) and m >= 0 and math.isfinite(m)):
        raise ValueError(f"{spec.label}: the temporal-ensembling coefficient m must be a finite number >= 0, got {m!r}")
    n = spec.n_action_steps
    if m is None and not isinstance(n, str) and not (isinstance(n, int) and 1 <= n <= chunk_len):
        raise ValueError(f"{spec.label}: n_action_steps must be an integer in [1, chunk_len={chunk_len}] "
                         f"(the policy predicts chunks of {chunk_len} actions), got {n!r}")
    return spec.label, spec.build(chunk_len)


# ---------------------------------------------------------------------------------------
# demonstrations and training
# ---------------------------------------------------------------------------------------
def demos(env: str, K: int = 2, n_demos: int = 64, chunk_len: int = 8, seed: int = 0):
    """``(dataset, trajectories)``: ``n_demos`` expert episodes (noise-free, uniform modes), the
    successful ones cut into chunks of ``chunk_len``."""
    return envs.collect_demos(env_id(env), n_demos, seed=seed, chunk_len=chunk_len, K=K, return_trajectories=True,
                              progress=False)


@dataclass
class TrainedPolicy:
    """One trained policy variant on one task."""

    env: str  # short task name
    K: int
    label: str  # key of POLICIES
    policy: policies.Policy = field(repr=False)
    history: History = field(repr=False)
    n_train: int  # (observation, chunk) pairs trained on

    @property
    def chunk_len(self) -> int:
        return self.policy.config.chunk_len


def _check_label(label: str) -> tuple[str, dict[str, Any]]:
    if label not in POLICIES:
        raise ValueError(f"unknown policy {label!r}; choose one of: {', '.join(POLICIES)} "
                         f"(families: {', '.join(policies.families())})")
    return POLICIES[label]


def fit(env: str, label: str, K: int = 2, seed: int = 0, profile: str | None = None,
        progress: bool | None = None) -> TrainedPolicy:
    """Train policy variant ``label`` (:data:`POLICIES`) on ``env``'s demonstrations with the
    profile's budget (:func:`mbc_lib.fitting.fit`); the policy ends on the CPU, where rollouts step
    MuJoCo (one batched policy call per control step)."""
    family, cfg = _check_label(label)
    eid = env_id(env)
    b = budget("robot", profile)
    data, _ = demos(eid, K, b["n_demos"], b["chunk_len"], seed)
    policy, history = fit_policy(family, data, budget=b, seed=seed, progress=progress,
                                 desc=f"{label} on {short_name(eid)} K={K}", **cfg)
    return TrainedPolicy(short_name(eid), K, label, policy, history, len(data))


def rollout(model: TrainedPolicy, executor_spec: ExecutorSpec | str | dict[str, Any] = "whole chunk", n_episodes: int = 32,
            seed: int = 0, record: bool = True) -> envs.EvalResult:
    """``n_episodes`` closed-loop episodes of ``model`` executed with ``executor_spec`` (see
    :func:`executor`); episode seeds differ from the demonstrations' (``seed + 1000``)."""
    _, ex = executor(executor_spec, model.chunk_len)
    with on_compute_device(model.policy) as dev:  # CUDA when present, else one CPU thread (small MLPs, shared cores)
        return envs.evaluate(model.policy, env_id(model.env), n_episodes=n_episodes, seed=seed + 1000, executor=ex,
                             batch_size=n_episodes, K=model.K, record=record, progress=False, device=dev)


@dataclass
class RobotSweep:
    """Everything :func:`sweep` computed.

    models: (env, K, label) -> :class:`TrainedPolicy`. results: (env, K, label, executor) -> EvalResult.
    experts: (env, K) -> the expert's own episodes on the evaluation seeds (list of Trajectory).
    references: (env, K) -> the demonstrations' :class:`~mbc_lib.envs.attribution.Reference`.
    attributions: (env, K, label, executor) -> every episode's segments labelled and each failure's
    first cause (:class:`~mbc_lib.envs.attribution.Attribution`).
    """

    models: dict[tuple[str, int, str], TrainedPolicy]
    results: dict[tuple[str, int, str, str], envs.EvalResult]
    experts: dict[tuple[str, int], list[envs.Trajectory]]
    executors: tuple[str, ...]
    references: dict[tuple[str, int], attribution.Reference] = field(default_factory=dict, repr=False)
    attributions: dict[tuple[str, int, str, str], attribution.Attribution] = field(default_factory=dict, repr=False)

    @property
    def envs(self) -> list[str]:
        return list(dict.fromkeys(k[0] for k in self.results))

    @property
    def labels(self) -> list[str]:
        return list(dict.fromkeys(k[2] for k in self.results))

    @property
    def Ks(self) -> list[int]:
        return list(dict.fromkeys(k[1] for k in self.results))


def sweep(envs_: Sequence[str] | None = None, Ks: Sequence[int] | None = None, labels: Sequence[str] | None = None,
          executors: Sequence[str] | None = None, seed: int = 0, profile: str | None = None,
          progress: bool | None = None) -> RobotSweep:
    """Train every policy variant on every task and roll each out with every executor.

    Defaults (``None``) come from the profile's ``BUDGETS["robot"]``: tasks ``envs``, mode counts
    ``Ks``, variants ``policies``, ``executors``; ``n_eval`` episodes per rollout. The executors are
    applied to every variant, and every rollout's failures are attributed (:func:`attribute`). ``mbc_lib.experiments.run("robot", ...)`` runs the defaults and is what
    caches the :func:`summary` table for chapter 11.
    """
    from tqdm.auto import tqdm

    prof = active_profile() if profile is None else profile
    b = budget("robot", prof)
    env_list = [short_name(e) for e in (b["envs"] if envs_ is None else envs_)]
    K_list = list(b["Ks"] if Ks is None else Ks)
    label_list = list(b["policies"] if labels is None else labels)
    ex_list = list(b["executors"] if executors is None else executors)
    for lab in label_list:
        _check_label(lab)
    for ex in ex_list:
        if not isinstance(ex, str):
            raise ValueError(f"sweep takes executor labels (keys of EXECUTORS), got {ex!r}; "
                             "use rollout() for other settings")
        executor(ex, b["chunk_len"])  # validate every setting before training anything
    models, results, experts, references, attributions = {}, {}, {}, {}, {}
    jobs = [(e, K, lab) for e in env_list for K in K_list for lab in label_list]
    with tqdm(total=len(jobs), desc="robot sweep", disable=not progress_enabled(progress)) as bar:
        for e, K in dict.fromkeys((e, K) for e, K, _ in jobs):
            _, traj = envs.collect_demos(env_id(e), b["n_eval"], seed=seed + 1000, chunk_len=b["chunk_len"], K=K,
                                         successful_only=False, return_trajectories=True, progress=False)
            experts[(e, K)] = traj
            _, demo_traj = demos(e, K, b["n_demos"], b["chunk_len"], seed)  # the episodes fit() trains on
            references[(e, K)] = attribution.reference(env_id(e), demo_traj, K=K)
        for e, K, lab in jobs:
            bar.set_postfix_str(f"{lab} on {e} K={K}")
            m = models[(e, K, lab)] = fit(e, lab, K=K, seed=seed, profile=prof, progress=False)
            for ex in ex_list:
                r = results[(e, K, lab, ex)] = rollout(m, ex, n_episodes=b["n_eval"], seed=seed)
                attributions[(e, K, lab, ex)] = attribution.attribute(r, references[(e, K)], chunk_len=m.chunk_len)
            bar.update()
    return RobotSweep(models, results, experts, tuple(ex_list), references, attributions)


# ---------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------
def _row(env: str, K: int, label: str, ex: str, success: np.ndarray, modes: np.ndarray,
         failures: np.ndarray | None, failure_key: str, chunk_len: int, nfe: float = np.nan) -> dict[str, Any]:
    n = len(success)
    hist = np.bincount(modes[success], minlength=K)[:K]  # successful episodes per mode
    lo, hi = wilson_interval(int(success.sum()), n)
    family = POLICIES[label][0] if label in POLICIES else label
    spec = EXECUTORS.get(ex)
    row = {
        "env": env, "K": K, "policy": label, "family": family, "executor": ex,
        "chunk_len": chunk_len, "nfe": nfe,
        "n_action_steps": (np.nan if spec is None else
                           1 if spec.temporal_ensemble is not None else spec.build(chunk_len).n_action_steps),
        "ensemble_m": np.nan if spec is None or spec.temporal_ensemble is None else spec.temporal_ensemble,
        "n_episodes": n, "success_rate": float(success.mean()), "success_lo": float(lo), "success_hi": float(hi),
        "modes_used": int((hist > 0).sum()),
        "min_mode_fraction": float(hist.min() / max(hist.sum(), 1)),
        "failure": failure_key,
        "failure_rate": float(failures.mean()) if failures is not None else np.nan,
    }
    row.update({f"mode{k}_rate": float(hist[k] / n) for k in range(K)})  # episodes succeeding through mode k
    return row


def summary(result: RobotSweep) -> list[dict[str, Any]]:
    """Tidy rows: one per (task, K, policy, executor), plus the expert (``policy="expert"``) per task.

    Columns: env, K, policy, family, executor, chunk_len (H), nfe (sequential network evaluations per
    sampled chunk, :meth:`~mbc_lib.policies.base.Policy.nfe`: the latency price of a query; NaN for the
    expert), n_action_steps (actions executed per
    policy query: 1 with ensembling; NaN for the expert), ensemble_m (NaN without ensembling), n_episodes,
    success_rate and its 95% Wilson interval
    (success_lo, success_hi), modes_used (modes reached by at least one successful episode),
    min_mode_fraction (smallest share of the successes a mode got), failure (the flag's name),
    failure_rate, and mode{k}_rate (episodes succeeding through mode k); where the sweep attributed its
    failures, also cause_<c> for every first cause of :data:`mbc_lib.envs.attribution.CAUSES` (fraction of
    all episodes; they sum to failure_rate), mechanism_share (the share of the failures whose first cause
    is an averaged or a bridge chunk, the paper's two mechanisms; NaN without failures), collapse_share
    (the same with off-support chunks added), switches_per_episode and switched_episodes (fraction of the
    episodes with at least one switch).
    """
    rows = []
    chunk_len = next(iter(result.models.values())).chunk_len if result.models else 0
    for (e, K), traj in result.experts.items():
        key = envs.make_env_task(env_id(e), K=K).failure_key
        rows.append(_row(e, K, "expert", "scripted", np.array([t.success for t in traj]),
                         np.array([t.mode_used for t in traj]), None, key, chunk_len))
    for (e, K, lab, ex), r in result.results.items():
        model = result.models[(e, K, lab)]
        row = _row(e, K, lab, ex, r.success, r.modes, r.failures, r.failure_key, model.chunk_len,
                   float(model.policy.nfe()))
        att = result.attributions.get((e, K, lab, ex))
        if att is not None:
            s = att.summary()
            row.update({k: s[k] for k in s if k.startswith("cause_") or k in _ATTRIBUTION_COLUMNS})
        rows.append(row)
    return rows


#: the attribution's columns that :func:`summary` copies besides the causes
_ATTRIBUTION_COLUMNS = ("mechanism_share", "collapse_share", "switches_per_episode", "switched_episodes")


def row_of(rows: list[dict[str, Any]], env: str, K: int, label: str, executor_label: str) -> dict[str, Any]:
    """The :func:`summary` row of ``label`` on ``env`` with ``K`` modes and executor ``executor_label`` (the
    expert's row whatever the executor); ``ValueError`` when the table has none."""
    ex = "scripted" if label == "expert" else executor_label
    key = (short_name(env), K, label, ex)
    table = by_key(rows)
    if key not in table:
        raise ValueError(f"no row for {label!r} on {key[0]} K={K} with executor {ex!r} in this table")
    return table[key]


def modes_used(rows: list[dict[str, Any]], env: str, labels: Sequence[str], executor_label: str = "whole chunk",
               K: int = 2) -> dict[str, int]:
    """``label -> modes used`` (modes reached by at least one successful episode) on ``env`` from
    :func:`summary` rows, for the policies ``labels`` executed with ``executor_label``."""
    return {lab: int(row_of(rows, env, K, lab, executor_label)["modes_used"]) for lab in labels}
