"""The chunk executor against hand-computed cases: queue order, receding horizon,
ACT's temporal-ensembling weights and the ensembled actions."""
from __future__ import annotations

import math

import pytest
import torch

from mbc_lib.control import ChunkExecutor, ensemble_weights


class CountingPolicy:
    """Query q returns, for environment b, the chunk a_i = 100·b + 10·q + i (i = 0..H−1),
    so every executed action says which query, which chunk index and which env it came from."""

    def __init__(self, chunk_len: int):
        self.H = chunk_len
        self.q = 0

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        B = obs.shape[0]
        i = torch.arange(self.H, dtype=torch.float32)
        b = torch.arange(B, dtype=torch.float32)[:, None]
        chunk = (100 * b + 10 * self.q + i)[..., None]  # [B, H, 1]
        self.q += 1
        return chunk


class SamplingPolicy(CountingPolicy):
    """The same, behind the policy interface ``sample(obs, n) -> [B, n, H, d]``."""

    def sample(self, obs: torch.Tensor, n: int = 1) -> torch.Tensor:
        return self(obs).unsqueeze(1).expand(-1, n, -1, -1)


def run(executor: ChunkExecutor, policy, steps: int, B: int = 1) -> list[list[float]]:
    obs = torch.zeros(B, 1)
    return [executor.act(obs, policy)[:, 0].tolist() for _ in range(steps)]


# -- ensembling weights -------------------------------------------------------------------
def test_ensemble_weights_hand_computed():
    # m = ln 2: raw weights 1, 1/2, 1/4 (oldest first), normalised by 7/4
    assert torch.allclose(ensemble_weights(3, math.log(2)), torch.tensor([4 / 7, 2 / 7, 1 / 7]))
    # m = 0: a plain mean
    assert torch.allclose(ensemble_weights(4, 0.0), torch.full((4,), 0.25))
    # ACT's m = 0.01 with two predictions
    e = math.exp(-0.01)
    assert torch.allclose(ensemble_weights(2, 0.01), torch.tensor([1 / (1 + e), e / (1 + e)]))
    assert torch.equal(ensemble_weights(1, 5.0), torch.tensor([1.0]))


def test_ensemble_weights_properties():
    for m in (0.0, 0.01, 0.5, 3.0):
        w = ensemble_weights(10, m)
        assert w.shape == (10,) and math.isclose(float(w.sum()), 1.0, rel_tol=1e-6)
        assert bool((w[:-1] >= w[1:]).all()), "older predictions never weigh less (m >= 0)"
    with pytest.raises(ValueError, match="at least one"):
        ensemble_weights(0, 0.1)


# -- action queue / receding horizon --------------------------------------------------------
def test_open_loop_queue_executes_whole_chunks_in_order():
    ex = ChunkExecutor(chunk_len=3)  # n_action_steps defaults to H
    actions = run(ex, CountingPolicy(3), steps=7)
    assert actions == [[0], [1], [2], [10], [11], [12], [20]]
    assert ex.queries == 3 and ex.t == 7


def test_receding_horizon_executes_first_steps_then_requeries():
    ex = ChunkExecutor(chunk_len=4, n_action_steps=2)
    actions = run(ex, CountingPolicy(4), steps=6)
    assert actions == [[0], [1], [10], [11], [20], [21]]
    assert ex.queries == 3


def test_replan_every_step_executes_first_action_of_each_chunk():
    ex = ChunkExecutor(chunk_len=5, n_action_steps=1)
    assert run(ex, CountingPolicy(5), steps=4) == [[0], [10], [20], [30]]
    assert ex.queries == 4


def test_queue_is_batched_and_reset_clears_it():
    ex = ChunkExecutor(chunk_len=2)
    policy = SamplingPolicy(2)  # goes through policy.sample(obs, 1)
    assert run(ex, policy, steps=3, B=2) == [[0, 100], [1, 101], [10, 110]]
    ex.reset()
    assert ex.t == 0 and ex.queries == 0
    assert run(ex, policy, steps=1, B=2) == [[20, 120]]  # the half-used chunk was dropped


# -- temporal ensembling ---------------------------------------------------------------------
def test_temporal_ensembling_plain_mean():
    # H = 3, m = 0. Query q predicts 10q + i for step q + i. At step t the live predictions are
    #   t=0: {0}            -> 0
    #   t=1: {1, 10}        -> 5.5
    #   t=2: {2, 11, 20}    -> 11
    #   t=3: {12, 21, 30}   -> 21   (the chunk from step 0 has run out)
    #   t=4: {22, 31, 40}   -> 31
    ex = ChunkExecutor(chunk_len=3, temporal_ensemble=0.0)
    actions = run(ex, CountingPolicy(3), steps=5)
    assert [a[0] for a in actions] == pytest.approx([0.0, 5.5, 11.0, 21.0, 31.0])
    assert ex.queries == 5


