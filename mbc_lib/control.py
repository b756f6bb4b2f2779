"""Executing action chunks in a closed loop, for batches of environments.

A policy predicts a chunk ``a_{t:t+H}`` at step ``t``; the executor decides which
action is sent to the environment at each step:

* **action queue / receding horizon** — query the policy, execute the first
  ``n_action_steps`` (≤ H) actions of the chunk open-loop, then query again.
  ``n_action_steps = H`` is pure open-loop chunking; ``1`` re-plans every step.
* **temporal ensembling** (ACT, Zhao et al. 2023) — query at *every* step and execute,
  for step ``t``, the weighted mean of every prediction made for ``t`` by the chunks
  queried at ``t−H+1 … t``, with weights ``w_i = exp(−m·i)``, ``i = 0`` the *oldest*
  prediction (normalised to sum to 1). Averaging predictions that come from
  different modes is exactly how ensembling can average across modes (chapter 2).
* **coherent choice** (``coherence = M``, with either of the above) — a query draws ``M`` chunks and keeps,
  per environment, the one that best continues the previous chunk: the smallest squared distance between
  its first actions and the previous chunk's actions not yet reached (its last action when the whole chunk
  was executed). It conditions the new chunk on the previous one at sampling time, without retraining —
  the backward-coherence half of Bidirectional Decoding (Liu et al. 2024) — so a multimodal policy
  re-queried while the state is still ambiguous tends to stay in the mode it chose.

The executor never touches the policy's internals: it calls ``policy.sample(obs, 1)``
(or any callable ``obs [B, obs_dim] -> chunk [B, H, d]``); a coherent executor calls
``policy.sample(obs, M)``.
"""
from __future__ import annotations

import numbers
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .validation import check_real

__all__ = ["ChunkExecutor", "ExecutorSpec", "ensemble_weights"]


def _coefficient(m: float, name: str) -> float:
    """ACT's coefficient m as a float: a finite number >= 0 (0 = plain mean; ACT uses 0.01)."""
    expected = f"{name}: the temporal-ensembling coefficient m must be >= 0 and finite (0 = plain mean, ACT uses 0.01)"
    try:
        return check_real(m, name, low=0.0)
    except TypeError:
        raise TypeError(f"{expected}, got {type(m).__name__} {m!r}") from None
    except ValueError:
        raise ValueError(f"{expected}, got {m!r}") from None


