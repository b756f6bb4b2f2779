"""Chapter 3's claims, checked on the experiment functions the notebook calls (fast profile)."""
import math

import numpy as np
import pytest
import torch

from mbc_lib import figures, tasks, theory
from mbc_lib.experiments import latent
from mbc_lib.figures.common import OFF_SUPPORT_COLOR
from mbc_lib.measure import identified_modes


@pytest.fixture(scope="module")
def sweep():
    return latent.beta_sweep(ratios=(0.1, 1.5), seed=0, profile="fast", progress=False)


@pytest.fixture(scope="module")
def acts():
    return latent.act_comparison(kl_weights=(10.0, 0.05), seed=0, profile="fast", progress=False)


def test_predicted_threshold_is_the_closed_form_for_the_policys_loss_scaling():
    fork = tasks.make("fork", **latent.FORK)
    norm = fork.dataset(2048, seed=1).normalizer()
    th = latent.predicted_thresholds(fork, norm)
    std = float(norm.act_std[0])
    dn, sn = fork.delta / std, fork.sigma / std
    assert th.n == fork.chunk_len and math.isclose(th.delta_n, dn, rel_tol=1e-5)
    # equal weights, two modes: v' = Var along the line = σ_n² + Δ_n²/4, and β* = 2v'/n (T = β, σ_d² = n/2)
    assert math.isclose(th.beta_star, 2 * (sn**2 + dn**2 / 4) / th.n, rel_tol=1e-5)
    assert math.isclose(th.beta_local, th.beta_star, rel_tol=1e-6)  # strictly sub-Gaussian: no jump
    assert math.isclose(th.beta_hard, (dn**2 / 4) / (th.n * math.log(2)), rel_tol=1e-5)
    assert th.beta_star / th.beta_hard > 2 * math.log(2)  # the naive estimate is NOT the threshold
    assert 0.5 < th.beta_star < 0.6  # the number the chapter quotes (σ_a ≈ 0.68)


def test_latent_keeps_the_modes_below_beta_star_and_collapses_above(sweep):
    low, high = (sweep.evals[r].scalars() for r in (0.1, 1.5))
    assert low["mutual_information"] > 0.5 and low["p_e"] < 0.1 and low["modes_reached"] == 2
    assert high["mean_kl"] < 0.02 and abs(high["mutual_information"]) < 0.02
    # collapsed L2 decoder = the conditional mean, which for two symmetric branches is in neither
    assert high["modes_reached"] == 0 and high["off_support_prior"] > 0.95 and high["p_e"] > 0.4
    # Fano: the information the latent carries is at least B(P̂_e) (up to the estimator's slack)
    for s in (low, high):
        assert s["mutual_information"] >= s["fano"] - 0.05


def test_kl_split_sums_to_the_policys_own_mean_kl(sweep):
    ev = sweep.evals[0.1]
    pol = sweep.policies[0.1]
    with torch.no_grad():
        direct = float(pol.kl(ev.obs, ev.chunks).mean())
    sp = ev.split
    assert math.isclose(sp.mean_kl, direct, rel_tol=1e-4, abs_tol=1e-5)
    assert math.isclose(sp.mutual_information + sp.marginal_kl, sp.mean_kl, rel_tol=1e-9, abs_tol=1e-9)
    assert sp.mutual_information <= sp.log_n_cap + 1e-9
    # with the modes coded, Î is close to H(π) = ln 2, and the marginal KL is clearly positive
    assert abs(sp.mutual_information - math.log(2)) < 0.1 and sp.marginal_kl > 0.05


def test_optimal_rate_vanishes_at_beta_star_not_at_beta_hard():
    centers, weights = [-2.0, 2.0], [0.5, 0.5]
    star, hard = theory.critical_beta(centers, weights, 1.0), theory.beta_hard(centers, weights, 1.0)
    rows = latent.rate_curve(centers, weights, 1.0, 1.0, betas=[hard, 0.9 * star, 1.05 * star])
    assert rows[0]["rate"] > 0.3 and rows[1]["rate"] > 0.02 and rows[2]["rate"] < 1e-3
    assert all(r["fano"] <= r["rate"] + 1e-6 for r in rows)


