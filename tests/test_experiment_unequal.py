"""Unequal modes (chapter 10): per-mode mass against the weights, and the CVAE's latent bookkeeping."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mbc_lib import figures, profiles  # noqa: E402
from mbc_lib.experiments import unequal as ue  # noqa: E402

TOY = dict(n_demos=1024, steps=300, width=64, depth=2, batch_size=256, lr=3e-3, latent_dim=2, cvae_ratio=0.1,
           families=("cvae", "mixture"), n_obs=2, n_samples=1024, n_states=2, n_per_state=512, n_post=4, n_mass=4096,
           coverage=0.95, n_plot=16)


@pytest.fixture(scope="module")
def result():
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(profiles.BUDGETS, "unequal", {"fast": dict(TOY)})
        return ue.run(seed=0, profile="fast")


def test_mixture_follows_the_weights_and_the_cvae_bookkeeping_holds(result):
    assert np.allclose(result.weights, ue.WEIGHTS)
    mix = result.families["mixture"]
    assert np.all(np.abs(mix.mass - result.weights) < 0.06) and mix.off_support < 0.05
    lat = result.latent
    for part in (lat.partition, lat.qbar):
        assert part.sum() == pytest.approx(1.0) and part[0] > part[1] > part[2]  # the partition follows the weights
    assert np.all(np.abs(lat.partition - lat.qbar) <= lat.tv + 0.03)  # |p(A_k) − q̄(A_k)| ≤ TV(q̄, p)
    assert np.all(np.abs(lat.qbar - result.weights) < 0.05)  # the aggregate posterior gives each mode its weight
    assert np.all((0 < lat.ellipse) & (lat.ellipse < 1))


def test_rows_figure_and_table(result):
    rows = ue.summary(result)
    assert len(rows) == len(TOY["families"]) * 3
    cv = [r for r in rows if r["family"] == "cvae"]
    assert all(np.isfinite(r["partition_mass"]) and np.isfinite(r["qbar_mass"]) for r in cv)
    assert all(np.isnan(r["partition_mass"]) for r in rows if r["family"] != "cvae")
    fig = figures.unequal.plot_unequal(result)
    plt.close(fig)
    plt.close(figures.unequal.plot_samples(result, "mixture"))
    table = figures.unequal.format_table(result)
    assert "π = 0.1" in table and table.count("\n") == 1 + len(TOY["families"])


def test_the_budget_must_list_the_cvae(monkeypatch):
    monkeypatch.setitem(profiles.BUDGETS, "unequal", {"fast": dict(TOY, families=("mixture",), steps=10)})
    with pytest.raises(ValueError, match="cvae"):
        ue.run(seed=0, profile="fast")
