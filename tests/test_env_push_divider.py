"""Tests of the divider push task ``mbc/PushDivider-v0``: a push task where the mode must be chosen
before the state shows it, so that averaging the modes fails in closed loop too.

What is checked: the gymnasium API and registration; the geometry (a divider on the average push,
clear of each bin's push); the scripted expert succeeds in every mode through distinct bins; the
average of the expert's modes and a trained chunk regression both fail, whole-chunk and re-planning
every half chunk; the failure flag; determinism; rendering; clear errors on bad input; PushBins is
left as it was. Sizes are CPU-sized (seconds per test).
"""
from __future__ import annotations

import warnings

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import mbc_lib.envs as E
from mbc_lib import policies
from mbc_lib.control import ChunkExecutor
from mbc_lib.train import train

DIV, PUSH = "mbc/PushDivider-v0", "mbc/PushBins-v0"


class AverageOfModes:
    """A policy-shaped stand-in that returns the mean of the expert's chunks over ``modes`` —
    exactly what a policy that averages the modes would do."""

    def __init__(self, H: int, K: int = 2, modes: tuple[int, ...] = (0, 1)):
        self.expert, self.H, self.modes = E.make_expert(DIV, K=K), H, modes

    def sample(self, obs: torch.Tensor, n: int = 1, generator=None) -> torch.Tensor:
        o = obs.double().numpy()
        chunks = np.mean([self.expert.chunks(o, k, self.H) for k in self.modes], axis=0)
        return torch.from_numpy(chunks).float()[:, None].expand(len(o), n, self.H, 2)


# -- registration and the gymnasium API --------------------------------------------------------------


def test_registered_with_the_gymnasium_api_and_its_own_failure_flag():
    assert DIV in E.ENV_IDS and E.ENV_TASKS[DIV] is E.PushDividerTask
    env = E.make(DIV)
    assert env.observation_space.shape == (8,) and env.action_space.shape == (2,)
    obs, info = env.reset(seed=0)
    assert obs.shape == (8,) and env.observation_space.contains(obs)
    assert info == {"success": False, "mode": -1, "collision": False, "steps": 0}
    obs, reward, term, trunc, info = env.step(np.zeros(2))
    assert reward == 0.0 and not term and not trunc and info["steps"] == 1
    g = gymnasium.make(DIV, K=3)
    assert g.unwrapped.K == 3 and g.unwrapped.task.failure_key == "collision"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the checker's advice about float64 spaces is not a failure
        check_env(g.unwrapped, skip_render_check=True)


def test_geometry_puts_a_divider_on_the_average_push_and_clear_of_each_bins_push():
    for K in (2, 3):
        task = E.make_env_task(DIV, K=K)
        centres, e, half = task.dividers
        assert len(centres) == K - 1 and len(task.bin_centers) == K
        start = np.asarray(task.puck_start)
        # the dividers lie between neighbouring bins, their tips just in front of the puck's start
        assert np.all(np.diff(task.bin_angles) > 0) and np.all(np.diff(task.divider_angles) > 0)
        assert np.all((task.divider_angles > task.bin_angles[:-1]) & (task.divider_angles < task.bin_angles[1:]))
        tip = task.divider_tip
        assert task.puck_radius + task.divider_half < tip < task.ring_radius
        # the average of two neighbouring bins' push directions runs into the divider between them
        for j in range(K - 1):
            u = task.bin_centers[j] + task.bin_centers[j + 1] - 2 * start
            u /= np.linalg.norm(u)
            path = start + np.linspace(0, task.ring_radius, 200)[:, None] * u
            assert task.distance_to_dividers(path).min() < 1e-9
        # a straight push from the nominal start to any bin keeps the puck clear of every divider
        for b in task.bin_centers:
            path = start + np.linspace(0, 1, 200)[:, None] * (b - start)
            assert task.distance_to_dividers(path).min() > task.puck_radius + 0.01
        # the bins are apart: a puck in one bin is far from every other
        gaps = np.linalg.norm(task.bin_centers[:, None] - task.bin_centers[None], axis=2)[np.triu_indices(K, 1)]
        assert gaps.min() > 4 * task.bin_radius


