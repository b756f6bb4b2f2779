"""The policy contract, family by family: shapes, determinism under a generator,
checkpoint round trips, config validation, and each family's extra views
(encode/prior/kl for latent-variable policies, transport for diffusion and flow).
Tiny models and a few dozen training steps: seconds in all."""
from __future__ import annotations

import math

import pytest
import torch

from mbc_lib import policies, tasks
from mbc_lib.policies.cvae import gaussian_kl_per_dim, mmd_imq, sinkhorn_regularizer
from mbc_lib.train import load_checkpoint, save_checkpoint, train

FAMILIES = ["regression", "cvae", "vq", "mixture", "diffusion", "flow", "autoregressive"]
STOCHASTIC = [f for f in FAMILIES if f != "regression"]
TINY = dict(width=32, depth=1)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These networks are tiny: intra-op threads buy nothing and, on a busy 2-core CI runner,
    their synchronisation makes every op ~10x slower. Restored after the module."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_every_family_is_registered():
    assert set(FAMILIES) <= set(policies.families())


@pytest.fixture(scope="module")
def fork():
    task = tasks.make("fork", K=2, delta=2.0)
    return task, task.dataset(256, seed=0)


@pytest.fixture(scope="module")
def fitted(fork):
    """One briefly trained policy per family (normaliser fitted, weights moved off init)."""
    task, data = fork
    out = {}
    for name in FAMILIES:
        policy = policies.make(name, seed=0, obs_dim=1, action_dim=1, chunk_len=task.chunk_len, **TINY)
        train(policy, data, steps=20, batch_size=64, seed=0, progress=False)
        out[name] = policy
    return out


