"""ChunkDataset: shapes, splits, batches, normalisation, trajectory chunking, bad input."""
import pytest
import torch

from mbc_lib import tasks
from mbc_lib.data import ChunkDataset, Normalizer, chunk_trajectories


def test_shapes_and_modes():
    data = tasks.make("ring", K=4, chunk_len=5).dataset(100, seed=0)
    assert (len(data), data.obs_dim, data.chunk_len, data.action_dim) == (100, 2, 5, 2)
    assert data.modes.dtype == torch.long and set(data.mode_counts()) <= {0, 1, 2, 3}


def test_split_is_seeded_disjoint_and_complete():
    data = tasks.make("fork").dataset(200, seed=0)
    tr1, va1 = data.split(0.25, seed=7)
    tr2, va2 = data.split(0.25, seed=7)
    _, va3 = data.split(0.25, seed=8)
    assert (len(tr1), len(va1)) == (150, 50)
    assert torch.equal(va1.chunks, va2.chunks) and not torch.equal(va1.chunks, va3.chunks)
    both = torch.cat([tr1.obs, va1.obs]).sort(0).values
    assert torch.equal(both, data.obs.sort(0).values)


def test_batches_cover_an_epoch_without_repeats():
    obs = torch.arange(10.0)[:, None]
    data = ChunkDataset(obs, torch.zeros(10, 2, 1))
    stream = data.batches(5, generator=torch.Generator().manual_seed(0))
    epoch = torch.cat([next(stream)["obs"] for _ in range(2)])
    assert sorted(epoch[:, 0].tolist()) == list(range(10))


def test_normalizer_standardises():
    data = ChunkDataset(torch.randn(500, 3) * 4 + 2, torch.randn(500, 6, 2) * 0.5 - 1)
    norm = data.normalizer()
    z = norm.normalize_actions(data.chunks).reshape(-1, 2)
    torch.testing.assert_close(z.mean(0), torch.zeros(2), atol=1e-4, rtol=0)
    torch.testing.assert_close(z.std(0, unbiased=False), torch.ones(2), atol=1e-4, rtol=0)
    torch.testing.assert_close(norm.unnormalize_actions(norm.normalize_actions(data.chunks)), data.chunks)
    with pytest.raises(ValueError, match="normalizer is for"):
        Normalizer(1, 2).fit(data)


def test_chunk_trajectories_windows_and_padding():
    obs = [torch.arange(5.0)[:, None], torch.arange(3.0)[:, None]]
    acts = [10 * torch.arange(5.0)[:, None], 10 * torch.arange(3.0)[:, None]]
    o, c, m = chunk_trajectories(obs, acts, chunk_len=3, modes=[0, 1])
    assert c.shape == (3 + 1, 3, 1)
    assert c[1, :, 0].tolist() == [10.0, 20.0, 30.0] and m.tolist() == [0, 0, 0, 1]
    o, c, m = chunk_trajectories(obs, acts, chunk_len=3, pad=True)
    assert c.shape == (8, 3, 1) and c[4, :, 0].tolist() == [40.0, 40.0, 40.0]


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: ChunkDataset(torch.zeros(3, 1), torch.zeros(4, 2, 1)), "disagree on the number of samples"),
        (lambda: ChunkDataset(torch.zeros(3), torch.zeros(3, 2, 1)), r"obs must be \[N, obs_dim\]"),
        (lambda: ChunkDataset(torch.zeros(3, 1), torch.zeros(3, 2)), r"chunks must be \[N, H, action_dim\]"),
        (lambda: ChunkDataset(torch.tensor([[float("nan")]]), torch.zeros(1, 2, 1)), "non-finite"),
        (lambda: ChunkDataset(torch.zeros(1, 1), torch.full((1, 2, 1), float("inf"))), "non-finite"),
        (lambda: ChunkDataset(torch.zeros(2, 1), torch.zeros(2, 2, 1), torch.zeros(3)), "modes must be"),
        (lambda: chunk_trajectories([torch.zeros(3, 1)], [torch.zeros(3, 1)], chunk_len=4), "longer than trajectory 0"),
        (lambda: chunk_trajectories([torch.zeros(3, 1)], [torch.zeros(3, 1)], chunk_len=0), "chunk_len must be"),
        (lambda: chunk_trajectories([torch.zeros(3, 1)], [torch.zeros(2, 1)], chunk_len=1), "same T"),
        (lambda: ChunkDataset(torch.zeros(10, 1), torch.zeros(10, 1, 1)).split(1.5), "val_fraction"),
    ],
)
def test_bad_data_is_rejected_clearly(make, match):
    with pytest.raises(ValueError, match=match):
        make()
