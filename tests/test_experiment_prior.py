"""Chapter 4's claims, checked on the experiment functions the notebook calls (fast profile)."""
import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from mbc_lib import diagnostics, figures
from mbc_lib.experiments import latent
from mbc_lib.experiments import prior_coverage as pc
from mbc_lib.figures.common import OFF_SUPPORT_COLOR, mode_color


@pytest.fixture(scope="module")
def results():
    return pc.compare(names=("weak KL", "learned prior", "MMD (WAE)", "ACT (L1, z=0)"), seed=0, profile="fast",
                      progress=False)


def test_aggregate_ratio_against_exact_answers():
    g = torch.Generator().manual_seed(0)
    # q̄ = p: no holes, TV = 0
    out = pc.aggregate_ratio(torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1), torch.zeros(1), generator=g)
    assert out["hole_0.1"] == 0 and out["tv"] < 1e-12
    # q̄ = N(3, 1), p = N(0, 1): TV = 2Φ(1.5) − 1; r(z) = exp(3z − 4.5) < α  ⇔  z < (4.5 + ln α)/3
    out = pc.aggregate_ratio(torch.full((1, 1), 3.0), torch.zeros(1, 1), torch.zeros(1), torch.zeros(1),
                             alphas=(0.1, 0.5), n_prior=20000, generator=g)
    assert abs(out["tv"] - (2 * norm.cdf(1.5) - 1)) < 0.01
    for e in (0.1, 0.5):
        exact = norm.cdf((4.5 + math.log(e)) / 3)
        assert abs(out[f"hole_{e:g}"] - exact) < 0.015
        assert out[f"hole_{e:g}_low"] <= exact <= out[f"hole_{e:g}_high"]
        assert out[f"hole_{e:g}"] <= out["tv"] / (1 - e)
    with pytest.raises(ValueError, match="alpha"):
        pc.aggregate_ratio(torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1), torch.zeros(1), alphas=(1.5,))


def test_hole_mass_agrees_with_the_diagnostics_estimator(results):
    ev = results["weak KL"].eval
    rows = ev.groups == 0
    args = (ev.mu[rows], ev.logvar[rows], ev.mu_p[rows][0], ev.logvar_p[rows][0])
    ours = pc.aggregate_ratio(*args, alphas=(0.5,), n_prior=8192, generator=torch.Generator().manual_seed(1))
    lib = diagnostics.hole_mass(*args, eps=0.5, n_prior=8192, generator=torch.Generator().manual_seed(2))
    assert abs(ours["hole_0.5"] - lib["hole_mass"]) < 0.03


def test_bounds_hold_on_every_variant(results):
    for r in pc.summary(results):
        assert r["off_support_prior"] <= r["off_support_bound"] + 0.03, r["variant"]  # TV(D#p, D#q̄) ≤ TV(p, q̄)
        for e in (0.1, 0.5):
            assert r[f"hole_{e:g}"] <= r[f"hole_{e:g}_bound"] + 1e-12, r["variant"]
        assert r["tv"] <= r["pinsker"] + 0.05, r["variant"]  # Pinsker with the (upward-biased) marginal KL


def test_prior_coverage_claims(results):
    rows = {r["variant"]: r for r in pc.summary(results)}
    weak, learned, mmd, act = rows["weak KL"], rows["learned prior"], rows["MMD (WAE)"], rows["ACT (L1, z=0)"]
    # deployment is worse than reconstruction, though both modes are reached
    assert weak["off_support_prior"] > max(3 * weak["off_support_posterior"], weak["off_support_posterior"] + 0.05)
    assert min(weak["c_0"], weak["c_1"]) > 0.25
    # the damage is where q̄ is thin, not absent
    assert weak["hole_0.1"] < 0.15 < 0.25 < weak["hole_0.5"]
    # a Gaussian learned prior cannot fit two clouds: the holes stay
    assert learned["hole_0.5"] > 0.2 and abs(learned["tv"] - weak["tv"]) < 0.1
    # aggregate matching narrows q̄ vs p, and pays with bridge chunks in reconstruction
    assert mmd["tv"] < weak["tv"] - 0.03 and mmd["off_support_posterior"] > weak["off_support_posterior"]
    # ACT's z = 0 decodes between the branches
    assert act["zero_off_support"] >= 0.5


