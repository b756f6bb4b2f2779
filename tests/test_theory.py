"""mbc_lib.theory against independent computations and the numbers of the book's appendix."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, optimize
from scipy.stats import entropy as scipy_entropy
from scipy.stats import norm

from mbc_lib import theory as th


# ---------------------------------------------------------------------------------------
# Fano bound (app-fano)
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "weights, rho",
    [([0.5, 0.5], 0.034), ([0.2, 0.3, 0.5], 0.1), ([0.25] * 4, 0.3), ([0.7, 0.1, 0.1, 0.1], 0.05), ([0.9, 0.1], 0.0)],
)
def test_fano_bound_matches_an_independent_computation(weights, rho):
    K = len(weights)
    # in bits with scipy, converted to nats: H(π) − h(ρ) − ρ log(K−1)
    bits = scipy_entropy(weights, base=2) - scipy_entropy([rho, 1 - rho], base=2) - rho * math.log2(max(K - 1, 1))
    assert th.fano_bound(weights, rho) == pytest.approx(bits * math.log(2), abs=1e-12)


def test_fano_bound_reproduces_theory_table():
    # the table of app-collapse-check: (P_e, B(P_e)) for K = 2 balanced modes
    for rho, bound in [(0.034, 0.544), (0.072, 0.435), (0.134, 0.299), (0.251, 0.130), (0.40, 0.020), (0.50, 0.0)]:
        assert th.fano_bound([0.5, 0.5], rho) == pytest.approx(bound, abs=1.5e-3)


def test_fano_bound_edge_cases_and_errors():
    assert th.fano_bound([1.0], 0.0) == 0.0
    assert th.fano_bound([0.25] * 4, 0.0) == pytest.approx(math.log(4))
    assert th.fano_bound([0.25] * 4, 0.75) == pytest.approx(0.0, abs=1e-12)  # chance-level identifier
    assert th.fano_bound([[0.5, 0.5], [1.0, 0.0]], 0.0) == pytest.approx(math.log(2) / 2)  # E_s H(π(s))
    with pytest.raises(ValueError, match="rho"):
        th.fano_bound([0.5, 0.5], 0.6)
    with pytest.raises(ValueError, match="rho"):
        th.fano_bound([1.0], 0.1)
    with pytest.raises(ValueError, match="sum to 1"):
        th.fano_bound([0.5, 0.4], 0.1)


# ---------------------------------------------------------------------------------------
# collapse thresholds (app-collapse)
# ---------------------------------------------------------------------------------------
def test_critical_beta_theory_example_and_hard_code_heuristic():
    assert th.critical_beta_equal_spacing(2, 4.0, 1.0, 1.0) == pytest.approx(5.0)
    assert th.critical_beta([-2.0, 2.0], [0.5, 0.5], 1.0) == pytest.approx(5.0, rel=1e-6)
    assert th.beta_hard([-2.0, 2.0], [0.5, 0.5], 1.0) == pytest.approx(16 / (8 * math.log(2)))
    assert th.beta_hard([-2.0, 2.0], [0.5, 0.5], 1.0) == pytest.approx(2.885, abs=1e-3)
    assert th.beta_hard([0.0], [1.0], 1.0) == math.inf


@pytest.mark.parametrize("K", [2, 3, 4, 5, 6, 7, 8])
def test_equal_spacing_is_strictly_subgaussian(K):
    delta, sigma, sigma_d = 1.3, 0.5, 0.8
    centers = np.arange(K) * delta
    closed = th.critical_beta_equal_spacing(K, delta, sigma, sigma_d)
    assert th.critical_beta(centers, np.full(K, 1 / K), sigma, scale=sigma_d) == pytest.approx(closed, rel=1e-6)
    assert th.local_critical_beta(centers, np.full(K, 1 / K), sigma, scale=sigma_d) == pytest.approx(closed, rel=1e-9)
    # app-beta-hard: β*/β_hard = 2 log K (1 + σ²/V_B) for equal weights
    vb = delta**2 * (K**2 - 1) / 12
    ratio = closed / th.beta_hard(centers, np.full(K, 1 / K), sigma, scale=sigma_d)
    assert ratio == pytest.approx(2 * math.log(K) * (1 + sigma**2 / vb), rel=1e-6)
    assert ratio > 1.38


@pytest.mark.parametrize("p", [0.05, 0.2, 0.35, 0.45])
def test_variance_proxy_of_two_unequal_modes(p):
    delta, sigma = 4.0, 0.7
    closed = sigma**2 + delta**2 * (1 - 2 * p) / (2 * math.log((1 - p) / p))
    v = th.subgaussian_variance_proxy([0.0, delta], [1 - p, p], sigma)
    assert v == pytest.approx(closed, rel=1e-6)
    variance = sigma**2 + delta**2 * p * (1 - p)
    assert v > variance  # unequal weights: v′ > Var, the transition is first order


def test_variance_proxy_in_several_dimensions_dominates_directions():
    centers = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    w = np.array([0.2, 0.3, 0.5])
    v = th.subgaussian_variance_proxy(centers, w, 0.3)
    # any fixed direction u and λ gives a lower bound 2ψ_u(λ)/λ²; a coarse brute force never beats v′
    c = centers - w @ centers
    best = 0.0
    for angle in np.linspace(0, np.pi, 181):
        u = np.array([np.cos(angle), np.sin(angle)])
        for lam in np.concatenate([-np.geomspace(1e-2, 20, 120), np.geomspace(1e-2, 20, 120)]):
            best = max(best, 2 * math.log(w @ np.exp(lam * c @ u)) / lam**2)
    assert best + 0.09 <= v + 1e-9 <= best + 0.09 + 2e-3  # σ² = .09 on top; brute force within 2e-3
    assert v >= np.linalg.eigvalsh(c.T @ (w[:, None] * c)).max() + 0.09


def _lambda_bruteforce(T, centers, weights, sigma, loss):
    """sup_y log E exp{[d(A, y_P) − d(A, y)]/T} by quadrature on a y grid (1-D)."""
    centers, weights = np.asarray(centers, float), np.asarray(weights, float)
    dens = lambda a: weights @ norm.pdf((a - centers) / sigma) / sigma  # noqa: E731
    if loss == "l2":
        yp, d = weights @ centers, (lambda a, y: (a - y) ** 2)
    else:
        yp = optimize.brentq(lambda m: weights @ norm.cdf((m - centers) / sigma) - 0.5, -20, 20, xtol=1e-14)
        d = lambda a, y: abs(a - y)  # noqa: E731
    lo, hi = centers.min() - 10 * sigma, centers.max() + 10 * sigma
    best = 0.0
    for y in np.linspace(centers.min() - 2 * sigma, centers.max() + 2 * sigma, 161):
        val = integrate.quad(lambda a: dens(a) * math.exp((d(a, yp) - d(a, y)) / T), lo, hi,
                             points=sorted({yp, y}), limit=200, epsabs=1e-13)[0]
        best = max(best, math.log(val))
    return best


@pytest.mark.parametrize("loss", ["l2", "l1"])
def test_collapse_criterion_matches_quadrature_and_switches_at_beta_star(loss):
    centers, weights, sigma = [0.0, 4.0], [0.8, 0.2], 1.0
    beta_star = th.critical_beta(centers, weights, sigma, loss)
    c = 2.0 if loss == "l2" else 1.0  # scale 1: c = 2σ_d² (L2) or b (L1)
    below = th.collapse_criterion(0.9 * c * beta_star, centers, weights, sigma, loss)
    assert below.value > 1e-3 and not below.collapses
    assert below.value == pytest.approx(_lambda_bruteforce(0.9 * c * beta_star, centers, weights, sigma, loss), abs=2e-4)
    above = th.collapse_criterion(1.02 * c * beta_star, centers, weights, sigma, loss)
    assert above.collapses
    # the rare code decodes near the light mode, far from the collapsed output
    assert abs(below.y_star[0] - 4.0) < abs(below.y_collapsed[0] - 4.0)


def test_l2_criterion_is_infinite_below_twice_the_noise_variance():
    assert th.collapse_criterion(1.9, [-2.0, 2.0], [0.5, 0.5], 1.0).value == math.inf


def test_l1_threshold_local_form_and_median():
    # 1-D local threshold 1/(2 f(median)); for K = 2 symmetric modes the median sits in the gap
    centers, weights, sigma = np.array([-2.0, 2.0]), np.array([0.5, 0.5]), 1.0
    assert th.collapse_point(centers, weights, sigma, "l1")[0] == pytest.approx(0.0, abs=1e-10)
    f0 = weights @ norm.pdf((0 - centers) / sigma) / sigma
    assert th.local_critical_beta(centers, weights, sigma, "l1") == pytest.approx(1 / (2 * f0), rel=1e-9)
    # exact ≥ local; strictly for unequal weights (first-order transition)
    assert th.critical_beta(centers, weights, sigma, "l1") >= th.local_critical_beta(centers, weights, sigma, "l1") - 1e-9
    assert th.critical_beta([0, 4], [0.8, 0.2], 1.0, "l1") > 1.3 * th.local_critical_beta([0, 4], [0.8, 0.2], 1.0, "l1")


def test_l1_threshold_separates_over_independent_coordinates():
    # coordinate 2 carries no mode information, so T* = max(T*_1, T*_2) and T*_2 = 1/(2 φ(0)) is smaller
    c2 = np.array([[-2.0, 0.0], [2.0, 0.0]])
    assert th.critical_beta(c2, [0.5, 0.5], 1.0, "l1") == pytest.approx(th.critical_beta([-2.0, 2.0], [0.5, 0.5], 1.0, "l1"), rel=1e-6)


def test_act_loss_scaling():
    s = th.act_loss_scaling(chunk_size=100, action_dim=14, kl_weight=10.0)
    assert (s.n, s.scale, s.beta, s.temperature) == (1400, 1400.0, 10.0, 14000.0)
    l2 = th.act_loss_scaling(8, 2, kl_weight=1.0, loss="l2")
    assert 2 * l2.scale**2 == pytest.approx(16.0)  # c = 2σ_d² = n for a mean-reduced MSE
    # β* on the ACT scale is β* on the summed-L1 scale divided by n
    centers, w = [-2.0, 2.0], [0.5, 0.5]
    assert th.critical_beta(centers, w, 1.0, "l1", scale=s.scale) == pytest.approx(
        th.critical_beta(centers, w, 1.0, "l1") / 1400, rel=1e-9)
    with pytest.raises(ValueError):
        th.act_loss_scaling(0, 14)


# ---------------------------------------------------------------------------------------
# brute force: Blahut–Arimoto (app-collapse-check)
# ---------------------------------------------------------------------------------------
def test_blahut_arimoto_reproduces_theory_table():
    # app-collapse-check: K = 2, Δ_c = 4, σ = σ_d = 1; (β, I, P_e)
    table = [(1, 0.633, 0.034), (2, 0.514, 0.072), (2.96, 0.360, 0.134), (4.10, 0.159, 0.251), (5.24, 0.0, 0.50)]
    for beta, rate, rho in table:
        pt = th.blahut_arimoto([-2.0, 2.0], [0.5, 0.5], 1.0, beta, n_grid=401, n_codes=16)
        assert pt.rate == pytest.approx(rate, abs=2e-3), beta
        assert pt.mode_error == pytest.approx(rho, abs=2e-3), beta
        # Fano's chain: I(A;Z) ≥ I(M;Z) ≥ B_ρ
        assert pt.rate >= th.fano_bound([0.5, 0.5], min(pt.mode_error, 0.5)) - 1e-9
    # between β_hard = 2.89 and β* = 5 the optimum keeps soft, partial mode information
    assert th.beta_hard([-2.0, 2.0], [0.5, 0.5], 1.0) < 2.96 and table[2][1] > 0.3


@pytest.mark.parametrize(
    "centers, weights, loss",
    [
        ([-2.0, 2.0], [0.5, 0.5], "l2"),  # continuous transition, β* = 5
        ([-1.5, 0.0, 1.5], [1 / 3] * 3, "l2"),  # K = 3, β* = 2.5
        ([0.0, 4.0], [0.8, 0.2], "l2"),  # first order: β* = 4.46 > local 3.56
        ([0.0, 4.0], [0.8, 0.2], "l1"),  # L1, first order: β* = 2.30 > local 1.65
    ],
)
def test_information_vanishes_at_predicted_beta_star(centers, weights, loss):
    beta_star = th.critical_beta(centers, weights, 1.0, loss)
    step = 0.05 * beta_star  # the β grid
    below = th.blahut_arimoto(centers, weights, 1.0, beta_star - step, loss=loss, n_grid=401, n_codes=16)
    above = th.blahut_arimoto(centers, weights, 1.0, beta_star + step, loss=loss, n_grid=401, n_codes=16)
    assert below.rate > 5e-3
    assert above.rate < 1e-4
    local = th.local_critical_beta(centers, weights, 1.0, loss)
    if local < 0.9 * beta_star:  # the local (second-order) estimate would have predicted collapse here
        assert beta_star - step > local


# ---------------------------------------------------------------------------------------
# the optimum's gain over collapse, the rate crossing, the nearest-label code (chapter 3)
# ---------------------------------------------------------------------------------------
def test_collapse_gain_is_zero_from_beta_star_on_and_positive_below():
    c, w = [-2.0, 2.0], [0.5, 0.5]  # β* = 5, J_col = Var A / (2σ_d²) = 5/2
    assert th.collapse_gain(c, w, 1.0, 5.0) == 0.0 and th.collapse_gain(c, w, 1.0, 6.0) == 0.0
    betas = [0.05, 1.0, 2.0, 3.0, 4.0, 4.5]
    gains = [th.collapse_gain(c, w, 1.0, b, n_codes=8, n_grid=301) for b in betas]
    assert all(g > 0 for g in gains) and all(a > b for a, b in zip(gains, gains[1:]))  # positive, falling
    assert gains[0] == pytest.approx(2.5, abs=0.25)  # a nearly free code removes almost all of J_col
    for b, g in zip(betas, gains):
        # at least what coding the nearest mode gains (V_C ≥ V_B = 4 here), at most β Λ(T) (Donsker–Varadhan)
        assert g >= 4 / 2 - b * math.log(2) - 1e-6
        if 2 * b > 2.0:  # Λ is finite above T = 2σ²
            assert g <= b * th.collapse_criterion(2 * b, c, w, 1.0).value + 1e-6
    # a continuous transition: near β* the gain vanishes like (β* − β)²
    g90, g95 = (th.collapse_gain(c, w, 1.0, r * 5.0, n_codes=4, n_grid=201) for r in (0.9, 0.95))
    assert 3.0 < g90 / g95 < 5.0


def test_line_solver_is_the_one_dimensional_toy_for_modes_on_an_axis_or_a_diagonal():
    w = [0.5, 0.5]
    for beta in (2.0, 4.0):  # L2 (β ≥ σ²/σ_d²: the noise across the line is not worth coding)
        ref = th.collapse_gain([-2.0, 2.0], w, 1.0, beta)
        on_axis = th.collapse_gain([[-2.0, 0.0], [2.0, 0.0]], w, 1.0, beta)
        diagonal = th.collapse_gain(np.array([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]) * 2 / math.sqrt(3), w, 1.0, beta)
        assert on_axis == pytest.approx(ref, rel=1e-4) and diagonal == pytest.approx(ref, rel=1e-4)
    # L1 separates over coordinates: an independent noise coordinate changes nothing
    ref = th.collapse_gain([-2.0, 2.0], w, 1.0, 2.0, "l1", 2.0)
    assert th.collapse_gain([[-2.0, 0.0], [2.0, 0.0]], w, 1.0, 2.0, "l1", 2.0) == pytest.approx(ref, rel=2e-2)
    pt = th.blahut_arimoto_line([[-2.0, 0.0], [2.0, 0.0]], w, 1.0, 2.0)
    assert pt.codes.shape == (4, 2) and 0 <= pt.mode_error <= 0.5
    with pytest.raises(ValueError, match="line"):
        th.blahut_arimoto_line([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], [1 / 3] * 3, 1.0, 1.0)


def test_l1_line_gain_nearly_attains_the_upper_bound_on_a_far_apart_fork():
    # two branches Δ = 3 apart along a ramp in R^8, σ = 0.07 (chapter 3's normalised fork); ACT's T = β = 10
    v = np.arange(1, 9) / np.linalg.norm(np.arange(1, 9))
    centers, w, sigma, beta = np.stack([-1.5 * v, 1.5 * v]), [0.5, 0.5], 0.07, 10.0
    gain = th.collapse_gain(centers, w, sigma, beta, "l1", 8.0)  # a feasible code: lower bound on the optimum's gain
    upper = beta * th.collapse_criterion(8.0 * beta, centers, w, sigma, "l1").value  # J ≥ J_col − βΛ(T)
    assert 0 < gain and 0.9 * upper < gain < 1.02 * upper  # (Λ itself comes from a numerical supremum)


def test_optimal_rate_crosses_ln2_below_beta_one():
    c, w = [-2.0, 2.0], [0.5, 0.5]
    kw = dict(n_codes=8, n_grid=201, n_init=1, max_iter=1000, tol=1e-8)
    beta = th.beta_at_rate(c, w, 1.0, math.log(2), bracket=(0.5, 1.0), xtol=1e-3, **kw)
    assert 0.8 < beta < 1.0  # at β = 1 = σ²/σ_d² the optimal rate is 0.633 < ln 2
    assert th.blahut_arimoto(c, w, 1.0, beta, **kw).rate == pytest.approx(math.log(2), abs=5e-3)
    with pytest.raises(ValueError, match="cross"):
        th.beta_at_rate(c, w, 1.0, math.log(2), bracket=(1.0, 4.0), **kw)
    with pytest.raises(ValueError, match="bracket"):
        th.beta_at_rate(c, w, 1.0, 0.1, loss="l1")


def test_nearest_label_code_and_the_hard_code_ratio():
    # equal weights ±2, σ = 1: cells A > 0 and A < 0, V_C = (E|A|)² with A ~ N(2, 1), H(C) = ln 2
    e_abs = math.sqrt(2 / math.pi) * math.exp(-2) + 2 * (1 - 2 * norm.cdf(-2))
    assert th.beta_nearest_label([-2.0, 2.0], [0.5, 0.5], 1.0) == pytest.approx(e_abs**2 / (2 * math.log(2)), rel=1e-9)
    for w in ([0.5, 0.5], [0.7, 0.3], [0.9, 0.1]):
        label = th.beta_nearest_label([0.0, 4.0], w, 1.0)
        assert label <= th.critical_beta([0.0, 4.0], w, 1.0)  # a realisable code: collapse is not optimal below it
        assert th.beta_nearest_label([0.0, 4.0], w, 1e-3) == pytest.approx(th.beta_hard([0.0, 4.0], w, 0.0), rel=1e-6)
    # with overlapping modes it can lie on either side of β_hard
    assert th.beta_nearest_label([0.0, 4.0], [0.5, 0.5], 1.0) > th.beta_hard([0.0, 4.0], [0.5, 0.5], 1.0)
    assert th.beta_nearest_label([0.0, 4.0], [0.9, 0.1], 1.0) < th.beta_hard([0.0, 4.0], [0.9, 0.1], 1.0)
    # β*/β_hard (σ → 0) for weights (1 − p, p): H(π)(1 − 2p) / (p(1 − p) log((1 − p)/p)); 2 ln 2 at p = 1/2, → 1 as p → 0
    ratios = []
    for p in (0.5, 0.1, 0.01, 1e-6):
        r = th.critical_beta([0.0, 4.0], [1 - p, p], 0.0) / th.beta_hard([0.0, 4.0], [1 - p, p], 0.0)
        ratios.append(r)
        if p < 0.5:
            H = th.entropy([1 - p, p])
            assert r == pytest.approx(H * (1 - 2 * p) / (p * (1 - p) * math.log((1 - p) / p)), rel=1e-5)
    assert ratios[0] == pytest.approx(2 * math.log(2), rel=1e-6) and ratios[1] == pytest.approx(1.315, abs=1e-3)
    assert all(a > b > 1 for a, b in zip(ratios, ratios[1:])) and ratios[-1] < 1.1

# ---------------------------------------------------------------------------------------
# counting bounds (app-counting)
# ---------------------------------------------------------------------------------------
def test_mode_count_bound_forms_match_theory_tables():
    Ls = [1.86, 2.07, 4.69, 18.75, 37.5]  # the staircases of app-transport-check
    assert [th.mode_count_bound(L, 1.0, 0.05) for L in Ls] == [8, 9, 19, 74, 147]
    assert [th.mode_count_bound(L, 1.0, 0.05, form="paper") for L in Ls] == [9, 10, 20, 75, 148]
    assert [th.mode_count_bound(L, 1.0, 0.05) for L in (0.3, 0.6, 1, 2, 3)] == [2, 3, 4, 8, 12]
    # the 2-D counterexample: packing holds where the paper's formula fails
    packing = [th.mode_count_bound(L, 1.0, 0.05, dim=2) for L in (1, 2, 4)]
    assert packing == [th.mode_count_bound(L, 1.0, 0.05, dim=2, form="packing") for L in (1, 2, 4)]
    assert all(p >= n for p, n in zip(packing, (21, 69, 293)))
    assert th.mode_count_bound(2.0, 1.0, 0.05, dim=1, form="packing") == 1 + math.floor(2 * 1.959964 * 2.0)


@pytest.mark.parametrize("form", ["tight", "paper"])
def test_mode_count_bound_refuses_the_false_formula_in_two_dimensions(form):
    with pytest.raises(ValueError, match="false"):
        th.mode_count_bound(1.0, 1.0, 0.05, dim=2, form=form)


def test_path_bound_and_reach():
    assert th.path_mode_count_bound(4.0, 1.0) == 5  # app-transport-check: len = 4, Δ = 1
    assert th.path_mode_count_bound(3.99, 1.0) == 4
    assert th.min_lipschitz_to_reach(2, 1.0, 0.05) == pytest.approx(0.255, abs=1e-3)
    assert th.mode_count_bound(th.min_lipschitz_to_reach(5, 1.0, 0.05) * 1.0001, 1.0, 0.05) == 5


# ---------------------------------------------------------------------------------------
# isoperimetry (app-isoperimetry)
# ---------------------------------------------------------------------------------------
def test_isoperimetric_numbers_from_theory():
    assert th.bridge_mass_bound(1.0, 1.0, 0.05) == pytest.approx(0.2095, abs=1e-4)
    assert th.bridge_mass_bound(1.0, 1.0, 0.30) == pytest.approx(0.3828, abs=1e-4)
    assert th.min_lipschitz_two_modes(1.0, 0.475) == pytest.approx(7.97, abs=0.01)
    assert th.min_lipschitz_two_modes(1.0, 0.495) == pytest.approx(39.9, abs=0.05)
    assert th.min_lipschitz_two_modes(1.0, 0.5) == math.inf
    # balanced case (iii) is (ii) at m = Φ(−Δ/2L): the two modes exactly share what is left
    L, delta = 3.0, 1.0
    m = norm.cdf(-delta / (2 * L))
    assert th.balanced_bridge_mass_bound(L, delta) == pytest.approx(th.bridge_mass_bound(L, delta, m), abs=1e-12)
    assert th.balanced_bridge_mass_bound(L, delta) == pytest.approx(2 * norm.cdf(delta / (2 * L)) - 1)


def test_max_modes_with_mass_and_implied_lipschitz():
    # as Δ/L → 0 the bound tends to 1/m from below; a 1-Lipschitz map keeps at most 7 modes of mass 5% at Δ = 1
    assert th.max_modes_with_mass(1e6, 1.0, 0.1) == 9
    assert th.max_modes_with_mass(1e6, 1.0, 0.1001) == 9
    assert th.max_modes_with_mass(1.0, 1.0, 0.05) == 7
    # inverse of (ii): the L that makes the floor equal to b
    L, delta, m = 2.5, 1.0, 0.2
    b = th.bridge_mass_bound(L, delta, m)
    assert th.implied_min_lipschitz(b, m, delta) == pytest.approx(L, rel=1e-9)
    assert th.implied_min_lipschitz(0.0, m, delta) == math.inf


@pytest.mark.parametrize(
    "call",
    [
        lambda: th.bridge_mass_bound(1.0, 1.0, 0.4),  # m > Φ(−Δ/2L): infeasible premise
        lambda: th.bridge_mass_bound(0.0, 1.0, 0.1),
        lambda: th.bridge_mass_bound(1.0, -1.0, 0.1),
        lambda: th.mode_count_bound(-1.0, 1.0, 0.05),
        lambda: th.mode_count_bound(1.0, 0.0, 0.05),
        lambda: th.mode_count_bound(1.0, 1.0, 1.0),
        lambda: th.mode_count_bound(1.0, 1.0, 0.05, form="nope"),
        lambda: th.critical_beta([0.0, 1.0], [0.5, 0.5], -1.0),
        lambda: th.critical_beta([0.0, 1.0], [0.5, 0.6], 1.0),
        lambda: th.critical_beta([0.0, 1.0], [0.5, 0.5], 0.0, loss="l1"),
        lambda: th.critical_beta([0.0, 1.0], [0.5, 0.5], 1.0, loss="l3"),
        lambda: th.critical_beta_equal_spacing(2, 1.0, 1.0, 0.0),
        lambda: th.collapse_criterion(-1.0, [0.0, 1.0], [0.5, 0.5], 1.0),
        lambda: th.blahut_arimoto([0.0, 1.0], [0.5, 0.5], 1.0, beta=-1.0),
        lambda: th.min_lipschitz_two_modes(1.0, 0.7),
        lambda: th.implied_min_lipschitz(0.9, 0.2, 1.0),
    ],
)
def test_bad_inputs_raise_value_error(call):
    with pytest.raises(ValueError):
        call()
