"""Chapter 7's claims, checked on the experiment functions the notebook calls (fast profile).

One small sweep on the symmetric two-branch fork (regression, mixture, a cvae on either side of β*,
a flow at 1 and 8 steps), trained once per module.
"""
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest

from mbc_lib import experiments, figures
from mbc_lib.experiments import cache, synthetic
from mbc_lib.figures.common import OFF_SUPPORT_COLOR, mode_color

SETTING = ("fork", 2, 3.0)


@pytest.fixture(scope="module")
def swept():
    return synthetic.sweep(settings=(SETTING,), families=("regression", "mixture", "cvae", "flow"),
                           beta_ratios=(0.1, 2.0), sampler_steps=(1, 8), seed=0, profile="fast")


@pytest.fixture(scope="module")
def rows(swept):
    return {(r["family"], r["knob_value"] if r["knob"] != "beta" else r["beta_ratio"]): r for r in synthetic.summary(swept)}


def test_regression_puts_all_mass_off_support_on_a_symmetric_fork(rows):
    r = rows[("regression", 0.0)]
    assert r["predicted_off_support"] == 1.0  # the mode average lies between the two branches
    assert r["off_support"] > 0.95 and r["modes_covered"] == 0


def test_mixture_covers_both_modes_without_bridge(rows):
    r = rows[("mixture", 0.0)]
    assert r["modes_covered"] == 2 and r["min_mass"] > 0.3
    assert r["off_support"] < 0.1 and r["floor"] == 0.0
    assert r["sinkhorn"] < rows[("regression", 0.0)]["sinkhorn"] / 5  # far closer to the demonstrations


def test_cvae_keeps_the_modes_below_beta_star_and_collapses_above(rows):
    weak, strong = rows[("cvae", 0.1)], rows[("cvae", 2.0)]
    assert weak["beta_star"] == strong["beta_star"] > 0
    assert weak["knob_value"] == pytest.approx(0.1 * weak["beta_star"])
    assert weak["modes_covered"] == 2 and weak["kl"] > 0.5  # ≈ log 2 nats carry the mode
    assert weak["kl"] >= weak["fano"] - 0.05  # E KL ≥ I ≥ B(P_e)
    assert strong["modes_covered"] <= 1 and strong["kl"] < 0.05  # collapsed: the mode average
    assert strong["off_support"] == pytest.approx(strong["predicted_off_support"], abs=0.1)


def test_autoregressive_head_covers_both_modes_without_floor_and_counts_its_tokens():
    """The token head joins the scorecard: no Lipschitz floor (floor 0), n = H·d_a sequential evaluations."""
    res = synthetic.sweep(settings=(SETTING,), families=("autoregressive",), seed=0, profile="fast")
    (r,) = synthetic.summary(res)
    task = res.tasks[SETTING]
    assert r["family"] == "autoregressive" and r["knob"] == "none" and r["floor"] == 0.0
    assert r["nfe"] == task.chunk_len * task.action_dim
    assert r["modes_covered"] == 2 and r["min_mass"] > 0.2 and r["off_support"] < 0.15
    # chapter 12's comparison reads it from the rows: its NFE is the token count, a one-shot head's is 1
    tok = figures.synthetic.token_rows(synthetic.summary(res) + [{**r, "family": "mixture", "nfe": math.nan}])
    assert {t["family"]: t["nfe"] for t in tok} == {"autoregressive": 8.0, "mixture": 1.0}
    plt.close(figures.synthetic.plot_token_head(synthetic.summary(res)))


def test_flow_bridge_shrinks_with_steps_and_stays_above_the_floor(rows):
    one, eight = rows[("flow", 1.0)], rows[("flow", 8.0)]
    assert one["off_support"] > 0.9  # one Euler step is regression
    assert eight["off_support"] < 0.3 and eight["modes_covered"] == 2
    assert eight["L_hat"] > 0 and 0 < eight["floor"] <= eight["off_support_hi"]  # Gaussian isoperimetry
    assert eight["mode_bound"] >= eight["modes_covered"]


def test_summary_rows_are_flat_and_have_the_columns(swept):
    rows = synthetic.summary(swept)
    assert len(rows) == 1 + 1 + 2 + 2  # regression, mixture, two β, two step counts
    need = {"family", "task", "K", "delta", "gap", "knob", "knob_value", "beta_ratio", "coverage", "min_mass",
            "modes_covered", "off_support", "off_support_hi", "sinkhorn", "predicted_off_support", "predicted_modes",
            "beta_star", "kl", "mode_error", "fano", "L_hat", "floor", "mode_bound"}
    for r in rows:
        assert need <= set(r), need - set(r)
        assert len(set(map(frozenset, [r.keys() for r in rows]))) == 1  # every row has the same keys
        assert all(isinstance(v, (int, float, str)) for v in r.values())
        assert 0 <= r["coverage"] <= 1 and r["coverage"] == pytest.approx(1 - r["off_support"])
    table = figures.synthetic.format_table(swept).splitlines()
    assert len(table) == 2 + len(rows) and "cvae β=0.1β*" in table[3]  # regression, then the cvae by β
    assert table[0].split()[:2] == ["model", "task"]


