"""The one training loop every policy family uses, and checkpoints.

``train(policy, dataset, steps=..., seed=...)`` runs AdamW on ``policy.loss`` over
on-device minibatches (index gathers, no DataLoader), with a linear warm-up then
cosine learning-rate schedule, gradient-norm clipping, an exponential moving
average (EMA) of the weights, bf16 autocast on CUDA, and a tqdm progress bar.
Same seed and same device → the same losses, bit for bit; the caller's global random
generator is left as it was. A loss that turns NaN or infinite stops the run with a
:class:`NonFiniteLossError` and the last good weights restored.

Checkpoints hold only tensors and plain values, are written atomically and are
read with ``torch.load(..., weights_only=True)``.
"""
from __future__ import annotations

import math
import os
import pickle
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .data import ChunkDataset
from .policies.base import Policy, batches_prechecked
from .validation import check_int, check_real, check_seed

__all__ = ["History", "NonFiniteLossError", "select_device", "train", "save_checkpoint", "load_checkpoint",
           "progress_enabled", "cpu_threads", "on_compute_device", "env_threads"]


def select_device(preference: str | torch.device | None = None) -> torch.device:
    """``preference`` if given (or ``$MBC_DEVICE``), else cuda > mps > cpu.

    One rule at every entry point: a device that is asked for but not available — as
    ``preference`` or as ``$MBC_DEVICE``, even when ``preference`` overrides it — raises a
    ``ValueError`` that says what to use instead; nothing silently falls back to the CPU.
    """
    env = os.environ.get("MBC_DEVICE", "").strip() or None
    if env is not None:
        checked = _checked_device(env, "MBC_DEVICE", "set MBC_DEVICE=cpu or unset it")
        if preference is None:
            return checked
    if preference is not None:
        return _checked_device(preference, "device", "pass device='cpu' or leave it out")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _checked_device(value: str | torch.device, name: str, fix: str) -> torch.device:
    """``value`` as a ``torch.device`` that exists here, else a ``ValueError`` naming ``name``."""
    if not isinstance(value, (str, torch.device)):
        raise TypeError(f"{name} must be a device name such as 'cpu', 'cuda' or 'mps', got {type(value).__name__}")
    try:
        device = torch.device(value)
    except RuntimeError:
        raise ValueError(f"{name}={str(value)!r} is not a device name; expected 'cpu', 'cuda', 'cuda:<index>' or "
                         f"'mps'; {fix}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name}={str(value)!r} asks for CUDA but CUDA is not available on this machine; {fix}")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"{name}={str(value)!r} asks for CUDA device {device.index} but this machine has "
                             f"{torch.cuda.device_count()}; {fix}")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"{name}={str(value)!r} asks for MPS but MPS is not available on this machine; {fix}")
    elif device.type != "cpu":
        raise ValueError(f"{name}={str(value)!r}: mbc_lib runs on 'cpu', 'cuda' or 'mps'; {fix}")
    return device


def device_generator(device: torch.device, seed: int) -> torch.Generator:
    """A seeded generator on ``device`` (on a CPU for MPS, whose generators are not supported everywhere);
    ``seed`` follows the one seed rule (:func:`mbc_lib.validation.check_seed`)."""
    seed = check_seed(seed)
    return torch.Generator(device=device).manual_seed(seed) if device.type != "mps" else torch.Generator().manual_seed(seed)


@contextmanager
def cpu_threads(policy: torch.nn.Module | int, device: torch.device):
    """Intra-op threads while training on the CPU: ``$MBC_THREADS`` if set, else 1 for small
    models (< 2M parameters; ``policy`` is a module or its parameter count) — for the course's
    MLPs a single thread is as fast as several and does not collapse when other processes (a
    notebook kernel, a test runner) share the cores."""
    requested = env_threads()
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    n_params = policy if isinstance(policy, int) else sum(p.numel() for p in policy.parameters())
    wanted = requested or (1 if n_params < 2_000_000 else before)
    torch.set_num_threads(max(1, wanted))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def env_threads() -> int:
    """``$MBC_THREADS`` as an int (0 when unset: automatic); a ``ValueError`` when it is not a whole number >= 0."""
    raw = os.environ.get("MBC_THREADS", "").strip()
    if not raw:
        return 0
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(f"MBC_THREADS must be a whole number of CPU threads (>= 1, or 0 for automatic), "
                         f"got {raw!r}; set e.g. MBC_THREADS=1 or unset it")
    return value


