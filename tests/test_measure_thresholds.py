"""The collapse thresholds from a task or from measured modes (a reader's own demonstrations)."""
import math

import numpy as np
import pytest
import torch

from mbc_lib import diagnostics, measure, tasks
from mbc_lib.experiments.latent import FORK


@pytest.fixture(scope="module")
def fork_and_norm():
    fork = tasks.make("fork", **FORK)
    return fork, fork.dataset(1024, seed=0).normalizer()


def _measured(fork, s=0.0):
    """The fork's own modes at s as a reader would pass them: centres [K, H, d_a], spread = σ·√n, weights."""
    ms = fork.modes(torch.full((1, fork.obs_dim), s))
    n = fork.chunk_len * fork.action_dim
    return {"centers": ms.centers[0].numpy(), "spread": fork.sigma * math.sqrt(n), "weights": ms.weights[0].numpy()}


def test_measured_modes_give_the_tasks_thresholds(fork_and_norm):
    fork, norm = fork_and_norm
    for s in (0.0, 0.4):
        from_task = measure.predicted_thresholds(fork, norm, s).as_dict()
        from_modes = measure.predicted_thresholds(normalizer=norm, **_measured(fork, s)).as_dict()
        assert from_task.keys() == from_modes.keys()
        for key, value in from_task.items():
            assert from_modes[key] == pytest.approx(value, rel=1e-5), key
    a = measure.act_scaling(fork, norm, kl_weight=10.0)
    b = measure.act_scaling(normalizer=norm, kl_weight=10.0, **_measured(fork))
    for key, value in a.items():
        assert b[key] == pytest.approx(value, rel=1e-4, abs=1e-9), key


def test_default_weights_are_equal_and_spread_may_be_per_mode(fork_and_norm):
    fork, norm = fork_and_norm
    m = _measured(fork)
    base = measure.predicted_thresholds(normalizer=norm, **m)
    no_w = measure.predicted_thresholds(normalizer=norm, centers=m["centers"], spread=m["spread"])
    per_mode = measure.predicted_thresholds(normalizer=norm, centers=m["centers"], spread=[m["spread"]] * 2)
    assert no_w.beta_star == pytest.approx(base.beta_star) and per_mode.beta_star == pytest.approx(base.beta_star)
    # the noisiest mode sets the within-mode std
    wider = measure.predicted_thresholds(normalizer=norm, centers=m["centers"], spread=[m["spread"], 2 * m["spread"]])
    assert wider.sigma_n == pytest.approx(2 * base.sigma_n)


def test_a_cluster_modes_result_is_accepted_and_close_to_the_truth(fork_and_norm):
    fork, norm = fork_and_norm
    obs = torch.zeros(600, 1)
    chunks, _ = fork.sample(obs, generator=torch.Generator().manual_seed(0))  # 600 demonstrations at s = 0
    found = diagnostics.cluster_modes(chunks)
    assert found.n_modes == 2
    th = measure.predicted_thresholds(found, norm)
    assert th.beta_star == pytest.approx(measure.predicted_thresholds(fork, norm).beta_star, rel=0.05)


@pytest.mark.parametrize("kwargs, match", [
    ({}, "give a tasks.Task"),
    ({"centers": np.zeros((2, 8, 1))}, "give a tasks.Task"),
    ({"centers": np.zeros((2, 8)), "spread": 0.1}, "centers must be"),
    ({"centers": np.zeros((2, 8, 3)), "spread": 0.1}, "centers must be"),
    ({"centers": np.zeros((1, 8, 1)), "spread": 0.1}, "at least two modes"),
    ({"centers": np.zeros((2, 8, 1)), "spread": -1.0}, "spread must be"),
    ({"centers": np.zeros((2, 8, 1)), "spread": [0.1, 0.1, 0.1]}, "spread must be"),
    ({"centers": np.zeros((2, 8, 1)), "spread": 0.1, "weights": [1.0]}, "weights must be"),
    ({"centers": np.zeros((2, 8, 1)), "spread": 0.1, "weights": [0.0, 0.0]}, "weights must be"),
    ({"centers": np.zeros((2, 8, 1)), "spread": 0.1, "s": 0.5}, "s selects"),
])
def test_bad_modes_raise_a_clear_error(fork_and_norm, kwargs, match):
    with pytest.raises(ValueError, match=match):
        measure.predicted_thresholds(normalizer=fork_and_norm[1], **kwargs)


def test_task_and_modes_together_or_no_normalizer_raise(fork_and_norm):
    fork, norm = fork_and_norm
    with pytest.raises(ValueError, match="not both"):
        measure.predicted_thresholds(fork, norm, **{k: v for k, v in _measured(fork).items() if k == "spread"})
    with pytest.raises(ValueError, match="normalizer must be"):
        measure.predicted_thresholds(fork, None)
    with pytest.raises(ValueError, match="first argument"):
        measure.act_scaling("fork", norm)