def _obs(B: int = 3, seed: int = 0) -> torch.Tensor:
    return 2 * torch.rand(B, 1, generator=torch.Generator().manual_seed(seed)) - 1


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- construction and the loss ------------------------------------------------------------------
@pytest.mark.parametrize("name", FAMILIES)
def test_make_with_defaults_gives_a_trainable_loss(name):
    policy = policies.make(name, seed=0, obs_dim=2, action_dim=2, chunk_len=4, **TINY)
    batch = {"obs": torch.randn(8, 2), "chunk": torch.randn(8, 4, 2)}
    parts = policy.loss(batch)
    assert "loss" in parts and parts["loss"].ndim == 0 and torch.isfinite(parts["loss"])
    assert all(v.ndim == 0 for v in parts.values()), "every logged part is a scalar tensor"
    parts["loss"].backward()
    grads = [p.grad for p in policy.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_make_seed_fixes_initial_weights():
    a = policies.make("flow", seed=3, **TINY)
    b = policies.make("flow", seed=3, **TINY)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


# -- sampling: shapes, determinism, checkpoints -----------------------------------------------
@pytest.mark.parametrize("name", FAMILIES)
def test_sample_shape_and_units(name, fitted, fork):
    task, _ = fork
    samples = fitted[name].sample(_obs(3), n=5, generator=_gen(0))
    assert samples.shape == (3, 5, task.chunk_len, 1)
    assert torch.isfinite(samples).all()
    assert samples.abs().max() < 10, "samples come back in task units (the fork lives in [-3, 3])"
    with pytest.raises(ValueError, match="n"):
        fitted[name].sample(_obs(3), n=0)
    with pytest.raises(ValueError, match="obs must be"):
        fitted[name].sample(torch.zeros(3, 2), n=1)


@pytest.mark.parametrize("name", STOCHASTIC)
def test_sample_is_deterministic_under_a_generator(name, fitted):
    policy = fitted[name]
    a = policy.sample(_obs(4), n=6, generator=_gen(7))
    b = policy.sample(_obs(4), n=6, generator=_gen(7))
    c = policy.sample(_obs(4), n=6, generator=_gen(8))
    assert torch.equal(a, b), "same generator seed -> identical samples"
    assert not torch.equal(a, c), "a different seed gives different samples"
    assert not torch.equal(a[:, 0], a[:, 1]), "the n samples of one observation are independent draws"


@pytest.mark.parametrize("name", FAMILIES)
def test_checkpoint_round_trip_gives_identical_samples(name, fitted, tmp_path):
    policy = fitted[name]
    path = save_checkpoint(policy, tmp_path / f"{name}.pt")
    loaded = load_checkpoint(path)
    assert type(loaded) is type(policy) and loaded.config == policy.config
    assert torch.equal(policy.sample(_obs(4), 3, generator=_gen(1)), loaded.sample(_obs(4), 3, generator=_gen(1)))


@pytest.mark.parametrize(
    "name, config",
    [
        ("cvae", dict(prior="learned", regularizer="aggregate", aggregate="sinkhorn", decode_from="mean")),
        ("diffusion", dict(prediction="sample", schedule="linear", sampler="ddpm")),
        ("flow", dict(time_sampling="beta", solver="heun")),
        ("autoregressive", dict(decoder="transformer", offset=False, n_bins=16, temperature=0.8)),
    ],
)
def test_checkpoint_round_trip_of_non_default_configs(name, config, fork, tmp_path):
    task, data = fork
    policy = policies.make(name, seed=0, obs_dim=1, action_dim=1, chunk_len=task.chunk_len, **TINY, **config)
    train(policy, data, steps=5, batch_size=64, seed=0, progress=False)
    loaded = load_checkpoint(save_checkpoint(policy, tmp_path / "p.pt"))
    assert loaded.config == policy.config
    assert torch.equal(policy.sample(_obs(2), 3, generator=_gen(2)), loaded.sample(_obs(2), 3, generator=_gen(2)))


# -- config validation ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, bad, match",
    [
        ("cvae", dict(beta=-1.0), "beta must be"),
        ("cvae", dict(beta=float("nan")), "beta must be"),
        ("cvae", dict(latent_dim=0), "latent_dim"),
        ("cvae", dict(prior="gaussian"), "prior must be one of"),
        ("cvae", dict(regularizer="wae"), "regularizer must be one of"),
        ("cvae", dict(aggregate="gan"), "aggregate must be one of"),
        ("cvae", dict(recon="huber"), "recon must be one of"),
        ("cvae", dict(decode_from="posterior"), "decode_from must be one of"),
        ("cvae", dict(free_bits=-0.1), "free_bits"),
        ("cvae", dict(beta_warmup=-5), "beta_warmup"),
        ("cvae", dict(agg_weight=-1.0), "agg_weight"),
        ("cvae", dict(sinkhorn_eps=0.0), "sinkhorn_eps"),
        ("vq", dict(num_codes=0), "num_codes"),
        ("vq", dict(code_dim=0), "code_dim"),
        ("vq", dict(commitment=-0.25), "commitment"),
        ("vq", dict(dead_code_after=-1), "dead_code_after"),
        ("mixture", dict(num_components=0), r"num_components \(K\)"),
        ("mixture", dict(min_std=0.0), "min_std"),
        ("mixture", dict(std_scale=-1.0), "std_scale"),
        ("diffusion", dict(steps=0), "steps"),
        ("diffusion", dict(steps=200, num_train_steps=100), "steps"),
        ("diffusion", dict(num_train_steps=0), "num_train_steps"),
        ("diffusion", dict(schedule="sigmoid"), "schedule"),
        ("diffusion", dict(prediction="v"), "prediction"),
        ("diffusion", dict(sampler="dpm"), "sampler"),
        ("diffusion", dict(clip_sample=-1.0), "clip_sample"),
        ("flow", dict(steps=0), "steps"),
        ("flow", dict(solver="rk4"), "solver"),
        ("flow", dict(time_sampling="logit_normal"), "time_sampling"),
        ("regression", dict(loss="huber"), "loss"),
    ],
)
def test_config_validation(name, bad, match):
    with pytest.raises(ValueError, match=match):
        policies.make(name, **bad)


