"""Stochastic samplers as maps of all their noise: DDIM with η, the map's contract, and the measurement."""
import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from mbc_lib import experiments, policies, profiles, theory
from mbc_lib.experiments import stochastic_samplers as ss

H, D = 4, 1


@pytest.fixture(scope="module")
def pol():
    p = policies.make("diffusion", obs_dim=1, action_dim=D, chunk_len=H, seed=0, steps=8, num_train_steps=40)
    # a non-trivial normaliser, so that task units differ from the network's units
    p.normalizer.act_mean.fill_(0.3)
    p.normalizer.act_std.fill_(2.0)
    return p.eval()


def _noise(B, S, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, H, D, generator=g), torch.randn(B, S - 1, H, D, generator=g)


def test_eta_zero_map_is_transport_whatever_the_injected_noise(pol):
    obs = torch.linspace(-1, 1, 5)[:, None]
    x, z = _noise(5, 8)
    assert pol.num_injections(8) == 7 and pol.num_injections(1) == 0
    assert torch.equal(pol.stochastic_map(obs, x, z, steps=8, eta=0.0), pol.transport(obs, x, steps=8))
    assert torch.equal(pol.stochastic_map(obs, x, 5 * z, steps=8, eta=0.0), pol.transport(obs, x, steps=8))


def test_zero_injected_noise_gives_the_ddim_update_with_eta(pol):
    """x_k' = √ᾱ_k' x̂₀ + √(1 − ᾱ_k' − σ²) ε̂ with σ = η √((1−ᾱ_k')/(1−ᾱ_k)) √(1 − ᾱ_k/ᾱ_k'), written out by hand."""
    obs = torch.tensor([[0.2], [-0.4]])
    x, z = _noise(2, 8, seed=1)
    eta = 0.5
    with torch.no_grad():
        got = pol.stochastic_map(obs, x, torch.zeros_like(z), steps=8, eta=eta)
        s = pol.normalizer.normalize_obs(obs)
        xk = x.flatten(1)
        ks = pol.timesteps(8)
        for k, kp in zip(ks[:-1], ks[1:]):
            eps, x0 = pol._predict(s, xk, torch.full((2,), k, dtype=torch.long))
            ab, abp = pol.alpha_bar[k].double(), pol.alpha_bar[kp].double()
            sigma = eta * math.sqrt((1 - abp) / (1 - ab)) * math.sqrt(1 - ab / abp)
            xk = (math.sqrt(abp) * x0.double() + math.sqrt(max(1 - abp - sigma**2, 0.0)) * eps.double()).float()
        want = pol.normalizer.unnormalize_actions(xk.reshape(2, H, D))
    assert torch.allclose(got, want, atol=1e-5)
    # injected noise matters when η > 0
    assert not torch.allclose(got, pol.stochastic_map(obs, x, z, steps=8, eta=eta).detach(), atol=1e-3)


@pytest.mark.parametrize("eta", [0.5, 1.0])
def test_sample_is_the_map_fed_the_draws_it_makes(pol, eta):
    obs = torch.tensor([[0.1], [0.7]])
    n, S = 3, 8
    g = torch.Generator().manual_seed(5)
    got = pol.sample(obs, n, generator=g, eta=eta)  # [2, 3, H, D]
    g = torch.Generator().manual_seed(5)
    x_T = torch.randn(2, n, H * D, generator=g).reshape(2 * n, H, D)
    z = torch.stack([torch.randn(2 * n, H * D, generator=g) for _ in range(S - 1)], 1).reshape(2 * n, S - 1, H, D)
    want = pol.stochastic_map(obs.repeat_interleave(n, 0), x_T, z, steps=S, eta=eta).detach()
    assert torch.allclose(got.reshape(2 * n, H, D), want, atol=1e-6)


def test_sampler_names_are_eta_zero_and_one(pol):
    obs = torch.zeros(2, 1)
    for name, eta in (("ddpm", 1.0), ("ddim", 0.0)):
        a = pol.sample(obs, 4, generator=torch.Generator().manual_seed(2), sampler=name)
        b = pol.sample(obs, 4, generator=torch.Generator().manual_seed(2), eta=eta)
        assert torch.equal(a, b)
    c = pol.sample(obs, 4, generator=torch.Generator().manual_seed(2), eta=0.5)
    assert not torch.equal(c, pol.sample(obs, 4, generator=torch.Generator().manual_seed(2), eta=1.0))


def test_the_map_is_deterministic_and_differentiable_in_all_its_noise(pol):
    obs = torch.zeros(3, 1)
    x, z = _noise(3, 4, seed=3)
    a = pol.stochastic_map(obs, x, z, steps=4, eta=1.0)
    assert torch.equal(a, pol.stochastic_map(obs, x, z, steps=4, eta=1.0))
    x.requires_grad_(True)
    z.requires_grad_(True)
    pol.stochastic_map(obs, x, z, steps=4, eta=1.0).sum().backward()
    assert x.grad is not None and z.grad is not None and z.grad.abs().sum() > 0


@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan, True, "1"])
def test_bad_eta_is_refused(pol, bad):
    with pytest.raises(ValueError, match="eta"):
        pol.sample(torch.zeros(1, 1), 1, eta=bad)
    x, z = _noise(1, 8)
    with pytest.raises(ValueError, match="eta"):
        pol.stochastic_map(torch.zeros(1, 1), x, z, steps=8, eta=bad)


def test_sampler_and_eta_together_and_wrong_noise_shapes_are_refused(pol):
    with pytest.raises(ValueError, match="not both"):
        pol.sample(torch.zeros(1, 1), 1, sampler="ddpm", eta=1.0)
    x, z = _noise(2, 8)
    with pytest.raises(ValueError, match="injected_noise"):
        pol.stochastic_map(torch.zeros(2, 1), x, z[:, :-1], steps=8, eta=1.0)
    with pytest.raises(ValueError, match="base_noise"):
        pol.stochastic_map(torch.zeros(2, 1), x[:1], z, steps=8, eta=1.0)


