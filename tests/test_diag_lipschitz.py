"""mbc_lib.diagnostics.lipschitz on maps with known Jacobians and stretch."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mbc_lib import theory as th
from mbc_lib.diagnostics import jacobian_spectral_norm, random_segments, segment_profile


def test_linear_map_spectral_norm():
    g = torch.Generator().manual_seed(0)
    A = torch.randn((2 * 3, 5), generator=g, dtype=torch.float64)  # chunk [H=2, d=3] from D = 5
    f = lambda e: (e @ A.T).reshape(-1, 2, 3)  # noqa: E731
    base = torch.randn((16, 5), generator=g, dtype=torch.float64)
    est = jacobian_spectral_norm(f, base, n_iter=50, generator=g)
    true = torch.linalg.matrix_norm(A, ord=2)
    assert est.shape == (16,)
    assert torch.allclose(est, true.expand(16), rtol=1e-2)  # the 1%; power iteration does far better
    assert float(est.max()) == pytest.approx(float(true), rel=1e-6)


def test_nonlinear_map_matches_explicit_jacobians():
    torch.manual_seed(0)  # parameter init of the little network
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4)).double()
    base = torch.randn((8, 3), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    est = jacobian_spectral_norm(net, base, n_iter=100, generator=torch.Generator().manual_seed(2))
    for i in range(8):
        J = torch.autograd.functional.jacobian(lambda e: net(e[None])[0], base[i])  # [4, 3]
        assert float(est[i]) == pytest.approx(float(torch.linalg.matrix_norm(J, ord=2)), rel=1e-6)


def piecewise_linear(eps: torch.Tensor) -> torch.Tensor:
    """Knots at −1, 0, 0.5, 2 with slopes 0.5, 3, 7, 1, 0.2: steepest slope 7 on (0, 0.5)."""
    knots = torch.tensor([-1.0, 0.0, 0.5, 2.0], dtype=eps.dtype)
    slopes = torch.tensor([0.5, 3.0, 7.0, 1.0, 0.2], dtype=eps.dtype)
    x = eps[:, :1]
    out = slopes[0] * x
    for k, (s0, s1) in zip(knots, zip(slopes[:-1], slopes[1:])):
        out = out + (s1 - s0) * torch.relu(x - k)
    return out


def test_piecewise_linear_map_steepest_slope():
    base = torch.linspace(-3, 3, 601, dtype=torch.float64)[:, None]
    jac = jacobian_spectral_norm(piecewise_linear, base, n_iter=3)
    assert float(jac.max()) == pytest.approx(7.0, rel=1e-12)
    prof = segment_profile(piecewise_linear, torch.tensor([[-3.0]], dtype=torch.float64),
                           torch.tensor([[3.0]], dtype=torch.float64), n_points=601)
    assert prof.max_stretch[0] == pytest.approx(7.0, rel=1e-9)
    # monotone: the image length is f(3) − f(−3)
    ends = piecewise_linear(torch.tensor([[-3.0], [3.0]], dtype=torch.float64))
    assert prof.length[0] == pytest.approx(float(ends[1] - ends[0]), rel=1e-9)
    assert prof.base_length[0] == pytest.approx(6.0)


def test_segments_of_a_linear_map_and_slerps():
    A = torch.diag(torch.tensor([3.0, 1.0, 0.5], dtype=torch.float64))
    f = lambda e: e @ A.T  # noqa: E731
    start, end = random_segments(3, 10, seed=0, dtype=torch.float64)
    prof = segment_profile(f, start, end, n_points=65)
    # straight segments: every step stretches by ‖A u‖ for the segment's direction u
    u = (end - start) / (end - start).norm(dim=1, keepdim=True)
    assert prof.max_stretch == pytest.approx((u @ A.T).norm(dim=1).numpy(), rel=1e-9)
    assert prof.length == pytest.approx(((end - start) @ A.T).norm(dim=1).numpy(), rel=1e-9)
    slerp = segment_profile(f, start, end, n_points=257, path="slerp")
    assert np.all(slerp.max_stretch <= 3.0 + 1e-9)  # never above the spectral norm
    assert np.all(slerp.base_length >= prof.base_length - 1e-9)  # an arc is longer than its chord
    assert np.isnan(segment_profile(f, start, end, path="slerp", centers=np.zeros((1, 3)), radius=0.1).off_mass).all()


def test_modes_visited_along_segments_respect_the_path_bound():
    # a wiggly 2-D map over a grid of modes: visits along any segment ≤ 1 + ⌊ℓ̂/Δ⌋
    f = lambda e: torch.stack([2 * e[:, 0] + torch.sin(3 * e[:, 1]), 1.5 * e[:, 1]], 1)  # noqa: E731
    i, j = np.meshgrid(np.arange(-8, 9), np.arange(-8, 9))
    centers = np.stack([i.ravel(), j.ravel()], 1).astype(float)
    radius = 0.3
    delta = 1.0 - 2 * radius  # gap between neighbouring mode regions
    start, end = random_segments(2, 50, seed=3, dtype=torch.float64)
    prof = segment_profile(f, start, end, n_points=2001, centers=centers, radius=radius)
    bounds = np.array([th.path_mode_count_bound(length, delta) for length in prof.length])
    assert np.all(prof.modes_visited <= bounds)
    assert prof.modes_visited.max() >= 3  # the check is not vacuous
    assert np.all(np.isnan(prof.off_length[~prof.crosses]))
    assert np.all(prof.off_length[prof.crosses] > 0)  # a continuous map cannot jump between modes


def test_bad_inputs():
    f = lambda e: e  # noqa: E731
    with pytest.raises(ValueError):
        jacobian_spectral_norm(f, torch.zeros(3))
    with pytest.raises(ValueError):
        segment_profile(f, torch.zeros((2, 2)), torch.zeros((3, 2)))
    with pytest.raises(ValueError):
        segment_profile(f, torch.zeros((2, 2)), torch.ones((2, 2)), path="zigzag")
