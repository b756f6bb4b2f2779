"""mbc_lib.diagnostics.information on Gaussian models with closed-form answers."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.stats import chi2, norm

from mbc_lib import theory as th
from mbc_lib.diagnostics import (
    fano_check,
    gaussian_kl,
    hole_mass,
    identification_error,
    kl_split,
    predicted_collapse,
    prior_typicality,
)


def test_gaussian_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu_q, lv_q = torch.randn((20, 4), generator=g), torch.randn((20, 4), generator=g)
    mu_p, lv_p = torch.randn((20, 4), generator=g), torch.randn((20, 4), generator=g)
    q = torch.distributions.Normal(mu_q.double(), torch.exp(0.5 * lv_q.double()))
    for args, p in [((mu_p, lv_p), torch.distributions.Normal(mu_p.double(), torch.exp(0.5 * lv_p.double()))),
                    ((None, None), torch.distributions.Normal(torch.zeros(20, 4).double(), 1.0)),
                    ((mu_p[0], lv_p[0]), torch.distributions.Normal(mu_p[0].double(), torch.exp(0.5 * lv_p[0].double())))]:
        expected = torch.distributions.kl_divergence(q, p).sum(-1)
        assert torch.allclose(gaussian_kl(mu_q, lv_q, *args), expected, atol=1e-10)


def linear_gaussian(N: int, kappa: float, s: float, c: float, dz: int, seed: int):
    """a ~ N(0, 1) per latent dim, q(z|a) = N(κa + c, s²): the aggregate is N(c, κ² + s²)."""
    a = torch.randn((N, dz), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return kappa * a + c, torch.full((N, dz), math.log(s**2), dtype=torch.float64)


def kl_normal(m1, v1, m2, v2):
    return 0.5 * (v1 / v2 + (m1 - m2) ** 2 / v2 - 1 + math.log(v2 / v1))


@pytest.mark.parametrize("kappa, s, c", [(0.8, 0.6, 0.0), (1.5, 0.5, 0.7), (0.3, 1.0, -1.0)])
def test_kl_split_matches_closed_forms(kappa, s, c):
    dz, N = 2, 2000
    mu, lv = linear_gaussian(N, kappa, s, c, dz, seed=1)
    res = kl_split(mu, lv, n_samples=2, generator=torch.Generator().manual_seed(2))
    true_mi = dz * 0.5 * math.log((kappa**2 + s**2) / s**2)  # I(A;Z) of the linear-Gaussian channel
    true_marginal = dz * kl_normal(c, kappa**2 + s**2, 0.0, 1.0)  # KL(q̄ ‖ N(0, I))
    # stated tolerance: 0.05 nats per latent dimension at N = 2000 (I ≪ log N = 7.6)
    assert res.mutual_information == pytest.approx(true_mi, abs=0.05 * dz)
    assert res.marginal_kl == pytest.approx(true_marginal, abs=0.05 * dz)
    assert res.mutual_information + res.marginal_kl == pytest.approx(res.mean_kl, abs=1e-12)
    # the batch mean KL is exact; its population value is I + marginal KL (the rate decomposition, app-rate)
    assert res.mean_kl == pytest.approx(true_mi + true_marginal, abs=0.05 * dz)


def test_kl_split_is_capped_at_log_n_and_biased_low():
    # near-deterministic encoder: true I = ½ log(1 + 1/0.01²) ≈ 4.6 nats per dim, far above log 64
    mu, lv = linear_gaussian(64, 1.0, 0.01, 0.0, 2, seed=3)
    res = kl_split(mu, lv, generator=torch.Generator().manual_seed(4))
    assert res.log_n_cap == pytest.approx(math.log(64))
    assert res.mutual_information <= math.log(64) + 1e-9
    assert res.mutual_information > 0.95 * math.log(64)  # saturated at the cap: "at least log N"
    assert res.marginal_kl > kl_normal(0.0, 1.0001, 0.0, 1.0) * 2  # the upward bias of the marginal estimate


def test_kl_split_by_groups_averages_group_estimates():
    mu1, lv1 = linear_gaussian(1000, 0.8, 0.6, 0.0, 1, seed=5)
    mu2, lv2 = linear_gaussian(500, 1.5, 0.5, 0.0, 1, seed=6)
    mu, lv = torch.cat([mu1, mu2]), torch.cat([lv1, lv2])
    groups = np.array([0] * 1000 + [1] * 500)
    res = kl_split(mu, lv, groups=groups, generator=torch.Generator().manual_seed(7))
    mi = (2 / 3) * 0.5 * math.log((0.64 + 0.36) / 0.36) + (1 / 3) * 0.5 * math.log((2.25 + 0.25) / 0.25)
    assert res.mutual_information == pytest.approx(mi, abs=0.05)
    assert res.log_n_cap == pytest.approx((2 / 3) * math.log(1000) + (1 / 3) * math.log(500))
    # pooling the two neighbourhoods into one would mix their aggregates: a different number
    pooled = kl_split(mu, lv, generator=torch.Generator().manual_seed(7))
    assert abs(pooled.mutual_information - res.mutual_information) > 0.01


def test_prior_typicality():
    d = 4
    mu = torch.zeros((3, d), dtype=torch.float64)
    mu[1, 0] = math.sqrt(chi2.ppf(0.5, d))  # the prior's median radius
    mu[2, :] = 3.0
    typ = prior_typicality(mu)
    assert typ.chi2_cdf == pytest.approx([0.0, 0.5, chi2.cdf(36.0, d)])
    assert typ.density_rank[0] == 1.0  # the prior mode is denser than every prior sample ...
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(mu).sum(-1).numpy()
    assert typ.log_density == pytest.approx(expected)
    # ... with a learned (shifted, scaled) prior the same radius is measured in prior units
    shifted = prior_typicality(mu + 1.0, torch.ones(d), torch.full((d,), math.log(4.0)))
    assert shifted.sq_radius == pytest.approx(typ.sq_radius / 4)


def test_hole_mass_against_the_exact_region():
    # every posterior N(2, 0.3²) (1-D): q̄ = N(2, 0.09) vs p = N(0, 1); H_ε = P_p[q̄/p < ε]
    N, eps = 50, 0.1
    mu = torch.full((N, 1), 2.0, dtype=torch.float64)
    lv = torch.full((N, 1), math.log(0.09), dtype=torch.float64)
    out = hole_mass(mu, lv, eps=eps, n_prior=20_000, generator=torch.Generator().manual_seed(0))
    ratio = lambda z: norm.pdf(z, 2.0, 0.3) / norm.pdf(z)  # noqa: E731
    grid = np.linspace(-8, 8, 160_001)
    exact = float((norm.pdf(grid) * (ratio(grid) < eps)).sum() * (grid[1] - grid[0]))
    assert out["ci_low"] <= exact <= out["ci_high"]
    assert out["hole_mass"] == pytest.approx(exact, abs=0.01)
    # H_ε ≤ TV(q̄, p)/(1 − ε)
    tv = 0.5 * integrate.quad(lambda z: abs(norm.pdf(z, 2.0, 0.3) - norm.pdf(z)), -10, 10, limit=200)[0]
    assert exact <= tv / (1 - eps)
    # a posterior family whose aggregate is the prior has no holes
    mu0, lv0 = linear_gaussian(4000, 0.8, 0.6, 0.0, 1, seed=1)
    assert hole_mass(mu0, lv0, eps=0.1, generator=torch.Generator().manual_seed(1))["hole_mass"] < 0.01


def test_identification_error_and_fano_check():
    err = identification_error(np.array([0, 1, 1, -1, 0]), torch.tensor([0, 1, 0, 1, 0]))
    assert err["rho"] == pytest.approx(0.4) and err["ci_low"] < 0.4 < err["ci_high"]
    ok = fano_check([0.5, 0.5], 0.034, mutual_information=0.633, mean_kl=0.7, beta=1.0)
    assert ok["B_rho"] == pytest.approx(th.fano_bound([0.5, 0.5], 0.034))
    assert ok["satisfied"] and ok["beta_mean_kl"] == pytest.approx(0.7)
    bad = fano_check([0.5, 0.5], 0.0, mutual_information=0.2)
    assert not bad["satisfied"]
    assert fano_check([0.5, 0.5], 0.9, 0.0)["B_rho"] == pytest.approx(0.0)  # worse than chance: clipped


def test_predicted_collapse_on_demonstrations():
    rng = np.random.default_rng(0)
    chunks = np.concatenate([rng.normal(-2, 1, 500), rng.normal(2, 1, 500)])[:, None, None]  # [N, H=1, d=1]
    res = predicted_collapse(chunks, beta=4.0)
    v = th.subgaussian_variance_proxy(chunks[:, 0, 0], np.full(1000, 1e-3), 0.0)
    assert res["beta_star"] == pytest.approx(v, rel=1e-9)
    assert res["beta_star"] == pytest.approx(5.0, rel=0.1)  # the population value
    assert res["verdict"] == "no collapse"
    assert predicted_collapse(chunks, beta=6.0)["verdict"] == "collapse"
    # L1 with a kernel bandwidth: local threshold ≤ exact one
    l1 = predicted_collapse(chunks[::10], beta=1.0, loss="l1", sigma=0.3)
    assert l1["beta_local"] <= l1["beta_star"] + 1e-9
    high_dim = predicted_collapse(rng.normal(size=(50, 4, 2)), beta=100.0, loss="l1", sigma=0.3)
    assert np.isnan(high_dim["beta_star"]) and high_dim["verdict"] == "locally stable"