# ---------------------------------------------------------------------------------------
# the measurement, on maps whose answer is known
# ---------------------------------------------------------------------------------------
SIZES = dict(n_samples=8000, n_jac=32, n_segments=16, n_points=129)


def _two_modes(delta_c=3.0, radius=0.5):
    u = torch.tensor([0.6, 0.8])  # unit vector in the 2-element chunk
    centers = torch.stack([-delta_c / 2 * u, delta_c / 2 * u]).reshape(2, 2, 1)
    return u, centers, radius, delta_c - 2 * radius


def test_measure_map_recovers_the_tight_bridge_of_a_clip_map():
    """a = clip(L ξ₁, −Δc/2, Δc/2)·u: the bridge is 2Φ(Δ/2L) − 1, the balanced floor, attained; L̂ = L, and the
    stretch is all in the first coordinate."""
    u, centers, rho, gap = _two_modes()
    L = 2.0

    def f(xi):
        return (torch.clamp(L * xi[:, :1], -1.5, 1.5) * u).reshape(-1, 2, 1)

    m = ss.measure_map(f, 3, centers, rho, sigma=0.1, gap=gap, sizes=SIZES, seed=0, split=1)
    want = 2 * norm.cdf(gap / (2 * L)) - 1
    assert m.bridge_lo <= want <= m.bridge_hi and abs(m.bridge - want) < 0.03
    assert m.between == pytest.approx(m.bridge - m.fringe) and m.fringe > 0
    assert L * 0.99 <= m.L_hat <= L * 1.001 and m.L_first == pytest.approx(L, rel=1e-3) and m.L_rest == 0
    assert m.floor == pytest.approx(theory.balanced_bridge_mass_bound(m.L_hat, gap), abs=0.03)
    assert abs(m.floor - m.bridge) < 0.04  # the extremal map sits on its floor
    assert m.mass.sum() + m.bridge == pytest.approx(1.0)
    # determinism: the same seed gives the same numbers
    again = ss.measure_map(f, 3, centers, rho, sigma=0.1, gap=gap, sizes=SIZES, seed=0, split=1)
    assert again.bridge == m.bridge and again.L_hat == m.L_hat


@pytest.mark.parametrize("scale", [0.1, 0.05])
def test_measure_map_reads_the_within_mode_spread_against_the_demonstrations_sigma(scale):
    """A jump between the two centres plus scale·(ξ₂, ξ₃): in-mode RMS distance ≈ scale·√2, i.e. spread_ratio ≈
    scale/σ (σ = 0.1); a discontinuous map has no bridge."""
    u, centers, rho, gap = _two_modes()

    def f(xi):
        side = torch.where(xi[:, :1] > 0, 1.5, -1.5)
        return (side * u + scale * xi[:, 1:3]).reshape(-1, 2, 1)

    m = ss.measure_map(f, 3, centers, rho, sigma=0.1, gap=gap, sizes=SIZES, seed=1)
    assert m.bridge < 0.002 and m.spread_ratio == pytest.approx(scale / 0.1, rel=0.05)
    assert math.isnan(m.L_first) and math.isnan(m.L_rest)  # no split given


# ---------------------------------------------------------------------------------------
# the experiment at toy sizes
# ---------------------------------------------------------------------------------------
TINY = dict(n_demos=256, steps=30, width=32, depth=1, batch_size=128, lr=1e-2, sampler_steps=(2, 4), etas=(0.0, 1.0),
            n_obs=1, n_samples=64, n_jac=4, n_segments=4, n_points=17)


def test_run_measures_every_eta_and_step_count_and_is_registered(monkeypatch, tmp_path):
    monkeypatch.setenv("MBC_CACHE", str(tmp_path))
    monkeypatch.setitem(profiles.BUDGETS, "stochastic_samplers", {"fast": TINY, "standard": TINY, "full": TINY})
    res = ss.run(seed=0, profile="fast", settings=[("fork", 2), ("ring", 4)])
    rows = ss.summary(res)
    assert {(r["task"], r["K"], r["eta"], r["steps"]) for r in rows} == {
        (t, k, e, s) for t, k in (("fork", 2), ("ring", 4)) for e in (0.0, 1.0) for s in (2, 4)}
    for r in rows:
        dim = (8 if r["task"] == "fork" else 16) * r["steps"]  # S·H·d: H = 8, d = 1 (fork) or 2 (ring)
        assert r["base_dim"] == dim and 0 <= r["bridge_lo"] <= r["bridge"] <= r["bridge_hi"] <= 1
        assert r["fringe"] + r["between"] == pytest.approx(r["bridge"])
        if r["eta"] == 0.0:
            assert r["L_rest"] == 0  # DDIM ignores the injected noise
    tr = ss.trade(res)
    assert len(tr) == 4 and all(set(t) >= {"d_bridge", "d_spread", "trades", "bridge_separated"} for t in tr)
    # same seed, same numbers; and the registry runs it
    assert ss.summary(ss.run(seed=0, profile="fast", settings=[("fork", 2)]))[0] == rows[0]
    assert "stochastic_samplers" in experiments.EXPERIMENTS and "stochastic_samplers" in experiments.RESULTS
    assert np.isfinite([r["L_hat"] for r in rows]).all()
    # the chapter's compact table: one row per (setting, S), every η side by side
    from mbc_lib import figures
    table = figures.stochastic_samplers.format_by_eta(res)
    assert table.count("\n") == 2 + 4 - 1 and "bridge, η = 1" in table and "spread, η = 0" in table
