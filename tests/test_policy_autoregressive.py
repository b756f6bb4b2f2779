"""The autoregressive token policy: tokens, the loss and its parts, config validation, the
sampler's contract (shape, determinism, temperature, NFE), the offset head, and mode coverage
on the two-branch fork after a short CPU training (fixed seeds; seconds per test)."""
from __future__ import annotations

import pytest
import torch

from mbc_lib import policies, tasks
from mbc_lib.train import load_checkpoint, save_checkpoint, train

SEED = 0
FAST = dict(width=32, depth=2)  # small enough for a CPU test, wide enough to learn the fork
TRAIN = dict(steps=300, batch_size=256, lr=1e-2, seed=SEED, progress=False)  # tokens want a large lr at short budgets


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny networks: intra-op threads buy nothing on a busy CI runner. Restored after the module."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _make(task, **config) -> policies.Policy:
    return policies.make("autoregressive", seed=SEED, obs_dim=task.obs_dim, action_dim=task.action_dim,
                         chunk_len=task.chunk_len, **{**FAST, **config})


@pytest.fixture(scope="module")
def fork():
    task = tasks.make("fork", K=2, delta=2.0)
    return task, task.dataset(2048, seed=SEED)


@pytest.fixture(scope="module")
def fork_policy(fork):
    task, data = fork
    policy = _make(task)
    train(policy, data, **TRAIN)
    return policy


def coverage(policy, task, n_obs: int = 64, n: int = 64, seed: int = SEED + 1, **sample_kw):
    """(fraction of samples inside some mode, fraction of samples in each mode)."""
    g = _gen(seed)
    obs = task.sample_obs(n_obs, g)
    labels = task.assign(obs, policy.sample(obs, n, generator=g, **sample_kw))  # [n_obs, n]
    return float((labels >= 0).float().mean()), [float((labels == k).float().mean()) for k in range(task.K)]


# -- construction, config, loss ------------------------------------------------------------------
def test_registered_and_built_by_name():
    assert "autoregressive" in policies.families()
    policy = policies.make("autoregressive", obs_dim=2, action_dim=3, chunk_len=4, **FAST)
    assert policy.family == "autoregressive" and policy.config.chunk_numel == 12


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(n_bins=1), "n_bins must be an integer >= 2"),
        (dict(n_bins=16.0), "n_bins must be an integer"),
        (dict(n_bins=True), "n_bins must be an integer"),
        (dict(bin_range=0.0), "bin_range must be a finite number > 0"),
        (dict(bin_range=float("inf")), "bin_range must be a finite number > 0"),
        (dict(bin_range=float("nan")), "bin_range"),
        (dict(offset="yes"), "offset must be True or False"),
        (dict(offset_weight=-1.0), "offset_weight must be a finite number >= 0"),
        (dict(offset_weight=float("nan")), "offset_weight"),
        (dict(temperature=0.0), "temperature must be a finite number > 0"),
        (dict(temperature=float("inf")), "temperature"),
        (dict(decoder="lstm"), "decoder must be 'gru' or 'transformer'"),
        (dict(layers=0), "layers must be an integer >= 1"),
        (dict(heads=0), "heads must be an integer >= 1"),
        (dict(decoder="transformer", heads=5, width=32), r"heads \(5\) must divide the decoder width \(32\)"),
        (dict(decoder="transformer", heads=4, decoder_width=18), r"heads \(4\) must divide the decoder width \(18\)"),
        (dict(decoder_width=0), "decoder_width must be an integer >= 1"),
        (dict(decoder_width=16.0), "decoder_width must be an integer"),
    ],
)
def test_bad_config_raises(bad, match):
    with pytest.raises(ValueError, match=match):
        policies.make("autoregressive", **{**FAST, **bad})


