"""Chapter 5's claims, checked on the experiment functions the notebook calls (fast profile)."""
import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from mbc_lib import figures, theory
from mbc_lib.experiments import transport
from mbc_lib.figures.common import OFF_SUPPORT_COLOR


@pytest.fixture(scope="module")
def stairs():
    return transport.staircase_table(widths=(2.0, 1.0, 0.4, 0.1, 0.05), K=5, radius=0.25, tau=0.05)


def test_staircases_reproduce_the_appendix_numerical_check(stairs):
    # the book's appendix (app-transport-check): L = 1.86, 2.07, 4.69, 18.75, 37.5; N = 5; 1+⌊2rL⌋ = 8, 9, 19, 74, 147;
    # the paper's form one more
    assert [round(r["L"], 2) for r in stairs] == [1.86, 2.07, 4.69, 18.75, 37.5]
    assert [r["bound_tight"] for r in stairs] == [8, 9, 19, 74, 147]
    assert [r["bound_paper"] for r in stairs] == [9, 10, 20, 75, 148]
    assert [r["min_mass"] for r in stairs] == pytest.approx([0.102, 0.098, 0.156, 0.189, 0.195], abs=1e-3)
    assert [r["bridge"] for r in stairs] == pytest.approx([0.426, 0.365, 0.150, 0.0375, 0.0187], abs=1e-3)


def test_length_form_is_exact_and_every_bound_holds(stairs):
    for r in stairs:
        assert r["length"] == pytest.approx(4.0, abs=1e-3)  # len = (K − 1)Δc
        assert r["N_tau"] == r["bound_length"] == 5 <= r["bound_tight"] < r["bound_paper"]


def test_sharper_maps_leave_less_bridge_mass_and_stay_above_the_floor(stairs):
    bridge = [r["bridge"] for r in stairs]
    assert bridge == sorted(bridge, reverse=True)  # widths decrease, L increases, bridge decreases
    for r in stairs:
        assert r["bridge"] >= r["bridge_floor"] > 0
    # bridge ≈ 0.70/L for sharp maps, close to the 1-D prediction 0.67/L
    for r in stairs[2:]:
        assert r["bridge"] * r["L"] == pytest.approx(0.70, abs=0.02)
        assert r["bridge_1d"] * r["L"] == pytest.approx(0.667, abs=1e-3)


def test_the_floor_form_is_attained_by_a_linear_map():
    rows = transport.linear_tightness(Ls=(0.3, 0.6, 1.0, 2.0, 3.0))
    assert [r["N_tau"] for r in rows] == [2, 3, 4, 8, 12]
    assert all(r["N_tau"] == r["bound_tight"] == r["bound_paper"] - 1 for r in rows)


def test_the_papers_formula_is_false_in_two_dimensions():
    rows = transport.lattice_counterexample(Ls=(1.0, 2.0, 4.0), tau=0.05)
    assert [r["hit"] for r in rows] == [21, 69, 293]
    assert [r["paper"] for r in rows] == [5, 9, 17]
    assert [r["paper_chi"] for r in rows] == [6, 11, 21]
    for r in rows:
        assert r["hit"] > r["paper_chi"] > r["paper"]  # the counterexample exceeds both forms
        assert r["hit"] <= r["packing"] == math.floor((1 + 2 * r["R_tau"] * r["L"]) ** 2)  # packing holds
        assert r["path_hit"] <= r["path_bound"]  # path bound holds along a diameter
    # the exact count agrees with the library's empirical N^τ (modes as small balls on the grid)
    from mbc_lib.diagnostics import empirical_mode_count

    grid = np.stack(np.meshgrid(np.arange(-4, 5), np.arange(-4, 5)), -1).reshape(-1, 2).astype(float)
    count = empirical_mode_count(lambda e: e, 2, 0.05, grid, 0.3, n_points=60_000, seed=0)
    assert count.n_hit == len([z for z in grid if np.linalg.norm(z) <= rows[0]["R_tau"] + 0.3])


@pytest.fixture(scope="module")
def cells():
    return transport.mass_counterexample(dim=6, n=400_000, seed=0)


