"""Tests of the MuJoCo robot tasks (``mbc_lib.envs``): gym API, experts, averaging failures,
determinism, demonstrations, batched evaluation, and clear errors on bad input.

Rendering is tested separately in ``test_envs_render.py``.
"""
from __future__ import annotations

import warnings
from types import SimpleNamespace

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import mbc_lib.envs as E
from mbc_lib.control import ChunkExecutor

PATH, PUSH = "mbc/PathGaps-v0", "mbc/PushBins-v0"


class ExpertChunkPolicy:
    """A tiny policy-shaped stand-in: ``sample(obs, n) -> [B, n, H, 2]`` from the scripted expert.

    ``average=None`` replays the expert, row ``b`` committed to mode ``b % K``;
    ``average=(i, j)`` returns the mean of the chunks of modes i and j — what a policy that
    averages modes does.
    """

    def __init__(self, env_id: str, H: int, K: int = 2, average: tuple[int, int] | None = None):
        self.expert = E.make_expert(env_id, K=K)
        self.H, self.K, self.average = H, K, average
        self.config = SimpleNamespace(chunk_len=H)  # lets evaluate() build its default executor
        self.calls = 0

    def sample(self, obs: torch.Tensor, n: int = 1, generator=None) -> torch.Tensor:
        self.calls += 1
        o = obs.double().numpy()
        B = len(o)
        if self.average is None:
            chunks = self.expert.chunks(o, np.arange(B) % self.K, self.H)
        else:
            chunks = np.mean([self.expert.chunks(o, k, self.H) for k in self.average], axis=0)
        return torch.from_numpy(chunks).float()[:, None].expand(B, n, self.H, 2)


# -- the gymnasium API ----------------------------------------------------------------------


def test_ids_spaces_and_info():
    assert set(E.ENV_IDS) == {PATH, PUSH, "mbc/PushDivider-v0"}  # the divider task: test_env_push_divider.py
    for env_id, obs_dim in ((PATH, 4), (PUSH, 8)):
        env = E.make(env_id)
        assert env.observation_space.shape == (obs_dim,) and env.action_space.shape == (2,)
        obs, info = env.reset(seed=0)
        assert obs.shape == (obs_dim,) and env.observation_space.contains(obs)
        assert info["success"] is False and info["mode"] == -1
        obs, reward, term, trunc, info = env.step(np.zeros(2))
        assert {"success", "mode", env.task.failure_key, "steps"} <= set(info)
        assert reward == 0.0 and not term and not trunc


@pytest.mark.parametrize("env_id", [PATH, PUSH])
def test_gymnasium_make_and_env_checker(env_id):
    env = gymnasium.make(env_id, K=3)
    assert env.unwrapped.K == 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the checker's advice about float64 spaces is not a failure
        check_env(env.unwrapped, skip_render_check=True)


def test_episode_is_truncated_at_max_steps():
    env = E.make(PATH, max_steps=5)
    env.reset(seed=1)
    outs = [env.step(np.zeros(2)) for _ in range(5)]
    assert [o[3] for o in outs] == [False] * 4 + [True]
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(2))


def test_driving_straight_at_the_wall_collides():
    env = E.make(PATH)
    env.reset(seed=0)
    for _ in range(40):
        _, _, term, trunc, info = env.step(np.array([0.0, 0.5]))
    assert info["collision"] and not info["success"] and info["mode"] == -1 and not term


# -- experts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id,K", [(PATH, 2), (PATH, 4), (PUSH, 2), (PUSH, 4)])
def test_expert_succeeds_in_every_mode_and_labels_match(env_id, K):
    for mode in range(K):
        probs = np.eye(K)[mode]
        _, trajs = E.collect_demos(
            env_id, 50, seed=10 + mode, K=K, action_noise=0.05, mode_probs=probs,
            successful_only=False, return_trajectories=True,
        )  # fmt: skip
        success = np.mean([t.success for t in trajs])
        assert success >= 0.95, f"{env_id} K={K} mode {mode}: expert success {success:.2f}"
        assert all(t.mode == mode for t in trajs)
        assert all(t.mode_used == mode for t in trajs if t.success), "the task saw a different mode"
        assert max(len(t) for t in trajs) < E.make_env_task(env_id, K=K).max_steps


