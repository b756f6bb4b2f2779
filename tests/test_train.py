"""The training loop, checkpoints, profiles, and the regression baseline's averaging."""
import pytest
import torch

from mbc_lib import budget, policies, profile, tasks
from mbc_lib.experiments import averaging
from mbc_lib.train import History, load_checkpoint, save_checkpoint, select_device, train


def _small(seed=0, loss="l2"):
    task = tasks.make("fork", K=2, delta=2.0)
    data = task.dataset(256, seed=0)
    policy = policies.make("regression", obs_dim=1, action_dim=1, chunk_len=8, width=32, depth=1, loss=loss, seed=seed)
    return task, data, policy


def test_same_seed_same_losses_different_seed_different_losses():
    runs = []
    for seed in (0, 0, 1):
        _, data, policy = _small(seed=seed)
        hist = train(policy, data, steps=40, batch_size=64, seed=seed, log_every=10)
        runs.append(hist["loss"])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_history_records_parts_lr_and_validation():
    _, data, policy = _small()
    tr, va = data.split(0.2, seed=0)
    hist = train(policy, tr, steps=50, batch_size=64, val_dataset=va, log_every=10, warmup=5)
    assert isinstance(hist, History) and len(hist.records) == 5
    assert {"step", "lr", "loss", "val_loss"} <= set(hist.keys())
    assert hist["loss"][-1] < hist["loss"][0]  # it learns
    lrs = hist["lr"]
    assert lrs[-1] < max(lrs)  # cosine decay after warm-up


def test_ema_weights_differ_from_raw_weights():
    _, data, p1 = _small()
    _, _, p2 = _small()
    train(p1, data, steps=30, batch_size=64, ema_decay=None)
    train(p2, data, steps=30, batch_size=64, ema_decay=0.9)
    w1, w2 = p1.net.out[-1].weight, p2.net.out[-1].weight
    assert not torch.allclose(w1, w2)


def test_checkpoint_round_trip(tmp_path):
    task, data, policy = _small()
    train(policy, data, steps=20, batch_size=64)
    path = save_checkpoint(policy, tmp_path / "sub" / "reg.pt")
    assert path.exists() and not list(path.parent.glob("*.tmp"))  # nothing half-written left behind
    loaded = load_checkpoint(path)
    obs = task.sample_obs(16, torch.Generator().manual_seed(0))
    assert loaded.config == policy.config
    assert torch.equal(loaded.sample(obs, 2), policy.sample(obs, 2))
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


def test_regression_averages_the_two_modes_of_a_symmetric_fork():
    """Chapter 1: L2 regression lands between the branches; the demonstrations do not."""
    res = averaging.fit_regression(K=2, delta=2.0, loss="l2", seed=0, profile="fast", progress=False)
    assert res.off_support_demos <= 0.05
    assert res.off_support_policy >= 0.90
    assert res.modes_reached() == 0


def test_l1_regression_does_not_recover_the_modes_either():
    res = averaging.fit_regression(K=2, delta=2.0, loss="l1", seed=0, profile="fast", progress=False)
    assert res.off_support_policy >= 0.5 and res.modes_reached() <= 1


def test_regression_on_three_modes_reaches_only_the_middle_one():
    res = averaging.fit_regression(K=3, delta=2.0, loss="l2", seed=0, profile="fast", progress=False)
    labels = res.pred_labels
    assert res.modes_reached() <= 1
    assert not (labels == 0).any() and not (labels == 2).any()


def test_training_rejects_bad_input():
    _, data, policy = _small()
    other = tasks.make("ring").dataset(32, seed=0)
    with pytest.raises(ValueError, match="dataset has"):
        train(policy, other, steps=1)
    with pytest.raises(ValueError, match="steps must be"):
        train(policy, data, steps=0)
    with pytest.raises(TypeError, match="ChunkDataset"):
        train(policy, (data.obs, data.chunks), steps=1)
    with pytest.raises(ValueError, match="ema_decay"):
        train(policy, data, steps=1, ema_decay=1.5)


def test_policy_factory_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown policy family 'gan'"):
        policies.make("gan")
    with pytest.raises(ValueError, match="loss must be 'l1' or 'l2'"):
        policies.make("regression", loss="huber")
    with pytest.raises(ValueError, match="chunk_len must be an integer >= 1"):
        policies.make("regression", chunk_len=0)
    with pytest.raises(TypeError, match="unknown option"):
        policies.make("regression", beta=1.0)
    policy = policies.make("regression", obs_dim=2, action_dim=1, chunk_len=3)
    with pytest.raises(ValueError, match=r"obs must be \[B, 2\]"):
        policy.sample(torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"chunk must be \[B=4, H=3, action_dim=1\]"):
        policy.loss({"obs": torch.zeros(4, 2), "chunk": torch.zeros(4, 5, 1)})
    with pytest.raises(ValueError, match="n .* must be an integer >= 1"):
        policy.sample(torch.zeros(4, 2), n=0)


def test_seeded_policy_construction():
    a = policies.make("regression", width=16, seed=3)
    b = policies.make("regression", width=16, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def test_profiles(monkeypatch):
    monkeypatch.setenv("MBC_PROFILE", "standard")
    assert profile() == "standard"
    assert budget("averaging")["steps"] > budget("averaging", "fast")["steps"]
    monkeypatch.setenv("MBC_PROFILE", "turbo")
    with pytest.raises(ValueError, match="unknown profile"):
        profile()
    monkeypatch.delenv("MBC_PROFILE")
    assert profile() == "standard"  # on every device, until full has run end to end on a GPU
    with pytest.raises(ValueError, match="no budget"):
        budget("nonexistent")


def test_device_selection(monkeypatch):
    monkeypatch.delenv("MBC_DEVICE", raising=False)
    assert select_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            select_device("cuda")


def test_on_compute_device_measures_on_cuda_and_returns_home(monkeypatch):
    from mbc_lib.train import on_compute_device

    _, _, policy = _small()
    monkeypatch.delenv("MBC_THREADS", raising=False)
    monkeypatch.setenv("MBC_DEVICE", "cpu")  # CUDA or not: $MBC_DEVICE=cpu keeps the policy home
    with on_compute_device(policy) as dev:
        assert dev.type == "cpu" and torch.get_num_threads() == 1  # small model: one CPU thread
    monkeypatch.delenv("MBC_DEVICE")
    obs = torch.zeros(3, 1)
    with on_compute_device(policy) as dev:
        assert policy.device.type == dev.type == ("cuda" if torch.cuda.is_available() else "cpu")
        out = policy.sample(obs, 2, generator=torch.Generator().manual_seed(0))
        assert out.device.type == dev.type
    assert policy.device.type == "cpu"  # back where it was
    with pytest.raises(RuntimeError, match="boom"), on_compute_device(policy):
        raise RuntimeError("boom")
    assert policy.device.type == "cpu"  # also after an error