def test_run_keeps_the_result_and_caches_the_table_for_chapter_11(swept, monkeypatch, tmp_path):
    monkeypatch.setenv("MBC_CACHE", str(tmp_path))
    assert cache.load("synthetic", "fast", 0) is None  # the sweep itself writes nothing
    monkeypatch.setitem(experiments.RESULTS, "synthetic", (lambda profile=None, seed=0: swept, synthetic.summary))
    assert experiments.run("synthetic", profile="fast", seed=0, use_cache=True, keep_result=True) is swept
    stored = cache.load("synthetic", "fast", 0)
    assert stored is not None and len(stored) == len(synthetic.summary(swept))
    assert stored[0]["family"] == "regression" and stored[0]["beta_star"] is None  # NaN stored as null
    assert "synthetic" in experiments.EXPERIMENTS


def test_figures_render_hats(swept):
    # matplotlib draws "L̂" typed as text as a plain "L": every hat must be mathtext ($\hat L$)
    for fig in (figures.synthetic.plot_beta(swept), figures.synthetic.plot_steps(swept),
                figures.synthetic.plot_overview(swept)):
        fig.canvas.draw()
        texts = [t.get_text() for t in fig.findobj(plt.Text)]
        assert not [t for t in texts if "\u0302" in t]
        plt.close(fig)
    titles = [ax.get_title() for ax in figures.synthetic.plot_steps(swept).axes]
    assert any("$\\hat L$" in t for t in titles)
    plt.close("all")


def test_overview_stacks_off_support_under_the_modes(swept):
    from matplotlib.colors import same_color

    fig = figures.synthetic.plot_overview(swept)
    where, sinkhorn = fig.axes
    cells = figures.synthetic._representatives(swept, SETTING)  # every β, the largest step count
    assert [t.get_text() for t in where.get_xticklabels()] == [c.label for c in cells]
    bars = where.patches  # per cell: the off-support bar (red, hatched) at the bottom, then one bar per mode
    assert len(bars) == 3 * len(cells)
    for i, c in enumerate(cells):
        off, *modes = bars[3 * i: 3 * i + 3]
        assert same_color(off.get_facecolor(), OFF_SUPPORT_COLOR) and off.get_hatch() == "//"
        assert off.get_height() == pytest.approx(c.off_support.mean()) and off.get_y() == 0
        for k, bar in enumerate(modes):
            assert same_color(bar.get_facecolor(), mode_color(k)) and bar.get_height() == pytest.approx(c.mass.mean(0)[k])
    assert len(sinkhorn.patches) == len(cells) and sinkhorn.get_yscale() == "log"
    plt.close(fig)
    fig = figures.synthetic.plot_samples(swept.select("flow", SETTING)[-1], swept.tasks[SETTING])
    (ax,) = fig.axes
    cell = swept.select("flow", SETTING)[-1]
    coloured = [line for line in ax.get_lines() if not same_color(line.get_color(), "0.75")]
    assert len(coloured) == len(cell.samples)
    assert sum(same_color(line.get_color(), OFF_SUPPORT_COLOR) for line in coloured) == int((cell.labels < 0).sum())
    plt.close(fig)


def test_setting_task_and_observations():
    ring = synthetic.setting_task("ring", 4, 3.0)
    obs = synthetic.eval_obs(ring, 3)
    assert float(ring.modes(obs[:1]).center_distance[0]) == pytest.approx(3.0, rel=1e-5)
    assert (obs[:, 1].abs() <= math.sin(synthetic.RING_ARC)).all()  # inside the trained arc
    br = synthetic.setting_task("branching", 3, 3.0)
    assert (br.count(synthetic.eval_obs(br, 4)) == 3).all()  # measured where all K modes are present
    assert np.allclose(synthetic.eval_obs(synthetic.setting_task("fork", 2, 3.0), 1), 0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(families=("transformer",)), "unknown policy family"),
    (dict(settings=(("fork", 0, 3.0),)), "K"),
    (dict(settings=(("fork", 2, -1.0),)), "delta"),
    (dict(settings=(("maze", 2, 3.0),)), "unknown task"),
    (dict(beta_ratios=(-0.5,)), "β ratios"),
    (dict(sampler_steps=(0,)), "sampler steps"),
])
def test_bad_input_raises_a_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        synthetic.sweep(profile="fast", **kwargs)
