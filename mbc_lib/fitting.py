"""Make a policy and train it with a compute budget — the one helper behind every experiment's training.

An experiment trains a policy in three lines: ``policies.make`` with the dataset's shapes and the
budget's architecture, ``train`` with the budget's optimiser settings, and the policy back on the
CPU for measuring. :func:`fit` is those lines, once::

    policy, history = fit("flow", data, budget=budget("bridges"), seed=0)

:func:`fit_many` trains several configurations of one family at once — one stacked model under
``torch.vmap`` through :func:`mbc_lib.train.train` when they differ only in the family's scalar
settings (a β sweep, seeds), one by one otherwise — and returns what :func:`fit` would for each.

A budget is a dict of :data:`mbc_lib.profiles.BUDGETS` (or any dict) read for ``width``, ``depth``
(the backbone), ``steps``, ``batch_size``, ``lr`` (the optimiser) and, for the ``cvae``, ``latent_dim``;
keys it lacks take the defaults of :func:`mbc_lib.policies.make` and :func:`mbc_lib.train.train`, and
an explicit argument overrides the budget.
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from . import policies
from .data import ChunkDataset
from .policies.base import Policy
from .train import History, train

__all__ = ["fit", "fit_many", "ARCH_KEYS", "TRAIN_KEYS"]

#: budget keys that size the backbone (:func:`mbc_lib.policies.make`)
ARCH_KEYS: tuple[str, ...] = ("width", "depth")
#: budget keys the training loop reads (:func:`mbc_lib.train.train`)
TRAIN_KEYS: tuple[str, ...] = ("steps", "batch_size", "lr")
#: budget keys read only by the families that have them
FAMILY_KEYS: dict[str, tuple[str, ...]] = {"cvae": ("latent_dim",)}


def _settings(family: str, budget: Mapping[str, Any] | None, overrides: Mapping[str, Any],
              config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(policy config, train kwargs)`` from the budget, explicit arguments overriding it."""
    b = {} if budget is None else dict(budget)
    b.update({k: v for k, v in overrides.items() if v is not None})
    arch = {k: b[k] for k in (*ARCH_KEYS, *FAMILY_KEYS.get(family, ())) if k in b and k not in config}
    opt = {k: b[k] for k in TRAIN_KEYS if k in b}
    return {**arch, **config}, opt


def _make(family: str, data: ChunkDataset, seed: int, config: Mapping[str, Any]) -> Policy:
    if not isinstance(data, ChunkDataset):
        raise TypeError(f"data must be a ChunkDataset, got {type(data).__name__}")
    return policies.make(family, obs_dim=data.obs_dim, action_dim=data.action_dim, chunk_len=data.chunk_len,
                         seed=seed, **config)


def _describe(family: str, config: Mapping[str, Any]) -> str:
    parts = [f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in config.items()]
    return " ".join([family, *parts])


def fit(
    family: str, data: ChunkDataset, *, budget: Mapping[str, Any] | None = None, steps: int | None = None,
    batch_size: int | None = None, lr: float | None = None, width: int | None = None, depth: int | None = None,
    seed: int = 0, device: str | None = None, progress: bool | None = None, desc: str | None = None, **config: Any,
) -> tuple[Policy, History]:
    """Make a ``family`` policy for ``data``'s shapes and train it on ``data``; returns ``(policy, history)``
    with the policy on the CPU (trained on ``device``, default :func:`mbc_lib.runtime.select_device`).

    ``budget`` supplies ``width``/``depth``/``steps``/``batch_size``/``lr`` (and ``latent_dim`` for the
    cvae); the keyword arguments of the same names override it; ``config`` holds the family's own
    options (``beta=0.1``, ``loss="l1"``, ...). ``seed`` seeds both the initial weights and training.
    """
    cfg, opt = _settings(family, budget, dict(steps=steps, batch_size=batch_size, lr=lr, width=width, depth=depth),
                         config)
    policy = _make(family, data, seed, cfg)
    history = train(policy, data, seed=seed, device=device, progress=progress,
                    desc=desc or _describe(family, config), **opt)
    return policy.cpu(), history


def fit_many(
    family: str, data: ChunkDataset, configs: Sequence[Mapping[str, Any]], *, keys: Sequence[Hashable] | None = None,
    seeds: int | Sequence[int] = 0, budget: Mapping[str, Any] | None = None, steps: int | None = None,
    batch_size: int | None = None, lr: float | None = None, width: int | None = None, depth: int | None = None,
    device: str | None = None, progress: bool | None = None, desc: str | None = None,
) -> tuple[dict[Hashable, Policy], dict[Hashable, History]]:
    """:func:`fit` for each of ``configs`` (one family, one dataset, one budget), keyed by ``keys``
    (default: the index). ``seeds``: one seed for all or one per config.

    When the configs differ only in the family's scalar settings (``Policy.SCALAR_FIELDS``, e.g. the
    cvae's β) and its loss runs under vmap, they are trained together as one stacked model
    (:func:`mbc_lib.train.train` given a list: the same models as one :func:`fit` each, to float
    tolerance); otherwise one by one. Returns ``({key: policy}, {key: history})``, policies on the CPU.
    """
    configs = [dict(c) for c in configs]
    keys = list(range(len(configs))) if keys is None else list(keys)
    seeds = [seeds] * len(configs) if isinstance(seeds, int) else list(seeds)
    if not configs or len(keys) != len(configs) or len(seeds) != len(configs):
        raise ValueError(f"need one key and one seed per config: {len(configs)} configs, {len(keys)} keys, "
                         f"{len(seeds)} seeds")
    overrides = dict(steps=steps, batch_size=batch_size, lr=lr, width=width, depth=depth)
    settings = [_settings(family, budget, overrides, c) for c in configs]
    pols = [_make(family, data, s, cfg) for (cfg, _), s in zip(settings, seeds)]
    opt = settings[0][1]
    if len(pols) > 1 and _stackable(pols):
        hists = train(pols, data, seed=seeds, device=device, progress=progress,
                      desc=desc or f"{len(pols)} {family} models (stacked)", **opt)
    else:
        hists = [train(p, data, seed=s, device=device, progress=progress, desc=desc or _describe(family, c), **opt)
                 for p, s, c in zip(pols, seeds, configs)]
    return {k: p.cpu() for k, p in zip(keys, pols)}, dict(zip(keys, hists))


def _stackable(pols: Sequence[Policy]) -> bool:
    """Whether ``pols`` can share one stacked run: a family whose loss runs under vmap, and configs that
    differ only in its scalar and sampling settings."""
    first = pols[0]
    if first.unbatchable(first.config) is not None:
        return False
    free = set(type(first).SCALAR_FIELDS) | set(type(first).SAMPLING_FIELDS)
    a = {k: v for k, v in vars(first.config).items() if k not in free}
    return all({k: v for k, v in vars(p.config).items() if k not in free} == a for p in pols[1:])