def test_six_cells_each_carry_more_than_tau(cells):
    from scipy.integrate import quad

    assert cells["separation"] == pytest.approx(1.0) and cells["L_over_delta"] == pytest.approx(1.0)
    # the cells are disjoint: their masses sum to at most 1 (here to about 6 × 0.0585)
    assert cells["mass"].sum() <= 1 and cells["counts"].sum() <= cells["n"]
    exact = quad(lambda x: norm.pdf(x) * norm.cdf(x - 1 / math.sqrt(2)) ** 5, -np.inf, np.inf)[0]
    assert cells["exact"] == pytest.approx(exact) and exact == pytest.approx(0.0585, abs=5e-4)
    # by symmetry every cell has the same mass: each estimate is close to it, within its interval
    for p, lo, hi in zip(cells["mass"], cells["low"], cells["high"]):
        assert lo <= p <= hi and abs(p - exact) < 4 * math.sqrt(exact * (1 - exact) / cells["n"])
        assert lo > cells["tau"] == 0.05  # each mode gets mass above τ ...
    assert cells["pooled_low"] <= exact <= cells["pooled_high"]
    assert cells["heavy"] == 6 > cells["paper"] == 5  # ... where the paper's 1 + ⌈2rL/Δ⌉ allows 5
    assert cells["min_distance"] >= cells["separation"]  # sampled points of different cells are ≥ 1 apart
    # the dimension-free isoperimetric count is not contradicted
    assert cells["isoperimetric"] >= cells["heavy"]


def test_mass_counterexample_is_seeded_and_checks_its_arguments():
    a = transport.mass_counterexample(n=20_000, seed=3)
    b = transport.mass_counterexample(n=20_000, seed=3)
    assert np.array_equal(a["counts"], b["counts"])
    # a wider margin keeps the cells further apart, with less mass (and L = Δ/(√2·margin))
    wide = transport.mass_counterexample(n=20_000, margin=1.0, seed=0)
    assert wide["separation"] == pytest.approx(math.sqrt(2)) and wide["pooled"] < a["pooled"]
    assert wide["min_distance"] >= wide["separation"]
    with pytest.raises(ValueError):
        transport.mass_counterexample(dim=1)
    with pytest.raises(ValueError):
        transport.mass_counterexample(n=0)


def test_clipped_linear_map_attains_the_floor_and_smooth_maps_do_not_beat_it():
    rows = transport.isoperimetry_check(ratios=(0.5, 1.0, 2.0), ms=(0.05, 0.15), kappas=(1.0, 4.0), dim=3, n=200_000)
    extremal = [r for r in rows if r["kind"] == "extremal"]
    assert len(extremal) >= 6
    for r in extremal:
        se = math.sqrt(r["floor"] * (1 - r["floor"]) / 200_000)
        assert abs(r["bridge"] - r["floor"]) < 5 * se + 1e-4
    smooth = [r for r in rows if r["kind"] == "smooth"]
    for r, kappa in zip(smooth, (1.0, 4.0)):
        assert r["bridge"] > r["floor"]
        assert r["L"] == pytest.approx(2.0 * kappa / 4, rel=1e-3)  # measured by power iteration: Δc·κ/4
    # chapter 5's numbers at Δ/L = 1
    assert theory.bridge_mass_bound(1.0, 1.0, 0.05) == pytest.approx(0.2095, abs=1e-4)
    assert theory.bridge_mass_bound(1.0, 1.0, 0.30) == pytest.approx(0.3828, abs=1e-4)


def test_multi_mode_floor():
    # two balanced modes: the K-mode floor equals the balanced floor 2Φ(Δ/2L) − 1 at p = 1/2 ...
    assert theory.multi_mode_bridge_floor([0.5, 0.5], 1.0, 2.0) == pytest.approx(2 * norm.cdf(0.25) - 1)
    # ... and for two modes bridge_floor takes the larger of it and the two-mode floor (chapter 5, theorem part (2))
    p = [0.3, 0.3]
    assert theory.bridge_floor(p, 1.0, 1.0) == pytest.approx(
        max(theory.bridge_mass_bound(1.0, 1.0, 0.3), theory.multi_mode_bridge_floor(p, 1.0, 1.0)))
    # an L too small to carry the masses (m > Φ(−Δ/2L)) is flagged
    assert math.isnan(theory.bridge_floor([0.45, 0.45], 1.0, 0.5))
    assert theory.bridge_floor([1.0], 1.0, 1.0) == 0.0
    # the floor shrinks as the map gets sharper, and grows with K at fixed L
    assert theory.multi_mode_bridge_floor([0.2] * 5, 1.0, 10.0) < theory.multi_mode_bridge_floor([0.2] * 5, 1.0, 2.0)
    assert theory.multi_mode_bridge_floor([0.25] * 4, 1.0, 4.0) > theory.multi_mode_bridge_floor([0.5] * 2, 1.0, 4.0)
    with pytest.raises(ValueError):
        theory.multi_mode_bridge_floor([0.7, 0.7], 1.0, 1.0)


