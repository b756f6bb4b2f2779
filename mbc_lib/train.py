"""The one training loop every policy family uses — for one model or many at once — and checkpoints.

``train(policy, dataset, steps=..., seed=...)`` runs AdamW on ``policy.loss`` over
on-device minibatches (index gathers, no DataLoader), with a linear warm-up then
cosine learning-rate schedule, gradient-norm clipping, an exponential moving
average (EMA) of the weights, bf16 autocast on CUDA, and a tqdm progress bar.
Every random draw of the loss comes from a generator seeded with ``seed`` (and the
minibatches from another), so the same seed on the same device gives the same losses, bit
for bit; the caller's global random generator is left as it was. A loss that turns NaN or
infinite stops the run with a :class:`NonFiniteLossError` and the last good weights restored.

``train([policy_1, …, policy_M], dataset, seed=[s_1, …, s_M])`` trains M policies of one
family as one stacked model — the same loop, with two pieces swapped (:class:`_StackedModels`
for :class:`_OneModel`):

* the weights are stacked along a leading model axis (``torch.func.stack_module_state``) and
  each step runs the family's own ``loss`` under ``torch.vmap`` over
  ``torch.func.functional_call``: every linear layer becomes one batched matmul over the M
  models (on a CPU that removes M − 1 of every M Python/dispatch overheads of these small
  models; on a GPU it fills the device);
* model m draws its minibatch indices and its loss noise (``policy.loss_noise``) from its own
  generators seeded with ``s_m`` — the streams ``train(policy_m, seed=s_m)`` uses — and the
  noise reaches the vmapped ``loss`` explicitly, with the model's scalar settings
  (``SCALAR_FIELDS``, e.g. the CVAE's β) as per-model tensors.

AdamW, the schedule, weight decay and the EMA are elementwise, so on stacked tensors they are
the per-model updates; gradients are clipped per model, and the summed loss Σ_m L_m has
gradient ∇L_m with respect to model m's weights (the models share nothing). Each model thus
ends where its own ``train`` call would, to float tolerance (a batched matmul rounds in
another order). The M policies may differ only in ``SCALAR_FIELDS``, ``SAMPLING_FIELDS`` and
their seeds (and their datasets, of one length); ``Policy.unbatchable(config)`` says when a family's
loss cannot run under vmap (VQ's in-place codebook restarts, the GRU decoder, POT's Sinkhorn,
dropout) — those are trained one by one.

Checkpoints hold only tensors and plain values, are written atomically and are
read with ``torch.load(..., weights_only=True)``.
"""
from __future__ import annotations

import math
import os
import pickle
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
from torch import Tensor
from torch.func import functional_call, stack_module_state
from tqdm.auto import tqdm

from .data import ChunkDataset
from .policies.base import Policy, batches_prechecked
from .runtime import cpu_threads, device_generator, env_threads, progress_enabled, select_device
from .validation import check_int, check_real, check_seed

__all__ = ["History", "NonFiniteLossError", "train", "check_training", "save_checkpoint", "load_checkpoint"]


def check_training(cfg, dataset: ChunkDataset, steps: int, lr: float, ema_decay: float | None, *,
                   batch_size: int = 1, weight_decay: float = 0.0, warmup: int | None = None,
                   grad_clip: float | None = None, log_every: int | None = None, seed: int = 0) -> None:
    """The argument checks of :func:`train`: the dataset's shapes match the policy config ``cfg``;
    ``steps`` an integer >= 1, ``lr`` a finite number > 0, ``ema_decay`` in [0, 1) or None,
    ``grad_clip`` a finite number > 0 or None, ``batch_size`` >= 1, ``weight_decay`` finite >= 0,
    ``warmup``/``log_every`` integers >= 1 or None, ``seed`` a valid seed
    (:func:`mbc_lib.validation.check_seed`)."""
    if (dataset.obs_dim, dataset.chunk_len, dataset.action_dim) != (cfg.obs_dim, cfg.chunk_len, cfg.action_dim):
        raise ValueError(
            f"dataset has (obs_dim, H, action_dim)={(dataset.obs_dim, dataset.chunk_len, dataset.action_dim)} "
            f"but the policy expects {(cfg.obs_dim, cfg.chunk_len, cfg.action_dim)}"
        )
    check_int(steps, "steps", minimum=1, what="optimiser steps")
    check_int(batch_size, "batch_size", minimum=1)
    check_real(lr, "lr", low=0.0, low_open=True, what="learning rate")
    check_real(weight_decay, "weight_decay", low=0.0)
    if ema_decay is not None:
        check_real(ema_decay, "ema_decay", low=0.0, high=1.0, high_open=True, what="or None to disable the EMA")
    if grad_clip is not None:
        check_real(grad_clip, "grad_clip", low=0.0, low_open=True, what="max gradient norm, or None for no clipping")
    if warmup is not None:
        check_int(warmup, "warmup", minimum=0, what="warm-up steps, or None for 5% of steps")
    if log_every is not None:
        check_int(log_every, "log_every", minimum=1, what="steps between records, or None")
    check_seed(seed)


