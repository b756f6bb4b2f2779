"""Ground truth of the synthetic tasks: exact assignment, separation, sampling."""
import math

import pytest
import torch

from mbc_lib import tasks

CASES = [
    ("fork", dict(K=2, delta=2.0)),
    ("fork", dict(K=5, delta=1.0, action_dim=2, chunk_len=4)),
    ("ring", dict(K=4)),
    ("ring", dict(K=7, ring_radius=2.0, chunk_len=3)),
    ("branching", dict(K_max=4, delta_min=1.0, delta_max=3.0)),
]


@pytest.mark.parametrize("name,config", CASES)
def test_noiseless_centres_are_assigned_to_themselves(name, config):
    task = tasks.make(name, **config)
    obs = task.sample_obs(64, torch.Generator().manual_seed(0))
    ms = task.modes(obs)
    assert ms.centers.shape == (64, task.K, task.chunk_len, task.action_dim)
    labels = task.assign(obs, ms.centers)  # [B, K]: centre k of observation b
    expected = torch.arange(task.K).expand(64, -1)
    present = ms.weights > 0
    assert torch.equal(labels[present], expected[present])


@pytest.mark.parametrize("name,config", CASES)
def test_demonstrations_carry_their_mode_and_stay_on_support(name, config):
    task = tasks.make(name, **config)
    data = task.dataset(4000, seed=1)
    labels = task.assign(data.obs, data.chunks)
    assert (labels == data.modes).float().mean() > 0.99
    assert task.off_support(data.obs, data.chunks) <= 0.005  # radius holds 99.9% by construction


def test_fork_separation_matches_construction():
    task = tasks.make("fork", K=3, delta=1.5, chunk_len=6)
    obs = torch.linspace(-1, 1, 5)[:, None]
    ms = task.modes(obs)
    torch.testing.assert_close(ms.center_distance, torch.full((5,), 1.5))
    torch.testing.assert_close(ms.separation, torch.full((5,), 1.5 - 2 * task.radius))
    # the two outer branches are twice as far apart as neighbours
    outer = (ms.centers[:, 0] - ms.centers[:, 2]).flatten(1).norm(dim=1)
    torch.testing.assert_close(outer, torch.full((5,), 3.0))


def test_ring_separation_is_the_chord():
    task = tasks.make("ring", K=6, ring_radius=1.5, chunk_len=4)
    ramp_norm = math.sqrt(sum((t / 4) ** 2 for t in range(1, 5)))
    expected = 2 * 1.5 * math.sin(math.pi / 6) * ramp_norm
    obs = task.sample_obs(10, torch.Generator().manual_seed(0))
    torch.testing.assert_close(task.modes(obs).center_distance, torch.full((10,), expected))


def test_branching_counts_and_separation_vary_with_observation():
    task = tasks.make("branching", K_max=3, delta_min=1.0, delta_max=3.0)
    obs = torch.tensor([[0.1], [0.5], [0.9]])
    ms = task.modes(obs)
    assert ms.count.tolist() == [1, 2, 3]
    assert math.isinf(float(ms.center_distance[0]))
    torch.testing.assert_close(ms.center_distance[1:], torch.tensor([2.0, 2.8]))
    torch.testing.assert_close(ms.weights.sum(-1), torch.ones(3))


def test_mode_average_of_symmetric_fork_is_off_support():
    task = tasks.make("fork", K=2, delta=2.0)
    obs = task.sample_obs(100, torch.Generator().manual_seed(0))
    mean = task.modes(obs).centers.mean(1)  # the L2-optimal prediction
    assert task.off_support(obs, mean) == 1.0


def test_sampling_is_seeded():
    task = tasks.make("ring", K=4)
    a, b, c = task.dataset(50, seed=3), task.dataset(50, seed=3), task.dataset(50, seed=4)
    assert torch.equal(a.chunks, b.chunks) and torch.equal(a.modes, b.modes)
    assert not torch.equal(a.chunks, c.chunks)


def test_unequal_weights_are_respected():
    task = tasks.make("fork", K=2, weights=[3, 1])
    data = task.dataset(20000, seed=0)
    assert abs(float((data.modes == 0).float().mean()) - 0.75) < 0.02


@pytest.mark.parametrize(
    "name,config,match",
    [
        ("nope", {}, "unknown task"),
        ("fork", dict(K=0), "K must be an integer >= 1"),
        ("ring", dict(K=-2), "K must be an integer >= 1"),
        ("branching", dict(K_max=0), "K must be an integer >= 1"),
        ("fork", dict(sigma=-0.1), "sigma must be >= 0"),
        ("fork", dict(chunk_len=0), "chunk_len must be an integer >= 1"),
        ("fork", dict(delta=0.1, sigma=0.2), "modes overlap"),
        ("fork", dict(weights=[1.0]), "got 1 weights for K=2"),
        ("fork", dict(weights=[1.0, -1.0]), "must be finite and > 0"),
        ("fork", dict(action_dim=3), "action_dim must be 1 or 2"),
    ],
)
def test_bad_task_config_is_rejected_clearly(name, config, match):
    with pytest.raises(ValueError, match=match):
        tasks.make(name, **config)


def test_unknown_task_option_names_the_valid_ones():
    with pytest.raises(TypeError, match="valid options"):
        tasks.make("fork", modes=3)


def test_assign_rejects_mismatched_shapes():
    task = tasks.make("fork")
    obs = torch.zeros(4, 1)
    with pytest.raises(ValueError, match="chunks must be"):
        task.assign(obs, torch.zeros(4, 7, 1))
    with pytest.raises(ValueError, match="obs must be"):
        task.assign(torch.zeros(4, 2), torch.zeros(4, 8, 1))
