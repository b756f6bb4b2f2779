"""Train many small policies at once: one run for a whole sweep (β × seeds).

:func:`train_batched` trains ``M`` policies of one family that differ only in *scalar*
settings (e.g. the KL weight β, free bits, the β warm-up) and in their seeds, as **one**
model: their weights are stacked along a leading model axis
(``torch.func.stack_module_state``) and the per-model loss runs under ``torch.vmap`` over
``torch.func.functional_call``, so every linear layer becomes one batched matmul over the
``M`` models. On a CPU this removes ``M − 1`` of every ``M`` Python/dispatch overheads
(the cost of these small models); on a GPU it fills the device.

**Same results as :func:`mbc_lib.train.train`** — to float tolerance, not bit for bit —
because every source of randomness and every update rule is reproduced *per model*:

* minibatch indices: model ``m`` has its own ``torch.Generator`` seeded with ``seed[m]`` on
  the training device, drawing one ``randperm`` per epoch exactly like
  :meth:`ChunkDataset.batches` does inside ``train`` (same epochs, same slices);
* noise inside the loss: ``train`` seeds the global RNG with ``seed`` and the loss draws
  ``randn_like``; here model ``m`` owns a second generator seeded with ``seed[m]`` and draws
  the same shapes in the same order (``torch.randn(..., generator=g)`` and ``randn_like``
  after ``torch.manual_seed`` read the same stream), and the noise is passed to the
  functional loss explicitly;
* AdamW, the warm-up + cosine learning rate, weight decay and the EMA are elementwise, so
  running them on stacked tensors *is* running them per model; gradient-norm clipping is
  done per model (the global norm of model ``m``'s gradients, as ``clip_grad_norm_``);
* the loss is ``Σ_m L_m``, whose gradient with respect to model ``m``'s weights is exactly
  ``∇L_m`` (the models share nothing).

What differs is only floating-point rounding: a batched matmul (and a per-model norm)
reduces in a different order from ``M`` separate ones, and AdamW amplifies ~1e-7 relative
differences slowly over the steps. ``tests/test_batched.py`` checks losses and weights
against sequential ``train`` runs.

Supported: the ``cvae`` family with the ``"kl"`` regulariser (fixed or learned prior, L1 or
L2 reconstruction); per-model scalars ``beta``, ``free_bits``, ``beta_warmup``. Everything
structural (sizes, prior, reconstruction, regulariser) and the optimiser settings (steps,
batch size, lr) must be shared — configs that differ there are different programs and are
trained one by one with :func:`mbc_lib.train.train`. Validation sets are not supported.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import fields

import torch
from torch import Tensor
from torch.func import functional_call, stack_module_state
from tqdm.auto import tqdm

from .data import ChunkDataset
from .policies.base import Policy
from .policies.cvae import gaussian_kl
from .train import History, _lr_factor, check_training, cpu_threads, device_generator, progress_enabled, select_device

__all__ = ["train_batched", "BATCHED_FAMILIES", "SCALAR_FIELDS"]

#: per family: config fields that may differ between the models of one batched run
SCALAR_FIELDS: dict[str, tuple[str, ...]] = {"cvae": ("beta", "free_bits", "beta_warmup")}
BATCHED_FAMILIES = tuple(SCALAR_FIELDS)


def _sub(d: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    n = len(prefix)
    return {k[n:]: v for k, v in d.items() if k.startswith(prefix)}


# -- per-model losses (one model's weights, explicit noise) ------------------------------------
def _cvae_noise_shapes(template: Policy, batch_size: int) -> list[tuple[int, ...]]:
    """The ``randn_like`` draws of ``CVAEPolicy.loss`` per step, in order."""
    return [(batch_size, template.config.latent_dim)]


def _cvae_loss(template: Policy) -> Callable:
    """``CVAEPolicy.loss`` for the ``"kl"`` regulariser as a pure function of one model's
    ``(params, buffers)``, the raw batch, its noise and its scalars — the same arithmetic."""
    cfg = template.config
    has_prior = template.prior_net is not None
    dz, H, d = cfg.latent_dim, cfg.chunk_len, cfg.action_dim

    def loss(params, buffers, obs, chunk, noise, beta, free_bits, warmup, step):
        s = (obs - buffers["normalizer.obs_mean"]) / buffers["normalizer.obs_std"]  # [B, obs_dim]
        a = (chunk - buffers["normalizer.act_mean"]) / buffers["normalizer.act_std"]  # [B, H, d]
        h = functional_call(template.encoder, (_sub(params, "encoder."), _sub(buffers, "encoder.")),
                            (torch.cat([s, a.flatten(1)], dim=-1),))
        mu_q, logvar_q = h.chunk(2, dim=-1)
        logvar_q = logvar_q.clamp(-12.0, 6.0)
        z = mu_q + (0.5 * logvar_q).exp() * noise[0]  # [B, dz]
        out = functional_call(template.decoder, (_sub(params, "decoder."), _sub(buffers, "decoder.")),
                              (torch.cat([s, z], dim=-1),))
        err = out.reshape(-1, H, d) - a
        recon = err.abs().mean() if cfg.recon == "l1" else err.pow(2).mean()
        if has_prior:
            hp = functional_call(template.prior_net, (_sub(params, "prior_net."), _sub(buffers, "prior_net.")), (s,))
            mu_p, logvar_p = hp.chunk(2, dim=-1)
            logvar_p = logvar_p.clamp(-12.0, 6.0)
        else:
            mu_p = logvar_p = s.new_zeros(s.shape[0], dz)
        kl_dims = gaussian_kl(mu_q, logvar_q, mu_p, logvar_p)  # [B, dz]
        kl = kl_dims.sum(-1).mean()
        reg = torch.where(free_bits > 0, kl_dims.mean(0).clamp_min(free_bits).sum(), kl)
        ramp = (step.float() / warmup.clamp_min(1).float()).clamp(max=1.0)
        weight = torch.where(warmup > 0, beta * ramp, beta)
        total = recon + weight * reg
        return total, {"loss": total.detach(), "recon": recon.detach(), "kl": kl.detach(), "reg": reg.detach()}

    return loss


_LOSSES = {"cvae": (_cvae_loss, _cvae_noise_shapes)}


def _check_family(policies: Sequence[Policy]) -> None:
    family = policies[0].family
    if family not in _LOSSES:
        raise ValueError(f"train_batched supports the families {BATCHED_FAMILIES}; got {family!r} "
                         "(train it with mbc_lib.train.train)")
    cfg0 = policies[0].config
    if family == "cvae" and cfg0.regularizer != "kl":
        raise ValueError("train_batched supports cvae with regularizer='kl' only "
                         f"(got {cfg0.regularizer!r}; train it with mbc_lib.train.train)")
    if cfg0.backbone.dropout > 0:
        raise ValueError("train_batched needs backbone dropout = 0 (dropout noise is not reproduced per model)")
    scalars = set(SCALAR_FIELDS[family])
    for i, p in enumerate(policies[1:], 1):
        if p.family != family:
            raise ValueError(f"all policies must be of one family: policy 0 is {family!r}, policy {i} is {p.family!r}")
        for f in fields(cfg0):
            if f.name not in scalars and getattr(p.config, f.name) != getattr(cfg0, f.name):
                raise ValueError(
                    f"policy {i} differs from policy 0 in {f.name!r} ({getattr(p.config, f.name)!r} vs "
                    f"{getattr(cfg0, f.name)!r}); only {sorted(scalars)} may differ in one batched run"
                )


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
    """Train ``policies`` (one family, configs differing only in :data:`SCALAR_FIELDS`) in
    place as one stacked model; returns one :class:`~mbc_lib.train.History` per policy.

    Every argument means what it means in :func:`mbc_lib.train.train`, per model: ``seed`` is
    one seed for all or one per policy; ``dataset`` is one dataset for all or one per policy
    (all of the same length). Policy ``m`` ends with the same weights (EMA included) and
    losses as ``train(policies[m], dataset[m], seed=seed[m], ...)``, to float tolerance.
    ``compile=True`` runs the stacked loss through ``torch.compile`` (off by default: for
    the course's budgets compile time exceeds the gain; see ``benchmarks/batched_sweep.py``).
    """
    policies = list(policies)
    if not policies:
        raise ValueError("train_batched needs at least one policy")
    for p in policies:
        if not isinstance(p, Policy):
            raise TypeError(f"policies must be mbc_lib Policies, got {type(p).__name__}")
    _check_family(policies)
    M = len(policies)
    datasets = [dataset] * M if isinstance(dataset, ChunkDataset) else list(dataset)
    if len(datasets) != M:
        raise ValueError(f"got {len(datasets)} datasets for {M} policies")
    for ds in datasets:
        if not isinstance(ds, ChunkDataset):
            raise TypeError(f"dataset must be a ChunkDataset, got {type(ds).__name__}")
        if len(ds) != len(datasets[0]):
            raise ValueError("all datasets of one batched run must have the same length")
    check_training(policies[0].config, datasets[0], steps, lr, ema_decay)
    seeds = [int(seed)] * M if isinstance(seed, int) else [int(s) for s in seed]
    if len(seeds) != M:
        raise ValueError(f"got {len(seeds)} seeds for {M} policies")

    dev = select_device(device)
    # one copy per distinct dataset (pinned, non-blocking when CPU -> CUDA)
    moved: dict[int, ChunkDataset] = {}
    datasets = [moved.setdefault(id(ds), ds.to(dev)) for ds in datasets]
    shared = len(moved) == 1
    for p, ds in zip(policies, datasets):
        p.to(dev)
        if normalize:
            p.normalizer.fit(ds)
    if shared:
        all_obs, all_chunks = datasets[0].obs, datasets[0].chunks  # [N, obs_dim], [N, H, d]
    else:
        all_obs = torch.stack([ds.obs for ds in datasets])  # [M, N, obs_dim]
        all_chunks = torch.stack([ds.chunks for ds in datasets])  # [M, N, H, d]
    N = len(datasets[0])
    B = min(batch_size, N)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    warmup = max(1, int(0.05 * steps)) if warmup is None else max(1, warmup)
    log_every = max(1, steps // 20) if log_every is None else max(1, log_every)
    use_amp = amp and dev.type == "cuda"

    family = policies[0].family
    make_loss, noise_shapes = _LOSSES[family]
    template = policies[0]
    shapes = noise_shapes(template, B)
    scal = {name: torch.tensor([float(getattr(p.config, name)) for p in policies], device=dev)
            for name in SCALAR_FIELDS[family]}
    start_step = torch.stack([p.step.detach().clone() for p in policies]) if hasattr(template, "step") else None

    params, buffers = stack_module_state(policies)  # name -> [M, ...]; params are fresh leaves
    template.eval()  # dropout is 0 (checked); eval mode keeps vmap free of random ops
    param_list = list(params.values())
    loss_fn = make_loss(template)
    # data: per-model obs/chunk (in_dim 0); scalars per model; step shared
    in_dims = (0, 0, 0, 0, 0, 0, 0, 0, 0)
    vloss = torch.vmap(loss_fn, in_dims=in_dims)
    if compile:
        vloss = torch.compile(vloss, dynamic=False)

    idx_gens = [device_generator(dev, s) for s in seeds]  # what train() hands to dataset.batches
    noise_gens = [device_generator(dev, s) for s in seeds]  # what torch.manual_seed(s) seeds in train()
    noise_dev = noise_gens[0].device

    def index_stream():
        while True:
            perm = torch.stack([torch.randperm(N, generator=g, device=g.device) for g in idx_gens]).to(dev)
            for start in range(0, N - B + 1, B):
                yield perm[:, start:start + B]  # [M, B]

    indices = index_stream()
    opt = torch.optim.AdamW(param_list, lr=lr, weight_decay=weight_decay, foreach=dev.type in ("cpu", "cuda") or None)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, steps, warmup))
    ema = [p.detach().clone() for p in param_list] if ema_decay is not None else None
    arange_m = torch.arange(M, device=dev)[:, None]

    histories = [History() for _ in range(M)]
    sums: dict[str, Tensor] = {}
    count = 0
    n_params = sum(p.numel() for p in param_list)
    bar = tqdm(range(steps), desc=desc or f"train {M}×{family} (batched)", disable=not progress_enabled(progress),
               leave=False)
    with cpu_threads(n_params, dev):
        for step in bar:
            idx = next(indices)  # [M, B]
            if shared:
                obs, chunk = all_obs[idx], all_chunks[idx]  # [M, B, obs_dim], [M, B, H, d]
            else:
                obs, chunk = all_obs[arange_m, idx], all_chunks[arange_m, idx]
            noise = [torch.stack([torch.randn(shape, generator=g, device=noise_dev) for g in noise_gens]).to(dev)
                     for shape in shapes]  # each [M, *shape]
            cur = (start_step + step) if start_step is not None else torch.zeros(M, dtype=torch.long, device=dev)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_amp):
                total, parts = vloss(params, buffers, obs, chunk, noise, *scal.values(), cur)  # [M], {k: [M]}
            opt.zero_grad(set_to_none=True)
            total.sum().backward()  # d(Σ L_m)/dθ_m = dL_m/dθ_m
            if grad_clip is not None:
                grads = [p.grad for p in param_list]
                norms = torch.stack([torch.linalg.vector_norm(g.reshape(M, -1), 2, dim=1) for g in grads])  # [P, M]
                total_norm = torch.linalg.vector_norm(norms, 2, dim=0)  # [M]
                coef = (grad_clip / (total_norm + 1e-6)).clamp(max=1.0)  # as clip_grad_norm_
                for g in grads:
                    g.mul_(coef.reshape(M, *([1] * (g.ndim - 1))))
            opt.step()
            sched.step()
            if ema is not None:
                decay = min(ema_decay, (1.0 + step) / (10.0 + step))
                torch._foreach_lerp_(ema, [p.detach() for p in param_list], 1.0 - decay)
            for k, v in parts.items():  # on the device: no host sync per step
                sums[k] = sums.get(k, 0.0) + v.detach().float()
            count += 1
            if (step + 1) % log_every == 0 or step + 1 == steps:
                lr_now = opt.param_groups[0]["lr"]
                values = {k: v.tolist() for k, v in sums.items()}  # one host sync per record
                for m in range(M):
                    rec = {"step": float(step + 1), "lr": lr_now}
                    rec.update({k: vals[m] / count for k, vals in values.items()})
                    histories[m].records.append(rec)
                bar.set_postfix(loss=f"{sum(values['loss']) / (M * count):.4f}")
                sums, count = {}, 0
    final = ema if ema is not None else [p.detach() for p in param_list]
    with torch.no_grad():
        for m, p in enumerate(policies):
            own = dict(p.named_parameters())
            for name, w in zip(params, final):
                own[name].copy_(w[m])
            if start_step is not None:
                p.step.copy_(start_step[m] + steps)
            p.eval()
    return histories