class NonFiniteLossError(FloatingPointError):
    """Training stopped because the loss became NaN or infinite.

    Attributes: ``step`` (the first step, 1-based, whose loss was not finite), ``restored_step``
    (the step whose weights the policy now carries; 0 = the initial weights) and ``history``
    (the records logged before it: a :class:`History`, or one per policy when several were
    trained at once)."""

    def __init__(self, message: str, step: int, restored_step: int, history: History | list[History]):
        super().__init__(message)
        self.step, self.restored_step, self.history = step, restored_step, history


@dataclass
class History:
    """Logged training curves: ``records[i]`` has ``step``, ``lr`` and every loss part
    (averaged over the steps since the previous record), plus ``val_loss`` when validated."""

    records: list[dict[str, float]] = field(default_factory=list)

    def __getitem__(self, key: str) -> list[float]:
        return [r[key] for r in self.records if key in r]

    def keys(self) -> list[str]:
        return sorted({k for r in self.records for k in r})

    @property
    def final(self) -> dict[str, float]:
        return self.records[-1] if self.records else {}


def _lr_factor(step: int, steps: int, warmup: int, min_factor: float = 0.05) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to ``min_factor``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


@torch.no_grad()
def _evaluate(policy: Policy, dataset: ChunkDataset, batch_size: int,
              generator: torch.Generator | None) -> dict[str, float]:
    """Mean loss parts over ``dataset`` (in eval mode; noise from the training loss's ``generator``)."""
    totals: dict[str, float] = {}
    n = len(dataset)
    for start in range(0, n, batch_size):
        idx = torch.arange(start, min(n, start + batch_size), device=dataset.device)
        parts = policy.loss(dataset.batch(idx), generator)
        for k, v in parts.items():
            totals[k] = totals.get(k, 0.0) + float(v) * len(idx)
    return {k: v / n for k, v in totals.items()}


# -- what one step trains: one policy as itself, or many stacked ------------------------------------
class _OneModel:
    """One policy, trained through its own module call: minibatches from a generator seeded with
    ``seed``, every random draw of its loss from a second one."""

    def __init__(self, policy: Policy, dataset: ChunkDataset, dev: torch.device, seed: int, batch_size: int):
        self.policy, self.n_models = policy, 1
        self.weights = [p for p in policy.parameters() if p.requires_grad]  # what the optimiser updates
        self.n_params = sum(p.numel() for p in policy.parameters())
        self.batches = dataset.batches(batch_size, generator=device_generator(dev, seed))
        self.generator = device_generator(dev, seed)

    def loss(self) -> tuple[Tensor, dict[str, Tensor]]:
        """(what to differentiate, the loss parts) of one minibatch."""
        parts = self.policy.loss(next(self.batches), self.generator)
        return parts["loss"], parts

    def clip_(self, max_norm: float) -> None:
        torch.nn.utils.clip_grad_norm_(self.weights, max_norm)

    @torch.no_grad()
    def load(self, weights: list[Tensor]) -> None:
        """Give the policy ``weights`` (aligned with :attr:`weights`)."""
        torch._foreach_copy_(self.weights, weights)

    def mode(self, training: bool) -> None:
        self.policy.train(training)


