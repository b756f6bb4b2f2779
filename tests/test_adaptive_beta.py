"""State-adaptive β: per-sample KL weights in the data and the cvae loss, β*(s) from the demonstrations, the
comparison's bookkeeping, and the experiment at toy sizes."""
import math

import numpy as np
import pytest
import torch

from mbc_lib import experiments, policies, profiles, tasks, theory
from mbc_lib.data import ChunkDataset
from mbc_lib.experiments import adaptive_beta as ab
from mbc_lib.train import train


def _data(n=64, beta=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    return ChunkDataset(torch.randn(n, 1, generator=g), torch.randn(n, 4, 1, generator=g), beta=beta)


# ---------------------------------------------------------------------------------------
# per-sample β in the data and the loss
# ---------------------------------------------------------------------------------------
def test_a_dataset_carries_per_sample_beta_through_batches_subsets_and_splits():
    beta = torch.arange(64, dtype=torch.float32) / 10
    ds = _data(beta=beta)
    idx = torch.tensor([3, 5, 7])
    assert torch.equal(ds.batch(idx)["beta"], beta[idx])
    assert torch.equal(ds.subset(idx).beta, beta[idx])
    train_ds, val = ds.split(0.25, seed=0)
    assert len(train_ds.beta) == len(train_ds) and len(val.beta) == len(val)
    assert ds.to("cpu") is ds and "beta" not in _data().batch(idx)  # the default carries no β


@pytest.mark.parametrize("bad, match", [(torch.ones(3), r"\[N=64\]"), (-torch.ones(64), ">= 0"),
                                        (torch.full((64,), math.nan), "finite")])
def test_bad_per_sample_beta_is_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        _data(beta=bad)


def _cvae(**kw):
    return policies.make("cvae", obs_dim=1, action_dim=1, chunk_len=4, seed=0, latent_dim=2, recon="l2", **kw)


def test_equal_per_sample_betas_give_the_constant_beta_loss_and_zeros_leave_the_reconstruction():
    pol = _cvae(beta=0.7)
    batch = _data(16).batch(torch.arange(16))
    noise = pol.loss_noise(16, torch.Generator().manual_seed(0))
    const = pol.loss(batch, noise=noise)
    same = pol.loss({**batch, "beta": torch.full((16,), 0.7)}, noise=noise)
    assert torch.allclose(same["loss"], const["loss"], rtol=1e-6) and same["kl"] == const["kl"]
    zero = pol.loss({**batch, "beta": torch.zeros(16)}, noise=noise)
    assert torch.allclose(zero["loss"], zero["recon"])


def test_per_sample_beta_weighs_each_sample_kl():
    pol = _cvae(beta=0.0)
    batch = _data(8).batch(torch.arange(8))
    noise = pol.loss_noise(8, torch.Generator().manual_seed(1))
    w = torch.linspace(0, 2, 8)
    parts = pol.loss({**batch, "beta": w}, noise=noise)
    kl_i = pol.kl(batch["obs"], batch["chunk"]).detach()
    assert torch.allclose(parts["loss"], parts["recon"] + (w * kl_i).mean(), rtol=1e-5)


def test_per_sample_beta_refuses_free_bits_and_a_wrong_shape():
    batch = _data(8).batch(torch.arange(8))
    with pytest.raises(ValueError, match="free_bits"):
        _cvae(free_bits=0.1).loss({**batch, "beta": torch.ones(8)})
    with pytest.raises(ValueError, match=r"\[B=8\]"):
        _cvae().loss({**batch, "beta": torch.ones(3)})


def test_training_on_constant_per_sample_beta_matches_the_config_beta():
    data = _data(128)
    a, b = _cvae(beta=0.3), _cvae(beta=0.3)
    ha = train(a, data, steps=30, batch_size=32, seed=0, progress=False)
    hb = train(b, ChunkDataset(data.obs, data.chunks, beta=torch.full((128,), 0.3)), steps=30, batch_size=32, seed=0,
               progress=False)
    assert ha.final["loss"] == pytest.approx(hb.final["loss"], rel=1e-4)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=1e-5)


# ---------------------------------------------------------------------------------------
# β*(s) from the demonstrations
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def branching():
    task = tasks.make("branching", **ab.BRANCHING)
    data = task.dataset(1024, seed=0)
    rule = ab.state_beta_star(data, np.array([[1 / 6], [0.5], [5 / 6]]), k=48)
    return task, data, rule


def test_state_beta_star_finds_the_modes_and_grows_with_them(branching):
    task, data, rule = branching
    assert list(rule.n_modes) == [1, 2, 3]
    b1, b2, b3 = rule.beta_star
    assert b1 < 0.05 * b2 and b2 < b3  # the within-mode noise's threshold, then 2 and 3 separated modes
    # it is the clustered criterion on the normalised neighbourhood chunks, in the cvae's L2 scaling
    x = data.normalizer().normalize_actions(data.chunks).double().numpy()
    i = rule.index[2]
    scale = theory.act_loss_scaling(8, 1, loss="l2").scale
    assert b3 == pytest.approx(theory.critical_beta_from_clusters(x[i], rule.clusters[2].labels, scale))
    assert rule.reference == pytest.approx(np.median([b2, b3]))


