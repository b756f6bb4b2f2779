"""Helpers the scripts in ``benchmarks/`` share: machine description, synchronised timing, tables.

Benchmarks print tables, they are never timed tests (CI does not run them). Every table
starts with :func:`machine_line` — device, torch version, intra-op threads and the load
average — because on a shared machine the load moves the numbers more than most changes do.
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence

import torch

__all__ = ["machine_line", "load_average", "sync", "timed", "median_range", "table"]


def load_average() -> str:
    """The 1/5/15-minute load averages (``uptime``), or ``"n/a"``."""
    try:
        return "/".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover - not on every OS
        return "n/a"


def machine_line(device: torch.device | str) -> str:
    """One line: device (GPU name on CUDA), CPU cores, torch version, threads, load."""
    device = torch.device(device)
    dev = str(device)
    if device.type == "cuda":
        dev += f" ({torch.cuda.get_device_name(device)})"
    return (f"machine: {dev} | {platform.processor() or platform.machine()}, {os.cpu_count()} cores | "
            f"torch {torch.__version__} | threads {torch.get_num_threads()} | load {load_average()}")


def sync(device: torch.device | str) -> None:
    """Wait for queued device work (so wall time measures the work, not the launch)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def timed(fn: Callable[[], object], device: torch.device | str, repeat: int = 3) -> list[float]:
    """Wall times (s) of ``repeat`` synchronised calls of ``fn``."""
    out = []
    for _ in range(repeat):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t0)
    return out


def median_range(values: Sequence[float], fmt: str = "{:,.0f}") -> str:
    """``median [min–max]`` of repeated measurements."""
    return f"{fmt.format(statistics.median(values))} [{fmt.format(min(values))}–{fmt.format(max(values))}]"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain fixed-width table (first column left-aligned, the rest right-aligned)."""
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(r):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

    out = [line(cells[0]), "-" * len(line(cells[0]))]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)