class _StackedModels:
    """M policies of one family as one model: weights and buffers stacked along a leading model
    axis, the family's own ``loss`` under ``torch.vmap`` over ``functional_call``, and per model
    the generators (seeded with its seed) and the scalar settings a separate run would use."""

    def __init__(self, policies: list[Policy], datasets: list[ChunkDataset], dev: torch.device, seeds: list[int],
                 batch_size: int, compile: bool):
        self.policies, self.n_models = policies, len(policies)
        template = policies[0]
        self.params, self.buffers = stack_module_state(policies)  # name -> [M, ...]; the params are fresh leaves
        self.weights = list(self.params.values())  # what the optimiser updates, [M, ...] each
        self.n_params = sum(p.numel() for p in self.weights)
        self.B = min(batch_size, len(datasets[0]))
        if all(ds is datasets[0] for ds in datasets):  # one dataset: gather from it directly
            self.obs, self.chunks, self.per_model_data = datasets[0].obs, datasets[0].chunks, False  # [N, ...]
        else:
            self.obs = torch.stack([ds.obs for ds in datasets])  # [M, N, obs_dim]
            self.chunks = torch.stack([ds.chunks for ds in datasets])  # [M, N, H, d]
            self.per_model_data = True
        self.rows = torch.arange(self.n_models, device=dev)[:, None]  # [M, 1]
        # the streams train(policy_m, seed=s_m) uses: minibatch indices, then the loss's random draws
        self.indices = [ds.batch_indices(batch_size, generator=device_generator(dev, s))
                        for ds, s in zip(datasets, seeds)]
        self.generators = [device_generator(dev, s) for s in seeds]
        self.scalars = {name: torch.tensor([getattr(p.config, name) for p in policies], device=dev)
                        for name in type(template).SCALAR_FIELDS}  # name -> [M]

        def one_model(params, buffers, obs, chunk, noise, scalars):  # one model's weights, batch, noise, scalars
            return functional_call(template, (params, buffers), ({"obs": obs, "chunk": chunk},),
                                   {"noise": noise, "scalars": scalars})

        vloss = torch.vmap(one_model)  # randomness="error": every random draw must come in as `noise`
        self.vloss = torch.compile(vloss, dynamic=False) if compile else vloss

    def loss(self) -> tuple[Tensor, dict[str, Tensor]]:
        idx = torch.stack([next(it) for it in self.indices])  # [M, B]
        if self.per_model_data:
            obs, chunk = self.obs[self.rows, idx], self.chunks[self.rows, idx]  # [M, B, obs_dim], [M, B, H, d]
        else:
            obs, chunk = self.obs[idx], self.chunks[idx]  # [M, B, obs_dim], [M, B, H, d]
        draws = [p.loss_noise(self.B, g) for p, g in zip(self.policies, self.generators)]
        noise = {k: torch.stack([d[k] for d in draws]) for k in draws[0]}  # each [M, ...]
        parts = self.vloss(self.params, self.buffers, obs, chunk, noise, self.scalars)  # {part: [M]}
        return parts["loss"].sum(), parts  # d(Σ_m L_m)/dθ_m = dL_m/dθ_m

    def clip_(self, max_norm: float) -> None:
        """``clip_grad_norm_`` per model: the global norm of model m's gradients scales only model m's."""
        M = self.n_models
        grads = [p.grad for p in self.weights if p.grad is not None]
        norms = torch.stack([torch.linalg.vector_norm(g.reshape(M, -1), 2, dim=1) for g in grads])  # [P, M]
        coef = (max_norm / (torch.linalg.vector_norm(norms, 2, dim=0) + 1e-6)).clamp(max=1.0)  # [M], as clip_grad_norm_
        for g in grads:
            g.mul_(coef.reshape(M, *([1] * (g.ndim - 1))))

    @torch.no_grad()
    def load(self, weights: list[Tensor]) -> None:
        """Give policy m slice m of the stacked ``weights`` (aligned with :attr:`weights`) and of the
        stacked buffers (e.g. the CVAE's step counter, which its loss advances)."""
        for m, policy in enumerate(self.policies):
            own, bufs = dict(policy.named_parameters()), dict(policy.named_buffers())
            for name, w in zip(self.params, weights):
                own[name].copy_(w[m])
            for name, b in self.buffers.items():
                bufs[name].copy_(b[m])

    def mode(self, training: bool) -> None:
        for policy in self.policies:  # the template (policy 0) runs the loss: its mode is the one that counts
            policy.train(training)


