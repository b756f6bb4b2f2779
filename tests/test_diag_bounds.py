"""The transport bounds (chapter 5; book appendix, app-counting to app-transport-check) held against measurements of maps whose answers are known.

Maps here are plain functions of base noise [N, D] -> chunks [N, 1], the shape a policy's
``transport(obs, ·)`` has once the observation is fixed.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from scipy.stats import chi2, norm

from mbc_lib import theory as th
from mbc_lib.diagnostics import bridge_check, empirical_mode_count, mode_coverage, segment_profile


@functools.cache
def quantile_base(n: int) -> torch.Tensor:
    """Deterministic 'samples' of N(0, 1): the (i + ½)/n quantiles, so masses are exact to O(1/n)."""
    return torch.as_tensor(norm.ppf((np.arange(n) + 0.5) / n))[:, None]


def ramp_staircase(L: float, delta: float, K: int, plateau: float = 0.3):
    """Monotone map with K plateaus at 0, Δ, …, (K−1)Δ (length ``plateau`` inside) joined by
    non-overlapping ramps of slope exactly L, centred on ε = 0."""
    width = delta / L
    total = (K - 1) * width + (K - 2) * plateau
    starts = -total / 2 + torch.arange(K - 1, dtype=torch.float64) * (width + plateau)

    def f(eps: torch.Tensor) -> torch.Tensor:
        x = eps[:, :1]
        return delta * ((x - starts) * L / delta).clamp(0, 1).sum(1, keepdim=True)

    return f


def smootherstep_staircase(w: float, K: int = 5):
    """The staircase of app-transport-check: C² with smootherstep transitions of width w at Φ⁻¹(j/K)."""
    cuts = torch.as_tensor(norm.ppf(np.arange(1, K) / K))

    def f(eps: torch.Tensor) -> torch.Tensor:
        x = ((eps[:, :1] - cuts) / w + 0.5).clamp(0, 1)
        return (x**3 * (x * (6 * x - 15) + 10)).sum(1, keepdim=True)

    return f


# ---------------------------------------------------------------------------------------
# mode counts (app-counting, app-counting-d)
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("L", [0.5, 1.0, 2.0, 4.0])
@pytest.mark.parametrize("delta", [0.5, 1.0, 2.0])
def test_monotone_maps_respect_the_1d_count_bound(L, delta):
    K = 8
    f = ramp_staircase(L, delta, K)
    centers = np.arange(K, dtype=float)[:, None] * delta
    for tau in (0.01, 0.05, 0.2, 0.5):
        count = empirical_mode_count(f, 1, tau, centers, 1e-9, n_points=20_001)
        assert count.n_hit <= th.mode_count_bound(L, delta, tau), (L, delta, tau)
        # monotone and continuous: the hit modes are the centres inside [f(−r), f(r)]
        r = norm.ppf(1 - tau / 2)
        lo, hi = (float(f(torch.tensor([[x]], dtype=torch.float64))) for x in (-r, r))
        assert count.n_hit == int(((centers[:, 0] >= lo - 1e-9) & (centers[:, 0] <= hi + 1e-9)).sum())


@pytest.mark.parametrize("L", [0.3, 0.6, 1.0, 2.0, 3.0, 0.77, 1.9])
@pytest.mark.parametrize("tau", [0.05, 0.2])
def test_linear_map_attains_the_tight_form(L, tau):
    # a centre at the image endpoint −r L, the rest every Δ = 1: the tight form is exact
    r = norm.ppf(1 - tau / 2)
    ratio = 2 * r * L
    if min(ratio % 1, 1 - ratio % 1) < 1e-2:
        pytest.skip("2rL/Δ too close to an integer for a grid-resolved count")
    centers = (-r * L + np.arange(40))[:, None]
    count = empirical_mode_count(lambda e: L * e, 1, tau, centers, 1e-3, n_points=100_001)
    assert count.n_hit == th.mode_count_bound(L, 1.0, tau) == 1 + math.floor(ratio)
    assert count.n_hit <= th.mode_count_bound(L, 1.0, tau, form="paper")


def lattice_points_in_disk(radius: float) -> int:
    k = math.ceil(radius)
    i, j = np.meshgrid(np.arange(-k, k + 1), np.arange(-k, k + 1))
    return int((i**2 + j**2 <= radius**2).sum())


@pytest.mark.parametrize("L, expected, n_points", [(1, 21, 100_000), (2, 69, 250_000), (4, 293, 800_000)])
def test_two_dimensional_counterexample(L, expected, n_points):
    # app-counting-d: G = L·Id on R², modes on the integer grid, τ = .05
    R = math.sqrt(chi2.ppf(0.95, 2))
    assert lattice_points_in_disk(L * R) == expected  # the appendix's counts, independently
    k = math.ceil(L * R) + 2
    grid = np.stack(np.meshgrid(np.arange(-k, k + 1), np.arange(-k, k + 1)), -1).reshape(-1, 2).astype(float)
    # radius 0.05 < the distance from the image disk to the next lattice shell, for all three L
    count = empirical_mode_count(lambda e: L * e, 2, 0.05, grid, 0.05, n_points=n_points, seed=1)
    assert count.n_hit == expected
    r = norm.ppf(0.975)
    assert count.n_hit > 1 + math.ceil(2 * r * L)  # the paper's formula: 5, 9, 17
    assert count.n_hit > 1 + math.ceil(2 * R * L)  # even with the χ radius: 6, 11, 21
    assert count.n_hit <= th.mode_count_bound(L, 1.0, 0.05, dim=2)  # packing: 34, 116, 423


@pytest.mark.parametrize(
    "w, L, min_mass, bridge",
    [(2, 1.86, 0.102, 0.426), (1, 2.07, 0.098, 0.365), (0.4, 4.69, 0.156, 0.150), (0.1, 18.75, 0.189, 0.0375),
     (0.05, 37.5, 0.195, 0.0187)],
)
def test_smootherstep_staircase_reproduces_theory_table(w, L, min_mass, bridge):
    f = smootherstep_staircase(w)
    centers, radius = np.arange(5.0)[:, None], 0.25
    # Lipschitz constant: finite differences along one long segment
    prof = segment_profile(f, torch.tensor([[-6.0]], dtype=torch.float64), torch.tensor([[6.0]], dtype=torch.float64),
                           n_points=120_001, centers=centers, radius=radius)
    assert prof.max_stretch[0] == pytest.approx(L, abs=0.006)
    assert prof.length[0] == pytest.approx(4.0, abs=1e-6)  # ℓ = (K−1)Δ_c: the length form is exact
    assert th.path_mode_count_bound(prof.length[0], 1.0) == 5
    count = empirical_mode_count(f, 1, 0.05, centers, radius, n_points=20_001)
    assert count.n_hit == 5
    assert th.mode_count_bound(L, 1.0, 0.05) >= 5
    cov = mode_coverage(f(quantile_base(400_000)), centers, radius)
    assert cov.mass.min() == pytest.approx(min_mass, abs=1.5e-3)
    assert cov.off_support == pytest.approx(bridge, abs=1.5e-3)
    # the two heaviest modes and everything else: above the isoperimetric floor with the true L (gap .5)
    check = bridge_check(cov, separation=0.5, lipschitz=L)
    assert check["bridge"] >= check["floor"]


# ---------------------------------------------------------------------------------------
# bridge mass (app-isoperimetry)
# ---------------------------------------------------------------------------------------
# (m, Δ/L) with m ≤ Φ(−Δ/2L), the masses an L-Lipschitz map can put on both modes
@pytest.mark.parametrize("m, ratio", [(m, r) for r in (0.5, 1.0, 2.0) for m in (0.05, 0.1, 0.2, 0.3) if m <= norm.cdf(-r / 2)])
def test_extremal_clipped_map_attains_the_bridge_bound(m, ratio):
    delta = 1.0
    L = delta / ratio
    a = norm.ppf(1 - m) - ratio  # the lighter mode gets exactly m
    f = lambda e: (L * (e[:, :1] - a)).clamp(0, delta)  # noqa: E731
    cov = mode_coverage(f(quantile_base(200_000)), np.array([[0.0], [delta]]), 0.0)
    m_hat = cov.mass.min()
    assert m_hat == pytest.approx(m, abs=1e-4)
    assert cov.off_support == pytest.approx(th.bridge_mass_bound(L, delta, m_hat), abs=1e-3)
    if ratio == 1.0 and m in (0.05, 0.30):  # the extremal-map values of app-transport-check
        assert cov.off_support == pytest.approx({0.05: 0.2095, 0.30: 0.3828}[m], abs=1e-3)
    # transition width: the off-support base interval is (a, a + Δ/L) and carries the bridge mass
    prof = segment_profile(f, torch.tensor([[-5.0]], dtype=torch.float64), torch.tensor([[5.0]], dtype=torch.float64),
                           n_points=100_001, centers=np.array([[0.0], [delta]]), radius=0.0)
    assert prof.crosses[0]
    assert prof.off_length[0] == pytest.approx(ratio, abs=2e-4)
    assert prof.off_mass[0] == pytest.approx(cov.off_support, abs=1e-4)
    assert prof.max_stretch[0] == pytest.approx(L, rel=1e-9)


@pytest.mark.parametrize("k", [2.0, 5.0, 20.0])
@pytest.mark.parametrize("shift", [0.0, 0.6, 1.2])
@pytest.mark.parametrize("rho", [0.1, 0.25])
def test_smooth_map_in_three_dimensions_stays_above_the_bound(k, shift, rho):
    # T(ε) = Δ_c σ(k(uᵀε − a)) on R³: L = Δ_c k / 4; mode regions are balls of radius ρΔ_c
    g = torch.Generator().manual_seed(0)
    u = torch.tensor([1.0, 2.0, -2.0], dtype=torch.float64) / 3
    eps = torch.randn((200_000, 3), generator=g, dtype=torch.float64)
    samples = torch.sigmoid(k * (eps @ u - shift))[:, None]  # Δ_c = 1
    cov = mode_coverage(samples, np.array([[0.0], [1.0]]), rho)
    gap, L = 1 - 2 * rho, k / 4
    m = cov.mass.min()
    assert m > 0
    floor = th.bridge_mass_bound(L, gap, m)
    se = math.sqrt(cov.off_support * (1 - cov.off_support) / 200_000)
    assert cov.off_support >= floor - 3 * se
    # and the implied Lipschitz lower bound is below the true L
    check = bridge_check(cov, separation=gap, lipschitz=L)
    assert check["implied_min_L"] <= L * (1 + 1e-2)