def test_pushing_straight_ahead_hits_the_divider():
    env = E.make(DIV)
    task = env.task
    env.reset(seed=0)
    flagged, gaps = [], []
    for _ in range(60):
        _, _, term, trunc, info = env.step(np.array([0.0, 0.5]))
        q = env.sim.qpos
        flagged.append(info["collision"])
        gaps.append(min(task.distance_to_dividers(q[:, 2:4])[0] - task.puck_radius,
                        task.distance_to_dividers(q[:, 0:2])[0] - task.pusher_radius))
    assert info["collision"] and not info["success"] and info["mode"] == -1 and not term
    first = flagged.index(True)
    assert gaps[first] < task.touch_tolerance and min(gaps[:first], default=1.0) >= task.touch_tolerance
    assert min(gaps) > -task.divider_half, "the divider is solid: nothing passes through it"


def test_distance_to_dividers_and_touching():
    task = E.make_env_task(DIV)
    (c,), (u,), (h,) = task.dividers
    n = np.array([-u[1], u[0]])
    w = task.divider_half
    pts = np.stack([c + (w + 0.03) * n, c - (w + 0.01) * n, c + (h + 0.02) * u, c])
    assert np.allclose(task.distance_to_dividers(pts), [0.03, 0.01, 0.02, 0.0])
    r = task.puck_radius
    qpos = np.zeros((2, 4))
    qpos[:, 0:2] = [-0.3, -0.28]  # the pusher far away
    qpos[0, 2:4] = c + (w + r + 0.0005) * n  # puck touching (within the 1 mm tolerance)
    qpos[1, 2:4] = c + (w + r + 0.005) * n  # puck 5 mm away
    assert task.touching(qpos).tolist() == [True, False]
    assert np.isinf(E.make_env_task(DIV, K=1).distance_to_dividers(pts)).all()  # one bin: no divider


# -- the expert --------------------------------------------------------------------------------------


@pytest.mark.parametrize("K", [2, 3])
def test_expert_succeeds_in_every_mode_through_distinct_bins(K):
    task = E.make_env_task(DIV, K=K)
    assert isinstance(E.make_expert(task), E.PushDividerExpert)
    final = []
    for mode in range(K):
        _, trajs = E.collect_demos(DIV, 64, seed=20 + mode, K=K, action_noise=0.05, mode_probs=np.eye(K)[mode],
                                   successful_only=False, return_trajectories=True, progress=False)
        success = np.mean([t.success for t in trajs])
        assert success >= 0.95, f"K={K} mode {mode}: expert success {success:.2f}"
        assert all(t.mode_used == mode for t in trajs if t.success), "the task saw a different bin"
        assert max(len(t) for t in trajs) < task.max_steps
        # no expert episode comes near a divider (1 mm tolerance of the flag, plus 2 mm)
        clear = min(task.distance_to_dividers(t.qpos[:, 2:4]).min() - task.puck_radius for t in trajs)
        assert clear > task.touch_tolerance, f"the expert's puck touches a divider ({clear * 1e3:.1f} mm)"
        final.append(np.stack([t.qpos[-1, 2:4] for t in trajs]))
    # the modes end in different places: every puck of mode k lies nearer bin k than any other bin
    for k, f in enumerate(final):
        d = np.linalg.norm(f[:, None] - task.bin_centers[None], axis=2)
        assert (d.argmin(axis=1) == k).all()


def test_expert_commits_before_the_puck_moves():
    # The two modes' first actions already differ sideways while the puck is still at rest.
    expert = E.make_expert(DIV)
    env = E.make(DIV)
    obs, _ = env.reset(seed=5)
    plans = expert.chunks(np.stack([obs, obs]), [0, 1], 4)  # [2, 4, 2]
    assert plans[0, 0, 0] < -0.1 < 0.1 < plans[1, 0, 0], "mode 0 walks left round the puck, mode 1 right"
    for h in range(4):
        obs, *_ = env.step(plans[0, h])
    assert np.linalg.norm(obs[6:8]) < 1e-6, "the pusher has not touched the puck yet"


# -- averaging fails ---------------------------------------------------------------------------------


@pytest.mark.parametrize("H", [1, 4, 8])
def test_the_average_of_the_two_modes_fails(H):
    res = E.evaluate(AverageOfModes(H), DIV, 32, seed=0, executor=ChunkExecutor(H), progress=False)
    assert res.success_rate == 0.0 and (res.modes == -1).all()
    if H == 8:  # whole chunks of the average push straight ahead, into the divider
        assert res.failures.all()


def test_the_average_of_neighbouring_bins_hits_a_divider_for_K3():
    for modes in ((0, 1), (1, 2)):
        res = E.evaluate(AverageOfModes(8, K=3, modes=modes), DIV, 16, seed=0, K=3, executor=ChunkExecutor(8),
                         progress=False)
        assert res.success_rate == 0.0 and res.failures.mean() >= 0.9