def _stackable(policies: list[Policy]) -> None:
    """Raise ``ValueError`` unless ``policies`` can be trained as one stacked model."""
    first = policies[0]
    reason = first.unbatchable(first.config)
    if reason is not None:
        raise ValueError(f"{first.family} policies cannot be trained as one stacked model: {reason}; train them one "
                         "by one with train(policy, ...)")
    free = set(type(first).SCALAR_FIELDS) | set(type(first).SAMPLING_FIELDS)
    for i, p in enumerate(policies[1:], 1):
        if p.family != first.family:
            raise ValueError(f"all policies must be of one family: policy 0 is {first.family!r}, policy {i} is "
                             f"{p.family!r}")
        for f in fields(first.config):
            if f.name not in free and getattr(p.config, f.name) != getattr(first.config, f.name):
                raise ValueError(
                    f"policy {i} differs from policy 0 in {f.name!r} ({getattr(p.config, f.name)!r} vs "
                    f"{getattr(first.config, f.name)!r}); the {first.family} policies of one stacked run may differ "
                    f"only in {sorted(free)} and their seeds"
                )


def train(
    policy: Policy | Sequence[Policy],
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
    val_dataset: ChunkDataset | None = None,
    log_every: int | None = None,
    progress: bool | None = None,
    desc: str | None = None,
    compile: bool = False,
) -> History | list[History]:
    """Train ``policy`` in place on ``dataset``; returns the :class:`History`.

    Given a list of policies, trains them together as one stacked model and returns one
    :class:`History` per policy: ``seed`` is then one seed for all or one per policy, ``dataset``
    one dataset for all or one per policy (all of one length), and policy m ends with the
    weights (EMA included) and losses of ``train(policies[m], dataset[m], seed=seed[m], ...)``,
    to float tolerance. They must be of one family and differ only in its ``SCALAR_FIELDS``
    and ``SAMPLING_FIELDS`` (see the module docstring).

    Args:
        steps: optimiser steps.
        batch_size: samples per step (capped at the dataset size).
        lr, weight_decay: AdamW settings; the learning rate warms up linearly over
            ``warmup`` steps (default 5% of ``steps``) then follows a cosine to 5% of ``lr``.
        grad_clip: max global gradient norm, a finite number > 0 (``None``: no clipping).
        ema_decay: EMA of the weights with decay ``min(ema_decay, (1+t)/(10+t))``;
            at the end the policy carries the EMA weights. ``None`` disables it.
        amp: bf16 autocast when training on CUDA (ignored elsewhere).
        seed: seeds the initialisation-independent randomness (batches, noise in the loss): a
            non-negative integer below 2**63. Torch's global generator is seeded for the run (for
            anything outside the loss, e.g. dropout) and given back to the caller as it was.
        device: ``"cpu"``, ``"cuda"``, ... (default :func:`~mbc_lib.runtime.select_device`).
        normalize: fit ``policy.normalizer`` to ``dataset`` first (else keep it as is).
        val_dataset: evaluated at every log step (``val_loss`` and ``val_<part>`` entries); one policy only.
        log_every: steps between records (default ``steps // 20``); losses are read
            back from the device only then.
        progress: show a tqdm bar (default: on unless ``$MBC_PROGRESS=0``).
        compile: several policies only: run the stacked loss through ``torch.compile`` (off by
            default: for the course's budgets compile time exceeds the gain).

    Raises ``TypeError``/``ValueError`` naming the argument for bad arguments (before any work),
    and :class:`NonFiniteLossError` when the loss becomes NaN or infinite: it names the first
    such step and the likely cause, and the policy is left with the weights it had at the last
    logged step whose losses were all finite (checked where losses are read back anyway, at
    each record: no extra host sync per step).
    """
    stacked = not isinstance(policy, Policy)
    policies = list(policy) if stacked and isinstance(policy, (list, tuple)) else [policy]
    if stacked and not policies:
        raise ValueError("train needs at least one policy")
    for p in policies:
        if not isinstance(p, Policy):
            raise TypeError(f"policy must be an mbc_lib Policy (or a list of them), got {type(p).__name__}")
    M = len(policies)
    datasets = [dataset] * M if isinstance(dataset, ChunkDataset) or not stacked else list(dataset)
    if len(datasets) != M:
        raise ValueError(f"got {len(datasets)} datasets for {M} policies")
    for ds in datasets:
        if not isinstance(ds, ChunkDataset):
            raise TypeError(f"dataset must be a ChunkDataset, got {type(ds).__name__}")
    if stacked and hasattr(seed, "__iter__") and not isinstance(seed, (str, bytes)):  # one seed per policy
        seeds = [check_seed(s) for s in seed]
        if len(seeds) != M:
            raise ValueError(f"got {len(seeds)} seeds for {M} policies")
    else:
        seeds = [check_seed(seed)] * M
    for p, ds, s in zip(policies, datasets, seeds):
        check_training(p.config, ds, steps, lr, ema_decay, batch_size=batch_size, weight_decay=weight_decay,
                       warmup=warmup, grad_clip=grad_clip, log_every=log_every, seed=s)
    if stacked:
        _stackable(policies)
        if any(len(ds) != len(datasets[0]) for ds in datasets):
            raise ValueError("all datasets of one stacked run must have the same length")
        if val_dataset is not None:
            raise ValueError("val_dataset works with one policy; train the policies one by one to validate them")
    lr, grad_clip = float(lr), None if grad_clip is None else float(grad_clip)

    dev = select_device(device)
    env_threads()  # a malformed $MBC_THREADS fails here, before any work
    moved: dict[int, ChunkDataset] = {}  # one copy per distinct dataset
    datasets = [moved.setdefault(id(ds), ds.to(dev)) for ds in datasets]
    for p, ds in zip(policies, datasets):
        p.to(dev)
        if normalize:
            p.normalizer.fit(ds)
    val_dataset = val_dataset.to(dev) if val_dataset is not None else None
    warmup = max(1, int(0.05 * steps)) if warmup is None else max(1, warmup)
    log_every = max(1, steps // 20) if log_every is None else max(1, log_every)
    use_amp = amp and dev.type == "cuda"
    if desc is None:
        desc = f"train {M}×{policies[0].family} (stacked)" if stacked else f"train {policies[0].family}"

    # Torch's global generator (dropout) is seeded for this run and given back to the caller afterwards.
    rng_devices = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=rng_devices):
        torch.manual_seed(seeds[0])
        if stacked:
            models = _StackedModels(policies, datasets, dev, seeds, batch_size, compile)
        else:
            models = _OneModel(policies[0], datasets[0], dev, seeds[0], batch_size)
        histories = _loop(models, val_dataset, dev, steps=steps, batch_size=batch_size, lr=lr,
                          weight_decay=weight_decay, warmup=warmup, grad_clip=grad_clip, ema_decay=ema_decay,
                          use_amp=use_amp, log_every=log_every, progress=progress, desc=desc)
    return histories if stacked else histories[0]