def test_decoded_map_matches_z0_and_the_posterior_clouds(results):
    res = results["ACT (L1, z=0)"]
    m = pc.decoded_map(res, state=0, lim=3.0, n=61)
    assert m["labels"].shape == (61, 61) and set(m["labels"].ravel()) <= {-1, 0, 1}
    assert m["labels"][30, 30] == int(res.eval.zero_labels[0])  # the centre pixel is z = 0
    assert {0, 1} <= set(m["labels"].ravel())  # both branches are somewhere in the plane
    # posterior means are typical-ish under the prior, z = 0 has percentile 0
    assert 0.05 < float(torch.as_tensor(res.typicality.chi2_cdf).median()) < 0.95
    assert diagnostics.prior_typicality(torch.zeros(1, 2)).chi2_cdf[0] == 0.0


def test_map_summary_and_radial_gap(results):
    for name, res in results.items():
        m = pc.map_summary(res, state=0, n=61)
        assert m["z0_off"] == float(int(res.eval.zero_labels[0]) < 0), name
        assert 0 <= m["off_share"] <= 1
        # a larger threshold marks more of the plane as a hole
        assert 0 <= m["hole_share_0.1"] <= m["hole_share_0.5"] <= 1, name
        if m["off_share"] > 0:
            assert m["strip_hole_0.1"] <= m["strip_hole_0.5"], name
        g = pc.radial_gap(res)
        assert 0 <= g["ks"] <= 1 and 0 <= g["inner"] <= 1
    # the weak-KL model: the off-support strip between the clouds is mostly a hole at α = 0.5
    weak = pc.map_summary(results["weak KL"])
    assert weak["strip_hole_0.5"] > weak["strip_hole_0.1"]


def test_coverage_figure_shows_every_variant_and_its_bounds(results):
    import matplotlib.pyplot as plt
    from matplotlib.colors import same_color

    names = list(results)
    fig = figures.prior_coverage.plot_coverage(results)
    cov, off, holes = fig.axes
    assert [t.get_text() for t in cov.get_xticklabels()] == [n.replace(" (", "\n(") for n in names]
    # stacked bars: per variant one bar per mode and one off-support bar, in the mode colours and red on top
    bars = cov.patches
    assert len(bars) == 3 * len(names)
    top = bars[-len(names):]
    assert all(same_color(b.get_facecolor(), OFF_SUPPORT_COLOR) for b in top)
    assert all(same_color(b.get_facecolor(), mode_color(0)) for b in bars[:len(names)])
    rows = pc.summary(results)
    assert np.allclose([b.get_height() for b in top], [r["off_support_prior"] for r in rows])
    # the bound posterior + TV is drawn as one diamond per variant, above the deployment bar (up to sampling)
    (bound,) = [line for line in off.get_lines() if line.get_marker() == "D"]
    assert np.allclose(bound.get_ydata(), [r["off_support_bound"] for r in rows])
    assert {t.get_text() for t in holes.get_legend().get_texts()} >= {r"$\mathrm{Hole}_{0.1}$ measured",
                                                                       r"$\mathrm{Hole}_{0.5}$ measured"}
    plt.close(fig)
    fig = figures.prior_coverage.plot_typicality(results)
    left, right = fig.axes
    assert [t.get_text() for t in left.get_legend().get_texts()][:len(names)] == names
    assert len(right.get_lines()) == len(names) + 1  # one CDF per variant and the prior's diagonal
    plt.close(fig)


def test_latent_map_marks_z0_and_the_posterior_clouds(results):
    import matplotlib.pyplot as plt
    from matplotlib.colors import same_color

    res = results["MMD (WAE)"]
    fig = figures.prior_coverage.plot_latent_map(res, 0.5)
    (ax,) = fig.axes
    labels = {t.get_text() for t in ax.get_legend().get_texts()}
    assert labels == {"$z = 0$", "posterior means, mode 0", "posterior means, mode 1"}
    for k in range(2):  # each mode's posterior means in that mode's colour
        (cloud,) = [c for c in ax.collections if c.get_label() == f"posterior means, mode {k}"]
        assert same_color(cloud.get_facecolor()[0], mode_color(k))
    (z0,) = [line for line in ax.get_lines() if line.get_label() == "$z = 0$"]
    assert list(z0.get_xydata()[0]) == [0.0, 0.0]
    assert f"{res.eval.coverage('prior')[-1]:.0%}" in ax.get_title()
    plt.close(fig)


def test_chapter_forks_agree_and_unknown_variants_raise():
    assert pc.FORK == latent.FORK  # chapter 4 trains on chapter 3's fork
    with pytest.raises(ValueError, match="unknown variant"):
        pc.fit_variant("VampPrior")
