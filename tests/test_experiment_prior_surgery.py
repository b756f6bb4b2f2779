"""Prior surgery (chapter 10): latent regions, their prior mass, restricted priors and the deployment wrapper,
checked on cases with known answers and on a small trained CVAE."""
import math

import numpy as np
import pytest
import torch
from scipy.stats import chi2, norm

from mbc_lib import figures, profiles
from mbc_lib.experiments import prior_surgery as ps

TOY = dict(n_demos=1024, steps=300, width=64, depth=2, batch_size=256, lr=3e-3, latent_dim=2, ratio=0.1,
           fork_Ks=(2,), robot_Ks=(2,), n_states=2, n_per_state=256, n_post=8, n_pool=512, n_prior=256,
           n_mass=8000, coverage=0.95, alpha=0.5, n_episodes=24, n_eval=8, n_plot=16, n_map=21, map_lim=3.0)


@pytest.fixture()
def toy_budget(monkeypatch):
    monkeypatch.setitem(profiles.BUDGETS, "prior_surgery", {"fast": dict(TOY)})


@pytest.fixture(scope="module")
def fork_result():
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(profiles.BUDGETS, "prior_surgery", {"fast": dict(TOY)})
        return ps.surgery_fork(2, seed=0, profile="fast")


def test_ellipse_prior_mass_is_exact_for_a_centred_ball():
    for r2 in (0.5, 2.0, 5.99):
        e = ps.Ellipse(np.zeros(2), np.eye(2), r2)
        assert abs(ps.ellipse_prior_mass(e) - chi2.cdf(r2, 2)) < 1e-6
    e = ps.Ellipse(np.zeros(3), np.eye(3), 3.0)
    assert abs(ps.ellipse_prior_mass(e) - chi2.cdf(3.0, 3)) < 1e-6
    assert ps.ellipse_prior_mass(ps.Ellipse(np.zeros(2), np.eye(2), 0.0)) == 0.0


@pytest.mark.parametrize("mean, cov, r2", [
    ([1.0, -0.5], [[0.3, 0.1], [0.1, 0.8]], 4.0),
    ([2.5, 0.0], [[0.05, 0.0], [0.0, 1.0]], 6.0),
    ([0.0, 0.0, 1.0], [[1.0, 0.2, 0.0], [0.2, 0.5, 0.0], [0.0, 0.0, 2.0]], 2.0),
])
def test_ellipse_prior_mass_against_monte_carlo(mean, cov, r2):
    e = ps.Ellipse(np.array(mean), np.array(cov), r2)
    z = torch.randn(400_000, len(mean), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mc = float(e.contains(z).double().mean())
    assert abs(ps.ellipse_prior_mass(e) - mc) < 4 * math.sqrt(mc * (1 - mc) / len(z)) + 1e-4


def test_fit_ellipse_holds_the_requested_share_of_the_points():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2000, 2, generator=g) * torch.tensor([0.3, 1.5]) + torch.tensor([1.0, -1.0])
    for cov in (0.5, 0.95):
        e = ps.fit_ellipse(z, cov)
        share = float(e.contains(z).double().mean())
        assert cov <= share <= cov + 0.002
        assert np.allclose(e.mean, [1.0, -1.0], atol=0.1)
    with pytest.raises(ValueError, match="coverage"):
        ps.fit_ellipse(z, 1.5)
    with pytest.raises(ValueError, match="more than"):
        ps.fit_ellipse(z[:2], 0.9)


def test_density_region_tv_and_hole_mass_against_exact_answers():
    # q̄ = N(3, 1), p = N(0, 1): TV = 2Φ(1.5) − 1; r(z) = exp(3z − 4.5) < α  ⇔  z < (4.5 + ln α)/3
    for alpha in (0.1, 0.5):
        region = ps.DensityRegion(torch.full((1, 1), 3.0), torch.zeros(1, 1), alpha)
        out = region.prior_stats(40_000, torch.Generator().manual_seed(2))
        assert abs(out["tv"] - (2 * norm.cdf(1.5) - 1)) < 0.01
        exact = norm.cdf((4.5 + math.log(alpha)) / 3)
        assert out["hole_lo"] <= exact <= out["hole_hi"]
        assert out["hole"] <= out["hole_bound"]
        z = torch.tensor([[0.0], [3.0]])
        assert region.contains(z).tolist() == [False, True]


