"""Batched sweeps (mbc_lib.batched.train_batched): the same models as sequential train(), per seed."""
import pytest
import torch

from mbc_lib import policies, tasks
from mbc_lib.batched import train_batched
from mbc_lib.experiments import latent
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


def test_rejects_what_it_cannot_batch():
    data = _task().dataset(256, seed=0)
    with pytest.raises(ValueError, match="latent_dim"):
        train_batched([_cvae(0), _cvae(0, latent_dim=3)], data, steps=1)
    with pytest.raises(ValueError, match="regularizer"):
        train_batched([_cvae(0, regularizer="aggregate")], data, steps=1)
    reg = policies.make("regression", obs_dim=1, action_dim=1, chunk_len=8, width=16, depth=1)
    with pytest.raises(ValueError, match="families"):
        train_batched([reg], data, steps=1)
    with pytest.raises(ValueError, match="seeds"):
        train_batched([_cvae(0), _cvae(1)], data, steps=1, seed=[0, 1, 2])


def test_fit_cvaes_matches_fit_cvae():
    """The experiment helper the β sweep uses gives fit_cvae's models."""
    task = _task()
    data = task.dataset(256, seed=0)
    b = dict(steps=30, width=32, depth=1, batch_size=64, lr=3e-3, latent_dim=2)
    pols, hists = latent.fit_cvaes(task, data, b, [dict(beta=0.1, recon="l2"), dict(beta=1.0, recon="l2")],
                                   seed=0, progress=False, keys=["lo", "hi"])
    for key, beta in (("lo", 0.1), ("hi", 1.0)):
        ref, href = latent.fit_cvae(task, data, b, seed=0, progress=False, beta=beta, recon="l2")
        assert torch.allclose(torch.tensor(href["loss"]), torch.tensor(hists[key]["loss"]), **TOL)
        obs = torch.zeros(4, 1)
        g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
        assert torch.allclose(ref.sample(obs, 3, generator=g1), pols[key].sample(obs, 3, generator=g2), **TOL)