@pytest.mark.parametrize("decoder", ["gru", "transformer"])
@pytest.mark.parametrize("offset", [True, False])
def test_loss_parts_and_gradients(decoder, offset):
    policy = policies.make("autoregressive", seed=0, obs_dim=2, action_dim=2, chunk_len=4, decoder=decoder,
                           offset=offset, **FAST)
    batch = {"obs": torch.randn(16, 2, generator=_gen(0)), "chunk": torch.randn(16, 4, 2, generator=_gen(1))}
    parts = policy.loss(batch)
    assert set(parts) == ({"loss", "ce", "clipped"} | ({"offset"} if offset else set()))
    assert all(v.ndim == 0 and torch.isfinite(v) for v in parts.values())
    # untrained: the cross-entropy is near log M nats per token (uniform over the bins)
    assert abs(float(parts["ce"]) - torch.log(torch.tensor(float(policy.config.n_bins)))) < 1.0
    expected = parts["ce"] + (policy.config.offset_weight * parts["offset"] if offset else 0.0)
    assert torch.allclose(parts["loss"], expected)
    parts["loss"].backward()
    grads = [p.grad for p in policy.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_log_prob_is_the_summed_token_cross_entropy():
    policy = policies.make("autoregressive", seed=0, obs_dim=2, action_dim=2, chunk_len=4, **FAST)
    batch = {"obs": torch.randn(16, 2, generator=_gen(0)), "chunk": torch.randn(16, 4, 2, generator=_gen(1))}
    logp = policy.log_prob(batch["obs"], batch["chunk"])
    assert logp.shape == (16,) and (logp <= 0).all()
    with torch.no_grad():
        ce = policy.loss(batch)["ce"]  # nats per token
    assert torch.allclose(-logp.mean() / policy.nfe(), ce, atol=1e-5)


def test_teacher_forcing_is_causal():
    """Position i's logits depend on the tokens before i only: changing element 2 of the chunk
    leaves positions 0..2 as they were and changes the later ones (both decoders)."""
    for decoder in ("gru", "transformer"):
        policy = policies.make("autoregressive", seed=0, obs_dim=1, action_dim=1, chunk_len=6, decoder=decoder, **FAST)
        obs, chunk = torch.zeros(1, 1), torch.linspace(-1, 1, 6).reshape(1, 6, 1)
        other = chunk.clone()
        other[0, 2, 0] = -2.5
        s, a = policy.check_batch({"obs": obs, "chunk": chunk})
        la, _ = policy._forward(s, *policy._tokenize(a))  # [1, 6, M]
        lb, _ = policy._forward(s, *policy._tokenize(policy.check_batch({"obs": obs, "chunk": other})[1]))
        assert torch.allclose(la[:, :3], lb[:, :3], atol=1e-6), decoder
        assert not torch.allclose(la[:, 3:], lb[:, 3:], atol=1e-4), decoder


# -- tokens ---------------------------------------------------------------------------------------
def test_tokens_round_trip_within_half_a_bin_and_clip_at_the_range():
    policy = policies.make("autoregressive", obs_dim=1, action_dim=2, chunk_len=3, n_bins=10, bin_range=2.0, **FAST)
    w = policy.config.bin_width
    assert w == pytest.approx(0.4)
    chunk = torch.linspace(-1.99, 1.99, 60).reshape(10, 3, 2)  # identity normaliser: task units = normalised
    tokens = policy.tokenize(chunk)
    assert tokens.shape == (10, 6) and tokens.dtype == torch.long
    steps = torch.tensor([[[-1.9, 1.9], [0.1, -0.1], [0.5, 1.0]]])  # [1, H=3, d=2]
    assert policy.tokenize(steps).tolist() == [[0, 9, 5, 4, 6, 7]], "time-major: step 1's elements, then step 2's"
    assert (policy.detokenize(tokens) - chunk).abs().max() <= w / 2 + 1e-6
    far = torch.tensor([-100.0, -2.0, 2.0, 100.0, 0.0, 0.01]).reshape(1, 3, 2)
    assert policy.tokenize(far).tolist() == [[0, 0, 9, 9, 5, 5]], "values beyond ±R go to the end bins"
    with pytest.raises(ValueError, match="tokens must be"):
        policy.detokenize(tokens[:, :5])


# -- sampling contract ---------------------------------------------------------------------------
def test_nfe_is_the_number_of_tokens():
    assert policies.make("autoregressive", action_dim=2, chunk_len=8, **FAST).nfe() == 16
    assert policies.make("autoregressive", action_dim=1, chunk_len=5, **FAST).nfe() == 5


@pytest.mark.parametrize("decoder", ["gru", "transformer"])
def test_decoder_width_sizes_only_the_token_network(decoder):
    """decoder_width narrows the embeddings and the causal network; the observation backbone keeps its
    hidden width and ends in the decoder's width, and sampling still works."""
    wide = policies.make("autoregressive", seed=0, obs_dim=3, action_dim=2, chunk_len=4, width=64, depth=2,
                         decoder=decoder)
    narrow = policies.make("autoregressive", seed=0, obs_dim=3, action_dim=2, chunk_len=4, width=64, depth=2,
                           decoder=decoder, decoder_width=16)
    assert narrow.config.token_width == 16 and wide.config.token_width == 64
    assert narrow.tok_emb.weight.shape == (narrow.config.n_bins + 1, 16)
    causal = (lambda p: p.rnn) if decoder == "gru" else (lambda p: p.blocks)
    n_causal = lambda p: sum(t.numel() for t in causal(p).parameters())  # noqa: E731
    assert n_causal(narrow) * 8 < n_causal(wide)  # parameters grow as the width squared: 16x fewer, up to biases
    hidden = lambda p: [m.fc1.weight.shape for m in p.obs_net.blocks]  # noqa: E731
    assert hidden(narrow) == hidden(wide) == [(64, 64)] * 2
    obs = torch.randn(5, 3, generator=_gen(0))
    assert narrow.sample(obs, n=2, generator=_gen(1)).shape == (5, 2, 4, 2)
    loss = narrow.loss({"obs": obs, "chunk": torch.randn(5, 4, 2, generator=_gen(2))})["loss"]
    assert torch.isfinite(loss)


@pytest.mark.parametrize("decoder", ["gru", "transformer"])
def test_sample_shape_and_determinism(decoder):
    policy = policies.make("autoregressive", seed=0, obs_dim=2, action_dim=2, chunk_len=3, decoder=decoder, **FAST)
    obs = torch.randn(4, 2, generator=_gen(0))
    a = policy.sample(obs, n=5, generator=_gen(7))
    assert a.shape == (4, 5, 3, 2) and torch.isfinite(a).all()
    assert torch.equal(a, policy.sample(obs, n=5, generator=_gen(7))), "same seed -> identical samples, bit for bit"
    assert not torch.equal(a, policy.sample(obs, n=5, generator=_gen(8)))
    assert not torch.equal(a[:, 0], a[:, 1]), "the n samples of one observation are independent draws"
    assert a.abs().max() <= policy.config.bin_range + 1e-5, "identity normaliser: samples stay inside ±R"
    with pytest.raises(ValueError, match="n"):
        policy.sample(obs, n=0)
    with pytest.raises(ValueError, match="obs must be"):
        policy.sample(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="temperature"):
        policy.sample(obs, 2, temperature=0.0)


def test_transformer_decoding_with_cache_matches_teacher_forcing():
    """Decoding one token at a time (cached keys/values) gives the same logits as one causal pass."""
    policy = policies.make("autoregressive", seed=0, obs_dim=1, action_dim=1, chunk_len=5, decoder="transformer",
                           **FAST)
    s, a = policy.check_batch({"obs": torch.zeros(2, 1), "chunk": torch.randn(2, 5, 1, generator=_gen(3))})
    k, u = policy._tokenize(a)
    full, _ = policy._forward(s, k, u)  # [2, 5, M]
    value = policy._detokenize(k, u)
    prev_k = torch.cat([k.new_full((2, 1), policy.config.n_bins), k[:, :-1]], 1)
    prev_v = torch.cat([value.new_zeros(2, 1), value[:, :-1]], 1)
    cond, state, steps = policy.obs_net(s), None, []
    for i in range(5):
        x = (policy._inputs(prev_k[:, i], prev_v[:, i]) + policy.pos_emb[i] + cond)[:, None]
        h, state = policy._causal(x, state)
        steps.append(policy._heads(h[:, 0])[0])
    assert torch.allclose(torch.stack(steps, 1), full, atol=1e-5)


def test_checkpoint_round_trip(fork_policy, tmp_path):
    loaded = load_checkpoint(save_checkpoint(fork_policy, tmp_path / "ar.pt"))
    obs = torch.linspace(-1, 1, 3)[:, None]
    assert loaded.config == fork_policy.config
    assert torch.equal(loaded.sample(obs, 4, generator=_gen(2)), fork_policy.sample(obs, 4, generator=_gen(2)))


# -- what it learns ---------------------------------------------------------------------------------
def test_fork_both_modes_balanced_and_on_support(fork_policy, fork):
    task, _ = fork
    inside, per_mode = coverage(fork_policy, task)
    print(f"autoregressive fork: inside {inside:.3f}, modes {per_mode}, nfe {fork_policy.nfe()}")
    assert min(per_mode) >= 0.3, f"each branch should get a fair share of the samples, got {per_mode}"
    assert inside >= 0.8, f"only {inside:.1%} of samples inside a mode"


def test_three_branch_fork_every_branch_reached():
    """K = 3 at the same short budget: every branch keeps a fair share. At this budget part of
    the samples drift between branches over the chunk (the earliest tokens hardly tell the
    branches apart, and a wrong turn later lands between them), hence the looser floor on
    the mass inside the modes."""
    task = tasks.make("fork", K=3, delta=2.0)
    policy = _make(task)
    train(policy, task.dataset(2048, seed=SEED), **TRAIN)
    inside, per_mode = coverage(policy, task)
    print(f"autoregressive fork K=3: inside {inside:.3f}, modes {per_mode}")
    assert min(per_mode) >= 0.15, per_mode
    assert inside >= 0.55, f"only {inside:.1%} of samples inside a mode"


def test_low_temperature_sharpens_within_the_modes(fork_policy, fork):
    task, _ = fork
    g = _gen(5)
    obs = task.sample_obs(32, g)
    centers = task.modes(obs).centers.flatten(2)  # [B, K, n]

    def spread(temperature):
        x = fork_policy.sample(obs, 32, generator=_gen(6), temperature=temperature).flatten(2)  # [B, N, n]
        return float(torch.cdist(x, centers).min(-1).values.mean())  # mean distance to the nearest centre

    assert spread(0.5) < spread(1.0)


def test_offset_head_removes_most_of_the_quantisation_error(fork):
    """With 8 bins over ±3 stds a bin is ~10 σ wide: the bin centres alone are far from the
    demonstrations, and the offset head, trained on the true bins, brings them back."""
    task, data = fork
    coarse = _make(task, n_bins=8, offset=True)
    train(coarse, data, **{**TRAIN, "steps": 150})
    centres_only = _make(task, n_bins=8, offset=False)
    centres_only.normalizer.load_state_dict(coarse.normalizer.state_dict())
    obs, chunk = data.obs[:512], data.chunks[:512]
    err_offset = float((coarse.reconstruct(obs, chunk) - chunk).pow(2).mean().sqrt())
    err_centres = float((centres_only.reconstruct(obs, chunk) - chunk).pow(2).mean().sqrt())
    w = coarse.config.bin_width * float(coarse.normalizer.act_std)  # bin width in task units
    print(f"rms quantisation error: centres {err_centres:.4f}, with offsets {err_offset:.4f} (w = {w:.3f})")
    assert err_centres == pytest.approx(w / 12**0.5, rel=0.35), "bin centres: ~ uniform error w/√12"
    assert err_offset < 0.6 * err_centres
    assert torch.equal(centres_only.reconstruct(obs, chunk), centres_only.detokenize(centres_only.tokenize(chunk)))
