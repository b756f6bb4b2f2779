"""Chapter 8: every policy family on the two MuJoCo tasks — success, mode coverage, failures.

The tasks (:mod:`mbc_lib.envs`) are multimodal by construction: the scripted
expert picks one of K gaps (``mbc/PathGaps-v0``) or K bins (``mbc/PushBins-v0``) at random per
episode. Averaging two gap paths runs into the wall between them (``collision``); averaging two
push directions sends the puck between two bins (``between_bins``). For each task we

1. collect ``n_demos`` expert episodes (:func:`demos`) and train every policy variant of
   :data:`POLICIES` on them with the one training loop (:func:`fit`, :func:`mbc_lib.train.train`);
2. run ``n_eval`` closed-loop episodes per (policy, executor) (:func:`rollout`): the executor
   (:data:`EXECUTORS`, :class:`~mbc_lib.control.ChunkExecutor`) decides how many actions of each
   chunk are executed before re-planning, or averages overlapping chunks (temporal ensembling);
3. tabulate success rate (with a 95% Wilson interval), the fraction of episodes through each mode,
   the failure rate, and the modes used (:func:`summary`).

Sizes come from ``BUDGETS["robot"]`` (:mod:`mbc_lib.profiles`). Trained policies are kept in this
process only (a dict keyed by everything that fixes them), so a notebook and its explorer, or a test
module, never train the same policy twice. Units: metres, m/s; rates are fractions of episodes.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch

from .. import envs, policies
from ..control import ChunkExecutor
from ..data import ChunkDataset
from ..diagnostics import wilson_interval
from ..plotting import OFF_SUPPORT_COLOR
from ..profiles import budget
from ..profiles import profile as active_profile
from ..train import History, on_compute_device, progress_enabled, train
from . import cache
from .chunking import ExecutorSpec

__all__ = [
    "ENVS", "POLICIES", "EXECUTORS", "env_id", "executor", "demos", "Model", "fit", "rollout", "RobotSweep", "sweep",
    "summary", "MODE_NOUN", "modes_used", "count_words", "modes_sentence", "outcome_table", "executor_effect",
    "mode_color", "plot_outcomes", "plot_trajectories", "plot_family_grid", "plot_executors", "video",
]

#: short task names used in tables -> registered env ids
ENVS: dict[str, str] = {"PathGaps": "mbc/PathGaps-v0", "PushBins": "mbc/PushBins-v0"}

#: policy variants chapter 8 trains: label -> (family for :func:`mbc_lib.policies.make`, its config).
#: Two CVAEs: a weakly regularised one, and one whose strong KL weight makes the decoder ignore z.
POLICIES: dict[str, tuple[str, dict[str, Any]]] = {
    "regression": ("regression", {}),
    "cvae": ("cvae", {"beta": 0.01}),
    "cvae β=10": ("cvae", {"beta": 10.0}),
    "vq": ("vq", {}),
    "mixture": ("mixture", {}),
    "diffusion": ("diffusion", {}),
    "flow": ("flow", {}),
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


def _short(env: str) -> str:
    eid = env_id(env)
    return next(k for k, v in ENVS.items() if v == eid)


def executor(spec: ExecutorSpec | str | dict[str, Any], chunk_len: int) -> tuple[str, ChunkExecutor]:
    """``(label, ChunkExecutor)`` for a policy with chunks of ``chunk_len`` steps.

    ``spec`` is a label of :data:`EXECUTORS`, an :class:`~mbc_lib.experiments.chunking.ExecutorSpec`,
    or a dict ``{"n_action_steps": int, "temporal_ensemble": float | None}``. Raises ``ValueError``
    for an unknown label, ``n_action_steps`` outside ``[1, chunk_len]`` or a negative coefficient.
    """
    if isinstance(spec, str):
        if spec not in EXECUTORS:
            raise ValueError(f"unknown executor {spec!r}; choose one of: {', '.join(EXECUTORS)}, or pass "
                             "{'n_action_steps': n} / {'temporal_ensemble': m}")
        spec = EXECUTORS[spec]
    elif isinstance(spec, dict):
        unknown = set(spec) - {"n_action_steps", "temporal_ensemble"}
        if unknown:
            raise ValueError(f"executor settings are n_action_steps and temporal_ensemble, got {sorted(unknown)}")
        n, m = spec.get("n_action_steps"), spec.get("temporal_ensemble")
        label = f"ensemble m={m:g}" if m is not None else f"{n if n is not None else 'H'} of {chunk_len} steps"
        spec = ExecutorSpec(label, n_action_steps=n if n is not None else "H", temporal_ensemble=m)
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
# demonstrations and training (kept in this process)
# ---------------------------------------------------------------------------------------
_DEMOS: dict[tuple, tuple[ChunkDataset, list[envs.Trajectory]]] = {}
_MODELS: dict[tuple, "Model"] = {}


def demos(env: str, K: int = 2, n_demos: int = 64, chunk_len: int = 8, seed: int = 0):
    """``(dataset, trajectories)``: ``n_demos`` expert episodes (noise-free, uniform modes), the
    successful ones cut into chunks of ``chunk_len``; cached per arguments in this process."""
    key = (env_id(env), K, n_demos, chunk_len, seed)
    if key not in _DEMOS:
        _DEMOS[key] = envs.collect_demos(env_id(env), n_demos, seed=seed, chunk_len=chunk_len, K=K,
                                         return_trajectories=True, progress=False)
    return _DEMOS[key]


@dataclass
class Model:
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
        progress: bool | None = None) -> Model:
    """Train policy variant ``label`` (:data:`POLICIES`) on ``env``'s demonstrations with the
    profile's budget; the same arguments return the same trained model from this process's cache."""
    family, cfg = _check_label(label)
    eid = env_id(env)
    b = budget("robot", profile)
    key = (eid, K, label, seed, tuple(sorted((k, v) for k, v in b.items() if not isinstance(v, (list, tuple)))))
    if key in _MODELS:
        return _MODELS[key]
    data, _ = demos(eid, K, b["n_demos"], b["chunk_len"], seed)
    policy = policies.make(family, obs_dim=data.obs.shape[1], action_dim=data.chunks.shape[-1],
                           chunk_len=b["chunk_len"], width=b["width"], depth=b["depth"], seed=seed, **cfg)
    history = train(policy, data, steps=b["steps"], batch_size=b["batch_size"], lr=b["lr"], seed=seed,
                    progress=progress, desc=f"{label} on {_short(eid)} K={K}")
    policy.cpu()  # rollouts step MuJoCo on the CPU; one batched policy call per control step
    _MODELS[key] = Model(_short(eid), K, label, policy, history, len(data))
    return _MODELS[key]


def rollout(model: Model, executor_spec: ExecutorSpec | str | dict[str, Any] = "whole chunk", n_episodes: int = 32,
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

    models: (env, K, label) -> :class:`Model`. results: (env, K, label, executor) -> EvalResult.
    experts: (env, K) -> the expert's own episodes on the evaluation seeds (list of Trajectory).
    """

    models: dict[tuple[str, int, str], Model]
    results: dict[tuple[str, int, str, str], envs.EvalResult]
    experts: dict[tuple[str, int], list[envs.Trajectory]]
    executors: tuple[str, ...]

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
    applied to every variant. When every selector is left at its default the summary table is stored
    with :func:`mbc_lib.experiments.cache.store` (name ``"robot"``) for chapter 11.
    """
    from tqdm.auto import tqdm

    prof = active_profile() if profile is None else profile
    b = budget("robot", prof)
    full = envs_ is None and Ks is None and labels is None and executors is None
    env_list = [_short(e) for e in (b["envs"] if envs_ is None else envs_)]
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
    models, results, experts = {}, {}, {}
    jobs = [(e, K, lab) for e in env_list for K in K_list for lab in label_list]
    with tqdm(total=len(jobs), desc="robot sweep", disable=not progress_enabled(progress)) as bar:
        for e, K in dict.fromkeys((e, K) for e, K, _ in jobs):
            _, traj = envs.collect_demos(env_id(e), b["n_eval"], seed=seed + 1000, chunk_len=b["chunk_len"], K=K,
                                         successful_only=False, return_trajectories=True, progress=False)
            experts[(e, K)] = traj
        for e, K, lab in jobs:
            bar.set_postfix_str(f"{lab} on {e} K={K}")
            m = models[(e, K, lab)] = fit(e, lab, K=K, seed=seed, profile=prof, progress=False)
            for ex in ex_list:
                results[(e, K, lab, ex)] = rollout(m, ex, n_episodes=b["n_eval"], seed=seed)
            bar.update()
    out = RobotSweep(models, results, experts, tuple(ex_list))
    if full:
        cache.store("robot", summary(out), prof, seed)
    return out


# ---------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------
def _row(env: str, K: int, label: str, ex: str, success: np.ndarray, modes: np.ndarray,
         failures: np.ndarray | None, failure_key: str, chunk_len: int) -> dict[str, Any]:
    n = len(success)
    hist = np.bincount(modes[success], minlength=K)[:K]  # successful episodes per mode
    lo, hi = wilson_interval(int(success.sum()), n)
    family = POLICIES[label][0] if label in POLICIES else label
    spec = EXECUTORS.get(ex)
    row = {
        "env": env, "K": K, "policy": label, "family": family, "executor": ex,
        "chunk_len": chunk_len,
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

    Columns: env, K, policy, family, executor, chunk_len (H), n_action_steps (actions executed per
    policy query: 1 with ensembling; NaN for the expert), ensemble_m (NaN without ensembling), n_episodes,
    success_rate and its 95% Wilson interval
    (success_lo, success_hi), modes_used (modes reached by at least one successful episode),
    min_mode_fraction (smallest share of the successes a mode got), failure (the flag's name),
    failure_rate, and mode{k}_rate (episodes succeeding through mode k).
    """
    rows = []
    chunk_len = next(iter(result.models.values())).chunk_len if result.models else 0
    for (e, K), traj in result.experts.items():
        key = envs.make_task(env_id(e), K=K).failure_key
        rows.append(_row(e, K, "expert", "scripted", np.array([t.success for t in traj]),
                         np.array([t.mode_used for t in traj]), None, key, chunk_len))
    for (e, K, lab, ex), r in result.results.items():
        H = result.models[(e, K, lab)].chunk_len
        rows.append(_row(e, K, lab, ex, r.success, r.modes, r.failures, r.failure_key, H))
    return rows


