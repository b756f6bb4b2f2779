"""mbc_lib.fitting: one helper makes a policy for a dataset's shapes and trains it with a budget."""
import pytest
import torch

from mbc_lib import tasks
from mbc_lib.fitting import fit, fit_many
from mbc_lib.train import train

BUDGET = dict(steps=20, width=32, depth=1, batch_size=64, lr=3e-3, latent_dim=3, n_demos=999)  # extra keys ignored


@pytest.fixture(scope="module")
def data():
    return tasks.make("fork", K=2, delta=2.0).dataset(256, seed=0)


def test_fit_reads_the_budget_and_lets_arguments_override_it(data):
    policy, history = fit("cvae", data, budget=BUDGET, seed=1, progress=False, beta=0.2)
    cfg = policy.config
    assert (cfg.obs_dim, cfg.action_dim, cfg.chunk_len) == (data.obs_dim, data.action_dim, data.chunk_len)
    assert cfg.latent_dim == 3 and cfg.beta == 0.2 and cfg.backbone.width == 32
    assert len(history["loss"]) > 0 and history.final is not None
    assert policy.device.type == "cpu"
    policy, _ = fit("flow", data, budget=BUDGET, width=16, steps=5, seed=0, progress=False)
    assert policy.config.backbone.width == 16 and not hasattr(policy.config, "latent_dim")


def test_fit_is_make_then_train(data):
    from mbc_lib import policies

    ref = policies.make("regression", obs_dim=1, action_dim=1, chunk_len=data.chunk_len, width=32, depth=1, seed=4)
    h_ref = train(ref, data, steps=20, batch_size=64, lr=3e-3, seed=4, progress=False)
    pol, h = fit("regression", data, budget=BUDGET, seed=4, progress=False)
    assert h["loss"] == h_ref["loss"]
    assert torch.equal(pol.sample(torch.zeros(3, 1), 1), ref.cpu().sample(torch.zeros(3, 1), 1))


def test_fit_many_trains_one_by_one_what_cannot_share_a_run(data):
    # VQ rewrites its codebook in place: not stackable, trained one by one with the same result as fit
    pols, hists = fit_many("vq", data, [dict(commitment=0.25), dict(commitment=0.5)], seeds=[0, 1], budget=BUDGET,
                           progress=False)
    assert list(pols) == [0, 1]
    ref, h_ref = fit("vq", data, budget=BUDGET, seed=1, progress=False, commitment=0.5)
    assert hists[1]["loss"] == h_ref["loss"]
    with pytest.raises(ValueError, match="one key and one seed per config"):
        fit_many("flow", data, [{}, {}], keys=["a"], budget=BUDGET)
