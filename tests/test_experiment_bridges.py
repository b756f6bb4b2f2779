"""Chapter 6's claims, checked on the experiment functions the notebook calls (fast profile)."""
import dataclasses
import io
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from scipy.stats import norm

from mbc_lib import diagnostics, figures, tasks, theory
from mbc_lib.experiments import bridges
from mbc_lib.measure import TrainedTransport, measure_bridges, transitions
from mbc_lib.profiles import budget


@pytest.fixture(scope="module")
def swept():
    return bridges.sweep(models=(("flow", 2, 3.0), ("flow", 4, 3.0)), steps=(1, 2, 8), seed=0, profile="fast")


def test_one_step_is_regression_and_more_steps_sharpen_the_map(swept):
    _, stats = swept
    one, two, eight = (stats[("flow", 2, 3.0, s)].row() for s in (1, 2, 8))
    assert one["bridge"] > 0.95  # the one-step sampler outputs the mean: between the two branches
    assert eight["bridge"] < two["bridge"] < one["bridge"]
    assert eight["L_hat"] > 3 * two["L_hat"] > 3 * one["L_hat"]
    assert eight["modes_covered"] == 2


def test_bridge_mass_is_above_the_isoperimetric_floor_at_the_measured_lipschitz_constant(swept):
    _, stats = swept
    checked = 0
    for s in stats.values():
        for b, f, L, Li in zip(s.bridge, s.floor, s.L_hat, s.implied_L):
            assert not np.isnan(f) or (s.mass > 0).sum() < 2  # L̂ never too small to carry the masses
            if f > 0:
                assert b >= f
                assert Li <= L  # the L implied by the bridge is below the measured one
                checked += 1
    assert checked >= 4


def test_transitions_are_at_least_gap_over_jacobian_wide(swept):
    # width ≥ Δ/Ĵ with Ĵ the largest Jacobian norm measured inside the transition: not an identity (Ĵ is
    # computed apart from the grid's finite differences), it fails if the Jacobian points miss the steep part
    _, stats = swept
    n = 0
    for s in stats.values():
        assert np.all(s.seg_width >= s.seg_floor)
        assert np.all(s.seg_width > 0) and np.all(np.isfinite(s.seg_floor))
        n += len(s.seg_width)
    assert n > 10
    w2, w8 = stats[("flow", 2, 3.0, 2)].row()["width"], stats[("flow", 2, 3.0, 8)].row()["width"]
    assert w8 < w2  # sharper sampler, narrower transitions


def test_more_modes_leave_more_bridge(swept):
    _, stats = swept
    assert stats[("flow", 4, 3.0, 8)].row()["bridge"] > stats[("flow", 2, 3.0, 8)].row()["bridge"]
    assert stats[("flow", 4, 3.0, 8)].row()["floor"] > stats[("flow", 2, 3.0, 8)].row()["floor"]


class _ClippedLinear(torch.nn.Module):
    """A 'policy' whose transport is the extremal map of app-isoperimetry along the fork's two branches:
    a = μ_0 + clip(L(ε₁ − a₀), 0, Δc)·u, u the unit vector from μ_0 to μ_1."""

    def __init__(self, task, L, a0):
        super().__init__()
        self.task, self.L, self.a0 = task, L, a0

    def transport(self, obs, base_noise, steps=None):
        c = self.task.modes(obs).centers  # [B, 2, H, d]
        u = (c[:, 1] - c[:, 0]) / self.task.delta
        t = (self.L * (base_noise[:, :1, :1] - self.a0)).clamp(0, self.task.delta)  # [B, 1, 1]
        return c[:, 0] + t * u


