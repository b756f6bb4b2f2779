"""Chapter 9's claims, checked on the experiment functions the notebook calls (small sizes, fixed seeds)."""
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest

from mbc_lib import diagnostics, experiments, figures, profiles, theory
from mbc_lib.experiments import cache
from mbc_lib.experiments import robot_modes as rm
from mbc_lib.figures.common import OFF_SUPPORT_COLOR, mode_color
from mbc_lib.profiles import budget


@pytest.fixture(scope="module")
def path_demos():
    return rm.collect("mbc/PathGaps-v0", 2, n_episodes=32, seed=0, chunk_len=8)


@pytest.fixture(scope="module")
def path_profile(path_demos):
    return rm.mode_profile(path_demos, H=8, steps=(0, 2, 8), n_query=3, k=24, threshold=0.3)


def test_gap_demos_have_two_modes_at_the_start_and_one_after_the_choice(path_profile):
    p = path_profile
    assert p.n_modes.shape == (3, 3) and p.index.shape == (3, 3, 24)
    # the start: both gaps, recovered exactly (clusters = expert labels), far apart
    assert np.all(p.n_modes[0] == 2) and np.all(p.n_expert[0] == 2) and np.all(p.purity[0] == 1.0)
    assert p.regime(0) == "separated" and np.all(p.separation[0] > 1.0) and np.all(p.ratio[0] > 1.0)
    # once the velocity shows the choice: one mode, although the expert could still switch
    assert np.all(p.n_modes[1:] == 1) and np.all(p.n_expert[1:] == 1)
    assert all(r == "unimodal" for row in p.regimes[1:] for r in row) and np.all(np.isinf(p.separation[1:]))
    assert np.all(p.expert_delta[1:] > 1.0)
    # β*(s): large where the data is bimodal, small (within-mode spread only) after the choice
    assert np.all(p.beta_star[0] > 5 * p.beta_star[1:].max())
    assert np.all(p.beta_local <= p.beta_star * (1 + 1e-6))  # the local threshold is a lower bound
    rows = p.rows()
    assert [r["step"] for r in rows] == [0, 2, 8] and rows[0]["regime"] == "separated" and math.isnan(rows[1]["separation"])


def test_expert_counterfactual_modes_at_the_start_follow_sqrt_h(path_demos):
    q = path_demos.dataset(8).obs.numpy()[:1]  # the first episode's start observation
    for H in (4, 8):
        centers, delta = rm.expert_separation(path_demos.env_id, path_demos.K, q, H)
        assert centers.shape == (1, 2, H, 2)
        assert delta[0] == pytest.approx(math.sqrt(H), rel=0.02)  # steering saturated at ±0.5 m/s


def test_critical_beta_from_clusters_matches_theory_on_known_modes():
    rng = np.random.default_rng(0)
    # two equal 1-D modes ±1 with noise σ: β* = (σ² + Δ_c²(K²−1)/12)/σ_d² = (σ² + 1)/σ_d²  (app-collapse-l2)
    x = np.concatenate([rng.normal(-1, 0.1, 400), rng.normal(1, 0.1, 400)])[:, None, None]
    labels = np.repeat([0, 1], 400)
    exact = theory.critical_beta_equal_spacing(2, 2.0, 0.1, 1.0)
    assert theory.critical_beta_from_clusters(x, labels, 1.0) == pytest.approx(exact, rel=0.05)
    # one mode: β* is the within-mode variance
    assert theory.critical_beta_from_clusters(x[:400], labels[:400], 1.0) == pytest.approx(0.01, rel=0.2)


def test_mode_regions_and_purity():
    chunks = np.concatenate([np.zeros((10, 2, 1)), np.full((10, 2, 1), 2.0)])  # two point modes √8 apart
    cl = diagnostics.cluster_modes(chunks, method="threshold", threshold=0.5)
    radii, gap = rm.mode_regions(cl, region=0.25)
    assert cl.n_modes == 2 and np.allclose(radii, 0.25 * math.sqrt(8)) and gap == pytest.approx(0.5 * math.sqrt(8))
    assert rm.purity(np.repeat([0, 1], 10), cl.labels) == 1.0
    assert rm.purity(np.repeat([0, 1], 10), np.zeros(20, int)) == 0.5  # merging two modes halves purity
    with pytest.raises(ValueError, match="equal length"):
        rm.purity(np.zeros(3, int), np.zeros(4, int))


