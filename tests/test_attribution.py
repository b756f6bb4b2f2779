"""Failure attribution (``mbc_lib.envs.attribution``) on hand-made policies whose answer is known: the
expert never fails, the modes' average fails by averaging, alternating modes fails by switching, a chunk
part of the way between the modes fails as a bridge. Plus the pieces: segments, chunk labels, the
expert's feasibility check, and recording that leaves the episodes unchanged."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import mbc_lib.envs as E
from mbc_lib.control import ChunkExecutor
from mbc_lib.envs import attribution as A

PATH, DIV = "mbc/PathGaps-v0", "mbc/PushDivider-v0"
H = 8


class Scripted:
    """A chunk policy built from the scripted expert's plans ``e_k`` from the current state:
    ``expert`` (row b follows mode b % K), ``average`` (½(e_0 + e_1)), ``alternate`` (all rows follow
    mode 0, then 1, then 0, … one query each), ``partway`` (e_0 + λ (e_1 − e_0))."""

    def __init__(self, env_id: str, how: str, lam: float = 0.3):
        self.expert, self.how, self.lam, self.calls = E.make_expert(env_id), how, lam, 0

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        o = obs.double().numpy()
        e = [self.expert.chunks(o, k, H) for k in range(2)]
        if self.how == "expert":
            c = self.expert.chunks(o, np.arange(len(o)) % 2, H)
        elif self.how == "average":
            c = 0.5 * (e[0] + e[1])
        elif self.how == "alternate":
            c = e[self.calls % 2]
        else:
            c = e[0] + self.lam * (e[1] - e[0])
        self.calls += 1
        return torch.from_numpy(c).float()


@pytest.fixture(scope="module")
def refs():
    out = {}
    for env_id in (PATH, DIV):
        _, traj = E.collect_demos(env_id, 32, seed=0, chunk_len=H, return_trajectories=True, progress=False)
        out[env_id] = A.reference(env_id, traj)
    return out


def _attribute(refs, env_id: str, how: str, n: int = 8, executor: ChunkExecutor | None = None) -> A.Attribution:
    res = E.evaluate(Scripted(env_id, how), env_id, n, seed=5, executor=executor or ChunkExecutor(H), record=True,
                     progress=False)
    return A.attribute(res, refs[env_id])


def test_reference_scales(refs):
    path, div = refs[PATH], refs[DIV]
    # PathGaps: the two modes' first chunks steer sideways at ±0.5 m/s at the same forward speed: 1 m/s apart
    assert path.mode_separation == pytest.approx(1.0, abs=0.02)
    assert path.tol == pytest.approx(path.mode_separation / 6)
    assert 0.1 < div.mode_separation < path.mode_separation and div.tol == pytest.approx(div.mode_separation / 6)
    for ref in (path, div):
        assert 0.002 < ref.drift_threshold < 0.1  # metres: a few millimetres to centimetres off the demonstrations
        assert ref.demo_distance(ref.positions[:5]) == pytest.approx(np.zeros(5))


def test_the_expert_never_fails_nor_switches(refs):
    for env_id in (PATH, DIV):
        att = _attribute(refs, env_id, "expert")
        assert att.success.all() and all(c is None for c in att.causes)
        assert att.switches.sum() == 0
        # every chunk is a mode's; it leans to that mode wherever the two modes' plans differ
        assert all((ep.labels >= 0).all() and ((ep.lean == ep.labels) | (ep.lean < 0)).all() for ep in att.episodes)
        assert {int(ep.labels[0]) for ep in att.episodes} == {0, 1}  # row b follows mode b % 2


@pytest.mark.parametrize("env_id", [PATH, DIV])
def test_the_average_of_the_modes_fails_by_averaging(refs, env_id):
    att = _attribute(refs, env_id, "average")
    assert not att.success.any()
    assert att.cause_counts()["averaged"] == att.n_episodes
    assert att.summary()["mechanism_share"] == 1.0
    ep = att.episodes[0]
    assert (ep.labels == A.AVERAGED).all() and np.allclose(ep.lam, 0.5) and ep.onset == 0


def test_the_average_executed_with_temporal_ensembling_is_averaged_too(refs):
    att = _attribute(refs, PATH, "average", executor=ChunkExecutor(H, temporal_ensemble=0.01))
    assert att.cause_counts()["averaged"] == att.n_episodes
    assert (np.diff(att.episodes[0].starts) == H // 2).all()  # read in segments of H/2 steps


def test_alternating_modes_fails_by_switching(refs):
    att = _attribute(refs, PATH, "alternate")
    assert not att.success.any()
    assert att.cause_counts()["switch"] == att.n_episodes
    ep = att.episodes[0]
    assert list(ep.labels[:4]) == [0, 1, 0, 1] and ep.switches[:3] == [1, 2, 3]
    assert att.switches.mean() >= 5


def test_a_chunk_part_of_the_way_between_the_modes_is_a_bridge(refs):
    att = _attribute(refs, PATH, "partway")
    assert not att.success.any()
    assert att.cause_counts()["bridge"] == att.n_episodes
    assert (att.episodes[0].labels == A.BRIDGE).all() and np.allclose(att.episodes[0].lam, 0.3)
    assert att.summary()["mechanism_share"] == 1.0


def test_label_chunks_geometry():
    # two modes whose chunks are 1 m/s apart in x; chunks placed along and off the path between them
    L = 4
    e0, e1 = np.zeros((L, 2)), np.tile([1.0, 0.0], (L, 1))
    lams = np.array([0.0, 0.1, 0.25, 0.5, 0.6, 0.8, 0.95, 1.0])
    chunks = np.stack([e0 + lam * (e1 - e0) for lam in lams] + [e0 + [0.5, 0.5]])  # the last: far off the path
    e = np.broadcast_to(np.stack([e0, e1]), (len(chunks), 2, L, 2))
    lab = A.label_chunks(chunks, e, tol=1 / 6)
    assert list(lab.labels) == [0, 0, A.BRIDGE, A.AVERAGED, A.AVERAGED, A.BRIDGE, 1, 1, A.OFF_SUPPORT]
    assert np.allclose(lab.lam[:-1], lams) and np.allclose(lab.off_path[:-1], 0)
    # leaning: at most half as far from one mode as from the other
    assert list(lab.lean) == [0, 0, 0, -1, -1, 1, 1, 1, -1]
    # where the two modes' chunks coincide, every chunk near them is both modes and leans to neither
    same = np.broadcast_to(np.stack([e0, e0]), (1, 2, L, 2))
    lab = A.label_chunks(e0[None] + 0.05, same, tol=1 / 6)
    assert lab.within.all() and lab.lean[0] == -1
    assert A.switch_segments(np.array([0, -1, 0, 1, -1, 1, 0])) == [3, 6]


def test_segments_follow_the_queries_at_most_every_half_chunk():
    starts, lengths = A.segments(np.array([0, 8, 16]), 20, 8)  # whole chunks, an episode of 20 steps
    assert list(starts) == [0, 8, 16] and list(lengths) == [8, 8, 4]
    starts, lengths = A.segments(np.arange(20), 20, 8)  # a query every step (temporal ensembling)
    assert list(starts) == [0, 4, 8, 12, 16] and list(lengths) == [4] * 5
    starts, lengths = A.segments(np.array([0, 4, 8]), 10, 8)  # half chunks
    assert list(starts) == [0, 4, 8] and list(lengths) == [4, 4, 2]


def test_expert_succeeds_from_the_start_not_after_a_collision_nor_out_of_time():
    task = E.make_env_task(PATH)
    sim = E.BatchSim(task, 4)
    states = sim.reset([0, 1, 2, 3])
    modes = np.array([0, 1, 0, 1])
    assert A.expert_succeeds(PATH, states, modes).all()
    assert not A.expert_succeeds(PATH, states, modes, failed=np.ones(4, bool)).any()  # the wall was touched
    assert not A.expert_succeeds(PATH, states, modes, steps=np.full(4, task.max_steps - 5)).any()  # too late


def test_recording_leaves_the_episodes_unchanged():
    class Noisy:  # a stochastic policy: the recorder must not change the random draws
        def __call__(self, obs):
            return 0.3 * torch.randn(len(obs), H, 2)

    kw = dict(n_episodes=6, seed=2, executor=ChunkExecutor(H, n_action_steps=4), progress=False)
    a = E.evaluate(Noisy(), PATH, **kw)
    b = E.evaluate(Noisy(), PATH, record=True, **kw)
    assert (a.lengths == b.lengths).all() and (a.success == b.success).all()
    assert all(len(q) == -(-n // 4) for q, n in zip(b.query_steps, b.lengths))  # one query per 4 steps
    assert all(s.shape == (n + 1, 4) and f.shape == (n + 1,) for s, f, n in zip(b.states, b.failure_flags, b.lengths))
    assert b.chunk_len == H and b.chunks[0].shape == (len(b.query_steps[0]), H, 2)


def test_attribute_needs_a_recorded_evaluation(refs):
    res = E.evaluate(Scripted(PATH, "expert"), PATH, 2, executor=ChunkExecutor(H), progress=False)
    with pytest.raises(ValueError, match="record=True"):
        A.attribute(res, refs[PATH])
    res = E.evaluate(Scripted(DIV, "expert"), DIV, 2, executor=ChunkExecutor(H), progress=False, record=True)
    with pytest.raises(ValueError, match="reference is for"):
        A.attribute(res, refs[PATH])