def test_step_plots_draw_when_no_segment_crossed_between_modes(swept):
    # A map collapsed onto one mode crosses no segment: every width is undefined (NaN). Its panel
    # cannot be log-scaled; the figure must still draw (tight layout raised here before) and say why it is empty.
    _, stats = swept
    collapsed = {k: dataclasses.replace(s, width=np.full_like(s.width, np.nan), width_floor=np.full_like(s.width, np.nan))
                 for k, s in stats.items()}
    steps_fig = figures.bridges.plot_steps(collapsed, K=2, delta=3.0, families=("flow",))
    modes_fig = figures.bridges.plot_modes_sweep(collapsed)
    for fig in (steps_fig, modes_fig):
        fig.savefig(io.BytesIO(), bbox_inches="tight")
    lip, bridge, width = steps_fig.axes
    # one flow: three Lipschitz lines (L̂, median ‖J‖, L implied by b̂), bridge and floor, width and Δ/J
    assert [len(ax.get_lines()) for ax in (lip, bridge, width)] == [3, 2, 2]
    assert [len(line.get_xdata()) for line in lip.get_lines()] == [3, 3, 3]  # one point per step count (1, 2, 8)
    assert lip.get_yscale() == bridge.get_yscale() == "log" and width.get_yscale() == "linear"
    assert "no positive values to show" in [t.get_text() for t in width.texts]
    # the K panel has K = 2 and K = 4 at Δc = 3 (bridge and floor each); the Δc panel only the base model
    k_panel, delta_panel = modes_fig.axes
    assert len(k_panel.get_lines()) == 4 and len(delta_panel.get_lines()) == 2
    assert {t.get_text() for t in k_panel.get_legend().get_texts()} >= {"$K$ = 2: bridge", "$K$ = 4: bridge"}
    for fig in (steps_fig, modes_fig):
        plt.close(fig)


def test_measurement_recovers_a_known_map():
    task = tasks.make("fork", K=2, delta=3.0, sigma=0.1, chunk_len=8)
    L = 5.0
    policy = _ClippedLinear(task, L, a0=-0.3)
    model = TrainedTransport("flow", 2, 3.0, task, policy, None)
    st = measure_bridges(model, steps=1, sizes=budget("bridges", "fast"), seed=0)
    assert st.L_hat[0] == pytest.approx(L, rel=1e-4)  # the Jacobian at bridge points is exactly L
    # the preimages are half-spaces gap/L apart: the bridge is Φ(u + gap/L) − Φ(u), the floor itself
    u = -0.3 + task.radius / L
    exact = norm.cdf(u + model.gap / L) - norm.cdf(u)
    n = 512
    assert st.bridge[0] == pytest.approx(exact, abs=4 * math.sqrt(exact * (1 - exact) / n))
    assert st.floor[0] == pytest.approx(exact, abs=0.05)


def test_transitions_of_the_clipped_linear_map_attain_the_lemma():
    # the clipped-linear map crosses the gap at constant stretch L along ε₁: a segment along e₁ has a
    # transition exactly Δ/L wide, with ‖J‖ = L inside it — the lemma holds with equality
    task = tasks.make("fork", K=2, delta=3.0, sigma=0.1, chunk_len=8)
    L, a0 = 4.0, 0.2
    policy = _ClippedLinear(task, L, a0)
    obs = torch.zeros(1, 1)
    centers = task.modes(obs).centers[0]
    gap = task.delta - 2 * task.radius

    def f(eps):
        return policy.transport(obs.expand(len(eps), -1), eps.reshape(-1, 8, 1)).reshape(len(eps), 8)

    start, end = torch.zeros(3, 8), torch.zeros(3, 8)
    start[:, 0], end[:, 0] = -3.0, 3.0
    end[1, 1] = 2.0  # a slanted segment: its transition is longer by 1/cos of the slant
    end[2, 0] = -2.9  # stays in mode 0: no transition
    prof = diagnostics.segment_profile(f, start, end, n_points=65, centers=centers, radius=task.radius)
    width, jac = transitions(f, start, end, prof.labels, centers, task.radius, n_max=10)
    assert len(width) == 2 and jac == pytest.approx(L, rel=1e-4)
    h = 6.0 / 64  # grid step
    assert width[0] == pytest.approx(gap / L, abs=2 * h / 2**12 + 1e-5)
    assert width[1] == pytest.approx(gap / L * math.hypot(6.0, 2.0) / 6.0, abs=2 * h / 2**12 + 1e-5)
    assert np.all(width >= gap / jac * (1 - 1e-4))