def test_temporal_ensembling_weights_oldest_first():
    # m = ln 2: weights ∝ 1, 1/2, 1/4 with the OLDEST prediction first (ACT's convention)
    #   t=1: (1·1 + ½·10) / 1.5            = 4
    #   t=2: (1·2 + ½·11 + ¼·20) / 1.75    = 50/7
    #   t=3: (1·12 + ½·21 + ¼·30) / 1.75   = 120/7
    ex = ChunkExecutor(chunk_len=3, temporal_ensemble=math.log(2))
    actions = run(ex, CountingPolicy(3), steps=4, B=2)
    expected = [0.0, 4.0, 50 / 7, 120 / 7]
    assert [a[0] for a in actions] == pytest.approx(expected, rel=1e-5)
    assert [a[1] for a in actions] == pytest.approx([e + 100 for e in expected], rel=1e-5)  # env 1: +100


def test_temporal_ensembling_averages_across_modes():
    # Two queries that disagree (mode +1, then mode −1) are averaged into an action in
    # neither mode — the failure chapter 2 shows.
    chunks = iter([torch.ones(1, 2, 1), -torch.ones(1, 2, 1)])
    ex = ChunkExecutor(chunk_len=2, temporal_ensemble=0.0)
    obs = torch.zeros(1, 1)
    assert float(ex.act(obs, lambda o: next(chunks))) == 1.0
    assert float(ex.act(obs, lambda o: next(chunks))) == 0.0


# -- coherent choice ---------------------------------------------------------------------------
class TwoModePolicy:
    """Every draw is a constant chunk in mode +1 or −1 at random: ``sample(obs, n) -> [B, n, H, 1]``."""

    def __init__(self, chunk_len: int, seed: int = 0):
        self.H, self.g = chunk_len, torch.Generator().manual_seed(seed)

    def sample(self, obs: torch.Tensor, n: int = 1) -> torch.Tensor:
        sign = torch.randint(0, 2, (obs.shape[0], n, 1, 1), generator=self.g).float() * 2 - 1
        return sign.expand(-1, -1, self.H, 1)


def _switches(executor: ChunkExecutor, steps: int = 64, B: int = 16) -> int:
    acts = torch.tensor(run(executor, TwoModePolicy(4), steps, B=B))  # [steps, B]
    return int((acts[1:] != acts[:-1]).sum())


@pytest.mark.parametrize("steps", [None, 2, 1])
def test_a_coherent_executor_keeps_the_mode_the_first_chunk_chose(steps):
    """With 8 draws per query, almost every query has a draw in the previous chunk's mode (all but 2⁻⁸):
    the coherent executor keeps it; the plain executor switches at about half of its queries."""
    assert _switches(ChunkExecutor(4, n_action_steps=steps)) > 100
    assert _switches(ChunkExecutor(4, n_action_steps=steps, coherence=8)) <= 2


def test_a_coherent_choice_continues_the_actions_not_yet_reached():
    """After 1 of 3 steps the new chunk is compared with the previous chunk's steps 1..2; after a whole chunk,
    with its last action."""
    ex = ChunkExecutor(3, n_action_steps=1, coherence=2)
    first = torch.tensor([[[0.0], [1.0], [2.0]]])
    cands = [torch.stack([first[0], first[0]])[None],  # the first query: candidate 0
             torch.tensor([[[[5.0], [5.0], [5.0]], [[1.0], [2.0], [9.0]]]])]  # candidate 1 continues 1, 2
    policy = type("P", (), {"sample": lambda self, obs, n: cands.pop(0)})()
    assert float(ex.act(torch.zeros(1, 1), policy)) == 0.0
    assert float(ex.act(torch.zeros(1, 1), policy)) == 1.0
    whole = ChunkExecutor(2, coherence=2)
    cands = [torch.tensor([[[[0.0], [3.0]], [[0.0], [3.0]]]]), torch.tensor([[[[-3.0], [0.0]], [[2.5], [0.0]]]])]
    assert [float(whole.act(torch.zeros(1, 1), policy)) for _ in range(3)] == [0.0, 3.0, 2.5]


# -- validation -------------------------------------------------------------------------------
def test_executor_validation():
    with pytest.raises(ValueError, match="chunk_len"):
        ChunkExecutor(chunk_len=0)
    with pytest.raises(ValueError, match="n_action_steps"):
        ChunkExecutor(chunk_len=3, n_action_steps=4)
    with pytest.raises(ValueError, match="n_action_steps"):
        ChunkExecutor(chunk_len=3, n_action_steps=0)
    with pytest.raises(ValueError, match="m must be >= 0"):
        ChunkExecutor(chunk_len=3, temporal_ensemble=-0.1)
    for bad in (1, 0, 2.5, True):
        with pytest.raises(ValueError, match="coherence"):
            ChunkExecutor(chunk_len=3, coherence=bad)
    with pytest.raises(ValueError, match="no sample method"):
        ChunkExecutor(chunk_len=3, coherence=4).act(torch.zeros(2, 1), lambda o: torch.zeros(2, 3, 1))
    ex = ChunkExecutor(chunk_len=3)
    with pytest.raises(ValueError, match="must return chunks"):
        ex.act(torch.zeros(2, 1), lambda o: torch.zeros(2, 4, 1))  # H = 4, not 3