@pytest.fixture(scope="module")
def regression_policy():
    """A chunk regression (H = 8) trained a few hundred steps on 64 expert episodes (seconds on a CPU)."""
    data = E.collect_demos(DIV, 64, seed=0, chunk_len=8, progress=False)
    policy = policies.make("regression", obs_dim=8, action_dim=2, chunk_len=8, width=64, depth=2, seed=0)
    train(policy, data, steps=300, batch_size=256, lr=3e-3, seed=0, progress=False)
    return policy.cpu()


@pytest.mark.parametrize("n_action_steps", [8, 4], ids=["whole chunk", "half chunk"])
def test_regression_fails_in_closed_loop(regression_policy, n_action_steps):
    res = E.evaluate(regression_policy, DIV, 64, seed=1000, executor=ChunkExecutor(8, n_action_steps=n_action_steps),
                     progress=False)
    assert res.success_rate <= 0.10, f"regression succeeded in {res.success_rate:.0%} of the episodes"
    assert res.failures.mean() >= 0.75, "the regression's failures should be mostly pushes into the divider"


# -- determinism, rendering ----------------------------------------------------------------------------


def test_same_seed_same_episodes():
    kw = dict(action_noise=0.1, return_trajectories=True, progress=False)
    _, a = E.collect_demos(DIV, 4, seed=3, batch_size=4, **kw)
    _, b = E.collect_demos(DIV, 4, seed=3, batch_size=1, **kw)
    for x, y in zip(a, b):
        assert np.array_equal(x.qpos, y.qpos) and x.mode == y.mode and x.success == y.success
    env = E.make(DIV)
    env.reset(seed=a[1].seed)
    for act in a[1].actions:
        *_, info = env.step(act)
    assert np.array_equal(env.sim.qpos[0], a[1].qpos[-1]) and info["mode"] == a[1].mode_used


def test_renders_with_the_divider_visible():
    doc = E.doctor()
    if not doc.ok:
        pytest.skip(f"no MuJoCo rendering backend: {doc.message}")
    _, (t,) = E.collect_demos(DIV, 1, seed=0, return_trajectories=True, progress=False)
    frames = E.render_trajectory(DIV, t.qpos[[0, -1]], height=24, width=32)
    assert frames.shape == (2, 24, 32, 3) and frames.dtype == np.uint8 and frames.std() > 5
    assert not np.array_equal(frames[0], frames[1]), "the puck moved"
    plain = E.render_trajectory(PUSH, t.qpos[[0]], height=24, width=32)  # same bodies, no divider, other bins
    assert not np.array_equal(frames[0], plain[0])


# -- bad input, and PushBins left as it was ------------------------------------------------------------


def test_bad_input_raises_clear_errors():
    for K in (0, 4, 2.5, True, "2"):
        with pytest.raises(ValueError, match="K"):
            E.make(DIV, K=K)
    with pytest.raises(ValueError, match="max_steps"):
        E.make_env_task(DIV, max_steps=0)
    env = E.make(DIV)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(2))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(3))
    with pytest.raises(ValueError, match="non-finite"):
        env.step(np.array([np.nan, 0.0]))
    with pytest.raises(TypeError, match="numbers"):
        env.step("fast")
    with pytest.raises(ValueError, match="seed"):
        env.reset(seed=-1)
    expert = E.make_expert(DIV)
    with pytest.raises(ValueError, match="modes"):
        expert.act(np.zeros((1, 8)), [2])
    with pytest.raises(ValueError, match="obs"):
        expert.act(np.zeros((1, 4)), [0])
    with pytest.raises(ValueError, match="mode_probs"):
        E.collect_demos(DIV, 2, seed=0, mode_probs=[1.0, 0.0, 0.0], progress=False)
    with pytest.raises(ValueError, match="qpos"):
        E.render_trajectory(DIV, np.zeros((2, 3)))


def test_push_bins_is_unchanged():
    task = E.make_env_task(PUSH)
    assert type(task) is E.PushTask and task.failure_key == "between_bins"
    assert "divider" not in task.xml()
    expert = E.make_expert(task)
    assert type(expert) is E.PushExpert and expert.push_angle == 30.0
    assert E.make_env_task(PUSH, K=6).K == 6  # PushBins still takes up to 6 bins