def test_figures_render_hats_and_show_the_check(swept):
    # matplotlib draws "L̂" typed as text as a plain "L": every hat must be mathtext ($\hat L$)
    _, stats = swept
    figs = [figures.bridges.plot_crossing(stats[("flow", 2, 3.0, 8)]),
            figures.bridges.plot_steps(stats, K=2, delta=3.0, families=("flow",)), figures.bridges.plot_floor_check(stats),
            figures.bridges.plot_modes_sweep(stats), figures.bridges.plot_widths(stats)]
    for fig in figs:
        fig.canvas.draw()
        texts = [t.get_text() for t in fig.findobj(plt.Text)]
        assert not [t for t in texts if "\u0302" in t], "a hat typed as a combining character renders as nothing"
    steps_legends = [t.get_text() for ax in figs[1].axes for t in ax.get_legend().get_texts()]
    assert any("$\\hat L$" in t for t in steps_legends) and any("$\\hat b$" in t for t in steps_legends)
    # the widths figure: every transition on or above the diagonal width = Δ/Ĵ
    pts = np.concatenate([c.get_offsets() for c in figs[4].axes[0].collections])
    assert len(pts) > 5 and np.all(pts[:, 1] >= pts[:, 0])
    for fig in figs:
        plt.close(fig)


def test_implied_lipschitz_from_measured_masses():
    # two modes where part 2 of the bridge-mass floor (app-isoperimetry) binds: the closed form with m = p_min
    p, b, gap = [0.1, 0.8], 0.1, 1.0
    implied = theory.implied_min_lipschitz
    assert implied(b, p, gap) == pytest.approx(implied(b, 0.1, gap), rel=1e-6)
    assert implied(0.0, [0.5, 0.5], 1.0) == math.inf
    assert math.isnan(implied(0.0, [1.0, 0.0], 1.0))
    # more bridge is consistent with a smoother map; the masses never allow less than the closed form
    assert implied(0.2, [0.3] * 3, 1.0) < implied(0.05, [0.3] * 3, 1.0)
    assert implied(0.1, [0.45, 0.45], 1.0) >= implied(0.1, 0.45, 1.0) * (1 - 1e-9)


def test_bad_arguments():
    with pytest.raises(ValueError, match="family"):
        bridges.fit("cvae", profile="fast")
    with pytest.raises(ValueError, match="task"):
        bridges.fit("flow", task="maze", profile="fast")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (measurements then run there)")
def test_measurement_on_cuda_matches_the_cpu(monkeypatch):
    from mbc_lib import policies
    from mbc_lib.train import train

    task = tasks.make("fork", K=2, delta=3.0, sigma=0.1, chunk_len=8)
    pol = policies.make("flow", obs_dim=1, action_dim=1, chunk_len=8, width=32, depth=1, seed=0)
    train(pol, task.dataset(512, seed=0), steps=60, batch_size=128, seed=0, device="cpu", progress=False)
    model = TrainedTransport("flow", 2, 3.0, task, pol.cpu(), None)
    on_gpu = measure_bridges(model, steps=4, sizes=budget("bridges", "fast"), seed=0)
    assert pol.device.type == "cpu"
    monkeypatch.setenv("MBC_DEVICE", "cpu")
    on_cpu = measure_bridges(model, steps=4, sizes=budget("bridges", "fast"), seed=0)
    assert np.allclose(on_gpu.bridge, on_cpu.bridge, atol=0.01)
    assert np.allclose(on_gpu.L_hat, on_cpu.L_hat, rtol=0.02)