@pytest.fixture(scope="module")
def flow_map():
    return transport.trained_map("flow", K=3, delta=2.0, sigma=0.1, seed=0, profile="fast")


def test_trained_flow_map_is_a_staircase_within_the_bounds(flow_map):
    st = flow_map.stats
    assert st.n_hit == 3 <= st.bound_length <= st.bound_tight <= st.bound_paper
    assert st.bridge >= theory.bridge_floor(st.mass, flow_map.gap, st.L) > 0
    assert st.mass.min() > 0.15  # the three modes carry mass
    # in 1-D an ODE flow is increasing (trajectories cannot cross); Euler with 10 steps keeps that here
    assert np.all(np.diff(st.image[:, 0]) >= -1e-4)


def test_one_euler_step_is_regression(flow_map):
    # chapter 5: one step of the flow-matching optimum returns E[a|s] — here the middle branch
    obs = torch.zeros(200, 1)
    eps = torch.tensor(norm.ppf((np.arange(200) + 0.5) / 200), dtype=torch.float32).reshape(200, 1, 1)  # N(0,1) quantiles
    with torch.no_grad():
        a = flow_map.policy.transport(obs, eps, steps=1)
    labels = flow_map.task.assign(obs, a)
    assert (labels == 1).float().mean() > 0.85  # most of the base mass lands on the mean, the middle mode
    assert float(a.std()) < 0.2 * flow_map.delta_c  # the one-step map is nearly constant
    with torch.no_grad():
        sharp = flow_map.policy.transport(obs, eps, steps=10)
    assert float(sharp.std()) > 3 * float(a.std())  # with 10 steps it spreads over all three branches


def test_bad_arguments():
    with pytest.raises(ValueError, match="family"):
        transport.trained_map("regression", profile="fast")
    with pytest.raises(ValueError):
        transport.staircase(0.0)


def test_figures_show_the_counts_and_the_bridge(stairs, flow_map):
    import matplotlib.pyplot as plt
    from matplotlib.colors import same_color

    rows = transport.lattice_counterexample(Ls=(1.0, 2.0), tau=0.05)
    fig = figures.transport.plot_counterexample(rows)
    for ax, r in zip(fig.axes, rows):  # every mode G(C) hits is drawn, and the title says how many
        assert ax.get_title().startswith(f"$G = {r['L']:g}\\cdot\\mathrm{{Id}}$: {r['hit']} modes hit")
        (hit,) = [c for c in ax.collections if c.get_label() == f"hit: {r['hit']}"]
        assert len(hit.get_offsets()) == r["hit"]
    plt.close(fig)
    fig = figures.transport.plot_staircase_check(stairs)
    counts, bridge = fig.axes
    (measured,) = [line for line in counts.get_lines() if line.get_label() == r"measured $N^\tau$"]
    assert list(measured.get_ydata()) == [r["N_tau"] for r in stairs] == [5] * len(stairs)
    (b,) = [line for line in bridge.get_lines() if line.get_label() == "measured bridge mass"]
    assert same_color(b.get_color(), OFF_SUPPORT_COLOR) and np.allclose(b.get_ydata(), [r["bridge"] for r in stairs])
    plt.close(fig)
    fig = figures.transport.plot_trained_maps([flow_map])
    (ax,) = fig.axes
    st = flow_map.stats
    assert f"$N^\\tau$ = {st.n_hit}" in ax.get_title() and f"bridge $b$ = {st.bridge:.3f}" in ax.get_title()
    off = [c for c in ax.collections if c.get_label() == "off-support"]
    assert len(off) == (1 if (st.labels[np.abs(st.eps) <= 3.5] < 0).any() else 0)
    assert all(same_color(c.get_facecolor()[0], OFF_SUPPORT_COLOR) for c in off)
    plt.close(fig)