@contextmanager
def on_compute_device(policy: torch.nn.Module) -> Iterator[torch.device]:
    """Measure ``policy`` where it computes fastest: for the block it sits on CUDA when there is
    one (:func:`select_device`, so ``$MBC_DEVICE=cpu`` keeps it home) and goes back to its own
    device afterwards; on the CPU the block runs under :func:`cpu_threads`. Yields the device.
    Policies move their inputs there; their outputs stay there (``.cpu()`` them for numpy)."""
    tensors = [*policy.parameters(), *policy.buffers()]
    home = tensors[0].device if tensors else torch.device("cpu")
    dev = select_device()
    if not tensors or dev.type != "cuda" or dev == home:  # MPS measures where the policy already is
        with cpu_threads(policy, home):
            yield home
        return
    policy.to(dev)
    try:
        yield dev
    finally:
        policy.to(home)


def progress_enabled(progress: bool | None = None) -> bool:
    """Progress bars are on unless ``progress=False`` or ``$MBC_PROGRESS=0`` (tests set it)."""
    if progress is not None:
        return progress
    return os.environ.get("MBC_PROGRESS", "1") not in ("0", "false", "False", "")


def check_training(cfg, dataset: ChunkDataset, steps: int, lr: float, ema_decay: float | None, *,
                   batch_size: int = 1, weight_decay: float = 0.0, warmup: int | None = None,
                   grad_clip: float | None = None, log_every: int | None = None, seed: int = 0) -> None:
    """The argument checks :func:`train` and :func:`mbc_lib.batched.train_batched` share: the
    dataset's shapes match the policy config ``cfg``; ``steps`` an integer >= 1, ``lr`` a finite
    number > 0, ``ema_decay`` in [0, 1) or None, ``grad_clip`` a finite number > 0 or None,
    ``batch_size`` >= 1, ``weight_decay`` finite >= 0, ``warmup``/``log_every`` integers >= 1 or
    None, ``seed`` a valid seed (:func:`mbc_lib.validation.check_seed`)."""
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
    (the records logged before it)."""

    def __init__(self, message: str, step: int, restored_step: int, history: "History"):
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
def _evaluate(policy: Policy, dataset: ChunkDataset, batch_size: int) -> dict[str, float]:
    """Mean loss parts over ``dataset`` (in eval mode, same randomness as training losses)."""
    totals: dict[str, float] = {}
    n = len(dataset)
    for start in range(0, n, batch_size):
        idx = torch.arange(start, min(n, start + batch_size), device=dataset.device)
        parts = policy.loss(dataset.batch(idx))
        for k, v in parts.items():
            totals[k] = totals.get(k, 0.0) + float(v) * len(idx)
    return {k: v / n for k, v in totals.items()}


def train(
    policy: Policy,
    dataset: ChunkDataset,
    *,
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    warmup: int | None = None,
    grad_clip: float | None = 1.0,
    ema_decay: float | None = 0.999,
    amp: bool = True,
    seed: int = 0,
    device: str | torch.device | None = None,
    normalize: bool = True,
    val_dataset: ChunkDataset | None = None,
    log_every: int | None = None,
    progress: bool | None = None,
    desc: str | None = None,
) -> History:
    """Train ``policy`` in place on ``dataset``; returns the :class:`History`.

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
            non-negative integer below 2**63. Torch's global generator is seeded for the run and
            given back to the caller in the state it was in.
        device: ``"cpu"``, ``"cuda"``, ... (default :func:`select_device`).
        normalize: fit ``policy.normalizer`` to ``dataset`` first (else keep it as is).
        val_dataset: evaluated at every log step (``val_loss`` and ``val_<part>`` entries).
        log_every: steps between records (default ``steps // 20``); losses are read
            back from the device only then.
        progress: show a tqdm bar (default: on unless ``$MBC_PROGRESS=0``).

    Raises ``TypeError``/``ValueError`` naming the argument for bad arguments (before any work),
    and :class:`NonFiniteLossError` when the loss becomes NaN or infinite: it names the first
    such step and the likely cause, and the policy is left with the weights it had at the last
    logged step whose losses were all finite (checked where losses are read back anyway, at
    each record: no extra host sync per step).
    """
    if not isinstance(policy, Policy):
        raise TypeError(f"policy must be an mbc_lib Policy, got {type(policy).__name__}")
    if not isinstance(dataset, ChunkDataset):
        raise TypeError(f"dataset must be a ChunkDataset, got {type(dataset).__name__}")
    check_training(policy.config, dataset, steps, lr, ema_decay, batch_size=batch_size, weight_decay=weight_decay,
                   warmup=warmup, grad_clip=grad_clip, log_every=log_every, seed=seed)
    lr, grad_clip = float(lr), None if grad_clip is None else float(grad_clip)

    dev = select_device(device)
    env_threads()  # a malformed $MBC_THREADS fails here, before any work
    policy.to(dev)
    dataset = dataset.to(dev)
    val_dataset = val_dataset.to(dev) if val_dataset is not None else None
    if normalize:
        policy.normalizer.fit(dataset)
    warmup = max(1, int(0.05 * steps)) if warmup is None else max(1, warmup)
    log_every = max(1, steps // 20) if log_every is None else max(1, log_every)
    use_amp = amp and dev.type == "cuda"

    # The loss draws its noise from torch's global generator: seed it for this run and give the
    # caller's state back afterwards (same numbers as seeding it outright, without the side effect).
    rng_devices = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=rng_devices):
        torch.manual_seed(seed)
        return _train_loop(policy, dataset, val_dataset, dev, steps=steps, batch_size=batch_size, lr=lr,
                           weight_decay=weight_decay, warmup=warmup, grad_clip=grad_clip, ema_decay=ema_decay,
                           use_amp=use_amp, seed=seed, log_every=log_every, progress=progress, desc=desc)


def _train_loop(policy: Policy, dataset: ChunkDataset, val_dataset: ChunkDataset | None, dev: torch.device, *,
                steps: int, batch_size: int, lr: float, weight_decay: float, warmup: int, grad_clip: float | None,
                ema_decay: float | None, use_amp: bool, seed: int, log_every: int, progress: bool | None,
                desc: str | None) -> History:
    """The loop of :func:`train` (arguments already checked, global generator already seeded)."""
    gen = device_generator(dev, seed)
    batches = dataset.batches(batch_size, generator=gen)

    params = [p for p in policy.parameters() if p.requires_grad]
    # foreach: the multi-tensor AdamW (CUDA's default) on every device — the same numbers as the
    # per-tensor loop, bit for bit, with ~17% less time per step for the course's small MLPs on a CPU
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, foreach=dev.type in ("cpu", "cuda") or None)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, steps, warmup))
    ema = [p.detach().clone() for p in params] if ema_decay is not None else None
    # The weights the policy carries if training stops at the last record whose losses were all
    # finite (the EMA when there is one): refreshed at each record, restored on divergence.
    good, good_step = [p.detach().clone() for p in params], 0

    history = History()
    sums: dict[str, Tensor] = {}
    window: list[Tensor] = []  # this record's per-step losses (device scalars, read only if the sum is not finite)
    count = 0
    policy.train()
    bar = tqdm(range(steps), desc=desc or f"train {policy.family}", disable=not progress_enabled(progress), leave=False)
    with cpu_threads(policy, dev), batches_prechecked():  # a ChunkDataset's tensors were checked finite when built
        for step in bar:
            batch = next(batches)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_amp):
                parts = policy.loss(batch)
            opt.zero_grad(set_to_none=True)
            parts["loss"].backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
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
                record = {"step": float(step + 1), "lr": opt.param_groups[0]["lr"]}
                record.update({k: float(v) / count for k, v in sums.items()})
                if not math.isfinite(record["loss"]):  # a NaN/inf loss at any step of the window
                    _diverged(policy, params, good, good_step, window, step + 1 - count, steps, lr, grad_clip,
                              ema is not None, history)
                with torch.no_grad():
                    torch._foreach_copy_(good, ema if ema is not None else params)
                good_step = step + 1
                if val_dataset is not None:
                    policy.eval()
                    record.update({f"val_{k}": v for k, v in _evaluate(policy, val_dataset, 4 * batch_size).items()})
                    policy.train()
                history.records.append(record)
                bar.set_postfix(loss=f"{record['loss']:.4f}")
                sums, window, count = {}, [], 0
    if ema is not None:
        with torch.no_grad():
            for p, e in zip(params, ema):
                p.copy_(e)
    policy.eval()
    return history


def _diverged(policy: Policy, params: list[Tensor], good: list[Tensor], good_step: int, window: list[Tensor],
              first_step: int, steps: int, lr: float, grad_clip: float | None, has_ema: bool, history: History) -> None:
    """Restore the last good weights and raise :class:`NonFiniteLossError` naming the step and a likely cause."""
    losses = torch.stack([w.float() for w in window]).cpu()
    bad = int((~torch.isfinite(losses)).nonzero()[0, 0]) + first_step + 1  # 1-based step
    value = float(losses[bad - first_step - 1])
    with torch.no_grad():
        torch._foreach_copy_(params, good)
    policy.eval()
    kept = (f"the weights after step {good_step}{' (EMA)' if has_ema else ''}, the last logged step with finite losses"
            if good_step else "its initial weights (no logged step had finite losses)")
    if bad == 1:
        cause = ("the very first loss is not finite, so the data or the model is at fault, not the optimiser: "
                 "check the dataset (were dataset.obs or dataset.chunks changed after it was built?) and the "
                 "policy's config")
    else:
        cause = (f"the training diverged — most often a learning rate too large for this model (lr={lr:g}"
                 + (", no gradient clipping" if grad_clip is None else f", grad_clip={grad_clip:g}")
                 + "): lower lr (e.g. by 10x) or clip gradients (grad_clip=1.0)")
    raise NonFiniteLossError(
        f"training stopped: the loss became {value} at step {bad} of {steps}. Likely cause: {cause}. "
        f"The policy keeps {kept}.",
        step=bad, restored_step=good_step, history=history,
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