def _loop(models: _OneModel | _StackedModels, val_dataset: ChunkDataset | None, dev: torch.device, *, steps: int,
          batch_size: int, lr: float, weight_decay: float, warmup: int, grad_clip: float | None,
          ema_decay: float | None, use_amp: bool, log_every: int, progress: bool | None, desc: str) -> list[History]:
    """The loop of :func:`train` (arguments checked, global generator seeded): one History per model."""
    params = models.weights
    # foreach: the multi-tensor AdamW (CUDA's default) on every device — the same numbers as the
    # per-tensor loop, bit for bit, with ~17% less time per step for the course's small MLPs on a CPU
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, foreach=dev.type in ("cpu", "cuda") or None)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, steps, warmup))
    ema = [p.detach().clone() for p in params] if ema_decay is not None else None
    # The weights the policies carry if training stops at the last record whose losses were all
    # finite (the EMA when there is one): refreshed at each record, restored on divergence.
    good, good_step = [p.detach().clone() for p in params], 0

    histories = [History() for _ in range(models.n_models)]
    sums: dict[str, Tensor] = {}
    window: list[Tensor] = []  # this record's per-step losses (on the device, read only if the sum is not finite)
    count = 0
    models.mode(training=True)
    bar = tqdm(range(steps), desc=desc, disable=not progress_enabled(progress), leave=False)
    with cpu_threads(models.n_params, dev), batches_prechecked():  # a ChunkDataset's tensors were checked when built
        for step in bar:
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_amp):
                objective, parts = models.loss()
            opt.zero_grad(set_to_none=True)
            objective.backward()
            if grad_clip is not None:
                models.clip_(grad_clip)
            opt.step()
            sched.step()
            if ema is not None:
                decay = min(ema_decay, (1.0 + step) / (10.0 + step))
                torch._foreach_lerp_(ema, [p.detach() for p in params], 1.0 - decay)
            for k, v in parts.items():  # accumulate on the device: no host sync per step
                sums[k] = sums.get(k, 0.0) + v.detach().float()
            window.append(parts["loss"].detach())
            count += 1
            if (step + 1) % log_every == 0 or step + 1 == steps:
                values = {k: v.reshape(-1).tolist() for k, v in sums.items()}  # one host sync per record
                if not all(math.isfinite(v) for v in values["loss"]):  # a NaN/inf loss at some step of the window
                    _diverged(models, good, good_step, window, step + 1 - count, steps, lr, grad_clip,
                              ema is not None, histories)
                with torch.no_grad():
                    torch._foreach_copy_(good, ema if ema is not None else params)
                good_step = step + 1
                for m, history in enumerate(histories):
                    record = {"step": float(step + 1), "lr": opt.param_groups[0]["lr"]}
                    record.update({k: vals[m] / count for k, vals in values.items()})
                    if val_dataset is not None:  # one policy (checked)
                        models.mode(training=False)
                        record.update({f"val_{k}": v for k, v in _evaluate(
                            models.policy, val_dataset, 4 * batch_size, models.generator).items()})
                        models.mode(training=True)
                    history.records.append(record)
                bar.set_postfix(loss=f"{sum(values['loss']) / (len(values['loss']) * count):.4f}")
                sums, window, count = {}, [], 0
    if ema is not None or isinstance(models, _StackedModels):
        models.load(ema if ema is not None else [p.detach() for p in params])
    models.mode(training=False)
    return histories