def test_unknown_options_and_families_are_rejected():
    with pytest.raises(TypeError, match="unknown option"):
        policies.make("flow", beta=1.0)
    with pytest.raises(ValueError, match="unknown policy family"):
        policies.make("gan")


@pytest.mark.parametrize("name", ["diffusion", "flow"])
def test_steps_override_per_call(name, fitted):
    policy = fitted[name]
    one = policy.sample(_obs(2), 2, generator=_gen(0), steps=1)
    many = policy.sample(_obs(2), 2, generator=_gen(0), steps=8)
    assert one.shape == many.shape and not torch.equal(one, many)
    with pytest.raises(ValueError, match="steps"):
        policy.sample(_obs(2), 2, steps=0)
    if name == "diffusion":
        with pytest.raises(ValueError, match="num_train_steps"):
            policy.sample(_obs(2), 2, steps=policy.config.num_train_steps + 1)
        with pytest.raises(ValueError, match="sampler"):
            policy.sample(_obs(2), 2, sampler="euler")
    else:
        with pytest.raises(ValueError, match="solver"):
            policy.sample(_obs(2), 2, solver="rk4")


@pytest.mark.parametrize("name, config", [(f, {}) for f in FAMILIES] + [("flow", {"solver": "heun", "steps": 3}),
                                                                      ("diffusion", {"steps": 5})])
def test_nfe_counts_the_network_calls_of_one_sample(name, config):
    """nfe() is the latency price: the most times any one network of the policy runs while drawing a chunk."""
    policy = policies.make(name, seed=0, obs_dim=1, action_dim=1, chunk_len=4, **TINY, **config)
    calls = {}
    for child, module in policy.named_children():
        if child != "normalizer":
            module.register_forward_hook(lambda m, i, o, c=child: calls.__setitem__(c, calls.get(c, 0) + 1))
    policy.sample(_obs(3), 2, generator=_gen(0))
    expected = {"diffusion": config.get("steps", 20), "autoregressive": 4}.get(name, 1)
    if name == "flow":
        expected = config.get("steps", 10) * (2 if config.get("solver") == "heun" else 1)
    assert policy.nfe() == expected == max(calls.values()), calls


# -- transport (diffusion, flow) --------------------------------------------------------------------
@pytest.mark.parametrize("name", ["diffusion", "flow"])
def test_transport_is_deterministic_differentiable_and_matches_sample(name, fitted, fork):
    task, _ = fork
    policy = fitted[name]
    obs = _obs(4)
    noise = torch.randn(4, task.chunk_len, 1, generator=_gen(5))
    a, b = policy.transport(obs, noise), policy.transport(obs, noise.clone())
    assert a.shape == noise.shape and torch.equal(a, b)
    # the deterministic sampler IS the transport: sample(n=1) draws its base noise the same way
    sampled = policy.sample(obs, 1, generator=_gen(5), **({"sampler": "ddim"} if name == "diffusion" else {}))
    assert torch.allclose(sampled[:, 0], a, atol=1e-5)
    # differentiable in the base noise (the Lipschitz diagnostics take its Jacobian)
    eps = noise.clone().requires_grad_(True)
    policy.transport(obs, eps).sum().backward()
    assert eps.grad is not None and torch.isfinite(eps.grad).all() and eps.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="base_noise must be"):
        policy.transport(obs, torch.randn(4, task.chunk_len + 1, 1))


