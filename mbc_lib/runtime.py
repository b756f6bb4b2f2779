"""Where and how the library computes: the device, seeded generators, CPU threads, progress bars.

The lowest floor of ``mbc_lib`` (it imports only torch, the standard library and
:mod:`mbc_lib.validation`), so that every other module — training, environments, experiments —
reads these rules from one place:

* :func:`select_device` — ``cuda > mps > cpu``, or what ``$MBC_DEVICE`` / the caller asks for;
  a device that is asked for but missing is an error, never a silent fall-back;
* :func:`device_generator` — a seeded ``torch.Generator`` for a device (the one seed rule);
* :func:`cpu_threads`, :func:`env_threads` — intra-op threads on a CPU (``$MBC_THREADS``);
* :func:`on_compute_device` — run a block with a policy on the fastest device, then move it back;
* :func:`progress_enabled` — progress bars unless ``progress=False`` or ``$MBC_PROGRESS=0``.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from .validation import check_seed

__all__ = ["select_device", "device_generator", "cpu_threads", "env_threads", "on_compute_device", "progress_enabled"]


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