def _diverged(models: _OneModel | _StackedModels, good: list[Tensor], good_step: int, window: list[Tensor],
              first_step: int, steps: int, lr: float, grad_clip: float | None, has_ema: bool,
              histories: list[History]) -> None:
    """Restore the last good weights and raise :class:`NonFiniteLossError` naming the step and a likely cause."""
    losses = torch.stack([w.float().reshape(-1) for w in window]).cpu()  # [steps in the window, M]
    bad_row, bad_model = (~torch.isfinite(losses)).nonzero()[0].tolist()
    bad = bad_row + first_step + 1  # 1-based step
    value = float(losses[bad_row, bad_model])
    models.load(good)
    models.mode(training=False)
    kept = (f"the weights after step {good_step}{' (EMA)' if has_ema else ''}, the last logged step with finite losses"
            if good_step else "its initial weights (no logged step had finite losses)")
    stacked = isinstance(models, _StackedModels)
    which = f" of policy {bad_model} (of {models.n_models} trained together)" if stacked else ""
    if bad == 1:
        cause = ("the very first loss is not finite, so the data or the model is at fault, not the optimiser: "
                 "check the dataset (were dataset.obs or dataset.chunks changed after it was built?) and the "
                 "policy's config")
    else:
        cause = (f"the training diverged — most often a learning rate too large for this model (lr={lr:g}"
                 + (", no gradient clipping" if grad_clip is None else f", grad_clip={grad_clip:g}")
                 + "): lower lr (e.g. by 10x) or clip gradients (grad_clip=1.0)")
    raise NonFiniteLossError(
        f"training stopped: the loss{which} became {value} at step {bad} of {steps}. Likely cause: {cause}. "
        f"The polic{'ies keep' if which else 'y keeps'} {kept}.",
        step=bad, restored_step=good_step, history=histories if which else histories[0],
    )


def _non_finite_entries(state: dict[str, Tensor]) -> list[str]:
    """Names of the floating-point tensors of ``state`` that hold a NaN or an inf."""
    return [k for k, v in state.items() if isinstance(v, Tensor) and v.is_floating_point() and not torch.isfinite(v).all()]


def save_checkpoint(policy: Policy, path: str | os.PathLike) -> Path:
    """Write ``policy`` (family, config, weights, normalizer) to ``path`` atomically.

    The file appears complete or not at all: it is written to a temporary file next to it and
    renamed into place, so a failed write (full disk, no permission) leaves an older file at
    ``path`` intact. Weights holding NaN or inf are refused (they come from a diverged training).
    """
    if not isinstance(policy, Policy):
        raise TypeError(f"policy must be an mbc_lib Policy, got {type(policy).__name__} "
                        "(the call is save_checkpoint(policy, path))")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path (str or os.PathLike), got {type(path).__name__}")
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"checkpoint path {path} is a directory; give a file name, e.g. {path / 'policy.pt'}")
    state = {k: v.detach().cpu() for k, v in policy.state_dict().items()}
    bad = _non_finite_entries(state)
    if bad:
        raise ValueError(f"refusing to save a {policy.family} policy whose weights hold NaN or inf ({', '.join(bad[:3])}"
                         f"{', ...' if len(bad) > 3 else ''}); it comes from a diverged training — retrain it")
    payload = {"family": policy.family, "config": policy.config.to_dict(), "state_dict": state}
    for parent in (path.parent, *path.parent.parents):  # the first ancestor that exists must be a directory
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"cannot save the checkpoint {path}: {parent} is a file, not a directory; "
                                         "choose another path")
            break
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise OSError(err.errno, f"cannot save the checkpoint {path}: {err.strerror or err} "
                                 "(is the directory writable?)") from err
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
        os.replace(tmp, path)  # atomic on POSIX: readers see the old file or the new one
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, (OSError, RuntimeError)):  # torch reports a full disk as "[enforce fail at inline_container.cc…]"
            raise OSError(f"could not write the checkpoint {path} (disk full or not writable?): "
                          f"{type(err).__name__}; {'the previous file is unchanged' if path.exists() else 'nothing was written'}") from err
        raise
    return path


