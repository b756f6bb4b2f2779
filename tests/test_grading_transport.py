"""Exercises 5.2 and 6.1: the checks accept the right answer and reject the stub and plausible wrong answers."""
import math

import torch
from scipy.stats import norm

from mbc_lib import grading


def _stub(*args, **kwargs):
    raise NotImplementedError("write your solution here")


def _assert_rejects(result, *, not_implemented=False):
    assert not result.passed and result.messages
    assert result.not_implemented == not_implemented
    assert "not implemented" in str(result) if not_implemented else "expected" in str(result) or "raised" in str(result)


# -- exercise 5.2 ------------------------------------------------------------------------------------------

def _bound(L, delta, tau, r=None, rounding=math.floor):
    r = norm.ppf(1 - tau / 2) if r is None else r
    return 1 + rounding(2 * r * L / delta)


def test_mode_count_bound():
    assert grading.check_mode_count_bound(_bound)
    _assert_rejects(grading.check_mode_count_bound(_stub), not_implemented=True)
    _assert_rejects(grading.check_mode_count_bound(lambda L, d, t: _bound(L, d, t, rounding=math.ceil)))  # the paper's form
    _assert_rejects(grading.check_mode_count_bound(lambda L, d, t: _bound(L, d, t, r=norm.ppf(1 - t))))  # one tail only


def _count(f, tau, centers, radius, n_points, r=None):
    r = norm.ppf(1 - tau / 2) if r is None else r
    y = f(torch.linspace(-r, r, n_points, dtype=torch.float64))
    return int(((y[:, None] - centers.double()[None, :]).abs() <= radius).any(0).sum())


def test_empirical_mode_count():
    assert grading.check_empirical_mode_count(_count)
    _assert_rejects(grading.check_empirical_mode_count(_stub), not_implemented=True)
    # the whole base line instead of the central set: counts modes reached only from the tails
    _assert_rejects(grading.check_empirical_mode_count(lambda f, t, c, rad, n: _count(f, t, c, rad, n, r=6.0)))
    # one-sided radius Φ⁻¹(1 − τ): too small a set
    _assert_rejects(grading.check_empirical_mode_count(lambda f, t, c, rad, n: _count(f, t, c, rad, n, r=norm.ppf(1 - t))))
    # counting image points in modes instead of modes hit
    def points(f, t, c, rad, n):
        r = norm.ppf(1 - t / 2)
        y = f(torch.linspace(-r, r, n, dtype=torch.float64))
        return int(((y[:, None] - c.double()[None, :]).abs() <= rad).any(1).sum())
    _assert_rejects(grading.check_empirical_mode_count(points))


def _length(f, tau, n_points):
    r = norm.ppf(1 - tau / 2)
    return float(f(torch.linspace(-r, r, n_points, dtype=torch.float64)).diff().abs().sum())


def test_image_length():
    assert grading.check_image_length(_length)
    _assert_rejects(grading.check_image_length(_stub), not_implemented=True)

    def endpoints(f, tau, n_points):  # |f(r) − f(−r)|: wrong for a map that turns back
        r = norm.ppf(1 - tau / 2)
        y = f(torch.tensor([-r, r], dtype=torch.float64))
        return float((y[1] - y[0]).abs())
    _assert_rejects(grading.check_image_length(endpoints))


# -- exercise 6.1 ------------------------------------------------------------------------------------------

def _assign(x, centers, radius, squared=False, check_radius=True):
    d = torch.cdist(x.double(), centers.double())
    best, idx = d.min(1)
    if squared:
        best = best**2
    return torch.where(best <= radius, idx, torch.full_like(idx, -1)) if check_radius else idx


def test_assign():
    assert grading.check_assign(_assign)
    _assert_rejects(grading.check_assign(_stub), not_implemented=True)
    _assert_rejects(grading.check_assign(lambda x, c, r: _assign(x, c, r, check_radius=False)))  # no off-support label
    _assert_rejects(grading.check_assign(lambda x, c, r: _assign(x, c, r, squared=True)))  # squared distance vs radius


def _coverage(labels, K, tau, on_support_only=False, strict=True):
    n = (labels >= 0).sum().clamp_min(1) if on_support_only else labels.numel()
    mass = torch.stack([(labels == k).sum() / n for k in range(K)]).float()
    covered = (mass > tau) if strict else (mass >= tau)
    return mass, float((labels < 0).float().mean()), int(covered.sum())


def test_coverage():
    assert grading.check_coverage(_coverage)
    _assert_rejects(grading.check_coverage(_stub), not_implemented=True)
    _assert_rejects(grading.check_coverage(lambda lens, K, t: _coverage(lens, K, t, on_support_only=True)))
    _assert_rejects(grading.check_coverage(lambda lens, K, t: _coverage(lens, K, t, strict=False)))


def _floor(m, delta, L, half=False, minus_m=True):
    shift = delta / L / (2 if half else 1)
    return float(norm.cdf(norm.ppf(m) + shift) - (m if minus_m else 0.0))


def test_bridge_floor():
    assert grading.check_bridge_floor(_floor)
    _assert_rejects(grading.check_bridge_floor(_stub), not_implemented=True)
    _assert_rejects(grading.check_bridge_floor(lambda m, d, L: _floor(m, d, L, half=True)))  # Δ/2L: the K-mode step
    _assert_rejects(grading.check_bridge_floor(lambda m, d, L: _floor(m, d, L, minus_m=False)))  # forgot − m


def test_a_crashing_answer_is_reported_not_raised():
    result = grading.check_coverage(lambda labels, K, tau: labels.reshape(K, -1))
    assert not result.passed and "raised" in str(result)