def test_act_weight_kills_the_latent_and_z0_decodes_between_the_branches(acts):
    dead, alive = acts[10.0].eval, acts[0.05].eval
    assert dead.split.mean_kl < 0.02
    assert alive.split.mutual_information > 0.5 and alive.modes_reached() == 2
    assert float((alive.zero_labels < 0).float().mean()) >= 0.5
    # z = 0 decodes to one deterministic chunk: every "prior" sample of a z = 0 policy is that chunk
    assert torch.allclose(acts[0.05].policy.sample(alive.states[:, None], 3)[:, 0], alive.zero_chunks, atol=1e-6)


def test_act_scaling_numbers():
    fork = tasks.make("fork", **latent.FORK)
    out = latent.act_scaling(fork, fork.dataset(1024, seed=0).normalizer(), kl_weight=10.0)
    assert out["temperature"] == 80.0 and out["n"] == 8
    assert out["beta_hard_l1"] < 1.0 < 10.0  # kl_weight is far above the hard-code estimate
    assert out["beta_local_l1"] > 1e6  # the median sits in a gap: the local L1 threshold is useless
    assert 0 <= out["max_gain"] < 0.02
    # a code that sees where the chunk lies between the branches nearly attains the upper bound β Λ(T)
    assert 0.9 * out["max_gain"] < out["line_gain"] < 1.02 * out["max_gain"]


def test_identified_mode_ignores_the_radius():
    fork = tasks.make("fork", **latent.FORK)
    obs = torch.zeros(3, 1)
    centers = fork.modes(obs).centers  # [3, 2, H, 1]
    chunks = torch.stack([centers[0, 0] * 0.6, centers[1, 1] * 0.6, centers[2, 1]])  # off-support, off, on
    assert identified_modes(fork, obs, chunks).tolist() == [0, 1, 1]
    assert fork.assign(obs, chunks).tolist()[:2] == [-1, -1]


def _lines_in(ax, color):
    from matplotlib.colors import same_color

    return [line for line in ax.get_lines() if same_color(line.get_color(), color)]


def test_sweep_plots(sweep):
    import matplotlib.pyplot as plt

    fig = figures.latent.plot_sweep(sweep, latent.sweep_rate_curve(sweep, n_points=5))
    ax1, ax2 = fig.axes
    labels = [t.get_text() for t in ax1.get_legend().get_texts()]
    assert labels[0] == "optimal rate (theory)" and r"$\hat I(A;Z\mid S)$" in labels and "marginal KL" in labels
    kl = next(line for line in ax1.get_lines() if line.get_label() == r"$\mathbb{E}\,$KL (measured)")
    assert np.allclose(kl.get_xdata(), [0.1, 1.5])  # one marker per trained β, at β/β*
    assert np.allclose(kl.get_ydata(), [sweep.evals[r].split.mean_kl for r in (0.1, 1.5)])
    assert ax1.get_xscale() == ax2.get_xscale() == "log"
    plt.close(fig)
    # one model: each decoded prior sample is drawn in the colour of the mode it lands in, off-support ones in red
    for ratio in (0.1, 1.5):
        ev = sweep.evals[ratio]
        fig = figures.latent.plot_beta(sweep, ratio)
        chunks_ax = fig.axes[0]
        labels = ev.prior_labels[0][:80]
        assert len(_lines_in(chunks_ax, OFF_SUPPORT_COLOR)) == int((labels < 0).sum())
        for k in range(2):
            assert len(_lines_in(chunks_ax, figures.common.mode_color(k))) == int((labels == k).sum())
        plt.close(fig)
    rows = latent.summary(sweep)
    assert [r["ratio"] for r in rows] == [0.1, 1.5]
    assert np.isclose(rows[0]["beta"], 0.1 * sweep.thresholds.beta_star)


def test_act_weights_span_a_small_weight_to_acts_ten():
    for profile in ("fast", "standard", "full"):
        ws = latent.act_weights(profile)
        assert ws[0] == 0.05 and ws[-1] == 10.0 and ws == sorted(ws) and 2 <= len(ws) <= 7