@pytest.mark.parametrize("env_id", [PATH, PUSH])
def test_expert_replay_policy_succeeds_in_both_modes(env_id):
    policy = ExpertChunkPolicy(env_id, H=8)
    res = E.evaluate(policy, env_id, n_episodes=20, seed=0)  # default executor from policy.config
    assert res.success_rate == 1.0 and res.failure_count == 0
    assert res.mode_hist.tolist() == [10, 10] and res.modes_covered == 2
    assert np.array_equal(res.modes, np.arange(20) % 2)
    assert policy.calls == int(np.ceil(res.lengths.max() / 8))  # one batched call per chunk


def test_evaluate_with_temporal_ensembling_queries_every_step():
    policy = ExpertChunkPolicy(PATH, H=6)
    res = E.evaluate(policy, PATH, 10, seed=2, executor=ChunkExecutor(6, temporal_ensemble=0.01))
    assert res.success_rate == 1.0 and res.mode_hist.tolist() == [5, 5]
    assert policy.calls == res.lengths.max()


@pytest.mark.parametrize("H", [1, 8])
def test_mode_average_collides_with_the_wall(H):
    res = E.evaluate(ExpertChunkPolicy(PATH, H, average=(0, 1)), PATH, 50, seed=0, executor=ChunkExecutor(H))
    assert res.success_rate == 0.0
    assert res.failure_count == 50 and res.failures.all(), "averaging the two gap paths must hit the wall"


def test_mode_average_of_neighbouring_gaps_collides_for_K3():
    res = E.evaluate(ExpertChunkPolicy(PATH, 8, K=3, average=(1, 2)), PATH, 20, seed=0, K=3)
    assert res.success_rate == 0.0 and res.failure_count == 20


def test_mode_average_pushes_between_bins():
    res = E.evaluate(ExpertChunkPolicy(PUSH, 8, average=(0, 1)), PUSH, 50, seed=0)
    assert res.success_rate == 0.0
    assert res.failure_count == 50, "averaging two bins' pushes must leave the puck between them"
    assert (res.modes == -1).all()


def test_expert_chunks_plan_what_the_expert_then_does():
    # chunks() simulates ahead; executing them open loop must reproduce the expert's own actions.
    task = E.make_env_task(PUSH)
    expert = E.make_expert(task)
    env = E.make(PUSH)
    obs, _ = env.reset(seed=3)
    plan = expert.chunks(obs[None], [1], 12)[0]
    for h in range(12):
        assert np.allclose(plan[h], expert.act(obs, 1)[0], atol=1e-6)
        obs, *_ = env.step(plan[h])


# -- determinism ---------------------------------------------------------------------------------


def test_same_seed_same_trajectories_any_batching():
    kw = dict(action_noise=0.1, return_trajectories=True)
    _, a = E.collect_demos(PUSH, 6, seed=7, batch_size=4, **kw)
    _, b = E.collect_demos(PUSH, 6, seed=7, batch_size=1, **kw)
    _, c = E.collect_demos(PUSH, 6, seed=8, batch_size=4, **kw)
    for x, y in zip(a, b):
        assert np.array_equal(x.qpos, y.qpos) and np.array_equal(x.actions, y.actions) and x.mode == y.mode
    assert not np.array_equal(a[0].qpos, c[0].qpos)


def test_gym_env_replays_a_demo_exactly():
    _, trajs = E.collect_demos(PATH, 3, seed=2, action_noise=0.1, return_trajectories=True)
    t = trajs[2]
    assert t.seed == int(E.episode_seeds(2, 3)[2])
    env = E.make(PATH)
    env.reset(seed=t.seed)
    qpos = [env.sim.qpos[0].copy()]
    for a in t.actions:
        *_, info = env.step(a)
        qpos.append(env.sim.qpos[0].copy())
    assert np.array_equal(np.stack(qpos), t.qpos)
    assert info["success"] and info["mode"] == t.mode


def test_evaluate_is_deterministic_for_a_stochastic_policy():
    def noisy(obs):  # a callable policy: obs [B, 4] -> random chunk [B, H=4, 2]
        return 0.5 * torch.randn(obs.shape[0], 4, 2)

    kw = dict(executor=ChunkExecutor(4), batch_size=5, record=True)
    torch.manual_seed(1)
    r1 = E.evaluate(noisy, PATH, 12, seed=5, **kw)
    torch.manual_seed(2)  # the caller's RNG state must not matter, only `seed`
    r2 = E.evaluate(noisy, PATH, 12, seed=5, **kw)
    r3 = E.evaluate(noisy, PATH, 12, seed=6, **kw)
    assert all(np.array_equal(x, y) for x, y in zip(r1.qpos, r2.qpos))
    assert np.array_equal(r1.modes, r2.modes) and np.array_equal(r1.lengths, r2.lengths)
    assert not all(np.array_equal(x, y) for x, y in zip(r1.qpos, r3.qpos))
    assert r1.actions[0].shape == (r1.lengths[0], 2) and r1.qpos[0].shape == (r1.lengths[0] + 1, 2)
    # the caller's global torch RNG is left as it was
    torch.manual_seed(9)
    expected = torch.rand(3)
    torch.manual_seed(9)
    E.evaluate(noisy, PATH, 2, seed=5, executor=ChunkExecutor(4))
    assert torch.equal(torch.rand(3), expected)


