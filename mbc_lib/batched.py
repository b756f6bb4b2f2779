"""Train many small policies at once: one run for a whole sweep (β × seeds, seeds × families' scalars).

:func:`train_batched` is the older name of ``mbc_lib.train.train`` called with a list of
policies: the M policies are trained as one stacked model by the one training loop — each
family's own ``loss`` under ``torch.vmap`` over the stacked weights, per-model minibatches,
loss noise and scalar settings (see :mod:`mbc_lib.train`). Policy m ends with the weights and
losses of ``train(policies[m], dataset[m], seed=seed[m], ...)``, to float tolerance
(``tests/test_batched.py`` checks it for several families).

Which policies can share a run: one family whose loss runs under vmap
(:data:`BATCHED_FAMILIES`; for the others ``Policy.unbatchable(config)`` says why), with configs that
differ only in the family's scalar settings (:data:`SCALAR_FIELDS`, e.g. the CVAE's β, free
bits and β warm-up) and in fields only sampling reads; the optimiser settings (steps, batch
size, lr) are shared. Validation sets are not supported.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from .data import ChunkDataset
from .policies import REGISTRY
from .policies.base import Policy
from .train import History, train

__all__ = ["train_batched", "BATCHED_FAMILIES", "SCALAR_FIELDS"]

#: per family: the config fields that may differ between the models of one batched run
SCALAR_FIELDS: dict[str, tuple[str, ...]] = {name: cls.SCALAR_FIELDS for name, cls in sorted(REGISTRY.items())}
#: the families whose default configuration trains as one stacked model (VQ does not: its loss
#: rewrites the codebook in place; the autoregressive family needs ``decoder="transformer"``)
BATCHED_FAMILIES = tuple(name for name, cls in sorted(REGISTRY.items()) if cls.unbatchable(cls.Config()) is None)


def train_batched(
    policies: Sequence[Policy],
    dataset: ChunkDataset | Sequence[ChunkDataset],
    *,
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    warmup: int | None = None,
    grad_clip: float | None = 1.0,
    ema_decay: float | None = 0.999,
    amp: bool = True,
    seed: int | Sequence[int] = 0,
    device: str | torch.device | None = None,
    normalize: bool = True,
    log_every: int | None = None,
    progress: bool | None = None,
    desc: str | None = None,
    compile: bool = False,
) -> list[History]:
    """Train ``policies`` (one family, configs differing only in its scalar settings) in place as
    one stacked model; returns one :class:`~mbc_lib.train.History` per policy.

    The same as ``mbc_lib.train.train(list(policies), dataset, ...)``: every argument means what
    it means there, per model (``seed`` one for all or one per policy; ``dataset`` one for all or
    one per policy, all of one length). ``compile=True`` runs the stacked loss through
    ``torch.compile`` (off by default: for the course's budgets compile time exceeds the gain;
    see ``benchmarks/batched_sweep.py``).
    """
    if isinstance(policies, Policy) or not isinstance(policies, Sequence):
        raise TypeError(f"policies must be a list of mbc_lib Policies, got {type(policies).__name__}")
    if not policies:
        raise ValueError("train_batched needs at least one policy")
    return train(list(policies), dataset, steps=steps, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                 warmup=warmup, grad_clip=grad_clip, ema_decay=ema_decay, amp=amp, seed=seed, device=device,
                 normalize=normalize, log_every=log_every, progress=progress, desc=desc, compile=compile)