#: what one mode of each task is called in the text
MODE_NOUN: dict[str, str] = {"PathGaps": "gap", "PushBins": "bin"}


def _by_key(rows: list[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    return {(r["env"], r["K"], r["policy"], r["executor"]): r for r in rows}


def _row_of(rows: list[dict[str, Any]], env: str, K: int, label: str, executor_label: str) -> dict[str, Any]:
    ex = "scripted" if label == "expert" else executor_label
    key = (_short(env), K, label, ex)
    table = _by_key(rows)
    if key not in table:
        raise ValueError(f"no row for {label!r} on {key[0]} K={K} with executor {ex!r} in this table")
    return table[key]


def modes_used(rows: list[dict[str, Any]], env: str, labels: Sequence[str], executor_label: str = "whole chunk",
               K: int = 2) -> dict[str, int]:
    """``label -> modes used`` (modes reached by at least one successful episode) on ``env`` from
    :func:`summary` rows, for the policies ``labels`` executed with ``executor_label``."""
    return {lab: int(_row_of(rows, env, K, lab, executor_label)["modes_used"]) for lab in labels}


def count_words(m: int, K: int, noun: str) -> str:
    """``m`` of ``K`` modes in words: "both gaps", "all 3 bins", "one gap only", "2 of 3 gaps", "no gap"."""
    if not 0 <= m <= K:
        raise ValueError(f"modes used must lie in [0, K={K}], got {m}")
    if m == 0:
        return f"no {noun}"
    if m == K:
        return f"the one {noun}" if K == 1 else f"both {noun}s" if K == 2 else f"all {K} {noun}s"
    return f"one {noun} only" if m == 1 else f"{m} of {K} {noun}s"


def _names(items: Sequence[str]) -> str:
    items = [f"`{x}`" for x in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def modes_sentence(rows: list[dict[str, Any]], env: str, labels: Sequence[str], executor_label: str = "whole chunk",
                   K: int = 2) -> str:
    """One Markdown sentence saying which of ``labels`` used every mode of ``env`` and which did not,
    grouped by the number of modes used (most first), e.g. "On `PathGaps`, `vq` and `mixture` used
    both gaps; `flow` used one gap only; `cvae` used no gap." Read from :func:`summary` rows."""
    e = _short(env)
    used = modes_used(rows, e, labels, executor_label, K)
    noun = MODE_NOUN.get(e, "mode")
    clauses = []
    for m in sorted(set(used.values()), reverse=True):
        group = [lab for lab in labels if used[lab] == m]
        clauses.append(f"{_names(group)} used {count_words(m, K, noun)}")
    return f"On `{e}`, " + "; ".join(clauses) + "."


def outcome_table(rows: list[dict[str, Any]], envs_: Sequence[str], labels: Sequence[str],
                  executor_label: str = "whole chunk", K: int = 2) -> str:
    """A Markdown table of :func:`summary` rows: one line per policy (the expert first), per task the
    success rate with its 95% Wilson interval, the share of episodes succeeding through each mode,
    the modes used (of K) and the rate of the task's failure flag."""
    env_list = [_short(e) for e in envs_]
    head, rule = ["policy"], ["---"]
    for e in env_list:
        fail = envs.make_task(env_id(e), K=K).failure_key.replace("_", " ")
        noun = MODE_NOUN.get(e, "mode")
        head += [f"{e}: success [95% CI]", f"via {noun} " + " / ".join(str(k) for k in range(K)), f"{noun}s used", fail]
        rule += ["---:"] * 4
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(rule) + "|"]
    for lab in ["expert", *labels]:
        cells = [f"`{lab}`"]
        for e in env_list:
            r = _row_of(rows, e, K, lab, executor_label)
            fr = r["failure_rate"]
            cells += [f"{r['success_rate']:.0%} [{r['success_lo']:.2f}, {r['success_hi']:.2f}]",
                      " / ".join(f"{r[f'mode{k}_rate']:.0%}" for k in range(K)), f"{r['modes_used']} of {K}",
                      "—" if fr is None or not np.isfinite(fr) else f"{fr:.0%}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def executor_effect(rows: list[dict[str, Any]], other: str, base: str = "whole chunk",
                    labels: Sequence[str] | None = None, tol: float = 0.0) -> list[dict[str, Any]]:
    """Per (task, K, policy) measured under both executors: success and failure rate and modes used
    with ``base`` and with ``other``, and ``change`` = +1 / −1 / 0 when ``other`` raised / lowered /
    kept the success rate (a difference of at most ``tol`` counts as kept). Expert rows are skipped;
    ``labels`` restricts the policies."""
    table = _by_key(rows)
    out = []
    for (e, K, lab, ex), r in table.items():
        if ex != base or lab == "expert" or (labels is not None and lab not in labels):
            continue
        o = table.get((e, K, lab, other))
        if o is None:
            continue
        d = o["success_rate"] - r["success_rate"]
        out.append({"env": e, "K": K, "policy": lab, "family": r.get("family", lab),
                    "success": r["success_rate"], "success_other": o["success_rate"],
                    "failure": r["failure_rate"], "failure_other": o["failure_rate"],
                    "modes_used": r["modes_used"], "modes_used_other": o["modes_used"],
                    "change": 0 if abs(d) <= tol else (1 if d > 0 else -1)})
    return out


# ---------------------------------------------------------------------------------------
# figures and videos
# ---------------------------------------------------------------------------------------
def mode_color(k: int) -> tuple[float, ...]:
    """The colour of gap/bin ``k`` as the rendered scenes draw it (:data:`mbc_lib.envs.MODE_COLORS`)."""
    return envs.MODE_COLORS[k % len(envs.MODE_COLORS)][:3]


def _outcomes(row: dict[str, Any], K: int) -> tuple[list[float], float, float]:
    modes = [row[f"mode{k}_rate"] for k in range(K)]
    fail = 0.0 if not np.isfinite(row["failure_rate"]) else row["failure_rate"]
    return modes, fail, max(0.0, 1.0 - sum(modes) - fail)


def plot_outcomes(result: RobotSweep, executor_label: str | None = None, K: int | None = None) -> plt.Figure:
    """One panel per task: for each policy a bar split into episodes that succeeded through each mode
    (mode colours), ended with the task's failure (red), or timed out (grey); whiskers: the 95%
    Wilson interval of the success rate."""
    ex = executor_label or result.executors[0]
    K = K or result.Ks[0]
    rows = {(r["env"], r["policy"]): r for r in summary(result) if r["K"] == K and r["executor"] in (ex, "scripted")}
    env_list = result.envs
    names = ["expert", *result.labels]
    fig, axes = plt.subplots(1, len(env_list), figsize=(5.2 * len(env_list), 3.4), squeeze=False)
    for ax, e in zip(axes[0], env_list):
        x = np.arange(len(names))
        for i, name in enumerate(names):
            r = rows[(e, name)]
            modes, fail, other = _outcomes(r, K)
            bottom = 0.0
            for k, v in enumerate(modes):
                ax.bar(i, v, bottom=bottom, color=mode_color(k), label=f"success via mode {k}" if i == 0 else None)
                bottom += v
            ax.bar(i, fail, bottom=bottom, color=OFF_SUPPORT_COLOR,
                   label=f"failure ({r['failure']})" if i == 0 else None)
            ax.bar(i, other, bottom=bottom + fail, color="0.8", label="timed out / other" if i == 0 else None)
            err = [[r["success_rate"] - r["success_lo"]], [r["success_hi"] - r["success_rate"]]]
            ax.errorbar(i, r["success_rate"], yerr=err,
                        color="k", capsize=3, lw=1)
        ax.set_xticks(x, names, rotation=30, ha="right")
        ax.set(ylim=(0, 1.02), ylabel="fraction of episodes", title=f"{e}, K={K}, executor: {ex}")
    for ax in axes[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(0, -0.35), ncol=2, fontsize=8)
    fig.tight_layout()
    return fig


def _draw_scene(ax: plt.Axes, task: envs.Task) -> None:
    if isinstance(task, envs.PathTask):
        edges = [-task.half_width]
        for g in task.gap_centers:
            edges += [g - task.gap_width / 2, g + task.gap_width / 2]
        edges.append(task.half_width)
        for j in range(0, len(edges), 2):
            ax.add_patch(plt.Rectangle((edges[j], task.wall_y - task.wall_half), edges[j + 1] - edges[j],
                                       2 * task.wall_half, color="0.3"))
        ax.add_patch(plt.Circle(task.target, task.target_radius, color="0.6", alpha=0.4))
        ax.set(xlim=(-task.half_width, task.half_width), ylim=task.y_range)
    else:
        for k, c in enumerate(task.bin_centers):
            ax.add_patch(plt.Circle(c, task.bin_radius, fill=False, ec=mode_color(k), lw=2))
        ax.set(xlim=(-task.half_width, task.half_width), ylim=(-0.3, 0.3))
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_trajectories(result: RobotSweep, env: str, label: str, executor_label: str | None = None,
                      K: int | None = None, n_show: int = 32, ax: plt.Axes | None = None) -> plt.Figure:
    """Top-down paths of the effector (PathGaps) or the puck (PushBins), coloured by the mode of a
    successful episode, red for the task's failure, grey otherwise."""
    ex = executor_label or result.executors[0]
    K = K or result.Ks[0]
    e = _short(env)
    task = envs.make_task(env_id(e), K=K)
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(3.6, 3.0))
    _draw_scene(ax, task)
    if label == "expert":
        traj = result.experts[(e, K)][:n_show]
        paths = [(t.qpos, t.mode_used if t.success else -2) for t in traj]
        title = "expert"
    else:
        r = result.results[(e, K, label, ex)]
        paths = [(q, int(m) if s else (-1 if f else -2))
                 for q, m, s, f in zip(r.qpos[:n_show], r.modes, r.success, r.failures)]
        title = f"{label}: {r.success_rate:.0%} success, {r.failure_key} {r.failures.mean():.0%}"
    cols = slice(0, 2) if isinstance(task, envs.PathTask) else slice(2, 4)  # effector / puck position
    for q, k in paths:
        ax.plot(q[:, cols][:, 0], q[:, cols][:, 1], lw=1, alpha=0.7,
                color="0.6" if k == -2 else (OFF_SUPPORT_COLOR if k == -1 else mode_color(k)))
    ax.set_title(title, fontsize=8)
    return fig if fig is not None else ax.figure


def plot_family_grid(result: RobotSweep, env: str, executor_label: str | None = None, K: int | None = None,
                     n_show: int = 24) -> plt.Figure:
    """:func:`plot_trajectories` for the expert and every policy on one task, side by side."""
    names = ["expert", *result.labels]
    ncols = 4
    nrows = math.ceil(len(names) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.0 * ncols, 2.6 * nrows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        plot_trajectories(result, env, name, executor_label, K, n_show=n_show, ax=ax)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.suptitle(f"{_short(env)}: paths of {'the effector' if _short(env) == 'PathGaps' else 'the puck'} "
                 f"(colour: mode of a success; red: {envs.make_task(env_id(env)).failure_key}; grey: timed out)",
                 fontsize=10)
    fig.tight_layout()
    return fig


def plot_executors(result: RobotSweep, K: int | None = None) -> plt.Figure:
    """Per task: success rate of every policy (groups) under every executor (bars, with the 95% Wilson
    interval); the black tick on each bar is the task's failure rate (collision / between bins)."""
    K = K or result.Ks[0]
    rows = [r for r in summary(result) if r["K"] == K and r["policy"] != "expert"]
    exs = list(result.executors)
    labels = list(result.labels)
    width = 0.8 / len(exs)
    fig, axes = plt.subplots(len(result.envs), 1, figsize=(1.25 * len(labels) + 1.5, 2.7 * len(result.envs)),
                             squeeze=False, sharex=True)
    for ax, e in zip(axes[:, 0], result.envs):
        for j, ex in enumerate(exs):
            by = {r["policy"]: r for r in rows if r["env"] == e and r["executor"] == ex}
            x = np.arange(len(labels)) + (j - (len(exs) - 1) / 2) * width
            succ = np.array([by[lab]["success_rate"] for lab in labels])
            err = np.array([[succ[i] - by[lab]["success_lo"], by[lab]["success_hi"] - succ[i]]
                            for i, lab in enumerate(labels)]).T
            ax.bar(x, succ, width, yerr=err, capsize=2, color=f"C{j}", label=ex, error_kw=dict(lw=0.7))
            fail = [by[lab]["failure_rate"] for lab in labels]
            ax.scatter(x, fail, marker="_", s=120, color="k", lw=1.5, zorder=3,
                       label="failure rate" if j == 0 else None)
        ax.set(ylim=(0, 1.05), ylabel="fraction of episodes", title=f"{e}, K={K}: success per executor")
        ax.grid(axis="y", alpha=0.3)
    axes[-1, 0].set_xticks(np.arange(len(labels)), labels, rotation=20)
    axes[0, 0].legend(fontsize=8, ncol=len(exs) + 1, loc="lower center", bbox_to_anchor=(0.5, 1.12))
    fig.tight_layout()
    return fig


def video(result: RobotSweep, env: str, labels: str | Sequence[str], executor_label: str | None = None,
          K: int | None = None, n: int = 4, size: tuple[int, int] = (96, 128), every: int = 2,
          max_frames: int = 50) -> np.ndarray:
    """Frames ``[T, H', W', 3]``: one row per policy in ``labels`` (``"expert"`` allowed) with its first
    ``n`` recorded episodes side by side, every ``every``-th control step (at most ``max_frames``),
    rendered at ``size`` (:func:`mbc_lib.envs.tile_videos`); play with :func:`mbc_lib.envs.show_video`."""
    ex = executor_label or result.executors[0]
    K = K or result.Ks[0]
    e = _short(env)
    task = envs.make_task(env_id(e), K=K)
    clips = []
    for label in [labels] if isinstance(labels, str) else labels:
        if label == "expert":
            qpos = [t.qpos for t in result.experts[(e, K)][:n]]
        else:
            qpos = result.results[(e, K, label, ex)].qpos[:n]
        clips += [envs.render_trajectory(task, q[::every][:max_frames], height=size[0], width=size[1]) for q in qpos]
    return envs.tile_videos(clips, ncols=n)