_PAYLOAD_KEYS = ("family", "config", "state_dict")


def load_checkpoint(path: str | os.PathLike, device: str | torch.device | None = "cpu") -> Policy:
    """Rebuild the policy saved by :func:`save_checkpoint` (``weights_only=True``: only tensors and
    plain values are read, never arbitrary Python objects).

    Raises ``FileNotFoundError`` when there is no file, and a ``ValueError`` that names the file
    (and the family, once known) when it is corrupt or truncated, not an mbc_lib checkpoint, does
    not fit its family's config, or holds NaN/inf weights.
    """
    from .policies import REGISTRY  # late import: families register on package import

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path (str or os.PathLike), got {type(path).__name__}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if path.is_dir():
        raise IsADirectoryError(f"checkpoint path {path} is a directory, not a checkpoint file")
    redo = "save the policy again with mbc_lib.train.save_checkpoint"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's own message suggests weights_only=False (arbitrary code execution): never relay it
        if "Unsupported global" in str(err) or "GLOBAL" in str(err):
            raise ValueError(f"checkpoint {path} holds Python objects besides tensors and plain values, which a safe "
                             f"load refuses; it was not written by mbc_lib — {redo}") from None
        raise ValueError(f"corrupt or truncated checkpoint {path} (UnpicklingError); {redo}") from None
    except (EOFError, RuntimeError, OSError, ValueError, KeyError, IndexError, TypeError, AttributeError) as err:
        raise ValueError(f"corrupt or truncated checkpoint {path} ({type(err).__name__}); {redo}") from None
    if not isinstance(payload, dict) or any(k not in payload for k in _PAYLOAD_KEYS):
        got = f"a dict with keys {sorted(map(str, payload))}" if isinstance(payload, dict) else f"a {type(payload).__name__}"
        raise ValueError(f"{path} is not an mbc_lib checkpoint: expected a dict with keys {list(_PAYLOAD_KEYS)}, "
                         f"got {got}; {redo}")
    family = payload["family"]
    if not isinstance(family, str) or family not in REGISTRY:
        raise ValueError(f"checkpoint {path} is for unknown policy family {family!r}; "
                         f"known families: {', '.join(sorted(REGISTRY))}")
    config, state = payload["config"], payload["state_dict"]
    if not isinstance(config, dict) or not isinstance(state, dict):
        raise ValueError(f"checkpoint {path} (family {family!r}) is malformed: 'config' and 'state_dict' must be dicts, "
                         f"got {type(config).__name__} and {type(state).__name__}; {redo}")
    cls = REGISTRY[family]
    try:
        policy = cls(cls.Config(**config))
    except (TypeError, ValueError) as err:
        raise ValueError(f"checkpoint {path}: its config does not fit policy family {family!r} ({err}); "
                         f"it was written by another version of mbc_lib or edited — {redo}") from None
    bad = _non_finite_entries(state)
    if bad:
        raise ValueError(f"checkpoint {path} (family {family!r}) holds NaN or inf weights ({', '.join(bad[:3])}"
                         f"{', ...' if len(bad) > 3 else ''}): it was saved from a diverged training; retrain the policy")
    try:
        policy.load_state_dict(state)
    except (RuntimeError, TypeError, KeyError) as err:
        first = str(err).strip().splitlines()
        raise ValueError(f"checkpoint {path}: its weights do not fit policy family {family!r} with the stored config "
                         f"({first[1].strip() if len(first) > 1 else first[0] if first else type(err).__name__}); "
                         f"{redo}") from None
    policy.eval()
    return policy.to(select_device(device)) if device is not None else policy