def ensemble_weights(n: int, m: float) -> Tensor:
    """ACT's temporal-ensembling weights for ``n`` predictions, oldest first:
    ``w_i = exp(−m·i) / Σ_j exp(−m·j)``, ``i = 0 … n−1``. ``m = 0`` is a plain mean;
    larger ``m`` trusts older predictions more (ACT uses m = 0.01)."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n (how many predictions to ensemble) must be an integer >= 1: need at least one prediction "
                         f"to ensemble, got n={n!r}")
    m = _coefficient(m, "m")
    w = torch.exp(-m * torch.arange(n, dtype=torch.float64))
    return (w / w.sum()).float()


class ChunkExecutor:
    """Turns chunk predictions into one action per step for ``B`` environments at once.

    Args:
        chunk_len: H, the length of the chunks the policy predicts.
        n_action_steps: actions executed from each chunk before re-querying
            (default H; ignored with temporal ensembling, which queries every step).
        temporal_ensemble: the coefficient ``m`` of ACT's weights, or ``None`` for the queue.
        coherence: ``M`` ≥ 2 chunks drawn per query, the one that best continues the previous chunk kept
            (module docstring); ``None`` draws one.
    """

    def __init__(self, chunk_len: int, n_action_steps: int | None = None, temporal_ensemble: float | None = None,
                 coherence: int | None = None):
        if not isinstance(chunk_len, int) or isinstance(chunk_len, bool) or chunk_len < 1:
            raise ValueError(f"chunk_len must be an integer >= 1, got {chunk_len!r}")
        n_action_steps = chunk_len if n_action_steps is None else n_action_steps
        if not isinstance(n_action_steps, int) or isinstance(n_action_steps, bool) or not 1 <= n_action_steps <= chunk_len:
            raise ValueError(f"n_action_steps must be an integer in [1, chunk_len={chunk_len}], got {n_action_steps!r}")
        if temporal_ensemble is not None:
            temporal_ensemble = _coefficient(temporal_ensemble, "temporal_ensemble")
        if coherence is not None and (isinstance(coherence, bool) or not isinstance(coherence, numbers.Integral)
                                      or coherence < 2):
            raise ValueError(f"coherence (chunks drawn per query, the most coherent kept) must be an integer >= 2, or "
                             f"None to draw one, got {coherence!r}")
        self.coherence = None if coherence is None else int(coherence)
        self.chunk_len = chunk_len
        self.n_action_steps = n_action_steps
        self.m = temporal_ensemble
        self.reset()

    def __repr__(self) -> str:
        mode = f"temporal_ensemble={self.m}" if self.m is not None else f"n_action_steps={self.n_action_steps}"
        more = f", coherence={self.coherence}" if self.coherence else ""
        return f"ChunkExecutor(chunk_len={self.chunk_len}, {mode}{more})"

    def reset(self) -> None:
        """Forget all queued actions and past predictions (call at episode start)."""
        self.t = 0
        self._queue: deque[Tensor] = deque()  # queued actions, each [B, d]
        self._past: deque[tuple[int, Tensor]] = deque()  # (query step, chunk [B, H, d]), oldest first
        #: the latest query: (the executor's step when it was made, the chunk it executes [B, H, d]), or None
        self.last_query: tuple[int, Tensor] | None = None
        self.queries = 0

    def _query(self, obs: Tensor, policy) -> Tensor:
        if self.coherence is None:
            chunk = policy.sample(obs, 1)[:, 0] if hasattr(policy, "sample") else policy(obs)
        elif not hasattr(policy, "sample"):
            raise ValueError(f"a coherent executor draws {self.coherence} chunks per query with policy.sample(obs, M); "
                             f"{type(policy).__name__} has no sample method (use coherence=None)")
        else:
            chunk = self._coherent(policy.sample(obs, self.coherence))
        if chunk.ndim != 3 or chunk.shape[0] != obs.shape[0] or chunk.shape[1] != self.chunk_len:
            raise ValueError(
                f"the policy must return chunks [B={obs.shape[0]}, H={self.chunk_len}, d], got {tuple(chunk.shape)}"
            )
        self.queries += 1
        self.last_query = (self.t, chunk)
        return chunk

    def _coherent(self, cands: Tensor) -> Tensor:
        """Of ``cands [B, M, H, d]``, per environment the chunk that best continues the previous one ``[B, H, d]``
        (the first candidate at an episode's first query)."""
        if cands.ndim != 4 or cands.shape[2] != self.chunk_len:
            raise ValueError(f"policy.sample(obs, M) must return [B, M, H={self.chunk_len}, d], got {tuple(cands.shape)}")
        if self.last_query is None:
            return cands[:, 0]
        t0, prev = self.last_query
        done = self.t - t0  # actions of the previous chunk already reached
        if done < self.chunk_len:
            err = (cands[:, :, : self.chunk_len - done] - prev[:, None, done:]).square().sum(dim=(2, 3))
        else:
            err = (cands[:, :, 0] - prev[:, None, -1]).square().sum(dim=-1)
        best = err.argmin(dim=1)  # [B]
        return cands[torch.arange(cands.shape[0], device=cands.device), best]

    @torch.no_grad()
    def act(self, obs: Tensor, policy: Callable[[Tensor], Tensor]) -> Tensor:
        """The actions ``[B, d]`` to execute now, given observations ``[B, obs_dim]``."""
        if self.m is None:
            if not self._queue:
                chunk = self._query(obs, policy)  # [B, H, d]
                self._queue.extend(chunk[:, i] for i in range(self.n_action_steps))
            action = self._queue.popleft()
        else:
            self._past.append((self.t, self._query(obs, policy)))
            while self._past and self._past[0][0] <= self.t - self.chunk_len:
                self._past.popleft()  # chunks queried H or more steps ago say nothing about step t
            preds = torch.stack([chunk[:, self.t - t0] for t0, chunk in self._past])  # [n, B, d], oldest first
            w = ensemble_weights(len(self._past), self.m).to(preds)
            action = torch.einsum("n,nbd->bd", w, preds)
        self.t += 1
        return action


@dataclass(frozen=True)
class ExecutorSpec:
    """A named way of executing chunks, independent of the chunk length: ``n_action_steps`` (an int,
    ``"H"`` = the whole chunk, ``"H/2"`` = half of it) or temporal ensembling with coefficient
    ``temporal_ensemble`` (m), optionally with a coherent choice among ``coherence`` drawn chunks.
    :meth:`build` makes the :class:`ChunkExecutor` for chunks of H steps."""

    label: str
    n_action_steps: int | str | None = None
    temporal_ensemble: float | None = None
    coherence: int | None = None

    def build(self, H: int) -> ChunkExecutor:
        steps = H if self.n_action_steps == "H" else (max(1, H // 2) if self.n_action_steps == "H/2" else self.n_action_steps)
        return ChunkExecutor(H, n_action_steps=steps if self.temporal_ensemble is None else None,
                             temporal_ensemble=self.temporal_ensemble, coherence=self.coherence)
