"""Chapters 8–9: why each policy's rollouts fail, and how often it switches modes between chunks.

For each robot task of :data:`ENVS` (default ``PathGaps`` and ``PushDivider``, where the modes' average
fails in closed loop) we

1. collect ``n_demos`` expert episodes and train every policy variant of :data:`POLICIES` on their
   chunks of length ``chunk_len`` (:func:`mbc_lib.fitting.fit`), and the variants of ``switch_policies``
   also at every other chunk length of ``Hs``;
2. roll each model out for ``n_eval`` recorded episodes with every executor of :data:`EXECUTORS` (whole
   chunk, half chunk, temporal ensembling, and **coherent** executors that keep, of several chunks drawn per
   query, the one that best continues the previous chunk: :class:`mbc_lib.control.ChunkExecutor`) — and, for
   the families that can and the executors that are not coherent, **committed**: the policy's random choice
   (:data:`COMMITMENT`) drawn once per episode and reused at every query (:class:`CommittedPolicy`);
3. label every executed chunk with the mode it belongs to and give every failed episode its first cause —
   drift, an averaged or off-support chunk, a bridge chunk, or a switch that abandoned a feasible mode
   (:mod:`mbc_lib.envs.attribution`, where the definitions are) — and count switches per episode.

:func:`summary` gives one row per (task, H, policy, executor, committed) with the success rate, the
failures' split by first cause and the switches per episode; the expert's row per task (its own episodes
on the evaluation seeds) is the reference. Sizes come from ``BUDGETS["failures"]``; the figures are in
:mod:`mbc_lib.figures.failures`. Units: rates are fractions of episodes.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .. import envs
from ..diagnostics import wilson_interval
from ..envs import attribution
from ..fitting import fit
from ..profiles import budget
from ..profiles import profile as active_profile
from ..runtime import on_compute_device, progress_enabled
from .robot import ENVS, EXECUTORS, POLICIES  # chapter 8's tables (this module is chapter 8 too)

__all__ = [
    "ENVS", "POLICIES", "EXECUTORS", "COMMITMENT", "CommittedPolicy", "FailureStudy", "study", "summary", "rows_where",
]

# chapter 8's tasks, policy variants and executors: one table each, in robot.py (the same chapter)

#: family -> what :class:`CommittedPolicy` draws once per episode. A regression has nothing to draw (it is
#: deterministic); the autoregressive family samples step by step inside a chunk and is left out.
COMMITMENT: dict[str, str] = {
    "cvae": "the latent's noise ε (z = μ(s) + σ(s)·ε with the prior's mean and scale at each state)",
    "vq": "the code k, drawn from the prior p(k|s) at the first query",
    "mixture": "the component k, drawn from the weights π(s) at the first query (the noise within it stays fresh)",
    "flow": "the base noise x₀ (the flow's ODE map is deterministic)",
    "diffusion": "the initial noise x_T, denoised by DDIM (η = 0: a deterministic map)",
}


class CommittedPolicy:
    """``policy`` with its random choice drawn once per episode (:data:`COMMITMENT`) and reused at every
    query: a callable ``obs [B, obs_dim] -> chunks [B, H, d]`` for :func:`mbc_lib.envs.evaluate`, which calls
    :meth:`begin_episodes` before each batch of episodes (row b of a batch is episode b throughout)."""

    def __init__(self, policy):
        family = getattr(policy, "family", None)
        if family not in COMMITMENT:
            raise ValueError(f"cannot commit a {family!r} policy once per episode; families that can: "
                             f"{', '.join(COMMITMENT)} (a regression is deterministic already)")
        self.policy, self.family, self.config = policy, family, policy.config
        self._draw: torch.Tensor | None = None

    def __repr__(self) -> str:
        return f"CommittedPolicy({self.family})"

    def begin_episodes(self, n: int) -> None:
        self._draw = None  # drawn at the first query of the new episodes

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        p, cfg, B = self.policy, self.policy.config, obs.shape[0]
        first = self._draw is None or self._draw.shape[0] != B
        if self.family == "cvae":
            if first:
                self._draw = torch.randn(B, cfg.latent_dim, device=obs.device)
            mu, logvar = p.prior(obs)
            return p.decode(obs, mu + (0.5 * logvar).exp() * self._draw)
        if self.family == "vq":
            if first:
                self._draw = torch.distributions.Categorical(logits=p.prior(obs)).sample()
            return p.decode(obs, self._draw)
        if self.family == "mixture":
            weights, means, std = p.mixture(obs)  # [B, K], [B, K, H, d] (normalised units)
            if first:
                self._draw = torch.distributions.Categorical(probs=weights).sample()
            rows = torch.arange(B, device=obs.device)
            a = means[rows, self._draw] + cfg.std_scale * std[rows, self._draw] * torch.randn_like(means[:, 0])
            return p.normalizer.unnormalize_actions(a)
        if first:  # flow, diffusion: the base noise
            self._draw = torch.randn(B, cfg.chunk_len, cfg.action_dim, device=obs.device)
        return p.transport(obs, self._draw)


@dataclass
class FailureStudy:
    """Everything :func:`study` computed.

    attributions: (env, H, label, executor, committed) -> :class:`~mbc_lib.envs.attribution.Attribution`.
    results: the same keys -> the recorded :class:`~mbc_lib.envs.EvalResult`.
    references: env -> the demonstrations' :class:`~mbc_lib.envs.attribution.Reference`.
    experts: env -> the expert's own episodes on the evaluation seeds. chunk_len: the main H.
    """

    attributions: dict[tuple[str, int, str, str, bool], attribution.Attribution]
    results: dict[tuple[str, int, str, str, bool], envs.EvalResult] = field(repr=False)
    references: dict[str, attribution.Reference]
    experts: dict[str, list[envs.Trajectory]] = field(repr=False)
    chunk_len: int
    K: int

    @property
    def envs(self) -> list[str]:
        return list(dict.fromkeys(k[0] for k in self.attributions))

    @property
    def labels(self) -> list[str]:
        return list(dict.fromkeys(k[2] for k in self.attributions))

    @property
    def Hs(self) -> list[int]:
        return sorted({k[1] for k in self.attributions})

    @property
    def executors(self) -> list[str]:
        return list(dict.fromkeys(k[3] for k in self.attributions))


def _short(env: str) -> str:
    if env in ENVS:
        return env
    for k, v in ENVS.items():
        if v == env:
            return k
    raise ValueError(f"unknown robot task {env!r}; choose from {', '.join(ENVS)} (or their ids)")


def study(envs_: Sequence[str] | None = None, Hs: Sequence[int] | None = None, labels: Sequence[str] | None = None,
          executors: Sequence[str] | None = None, seed: int = 0, profile: str | None = None,
          progress: bool | None = None) -> FailureStudy:
    """Train, roll out and attribute (module docstring). ``None`` takes the profile's ``BUDGETS["failures"]``:
    tasks ``envs``, chunk lengths ``Hs`` (the variants of ``switch_policies`` at every one of them,
    those of ``policies`` at ``chunk_len``), ``executors``; ``n_eval`` episodes per rollout."""
    from tqdm.auto import tqdm

    prof = active_profile() if profile is None else profile
    b = budget("failures", prof)
    env_list = [_short(e) for e in (b["envs"] if envs_ is None else envs_)]
    H0 = b["chunk_len"]
    H_list = sorted(set(b["Hs"] if Hs is None else Hs) | {H0})
    main = list(b["policies"] if labels is None else labels)
    sweep = [lab for lab in b["switch_policies"] if labels is None or lab in labels]
    ex_list = list(b["executors"] if executors is None else executors)
    for lab in main:
        if lab not in POLICIES:
            raise ValueError(f"unknown policy {lab!r}; choose from {', '.join(POLICIES)}")
    for ex in ex_list:
        if ex not in EXECUTORS:
            raise ValueError(f"unknown executor {ex!r}; choose from {', '.join(EXECUTORS)}")
    K, n_eval = b["K"], b["n_eval"]
    jobs = [(e, H, lab) for e in env_list for H in H_list for lab in (main if H == H0 else sweep)]
    attributions, results, references, experts = {}, {}, {}, {}
    with tqdm(total=len(jobs), desc="failure study", disable=not progress_enabled(progress)) as bar:
        for e in env_list:
            eid = ENVS[e]
            _, experts[e] = envs.collect_demos(eid, n_eval, seed=seed + 1000, chunk_len=H0, K=K,
                                               successful_only=False, return_trajectories=True, progress=False)
            for H in sorted(H_list, key=lambda h: h != H0):  # the main H first: its demonstrations give the reference
                labs = main if H == H0 else sweep
                data, traj = envs.collect_demos(eid, b["n_demos"], seed=seed, chunk_len=H, K=K,
                                                return_trajectories=True, progress=False)
                if e not in references:  # the same episodes whatever H: the seed fixes them
                    references[e] = attribution.reference(eid, traj, K=K)
                for lab in labs:
                    bar.set_postfix_str(f"{lab} H={H} on {e}")
                    family, cfg = POLICIES[lab]
                    policy, _ = fit(family, data, budget=b, seed=seed, progress=False,
                                    desc=f"{lab} H={H} on {e}", **cfg)
                    variants = [False] + ([True] if family in COMMITMENT else [])
                    with on_compute_device(policy) as dev:
                        for committed in variants:
                            runner = CommittedPolicy(policy) if committed else policy
                            for ex in ex_list:
                                if committed and EXECUTORS[ex].coherence:  # one fixed draw: nothing to choose from
                                    continue
                                res = envs.evaluate(runner, eid, n_episodes=n_eval, seed=seed + 1000,
                                                    executor=EXECUTORS[ex].build(H), batch_size=n_eval, K=K,
                                                    record=True, progress=False, device=dev)
                                key = (e, H, lab, ex, committed)
                                results[key] = res
                                attributions[key] = attribution.attribute(res, references[e], chunk_len=H,
                                                                          causes=H == H0)
                    bar.update()
    return FailureStudy(attributions, results, references, experts, H0, K)


def summary(result: FailureStudy) -> list[dict[str, Any]]:
    """Tidy rows, one per (task, H, policy, executor, committed), plus the expert's per task
    (``policy="expert"``, executor ``"scripted"``).

    Columns: env, K, H, policy, family, executor, committed, n_episodes, success_rate with its 95% Wilson
    interval (success_lo, success_hi), failure_rate, cause_<c> for every first cause of
    :data:`mbc_lib.envs.attribution.CAUSES` (fraction of all episodes: they sum to failure_rate),
    mechanism_share (fraction of the failures whose first cause is averaged or a bridge, the paper's two
    mechanisms; NaN without failures), collapse_share (the same with off-support chunks added),
    switches_per_episode, switched_episodes (fraction with at least one switch), seg_<label> (fraction of
    executed segments that were a mode / averaged / bridge / off-support), tol (m/s) and drift_threshold (m).
    """
    rows = []
    for e, traj in result.experts.items():
        ok = np.array([t.success for t in traj])
        lo, hi = wilson_interval(int(ok.sum()), len(ok))
        ref = result.references[e]
        rows.append({"env": e, "K": result.K, "H": result.chunk_len, "policy": "expert", "family": "scripted",
                     "executor": "scripted", "committed": False, "n_episodes": len(ok), "success_rate": float(ok.mean()),
                     "success_lo": float(lo), "success_hi": float(hi), "failure_rate": float(1 - ok.mean()),
                     "tol": ref.tol, "drift_threshold": ref.drift_threshold})
    for (e, H, lab, ex, committed), att in result.attributions.items():
        s = att.summary()
        n = s["n_episodes"]
        lo, hi = wilson_interval(int(round(s["success_rate"] * n)), n)
        rows.append({"env": e, "K": result.K, "H": H, "policy": lab, "family": POLICIES[lab][0], "executor": ex,
                     "committed": committed, **s, "success_lo": float(lo), "success_hi": float(hi)})
    return rows


def rows_where(rows: list[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    """The rows of :func:`summary` whose columns equal every ``column=value`` given (e.g.
    ``rows_where(rows, env="PathGaps", H=8, committed=False)``)."""
    return [r for r in rows if all(r.get(k) == v for k, v in match.items())]