def test_collapse_bracket():
    assert latent.collapse_bracket([0.1, 0.5, 1.0, 2.0], [0.9, 0.3, 0.01, 0.0]) == (0.5, 1.0)
    # a collapsed model below a live one does not count: the sweep collapses from the last live one on
    assert latent.collapse_bracket([2.0, 0.1, 1.0, 0.5], [0.0, 0.9, 0.05, 0.001]) == (1.0, 2.0)
    assert latent.collapse_bracket([0.1, 1.0], [0.5, 0.1]) == (1.0, None)
    assert latent.collapse_bracket([0.1, 1.0], [0.01, 0.0]) == (None, 0.1)


def test_collapse_curves_set_both_sweeps_against_the_optimum(sweep, acts):
    import matplotlib.pyplot as plt

    cur = latent.collapse_curves(sweep, acts, n_points=4)
    assert cur.beta_star == sweep.thresholds.beta_star and cur.beta_local_l1 > 1e6
    assert len(cur.l2) == len(cur.l1) == 4 and len(cur.trained_l2) == 2 and len(cur.trained_l1) == 2
    # L2: the optimum's gain is positive below β* and 0 above it; it falls with β
    gains = [r["gain"] for r in cur.l2]
    assert all(g > 0 for g in gains) and all(a > b for a, b in zip(gains, gains[1:]))
    above = [r for r in cur.trained_l2 if r["ratio"] > 1]
    assert above and all(r["gain"] == 0 and r["rate"] == 0 for r in above)
    # L1: the optimum never collapses exactly on this fork, but its rate and gain fade with β
    l1 = sorted(cur.l1, key=lambda r: r["beta"])
    assert all(r["gain"] > 0 for r in l1) and l1[0]["rate"] > l1[-1]["rate"] and l1[0]["gain"] > l1[-1]["gain"]
    assert cur.brackets["l2"] == (0.1 * sweep.thresholds.beta_star, 1.5 * sweep.thresholds.beta_star)
    assert cur.brackets["l1"] == (0.05, 10.0)
    fig = figures.latent.plot_collapse(cur)
    rates = fig.axes[0]
    markers = [line for line in rates.get_lines() if line.get_marker() in ("o", "s") and len(line.get_xdata()) == 1]
    assert len(markers) == 4  # every trained model of both sweeps
    # collapsed models (E KL below the threshold) are drawn open
    open_ = sum(line.get_markerfacecolor() == "white" for line in markers)
    assert open_ == sum(r["mean_kl"] < latent.COLLAPSED_KL for r in cur.trained_l2 + cur.trained_l1) >= 1
    plt.close(fig)


def test_cgf_and_act_plots(acts):
    import matplotlib.pyplot as plt

    ex = [dict(centers=[-2.0, 2.0], weights=[0.5, 0.5], sigma=1.0, temperatures=(6.0, 10.0), title="equal")]
    fig = figures.latent.plot_cgf(ex)
    top, bottom = fig.axes
    assert len(top.get_lines()) == 3 and len(bottom.get_lines()) == 3  # ψ and one parabola per T; the differences and 0
    assert [t.get_text().split(":")[0] for t in bottom.get_legend().get_texts()] == ["$T$ = 6", "$T$ = 10"]
    plt.close(fig)
    fig = figures.latent.plot_act(acts, weights=(10.0,))
    (ax,) = fig.axes
    zero_off = int(acts[10.0].eval.zero_labels[0]) < 0
    assert ax.get_title().endswith("off-support" if zero_off else f"mode {int(acts[10.0].eval.zero_labels[0])}")
    thick = [line for line in ax.get_lines() if line.get_linewidth() == 3]  # the chunk ACT executes, z = 0
    assert len(thick) == 1 and (thick[0].get_color() == OFF_SUPPORT_COLOR) == zero_off
    plt.close(fig)
    rows = latent.act_summary(acts)
    assert [r["beta"] for r in rows] == [0.05, 10.0] and rows[0]["mean_kl"] > rows[1]["mean_kl"]