def test_bad_input_raises_clear_errors(path_demos):
    with pytest.raises(ValueError, match="threshold"):
        rm.mode_profile(path_demos, H=8, steps=(0,), n_query=2, k=16, threshold=0.0)
    with pytest.raises(ValueError, match="at least one step"):
        rm.mode_profile(path_demos, H=8, steps=(), n_query=2, k=16, threshold=0.3)
    with pytest.raises(ValueError, match="longer than step"):
        rm.mode_profile(path_demos, H=8, steps=(10_000,), n_query=2, k=16, threshold=0.3)
    with pytest.raises(ValueError, match="k must be"):
        rm.mode_profile(path_demos, H=8, steps=(0,), n_query=2, k=1, threshold=0.3)
    with pytest.raises(ValueError, match="family"):
        rm.fit_policy("regression", path_demos.dataset(8), budget("robot_modes", "fast"))
    with pytest.raises(ValueError, match="unknown env id"):
        rm.collect("mbc/Nope-v0", 2, n_episodes=2)


def test_latent_and_transport_measurements_on_trained_policies(path_demos, path_profile):
    """A weak-β cvae carries the gap and a strong-β one collapses, as β*(s₀) predicts; the flow's metrics are sane."""
    b = {**budget("robot_modes", "fast"), "steps": 200, "n_samples": 64, "n_hole": 512, "n_jac": 4}
    data = path_demos.dataset(8)
    beta_star = float(np.median(path_profile.beta_star[0]))
    out = {}
    for ratio in (0.1, 3.0):
        pol, _ = rm.fit_policy("cvae", data, b, seed=0, progress=False, beta=ratio * beta_star, recon="l2")
        out[ratio], samples, labels = rm.measure_latent(pol, data, path_profile, b, ratio * beta_star, seed=0)
        assert samples.shape == (3, 64, 8, 2) and labels.shape == (3, 64)
    weak, strong = out[0.1], out[3.0]
    assert weak["predicted"] == "no collapse" and strong["predicted"] == "collapse"
    assert weak["mutual_information"] > 0.4 and strong["mean_kl"] < 0.02
    assert weak["off_support_prior"] > weak["off_support_posterior"]
    assert strong["off_support_prior"] > 0.9  # the collapsed decoder averages the gaps
    assert 0 <= weak["hole_0.1"] <= weak["hole_0.5"] <= 1
    pol, _ = rm.fit_policy("flow", data, b, seed=0, progress=False)
    m, samples, labels = rm.measure_transport(pol, path_profile, b, seed=0)
    assert samples.shape == (3, 64, 8, 2) and 0 <= m["bridge"] <= 1 and m["L_hat"] > 0 and m["gap"] > 0
    assert 0 <= m["floor"] <= 1


def test_run_keeps_the_result_and_stores_its_table(monkeypatch, tmp_path):
    monkeypatch.setenv("MBC_CACHE", str(tmp_path))
    small = {"fast": dict(n_episodes=24, chunk_len=4, Hs=(4,), time_steps=(0, 4), n_query=2, k=16, threshold=0.3,
                          steps=30, width=32, depth=1, batch_size=128, lr=3e-3, latent_dim=2,
                          beta_ratios=(0.1,), n_samples=32, n_hole=256, n_jac=2, n_eval=4)}
    monkeypatch.setitem(profiles.BUDGETS, "robot_modes", small)
    assert rm.diagnose(profile="fast", seed=0, progress=False) is not None and cache.load("robot_modes", "fast", 0) is None
    res = experiments.run("robot_modes", profile="fast", seed=0, use_cache=True, keep_result=True)
    assert isinstance(res, rm.RobotModes)
    rows = cache.load("robot_modes", "fast", 0)
    assert rows is not None and rows == cache._clean(rm.summary(res))
    tables = {r["table"] for r in rows}
    assert tables == {"demo modes", "policies"}
    assert {r["policy"] for r in rows if r["table"] == "policies"} == {"cvae β = 0.1·β*", "flow"}
    assert all(isinstance(v, (int, float, str)) or v is None for r in rows for v in r.values())
    assert res.reports["flow"].rollout.n_episodes == 4
    assert res.reports["flow"].attribution.n_episodes == 4  # every rollout attributed
    flow_row = next(r for r in rows if r.get("policy") == "flow")
    assert sum(flow_row[k] for k in flow_row if k.startswith("cause_")) == pytest.approx(1 - flow_row["success_rate"])
    fr = figures.robot_modes
    for fig in (fr.plot_profile(res), fr.plot_neighbourhood(res, "mbc/PushBins-v0", 4, 4), fr.plot_chunk_length(res),
                fr.plot_beta_star(res), fr.plot_policies(res)):
        assert fig.axes
        texts = [t.get_text() for ax in fig.axes for t in ax.texts + ax.get_xticklabels()
                 + (ax.get_legend().get_texts() if ax.get_legend() else [])] + [ax.get_title() for ax in fig.axes]
        assert not [t for t in texts if "\u0302" in t], "a combining hat renders as a plain letter: use mathtext"
        plt.close(fig)
    _check_what_the_figures_show(res)


