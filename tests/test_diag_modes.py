"""mbc_lib.diagnostics.modes: membership, coverage, Wilson intervals, clustering of unknown modes."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import chi2

from mbc_lib.diagnostics import (
    assign_modes,
    cluster_modes,
    cluster_modes_by_obs,
    mode_coverage,
    mode_coverage_per_obs,
    separation_regime,
    summarize_coverage,
    wilson_interval,
)


def test_assign_modes_by_hand():
    centers = np.array([[[0.0], [0.0]], [[3.0], [3.0]], [[0.0], [6.0]]])  # K = 3 chunks [H=2, d=1]
    samples = torch.tensor([[[0.1], [0.0]], [[2.9], [3.2]], [[1.5], [1.5]], [[0.0], [6.05]], [[0.0], [5.0]]])
    labels = assign_modes(samples, centers, radius=0.5)
    assert labels.tolist() == [0, 1, -1, 2, -1]
    # per-mode radii and an absent mode (weight 0, as the tasks pad)
    assert assign_modes(samples, centers, radius=[0.5, 0.5, 1.2]).tolist() == [0, 1, -1, 2, 2]
    assert assign_modes(samples, centers, 0.5, weights=[0.5, 0.5, 0.0]).tolist() == [0, 1, -1, -1, -1]
    with pytest.raises(ValueError, match="features"):
        assign_modes(np.zeros((4, 3)), centers, 0.5)


def test_wilson_interval_known_values():
    z = 1.959963984540054
    lo, hi = wilson_interval(0, 100)
    assert lo == pytest.approx(0.0, abs=1e-15) and hi == pytest.approx(z**2 / (100 + z**2), rel=1e-9)  # ≈ 3.7%
    lo, hi = wilson_interval(50, 100)
    assert (lo, hi) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    assert wilson_interval(np.array([0, 10]), 10).shape == (2, 2)
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_wilson_interval_contains_the_estimate_exactly():
    # at p̂ = 1 the formula's upper end rounds to 1 − 1e-16; figures draw hi − p̂ as an error bar, which must be ≥ 0
    for n in (7, 64, 4096):
        k = np.arange(n + 1)
        lo, hi = wilson_interval(k, n).T
        assert (lo <= k / n).all() and (hi >= k / n).all()
    assert wilson_interval(4096, 4096)[1] == 1.0


def test_mode_coverage_counts_tv_and_missing_modes():
    centers = np.array([[0.0], [10.0], [20.0]])
    # 60 samples in mode 0, 36 in mode 1, 1 in mode 2, 3 off-support
    samples = np.concatenate([np.zeros(60), np.full(36, 10.0), [20.0], [5.0, 5.0, 15.0]])[:, None]
    cov = mode_coverage(samples, centers, radius=1.0, weights=[0.4, 0.4, 0.2], tau=0.05)
    assert cov.mass.tolist() == pytest.approx([0.60, 0.36, 0.01])
    assert cov.off_support == pytest.approx(0.03)
    assert cov.n_covered == 2 and cov.covered.tolist() == [True, True, False]
    assert cov.missing_mode_rate == pytest.approx(1 / 3)
    assert cov.tv == pytest.approx(0.5 * (0.2 + 0.04 + 0.19 + 0.03))
    assert cov.mass_ci[2, 0] <= 0.01 <= cov.mass_ci[2, 1]
    d = cov.as_dict()
    assert d["n_covered"] == 2 and d["min_mass"] == pytest.approx(0.01)
    # a rare demonstrated mode (π ≤ τ) is not counted as missing
    rare = mode_coverage(samples, centers, 1.0, weights=[0.5, 0.47, 0.03], tau=0.05)
    assert rare.missing_mode_rate == 0.0


def test_mode_coverage_per_obs_with_padded_and_listed_modes():
    g = torch.Generator().manual_seed(0)
    B, n = 3, 200
    centers = torch.tensor([[[-1.0], [1.0], [0.0]]]).repeat(B, 1, 1)[:, :, None, :]  # [B, K=3, H=1, d=1]
    weights = torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    # every policy sample at ±1 or 0 with small noise
    pick = torch.randint(0, 3, (B, n), generator=g)
    samples = (torch.tensor([-1.0, 1.0, 0.0])[pick] + 0.01 * torch.randn((B, n), generator=g))[..., None, None]
    covs = mode_coverage_per_obs(samples, centers, 0.1, weights, tau=0.05)
    assert [c.n_covered for c in covs] == [2, 1, 3]
    assert covs[1].off_support == pytest.approx(float((pick[1] != 0).float().mean()))  # absent modes are off-support
    listed = mode_coverage_per_obs(samples, [centers[b, :2] for b in range(B)], [0.1, 0.1, 0.1], tau=0.05)
    assert [c.n_covered for c in listed] == [2, 2, 2]
    summary = summarize_coverage(covs)
    assert summary["n_covered"] == pytest.approx(2.0)
    assert 0 <= summary["tv"] <= 1


def make_modes(K: int, n: int, sigma: float, min_dist: float, per_mode: int, seed: int):
    """K random centres in R^n, pairwise ≥ min_dist apart, with Gaussian modes of std σ."""
    rng = np.random.default_rng(seed)
    centers = []
    while len(centers) < K:
        c = rng.uniform(-3, 3, n)
        if all(np.linalg.norm(c - o) >= min_dist for o in centers):
            centers.append(c)
    centers = np.array(centers)
    counts = rng.multinomial(per_mode * K, np.full(K, 1 / K)) if K > 1 else np.array([per_mode])
    x = np.concatenate([c + sigma * rng.standard_normal((m, n)) for c, m in zip(centers, counts)])
    return x, centers


@pytest.mark.parametrize("K", [1, 2, 3, 4, 5, 6])
def test_clustering_recovers_k_and_separation(K):
    H, d, sigma = 8, 2, 0.1
    x, centers = make_modes(K, H * d, sigma, min_dist=2.5, per_mode=60, seed=K)
    res = cluster_modes(x.reshape(-1, H, d))
    assert res.n_modes == K
    assert res.centers.shape == (K, H, d)
    assert res.weights.sum() == pytest.approx(1.0)
    if K == 1:
        assert res.separation == math.inf and res.regime == "unimodal"
        return
    cd = np.linalg.norm(centers[:, None] - centers[None], axis=-1)
    true_dc = cd[~np.eye(K, dtype=bool)].min()
    # stated tolerance: Δ_c within 3%; Δ within 0.1·Δ_c of the gap between the true 95% balls
    assert res.min_center_distance == pytest.approx(true_dc, rel=0.03)
    rho = sigma * math.sqrt(chi2.ppf(0.95, H * d))
    assert res.separation == pytest.approx(true_dc - 2 * rho, abs=0.1 * true_dc)
    assert res.radii == pytest.approx(np.full(K, rho), rel=0.15)
    assert res.regime == "separated"


def test_clustering_close_modes_with_unequal_weights():
    # Δ_c = 1.2 with ρ_95 ≈ .5: a gap narrower than the within-mode spread ("close")
    rng = np.random.default_rng(7)
    n, sigma = 16, 0.1
    centers = np.zeros((3, n))
    centers[1, 0], centers[2, 1] = 1.2, 1.5
    x = np.concatenate([c + sigma * rng.standard_normal((m, n)) for c, m in zip(centers, (150, 60, 30))])
    res = cluster_modes(x)
    assert res.n_modes == 3
    assert res.weights == pytest.approx([150 / 240, 60 / 240, 30 / 240])
    assert res.min_center_distance == pytest.approx(1.2, rel=0.03)
    assert res.regime == "close"


def test_clustering_regimes_and_threshold_method():
    rng = np.random.default_rng(0)
    # two elongated modes: parallel segments 1.0 apart, 3 long (not isotropic)
    t = rng.uniform(0, 3, 200)
    x = np.stack([t, np.where(np.arange(200) < 100, 0.0, 1.0)], 1) + 0.02 * rng.standard_normal((200, 2))
    res = cluster_modes(x, method="threshold", threshold=0.5)
    assert res.n_modes == 2 and sorted(np.bincount(res.labels).tolist()) == [100, 100]
    assert res.regime == "overlapping"  # the 95% balls of two long modes overlap
    with pytest.raises(ValueError, match="threshold"):
        cluster_modes(x, method="threshold")
    assert separation_regime(0.5, 1.0, 2) == "close"
    assert separation_regime(2.0, 1.0, 2) == "separated"
    assert separation_regime(-0.1, 1.0, 3) == "overlapping"


def test_cluster_modes_by_obs_follows_the_number_of_modes():
    # s < .5: one mode; s ≥ .5: three modes 1.5 apart (chunk H = 4, d = 1)
    rng = np.random.default_rng(1)
    s = rng.uniform(0, 1, 1200)
    k = np.where(s < 0.5, 0, rng.integers(-1, 2, 1200))
    chunks = (1.5 * k)[:, None, None] * np.ones((1, 4, 1)) + 0.05 * rng.standard_normal((1200, 4, 1))
    res = cluster_modes_by_obs(s[:, None], chunks, np.array([[0.2], [0.8]]), k=100)
    assert [r.n_modes for r in res] == [1, 3]
    assert res[1].weights == pytest.approx(np.full(3, 1 / 3), abs=0.12)
    assert res[1].min_center_distance == pytest.approx(3.0, rel=0.05)  # 1.5 per step × ‖(1,1,1,1)‖ = 2
