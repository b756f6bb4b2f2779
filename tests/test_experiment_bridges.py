"""Chapter 6's claims, checked on the experiment functions the notebook calls (fast profile)."""
import dataclasses
import io
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from scipy.stats import norm

from mbc_lib import tasks, theory
from mbc_lib.experiments import bridges


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


def test_transitions_are_at_least_gap_over_stretch_wide(swept):
    _, stats = swept
    n = 0
    for s in stats.values():
        assert np.all(s.seg_width >= s.seg_floor * (1 - 1e-6))
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
    # cannot be log-scaled; the figure must still draw (tight layout raised here before).
    _, stats = swept
    collapsed = {k: dataclasses.replace(s, width=np.full_like(s.width, np.nan), width_floor=np.full_like(s.width, np.nan))
                 for k, s in stats.items()}
    for fig in (bridges.plot_steps(collapsed, K=2, delta=3.0, families=("flow",)), bridges.plot_modes_sweep(collapsed)):
        fig.savefig(io.BytesIO(), bbox_inches="tight")
        plt.close(fig)


def test_measurement_recovers_a_known_map():
    task = tasks.make("fork", K=2, delta=3.0, sigma=0.1, chunk_len=8)
    L = 5.0
    policy = _ClippedLinear(task, L, a0=-0.3)
    model = bridges.Model("flow", 2, 3.0, task, policy, None)
    st = bridges.measure(model, steps=1, seed=0, profile="fast")
    assert st.L_hat[0] == pytest.approx(L, rel=1e-4)  # the Jacobian at bridge points is exactly L
    # the preimages are half-spaces gap/L apart: the bridge is Φ(u + gap/L) − Φ(u), the floor itself
    u = -0.3 + task.radius / L
    exact = norm.cdf(u + model.gap / L) - norm.cdf(u)
    n = 512
    assert st.bridge[0] == pytest.approx(exact, abs=4 * math.sqrt(exact * (1 - exact) / n))
    assert st.floor[0] == pytest.approx(exact, abs=0.05)


def test_implied_lipschitz():
    # two modes where part 2 of the bridge-mass floor (app-isoperimetry) binds: the same as theory.implied_min_lipschitz
    p, b, gap = [0.1, 0.8], 0.1, 1.0
    assert bridges.implied_lipschitz(p, gap, b) == pytest.approx(theory.implied_min_lipschitz(b, 0.1, gap), rel=1e-6)
    assert bridges.implied_lipschitz([0.5, 0.5], 1.0, 0.0) == math.inf
    assert math.isnan(bridges.implied_lipschitz([1.0, 0.0], 1.0, 0.0))
    # more bridge is consistent with a smoother map
    assert bridges.implied_lipschitz([0.3] * 3, 1.0, 0.2) < bridges.implied_lipschitz([0.3] * 3, 1.0, 0.05)


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
    model = bridges.Model("flow", 2, 3.0, task, pol.cpu(), None)
    on_gpu = bridges.measure(model, steps=4, seed=0, profile="fast")
    assert pol.device.type == "cpu"
    monkeypatch.setenv("MBC_DEVICE", "cpu")
    on_cpu = bridges.measure(model, steps=4, seed=0, profile="fast")
    assert np.allclose(on_gpu.bridge, on_cpu.bridge, atol=0.01)
    assert np.allclose(on_gpu.L_hat, on_cpu.L_hat, rtol=0.02)