def _check_what_the_figures_show(res):
    from matplotlib.colors import same_color

    fr = figures.robot_modes
    fig = fr.plot_profile(res)  # per task: modes per observation (top) and separation (bottom) against the step
    assert len(fig.axes) == 2 * len(rm.DEMO_TASKS)
    for j, (env_id, _K) in enumerate(rm.DEMO_TASKS):
        top = fig.axes[j]  # the first row of the 2 × tasks grid
        (k_hat,) = [line for line in top.get_lines() if line.get_label() == r"clusters $\hat K(s)$"]
        assert list(k_hat.get_xdata()) == list(res.steps)
        assert np.allclose(k_hat.get_ydata(), res.profile(env_id).n_modes.mean(1))
    plt.close(fig)
    fig = fr.plot_beta_star(res)  # one dashed line per trained cvae at its β
    cvaes = [r for r in res.reports.values() if r.family == "cvae"]
    dashed = [line for line in fig.axes[0].get_lines() if line.get_linestyle() == "--"]
    assert sorted(line.get_ydata()[0] for line in dashed) == sorted(r.metrics["beta"] for r in cvaes)
    plt.close(fig)
    fig = fr.plot_policies(res)  # the chunks at a start observation: off-support ones in red, the others in mode colours
    chunks = fig.axes[0].get_lines()
    labels = np.concatenate([r.labels[0][:60] for r in res.reports.values()])
    assert len(chunks) == len(labels)
    red = [same_color(line.get_color(), OFF_SUPPORT_COLOR) for line in chunks]
    assert sum(red) == int((labels < 0).sum())
    assert all(same_color(line.get_color(), mode_color(int(k))) for line, k in zip(chunks, labels))
    plt.close(fig)


def test_policies_figure_legends_sit_under_the_bars(monkeypatch, tmp_path):
    """The policies figure writes L̂ in mathtext and puts its bar panels' legends under the axes; with the five
    cvaes of the full profile its tick labels still do not collide."""
    monkeypatch.setenv("MBC_CACHE", str(tmp_path))
    small = {"fast": dict(n_episodes=24, chunk_len=4, Hs=(4,), time_steps=(0, 4), n_query=2, k=16, threshold=0.3,
                          steps=10, width=16, depth=1, batch_size=128, lr=3e-3, latent_dim=2,
                          beta_ratios=(0.03, 0.1, 0.3, 1.0, 3.0), n_samples=16, n_hole=64, n_jac=2, n_eval=2)}
    monkeypatch.setitem(profiles.BUDGETS, "robot_modes", small)
    res = rm.diagnose(profile="fast", seed=0, progress=False)
    fig = figures.robot_modes.plot_policies(res)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes[1:]:
        assert ax.get_legend().get_window_extent(renderer).y1 < ax.get_window_extent(renderer).y0  # under the axes
        boxes = [t.get_window_extent(renderer) for t in ax.get_xticklabels()]
        assert all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:])), "tick labels overlap"
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert any(r"$\hat L$" in t for t in labels) and not any("\u0302" in t for t in labels)
    plt.close(fig)