# -- cvae --------------------------------------------------------------------------------------------
def test_cvae_views_shapes_and_kl(fitted, fork):
    task, data = fork
    policy = fitted["cvae"]
    dz = policy.config.latent_dim
    obs, chunk = data.obs[:16], data.chunks[:16]
    mu, logvar = policy.encode(obs, chunk)
    pmu, plogvar = policy.prior(obs)
    assert mu.shape == logvar.shape == pmu.shape == plogvar.shape == (16, dz)
    assert torch.equal(pmu, torch.zeros_like(pmu)) and torch.equal(plogvar, torch.zeros_like(plogvar))
    kl = policy.kl(obs, chunk)
    assert kl.shape == (16,) and (kl >= 0).all()
    closed_form = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1)  # KL(N(μ,σ²) ‖ N(0,1))
    assert torch.allclose(kl, closed_form, atol=1e-5)
    assert policy.decode(obs, torch.zeros(16, dz)).shape == (16, task.chunk_len, 1)


def test_cvae_decode_from_zero_is_deterministic_and_equals_decoder_at_zero(fitted):
    policy = fitted["cvae"]
    obs = _obs(3)
    z0 = policy.sample(obs, 4, generator=_gen(0), decode_from="zero")
    assert torch.equal(z0[:, 0], z0[:, 3]), "z = 0 gives the same chunk every time (ACT)"
    assert torch.allclose(z0[:, 0], policy.decode(obs, torch.zeros(3, policy.config.latent_dim)), atol=1e-6)
    with pytest.raises(ValueError, match="decode_from"):
        policy.sample(obs, 1, decode_from="posterior")


def test_cvae_gaussian_kl_closed_form():
    mu_q, lv_q, mu_p, lv_p = torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([math.log(4.0)])
    # KL(N(1,1) ‖ N(0,4)) = ½ (1/4 + 1/4 − 1 + log 4)
    assert torch.allclose(gaussian_kl_per_dim(mu_q, lv_q, mu_p, lv_p), torch.tensor([0.5 * (0.5 - 1 + math.log(4))]))
    assert torch.allclose(gaussian_kl_per_dim(mu_p, lv_p, mu_p, lv_p), torch.zeros(1))


def test_cvae_learned_prior_and_loss_parts(fork):
    task, data = fork
    policy = policies.make("cvae", seed=0, obs_dim=1, action_dim=1, chunk_len=task.chunk_len, prior="learned", **TINY)
    parts = policy.loss(data.batch(torch.arange(32)))
    assert {"loss", "recon", "kl", "reg"} <= set(parts)
    mu, logvar = policy.prior(data.obs[:5])
    assert mu.shape == (5, policy.config.latent_dim) and not torch.equal(mu, torch.zeros_like(mu))