def test_rules_and_rejection_sampling():
    left = ps.Ellipse(np.array([-1.0, 0.0]), np.eye(2) * 0.25, 4.0)
    right = ps.Ellipse(np.array([1.0, 0.0]), np.eye(2) * 0.25, 4.0)
    g = torch.Generator().manual_seed(3)
    rule = ps.PriorRule("exclude 0", exclude=(left,))
    z = ps.sample_latent(rule, 500, 2, g)
    assert z.shape == (500, 2) and not bool(left.contains(z).any())
    union = ps.PriorRule("union", restrict=ps.UnionRegion((left, right)))
    z = ps.sample_latent(union, 500, 2, g)
    assert bool((left.contains(z) | right.contains(z)).all())
    kept, ci = ps.rule_prior_mass(union, 2, 50_000, g)
    exact = left.prior_mass() + right.prior_mass()  # the two ellipses are disjoint
    assert ci[0] - 0.005 <= exact <= ci[1] + 0.005 and abs(kept - exact) < 0.01
    tiny = ps.PriorRule("far away", restrict=ps.Ellipse(np.array([9.0, 9.0]), np.eye(2) * 1e-4, 1.0))
    with pytest.raises(ValueError, match="rejection"):
        ps.sample_latent(tiny, 10, 2, g)


def test_excluding_a_region_follows_the_conditioning_identity():
    """(eq-exclude-region) with a known decoder: mode = 1 if z₁ > 0 else 0; R_0 = a disc left of the origin."""
    r0 = ps.Ellipse(np.array([-1.0, 0.0]), np.eye(2), 1.0)
    g = torch.Generator().manual_seed(4)
    z = ps.sample_latent(ps.PriorRule("exclude 0", exclude=(r0,)), 200_000, 2, g).double()
    mode0 = float((z[:, 0] <= 0).double().mean())
    zp = torch.randn(400_000, 2, generator=g, dtype=torch.float64)
    outside = ~r0.contains(zp)
    e0 = float(((zp[:, 0] <= 0) & outside).double().mean())
    assert abs(mode0 - e0 / (1 - r0.prior_mass())) < 0.006


def test_labelled_modes():
    chunks = np.concatenate([np.zeros((10, 4)), np.ones((10, 4))])
    chunks[:10, 0] += np.linspace(-0.1, 0.1, 10)
    centers, radii = ps.labelled_modes(chunks, np.repeat([0, 1], 10), 2)
    assert np.allclose(centers[1], 1.0) and np.allclose(centers[0, 1:], 0.0)
    assert np.allclose(radii, 0.25 * 2.0)  # the floor: a quarter of the centre distance (√4 = 2)
    with pytest.raises(ValueError, match="mode"):
        ps.labelled_modes(chunks, np.zeros(20, int), 2)


def test_fork_surgery_removes_the_excluded_mode_and_the_holes(fork_result):
    res = fork_result
    assert res.mutual_information > 0.5 * math.log(2) and res.p_e < 0.1
    prior = res.variants["prior"]
    assert list(res.variants) == ps.variant_names(2)
    for k in range(2):
        v = res.variants[f"exclude {k}"]
        assert v.mass[k] < 0.15 and v.mass[k] < 0.5 * prior.mass[k]  # mode k is (nearly) gone ...
        assert v.mass[1 - k] > prior.mass[1 - k]  # ... its mass went to the other mode
        assert abs(v.kept_mass - (1 - res.region_mass[k])) < 0.03  # the exact ellipse mass, against Monte Carlo
    holes = res.variants["no holes"]
    assert holes.off_support < prior.off_support and holes.off_ci[0] <= res.hole_bound()
    assert np.all(res.exclusion_drop() < 0.5)
    rows = ps.summary({("fork", 2): res})
    assert len(rows) == len(res.variants) and {"mass_0", "off_support", "kept_mass", "region_mass_1"} <= set(rows[0])
    assert np.array_equal(ps.exclusion_drops(rows, "fork"), res.exclusion_drop())  # chapter 11 reads the cached rows


def test_surgery_policy_is_deterministic_and_checks_its_cvae(fork_result):
    pol = fork_result.policy
    rule = ps.PriorRule("exclude 0", exclude=(fork_result.regions[0],))
    wrapped = ps.SurgeryPolicy(pol, rule)
    obs = torch.zeros(3, 1)
    a = wrapped.sample(obs, 5, generator=torch.Generator().manual_seed(0))
    b = wrapped.sample(obs, 5, generator=torch.Generator().manual_seed(0))
    assert a.shape == (3, 5, 8, 1) and torch.equal(a, b)
    assert wrapped.config is pol.config and wrapped.eval() is wrapped
    with pytest.raises(TypeError, match="cvae"):
        ps.SurgeryPolicy(torch.nn.Linear(1, 1), rule)


def test_robot_surgery_runs_in_closed_loop(toy_budget):
    res = ps.surgery_robot(2, seed=0, profile="fast")
    for v in res.variants.values():
        assert v.episodes == TOY["n_eval"] and len(v.paths) <= TOY["n_plot"]
        assert v.success_counts.sum() <= v.episodes
    assert res.latent_map["labels"].shape == (TOY["n_map"], TOY["n_map"])
    assert set(res.latent_map["keep"]) == set(res.variants)
    table = figures.prior_surgery.format_table(res)
    assert "through gap 0" in table and "collisions" in table
    rows = ps.summary({("PathGaps", 2): res})
    np.testing.assert_array_equal(ps.exclusion_drops(rows, "PathGaps"), res.exclusion_drop())
