"""Chapter 1's measurements beyond the fits themselves (those are in test_train.py): distances of the
regression chunks and the slope of the expected ℓ1 loss across the gap between two modes."""
import pytest
import torch
from scipy.stats import norm

from mbc_lib import tasks
from mbc_lib.experiments import averaging


def test_l2_chunks_sit_at_the_conditional_mean_half_a_spacing_from_every_centre():
    res = averaging.fit_regression(K=2, delta=2.0, loss="l2", seed=0, profile="fast", progress=False)
    d = averaging.distances(res)
    assert d["to_mean"].shape == d["to_modes"].shape == (res.obs.shape[0],)
    assert float(d["to_mean"].median()) < res.task.radius  # the fit is close to E[a|s] ...
    assert float(d["to_modes"].median()) > res.delta / 2 - res.task.radius  # ... which is Δc/2 from both modes
    assert torch.all(d["to_modes"] <= d["to_mean"] + res.delta / 2 + 1e-4)  # triangle inequality


def test_l1_slope_is_the_mixture_cdf_difference_and_nearly_zero_across_the_gap():
    fork = tasks.make("fork", K=2, delta=2.0)
    s = torch.zeros(1, 1)
    mu = fork.modes(s).centers[0, :, -1, 0]  # the two branches at the last step, ±0.56
    lo, hi = float(mu.min()), float(mu.max())
    assert averaging.l1_slope(fork, s, 0.0) == pytest.approx(0.0, abs=1e-12)  # the median: the midpoint
    half = hi / 2
    assert 0 < averaging.l1_slope(fork, s, half) < 1e-6  # nonzero but tiny half-way to a branch
    assert averaging.l1_slope(fork, s, -half) == pytest.approx(-averaging.l1_slope(fork, s, half))
    assert averaging.l1_slope(fork, s, hi) == pytest.approx(0.5, abs=1e-6)  # at a branch: half the mass beyond
    y = 0.3 * hi + 0.7 * lo
    expected = 0.5 * (2 * norm.cdf((y - hi) / fork.sigma) - 1) + 0.5 * (2 * norm.cdf((y - lo) / fork.sigma) - 1)
    assert averaging.l1_slope(fork, s, y) == pytest.approx(expected)
    with pytest.raises(ValueError, match="one observation"):
        averaging.l1_slope(fork, torch.zeros(2, 1), 0.0)


def test_l1_slope_reads_the_lateral_coordinate_of_a_two_dimensional_fork():
    fork = tasks.make("fork", K=2, delta=2.0, action_dim=2)  # actions (forward, lateral)
    s = torch.zeros(1, 1)
    hi = float(fork.modes(s).centers[0, :, -1, 1].max())
    assert averaging.l1_slope(fork, s, hi) == pytest.approx(0.5, abs=1e-6)
    assert 0 < averaging.l1_slope(fork, s, hi / 2) < 1e-6