@pytest.mark.parametrize("aggregate", ["mmd", "sinkhorn"])
def test_cvae_aggregate_regulariser(aggregate, fork):
    task, data = fork
    policy = policies.make(
        "cvae", seed=0, obs_dim=1, action_dim=1, chunk_len=task.chunk_len, regularizer="aggregate",
        aggregate=aggregate, **TINY,
    )
    parts = policy.loss(data.batch(torch.arange(64)))
    assert {"loss", "recon", "kl", "reg", aggregate} <= set(parts)
    expected = parts["recon"] + policy.config.agg_weight * parts["reg"]
    assert torch.allclose(parts["loss"], expected), "the aggregate penalty replaces the KL in the loss"
    parts["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in policy.encoder.parameters())


def test_aggregate_divergences_see_a_shift():
    g = _gen(0)
    x, y = torch.randn(256, 3, generator=g), torch.randn(256, 3, generator=g)
    assert abs(float(mmd_imq(x, y))) < 0.02 and float(mmd_imq(x, y + 1.0)) > 0.5
    # the debiased Sinkhorn divergence of two 256-point samples of one law is ~0.2 (sampling
    # error); a unit shift in 3-D moves it towards ‖shift‖² = 3
    assert float(sinkhorn_regularizer(x, y, 0.5)) < 0.4 and float(sinkhorn_regularizer(x, y + 1.0, 0.5)) > 2.0


def test_cvae_free_bits_and_beta_warmup(fork):
    task, data = fork
    batch = data.batch(torch.arange(64))
    policy = policies.make(
        "cvae", seed=0, obs_dim=1, action_dim=1, chunk_len=task.chunk_len, free_bits=10.0, beta_warmup=4, **TINY
    )
    policy.train()
    parts = policy.loss(batch)
    assert torch.allclose(parts["reg"], torch.tensor(10.0 * policy.config.latent_dim)), "every dim sits under its free bits"
    assert policy.current_beta() == pytest.approx(0.25 * policy.config.beta)  # one step of four
    for _ in range(5):
        policy.loss(batch)
    assert policy.current_beta() == pytest.approx(policy.config.beta)
    policy.eval()
    with torch.no_grad():
        policy.loss(batch)  # evaluation does not advance the warm-up
    assert int(policy.step) == 6


# -- vq -------------------------------------------------------------------------------------------------
def test_vq_views(fitted, fork):
    _, data = fork
    policy = fitted["vq"]
    K = policy.config.num_codes
    codes = policy.encode(data.obs[:32], data.chunks[:32])
    assert codes.shape == (32,) and codes.dtype == torch.long and 0 <= int(codes.min()) and int(codes.max()) < K
    logp = policy.prior(data.obs[:32])
    assert logp.shape == (32, K) and torch.allclose(logp.exp().sum(-1), torch.ones(32))
    kl = policy.kl(data.obs[:32], data.chunks[:32])
    assert torch.allclose(kl, -logp.gather(1, codes[:, None])[:, 0]), "KL of a point-mass posterior = −log p(k*|s)"
    assert policy.decode(data.obs[:32], codes).shape == data.chunks[:32].shape


def test_vq_restarts_dead_codes(fork):
    task, data = fork
    policy = policies.make("vq", seed=0, obs_dim=1, action_dim=1, chunk_len=task.chunk_len, dead_code_after=2, **TINY)
    with torch.no_grad():
        policy.codebook[0] = 1e3  # far from every encoding: code 0 can never be chosen
    policy.train()
    batch = data.batch(torch.arange(64))
    for _ in range(3):
        policy.loss(batch)
    assert policy.codebook[0].abs().max() < 1e2, "the dead code was moved onto an encoding"


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA"))])
def test_vq_restarts_dead_codes_under_bf16_autocast(fork, device):
    """train() autocasts to bf16 on CUDA: the encodings are bf16, the codebook stays float32."""
    task, data = fork
    policy = policies.make("vq", seed=0, obs_dim=1, action_dim=1, chunk_len=task.chunk_len, dead_code_after=1,
                           **TINY).to(device)
    with torch.no_grad():
        policy.codebook[0] = 1e3
    policy.train()
    batch = {k: v.to(device) for k, v in data.batch(torch.arange(64)).items()}
    with torch.autocast(device, dtype=torch.bfloat16):
        for _ in range(3):
            policy.loss(batch)["loss"].backward()
    assert policy.codebook.dtype == torch.float32 and policy.codebook[0].abs().max() < 1e2


# -- mixture ---------------------------------------------------------------------------------------------
def test_mixture_views(fitted, fork):
    task, data = fork
    policy = fitted["mixture"]
    pi, mu, std = policy.mixture(data.obs[:8])
    K = policy.config.num_components
    assert pi.shape == (8, K) and torch.allclose(pi.sum(-1), torch.ones(8))
    assert mu.shape == std.shape == (8, K, task.chunk_len, 1)
    assert (std >= policy.config.min_std).all()
    logp = policy.log_prob(data.obs[:8], data.chunks[:8])
    assert logp.shape == (8,) and torch.isfinite(logp).all()


def test_mixture_log_likelihood_is_stable_far_from_every_component(fitted, fork):
    _, data = fork
    far = data.chunks[:4] + 1e4  # exp(log N) underflows to 0 here; log-sum-exp must not
    assert torch.isfinite(fitted["mixture"].log_prob(data.obs[:4], far)).all()
