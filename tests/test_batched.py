"""Batched sweeps (train() given a list of policies, and its older name mbc_lib.batched.train_batched): the
same models as sequential train(), per seed, for every family whose loss runs under vmap."""
import pytest
import torch

from mbc_lib import policies, tasks
from mbc_lib.batched import BATCHED_FAMILIES, SCALAR_FIELDS, train_batched
from mbc_lib.fitting import fit, fit_many
from mbc_lib.train import train

TOL = dict(rtol=1e-4, atol=1e-5)  # float rounding only: bmm vs mm reduce in a different order


def _task():
    return tasks.make("fork", K=2, delta=2.0)


def _cvae(seed, **cfg):
    base = dict(obs_dim=1, action_dim=1, chunk_len=8, latent_dim=2, width=32, depth=1, recon="l2")
    return policies.make("cvae", seed=seed, **{**base, **cfg})


def _compare(specs, datasets, **kw):
    """Train ``specs`` [(seed, config)] one by one with train() and together with train_batched()."""
    seq = []
    for (seed, cfg), data in zip(specs, datasets):
        p = _cvae(seed, **cfg)
        seq.append((p, train(p, data, seed=seed, **kw)))
    batch = [_cvae(seed, **cfg) for seed, cfg in specs]
    hists = train_batched(batch, datasets, seed=[s for s, _ in specs], **kw)
    for (p, h), q, hb in zip(seq, batch, hists):
        assert h.keys() == hb.keys()
        for key in h.keys():
            assert torch.allclose(torch.tensor(h[key]), torch.tensor(hb[key]), **TOL), key
        for (name, a), b in zip(p.state_dict().items(), q.state_dict().values()):
            if a.is_floating_point():
                assert torch.allclose(a, b, **TOL), name
            else:
                assert torch.equal(a, b), name  # the step counter (β warm-up)
    return seq, batch


def test_batched_equals_sequential_per_seed_and_beta():
    """Same seed → same minibatch indices and loss noise per model, so the same losses and
    weights (EMA included) as sequential train(), for models differing in β, free bits, warm-up."""
    data = _task().dataset(512, seed=0)
    specs = [(0, dict(beta=0.05)), (1, dict(beta=0.5, free_bits=0.1)), (2, dict(beta=2.0, beta_warmup=20)),
             (0, dict(beta=1.0))]
    kw = dict(steps=40, batch_size=64, lr=3e-3, log_every=5, warmup=4)
    seq, batch = _compare(specs, [data] * len(specs), **kw)
    # models with the same seed and different β drew the same noise but learned different things
    assert not torch.allclose(batch[0].decoder.out[-1].weight, batch[3].decoder.out[-1].weight)
    assert int(batch[2].step) == 40


def test_batched_equals_sequential_learned_prior_l1_own_datasets_no_clip_no_ema():
    task = _task()
    datasets = [task.dataset(300, seed=s) for s in (0, 1)]
    specs = [(3, dict(beta=0.1, prior="learned", recon="l1")), (4, dict(beta=1.0, prior="learned", recon="l1"))]
    _compare(specs, datasets, steps=25, batch_size=128, lr=1e-3, grad_clip=None, ema_decay=None, log_every=5)


def test_first_step_is_exact():
    """One step, one model: the per-model loss is the sequential loss bit for bit (the rounding
    differences of the batched matmul appear only in the backward pass and then accumulate)."""
    data = _task().dataset(256, seed=0)
    p, q = _cvae(5, beta=0.3), _cvae(5, beta=0.3)
    h = train(p, data, steps=1, batch_size=64, seed=7)
    hb = train_batched([q], data, steps=1, batch_size=64, seed=7)[0]
    assert h.final["loss"] == hb.final["loss"] and h.final["kl"] == hb.final["kl"]


def _family(name, seed, **cfg):
    base = dict(obs_dim=1, action_dim=1, chunk_len=8, width=32, depth=1)
    return policies.make(name, seed=seed, **{**base, **cfg})


def _compare_family(name, specs, data, **kw):
    """Like _compare for any family: [(seed, config)] trained one by one and as one stacked run."""
    seq = []
    for seed, cfg in specs:
        p = _family(name, seed, **cfg)
        seq.append((p, train(p, data, seed=seed, **kw)))
    batch = [_family(name, seed, **cfg) for seed, cfg in specs]
    hists = train(batch, data, seed=[s for s, _ in specs], **kw)  # the same loop, given a list
    for (p, h), q, hb in zip(seq, batch, hists):
        assert h.keys() == hb.keys()
        for key in h.keys():
            assert torch.allclose(torch.tensor(h[key]), torch.tensor(hb[key]), **TOL), (name, key)
        for (pname, a), b in zip(p.state_dict().items(), q.state_dict().values()):
            if pname.endswith("qkv.bias"):  # attention is invariant to the key bias: its gradient is pure rounding
                C = a.shape[0] // 3  # noise, which AdamW scales up to lr-sized steps; the query and value parts count
                a, b = torch.cat([a[:C], a[2 * C:]]), torch.cat([b[:C], b[2 * C:]])
            assert torch.allclose(a.float(), b.float(), **TOL), (name, pname)
        assert p.config == q.config  # each policy keeps its own settings
    return seq, batch