def test_adaptive_beta_is_a_fraction_of_the_nearest_states_beta_star(branching):
    _, data, rule = branching
    obs = torch.tensor([[0.05], [0.45], [0.99]])
    assert np.allclose(ab.adaptive_beta(rule, obs, 0.1), 0.1 * rule.beta_star)
    strong = ab.adaptive_beta(rule, obs, 0.1, unimodal=2.5)
    assert strong[0] == 2.5 and np.allclose(strong[1:], 0.1 * rule.beta_star[1:])
    ds = ab.adaptive_dataset(data, rule, 0.1)
    assert torch.allclose(ds.beta, torch.as_tensor(0.1 * rule.at(data.obs), dtype=torch.float32))
    with pytest.raises(ValueError, match="fraction"):
        ab.adaptive_beta(rule, obs, 0.0)


# ---------------------------------------------------------------------------------------
# bookkeeping
# ---------------------------------------------------------------------------------------
def _comp(models, states):
    rule = ab.StateBetaStar(np.zeros((1, 1)), np.ones(1), np.ones(1, int), np.zeros((1, 2), int), [], np.ones(1))
    c = ab.TaskComparison("toy", 1.0, rule, models=models, states=states)
    c.best = {k: ab.best_of(c, k) for k in ab.KINDS}
    return c


def test_best_of_a_kind_and_the_verdict():
    models = {"c1": dict(kind="constant", tv=0.3, info_frac=0.5), "c2": dict(kind="constant", tv=0.2, info_frac=0.4),
              "a1": dict(kind="adaptive", tv=0.25, info_frac=0.9), "s1": dict(kind="adaptive_strong", tv=0.1, info_frac=0.8)}
    c = _comp(models, [dict(label="c1", K=2)])
    assert c.best == {"constant": "c2", "adaptive": "a1", "adaptive_strong": "s1"}
    assert ab.verdict(c)["beats"] is False and ab.verdict(c, "adaptive_strong")["beats"] is True


def test_on_the_robot_the_best_is_the_most_successful_using_every_gap():
    base = dict(tv=0.1, info_frac=0.5, success_lo=0.0, success_hi=1.0)
    models = {"c1": dict(kind="constant", success=0.9, modes_used=1, **base),
              "c2": dict(kind="constant", success=0.6, modes_used=2, **base),
              "a1": dict(kind="adaptive", success=0.7, modes_used=2, **{**base, "success_lo": 0.65, "success_hi": 0.75}),
              "s1": dict(kind="adaptive_strong", success=0.0, modes_used=0, **base)}
    c = _comp(models, [dict(label="c1", K=2)])
    assert c.best["constant"] == "c2"
    v = ab.verdict(c)
    assert v["beats"] is True and v["separated"] is False and v["constant_label"] == "c2"


def test_labels_name_the_rule():
    assert ab.label("constant", 0.1) == "β = 0.1·β*_ref" and ab.label("adaptive", 0.03) == "β(s) = 0.03·β*(s)"
    assert "K̂=1" in ab.label("adaptive_strong", 0.1)
    with pytest.raises(ValueError, match="kind"):
        ab.label("other", 1.0)


# ---------------------------------------------------------------------------------------
# the experiment at toy sizes
# ---------------------------------------------------------------------------------------
TINY = dict(n_demos=256, steps=20, width=32, depth=1, batch_size=128, lr=3e-3, latent_dim=2, ratios=(0.03, 0.3),
            fractions=(0.1,), n_query=6, k=32, per_segment=1, n_per_state=32, n_prior=32, n_episodes=12,
            n_query_episodes=1, stride=20, n_eval=4)


@pytest.fixture()
def tiny(monkeypatch, tmp_path):
    monkeypatch.setenv("MBC_CACHE", str(tmp_path))
    monkeypatch.setitem(profiles.BUDGETS, "adaptive_beta", {"fast": TINY, "standard": TINY, "full": TINY})


def test_branching_comparison_measures_every_model_at_every_state(tiny):
    comp = ab.compare_branching(seed=0, profile="fast")
    assert {m["kind"] for m in comp.models.values()} == set(ab.KINDS) and len(comp.models) == 4
    assert [r["K"] for r in comp.states if r["label"] == ab.label("adaptive", 0.1)] == [1, 2, 3]
    for name, m in comp.models.items():
        assert 0 <= m["off"] <= 1 and 0 <= m["coverage"] <= 1 and 0 <= m["tv"] <= 1
        per = comp.state_series(name, "beta")
        if m["kind"] == "constant":
            assert np.allclose(per, m["value"] * comp.beta_ref)
    strong = comp.state_series(ab.label("adaptive_strong", 0.1), "beta")
    assert strong[0] == pytest.approx(comp.beta_ref)  # a unimodal state gets β*_ref
    assert set(comp.best) == set(ab.KINDS)


def test_path_gaps_comparison_rolls_every_model_out(tiny):
    comp = ab.compare_path_gaps(seed=0, profile="fast")
    assert len(comp.models) == 4
    for m in comp.models.values():
        assert 0 <= m["success_lo"] <= m["success"] <= m["success_hi"] <= 1 and 0 <= m["modes_used"] <= 2
    assert max(comp.rule.n_modes) >= 2  # the start state: two gaps
    rows = ab.summary(ab.AdaptiveResult({"PathGaps": comp}))
    assert sum(r["best_of_kind"] for r in rows) == 3 and "adaptive_beta" in experiments.EXPERIMENTS
    assert all(isinstance(r["success"], float) for r in rows)
    # the chapter's tables escape the asterisks of β* (Markdown emphasis) and bold the best of each kind
    from mbc_lib import figures
    res = ab.AdaptiveResult({"PathGaps": comp})
    for table in (figures.adaptive_beta.format_compact(res), figures.adaptive_beta.format_table(res)):
        assert "β\\*_ref" in table and table.count("**") == 2 * 3
