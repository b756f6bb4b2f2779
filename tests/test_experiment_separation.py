"""When modes are not well separated (chapter 10): the swept tasks, the collapse point, the middle mass, and a
small sweep whose regimes and failures are known."""
import math

import pytest
import torch

from mbc_lib import diagnostics, profiles, tasks
from mbc_lib.experiments import separation as sp

TOY = dict(n_demos=1024, steps=200, width=64, depth=2, batch_size=256, lr=5e-3, latent_dim=2, gaps=(-6.0, 10.0),
           collapse_ratios=(0.1, 1.0), cvae_ratio=0.1, families=("regression", "cvae", "flow"), n_obs=1,
           n_samples=256, n_kl=128, n_diag=128, n_jac=8, n_plot=16)


@pytest.fixture(scope="module")
def sweep():
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(profiles.BUDGETS, "separation", {"fast": dict(TOY)})
        return sp.sweep(seed=0, profile="fast")


@pytest.mark.parametrize("gap", [-6.0, 0.5, 1.0, 10.0])
def test_gap_task_puts_the_regions_gap_sigma_apart(gap):
    task = sp.gap_task(gap)
    ms = task.modes(torch.zeros(1, 1))
    assert float(ms.separation[0]) == pytest.approx(gap * sp.SIGMA, abs=1e-5)
    spread = sp.SIGMA * math.sqrt(sp.CHUNK_LEN)
    expected = "overlapping" if gap <= 0 else ("close" if gap * sp.SIGMA < spread else "separated")
    assert diagnostics.separation_regime(float(ms.separation[0]), spread, 2) == expected
    with pytest.raises(ValueError, match="gap"):
        sp.gap_task(-20.0)


def test_collapse_point_interpolates_where_the_kl_falls_through_the_level():
    assert sp.collapse_point([0.1, 1.0], [1.0, 0.001]) == pytest.approx(
        math.exp(math.log(0.1) + (math.log(0.02) - 0) * (math.log(10)) / (math.log(0.001))))
    assert sp.collapse_point([0.1, 1.0], [0.001, 0.0]) == 0.0  # collapsed already at the smallest β
    assert math.isinf(sp.collapse_point([0.1, 1.0], [1.0, 0.5]))  # never collapsed on the grid


def test_middle_mass_of_known_chunks():
    task = tasks.make("fork", K=2, delta=2.0, sigma=0.1)
    obs = torch.zeros(1, 1)
    c = task.modes(obs).centers[0]  # [2, H, 1]
    average = c.mean(0, keepdim=True)[None].expand(1, 10, -1, -1)
    assert sp.middle_mass(task, obs, average) == 1.0
    assert sp.middle_mass(task, obs, c[None]) == 0.0
    assert sp.middle_mass(task, obs, task.sample_chunks(obs, 500, torch.Generator().manual_seed(0))) < 0.01


def test_sweep_orders_the_regimes_and_separates_the_families_only_with_a_gap(sweep):
    lo, hi = sweep.gaps
    assert (lo.regime, hi.regime) == ("overlapping", "separated")
    assert lo.beta_star < hi.beta_star  # collapse gets cheaper as the modes close in
    assert lo.families["flow"].floor == 0.0 and math.isnan(lo.families["flow"].L_hat)  # nothing to bridge
    assert hi.families["flow"].L_hat > 0
    assert sp.spread(lo) < 0.1 < 0.5 < sp.spread(hi)  # off-support mass tells them apart only with a gap
    assert hi.families["regression"].off_support > 0.9 and lo.families["regression"].off_support < 0.1
    assert sp.boundary(sweep) == (-6.0, 10.0)
    assert lo.families["regression"].middle > 0.9  # the mode average is in the middle, overlapping or not
    rows = sp.summary(sweep)
    assert len(rows) == 2 * len(TOY["families"]) and {"off_spread", "collapse_ratio", "middle"} <= set(rows[0])
    assert sp.boundary(rows) == sp.boundary(sweep)  # chapter 11 reads the boundary off the cached rows
    for r in sweep.gaps:
        assert set(r.samples) == {"demos", *TOY["families"]} and set(r.labels) == set(TOY["families"])