# -- demonstrations as a ChunkDataset -----------------------------------------------------------------


def test_collect_demos_dataset_shapes_and_labels():
    ds, trajs = E.collect_demos(PUSH, 10, seed=0, chunk_len=6, K=3, return_trajectories=True)
    assert ds.obs.shape == (sum(len(t) for t in trajs), 8) and ds.chunks.shape[1:] == (6, 2)
    assert ds.obs.dtype == torch.float32 and ds.modes.dtype == torch.long
    start = 0
    for t in trajs:  # each episode's samples carry its chosen mode, and its first chunk is its first actions
        n = len(t)
        assert (ds.modes[start : start + n] == t.mode).all()
        assert torch.allclose(ds.chunks[start], torch.from_numpy(t.actions[:6]).float())
        start += n
    assert set(ds.mode_counts()) <= {0, 1, 2}
    ds_nopad = E.collect_demos(PUSH, 10, seed=0, chunk_len=6, K=3, pad=False)
    assert len(ds_nopad) == len(ds) - 5 * len(trajs)
    only_one = E.collect_demos(PATH, 6, seed=0, mode_probs=[0, 1])
    assert only_one.mode_counts() == {1: len(only_one)}


def test_evaluate_result_summary():
    res = E.evaluate(ExpertChunkPolicy(PATH, 4), PATH, 6, seed=1)
    s = res.summary()
    assert s["success_rate"] == 1.0 and s["collision"] == 0 and s["mode_hist"] == [3, 3]
    assert "success 100%" in str(res)


# -- clear errors on bad input ---------------------------------------------------------------------------


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="unknown env id"):
        E.make("mbc/Nope-v0")
    with pytest.raises(ValueError, match="unknown env id"):
        E.collect_demos("Pendulum-v1", 2, 0)
    with pytest.raises(ValueError, match="unknown env id"):
        E.evaluate(lambda o: torch.zeros(len(o), 1, 2), "nope", 2, executor=ChunkExecutor(1))
    for K in (0, -1, 7):
        with pytest.raises(ValueError, match="K"):
            E.make(PATH, K=K)
    with pytest.raises(ValueError, match="K"):
        E.make(PUSH, K=2.5)
    with pytest.raises(ValueError, match="obs_type"):
        E.make(PATH, obs_type="rgb")
    env = E.make(PATH)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(2))
    env.reset(seed=0)
    for bad in (np.zeros(3), np.zeros((1, 2)), 0.0):
        with pytest.raises(ValueError, match="shape"):
            env.step(bad)
    for bad in ([np.nan, 0.0], [0.0, np.inf]):
        with pytest.raises(ValueError, match="non-finite"):
            env.step(np.array(bad))
    with pytest.raises(ValueError, match="mode_probs"):
        E.collect_demos(PATH, 2, 0, mode_probs=[1.0])
    with pytest.raises(ValueError, match="n_episodes"):
        E.collect_demos(PATH, 0, 0)
    with pytest.raises(ValueError, match="action_noise"):
        E.make_expert(PATH, action_noise=-1)


def test_evaluate_rejects_bad_policies():
    nan_policy = lambda o: torch.full((len(o), 2, 2), float("nan"))  # noqa: E731
    with pytest.raises(ValueError, match="non-finite"):
        E.evaluate(nan_policy, PATH, 3, executor=ChunkExecutor(2))
    wide = lambda o: torch.zeros(len(o), 2, 3)  # noqa: E731  (3-D actions for a 2-D task)
    with pytest.raises(ValueError, match="shape"):
        E.evaluate(wide, PATH, 3, executor=ChunkExecutor(2))
    with pytest.raises(ValueError, match="executor"):
        E.evaluate(lambda o: torch.zeros(len(o), 2, 2), PATH, 3)  # chunk length unknown
    with pytest.raises(TypeError, match="policy"):
        E.evaluate(object(), PATH, 3, executor=ChunkExecutor(2))