@pytest.mark.parametrize("name, specs", [
    # seeds only (and fields that sampling alone reads)
    ("flow", [(0, {}), (1, dict(solver="heun", steps=4)), (2, {})]),
    ("flow", [(0, dict(time_sampling="beta")), (5, dict(time_sampling="beta"))]),
    ("diffusion", [(0, dict(num_train_steps=20, steps=5)), (1, dict(num_train_steps=20, steps=10, sampler="ddpm"))]),
    ("regression", [(0, {}), (1, {}), (2, {})]),
    # each family's scalar settings
    ("mixture", [(0, dict(num_components=3, min_std=0.01)), (1, dict(num_components=3, min_std=0.2))]),
    ("cvae", [(0, dict(regularizer="aggregate", agg_weight=1.0)), (1, dict(regularizer="aggregate", agg_weight=10.0))]),
    ("autoregressive", [(0, dict(n_bins=8, decoder="transformer", layers=1, heads=2, offset_weight=0.5)),
                        (1, dict(n_bins=8, decoder="transformer", layers=1, heads=2, offset_weight=2.0))]),
])
def test_batched_equals_sequential_for_every_batchable_family(name, specs):
    """Per-model seeds: the stacked run draws each model's minibatches and loss noise (flow times
    and base noise, diffusion steps and noise, CVAE posterior and prior noise) from the streams its
    own train() call uses, and reaches the same losses and weights."""
    data = _task().dataset(256, seed=0)
    kw = dict(steps=24, batch_size=64, lr=3e-3, log_every=6, warmup=3)
    seq, batch = _compare_family(name, specs, data, **kw)
    assert seq[0][1]["loss"] != seq[1][1]["loss"]  # different seeds or scalars: different runs


def test_first_step_is_exact_for_flow_and_diffusion():
    data = _task().dataset(256, seed=0)
    for name, cfg in (("flow", {}), ("diffusion", dict(num_train_steps=20, steps=5))):
        p, q = _family(name, 5, **cfg), _family(name, 5, **cfg)
        h = train(p, data, steps=1, batch_size=64, seed=7)
        hb = train([q], data, steps=1, batch_size=64, seed=7)[0]
        assert h.final["loss"] == hb.final["loss"], name


def test_rejects_what_it_cannot_batch():
    data = _task().dataset(256, seed=0)
    with pytest.raises(ValueError, match="latent_dim"):
        train_batched([_cvae(0), _cvae(0, latent_dim=3)], data, steps=1)
    with pytest.raises(ValueError, match="Sinkhorn"):
        train_batched([_cvae(0, regularizer="aggregate", aggregate="sinkhorn")], data, steps=1)
    with pytest.raises(ValueError, match="codebook"):
        train_batched([_family("vq", 0), _family("vq", 1)], data, steps=1)
    with pytest.raises(ValueError, match="GRU"):
        train_batched([_family("autoregressive", 0)], data, steps=1)
    with pytest.raises(ValueError, match="dropout"):
        train([_family("flow", 0, dropout=0.1)], data, steps=1)
    with pytest.raises(ValueError, match="one family"):
        train([_family("flow", 0), _family("diffusion", 0)], data, steps=1)
    with pytest.raises(ValueError, match="time_sampling"):
        train([_family("flow", 0), _family("flow", 0, time_sampling="beta")], data, steps=1)
    with pytest.raises(ValueError, match="seeds"):
        train_batched([_cvae(0), _cvae(1)], data, steps=1, seed=[0, 1, 2])
    with pytest.raises(ValueError, match="val_dataset"):
        train([_cvae(0), _cvae(1)], data, steps=1, val_dataset=data)
    assert set(BATCHED_FAMILIES) == {"cvae", "diffusion", "flow", "mixture", "regression"}
    assert SCALAR_FIELDS["cvae"] == ("beta", "free_bits", "beta_warmup", "agg_weight")


def test_fit_many_matches_fit():
    """The fitting helper the β sweeps use (one stacked run) gives fit's models, one by one."""
    task = _task()
    data = task.dataset(256, seed=0)
    b = dict(steps=30, width=32, depth=1, batch_size=64, lr=3e-3, latent_dim=2)
    pols, hists = fit_many("cvae", data, [dict(beta=0.1, recon="l2"), dict(beta=1.0, recon="l2")], keys=["lo", "hi"],
                           seeds=0, budget=b, progress=False)
    for key, beta in (("lo", 0.1), ("hi", 1.0)):
        ref, href = fit("cvae", data, budget=b, seed=0, progress=False, beta=beta, recon="l2")
        assert torch.allclose(torch.tensor(href["loss"]), torch.tensor(hists[key]["loss"]), **TOL)
        obs = torch.zeros(4, 1)
        g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
        assert torch.allclose(ref.sample(obs, 3, generator=g1), pols[key].sample(obs, 3, generator=g2), **TOL)


def test_a_diverging_stacked_run_restores_every_policy():
    from mbc_lib.train import NonFiniteLossError

    data = _task().dataset(256, seed=0)
    pols, fresh = [_family("flow", s) for s in (0, 1)], [_family("flow", s) for s in (0, 1)]
    with pytest.raises(NonFiniteLossError, match=r"the loss of policy \d \(of 2 trained together\) became") as err:
        train(pols, data, steps=20, lr=1e6, grad_clip=None, log_every=10, progress=False)
    assert err.value.restored_step == 0 and len(err.value.history) == 2
    for p, q in zip(pols, fresh):
        assert all(torch.equal(a, b) for a, b in zip(p.parameters(), q.parameters())) and not p.training
