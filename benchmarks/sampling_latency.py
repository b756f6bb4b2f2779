"""Sampling latency per chunk for every policy family: 1 and 256 observations, steps varied.

    python benchmarks/sampling_latency.py
    python benchmarks/sampling_latency.py --width 256 --depth 3 --steps 1 4 16 64

One ``policy.sample(obs, n=1)`` call with ``B`` observations returns ``B`` chunks (one each);
the table gives the latency of that call (ms, median [min–max] of ``--repeats``) and the time
per chunk (µs). Diffusion (DDIM) and flow (Euler) are run at each count in ``--steps``;
one-pass families (regression, CVAE, VQ, mixture) once. Untrained policies: the latency does
not depend on the weights. Sampling runs under ``torch.inference_mode`` with the same thread
setting that training uses (``mbc_lib.train.cpu_threads``).
"""
from __future__ import annotations

import argparse
import os
import statistics

os.environ.setdefault("MBC_PROGRESS", "0")

import torch  # noqa: E402

from mbc_lib import policies, tasks  # noqa: E402
from mbc_lib.benchmarking import machine_line, median_range, table, timed  # noqa: E402
from mbc_lib.runtime import cpu_threads, select_device  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="*", default=[1, 256])
    parser.add_argument("--steps", type=int, nargs="*", default=[1, 4, 16, 64])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    device = select_device(args.device)
    task = tasks.make("fork", K=2, delta=2.0)
    print(f"== sampling latency per chunk (width {args.width}, depth {args.depth}, fork H={task.chunk_len}, d=1)")
    print(machine_line(device))
    rows = []
    for name in policies.families():
        pol = policies.make(name, seed=0, obs_dim=1, action_dim=1, chunk_len=task.chunk_len, width=args.width,
                            depth=args.depth).to(device).eval()
        counts = args.steps if name in ("diffusion", "flow") else [None]
        with cpu_threads(pol, device), torch.inference_mode():
            for S in counts:
                extra = {} if S is None else {"steps": S}
                label = {"diffusion": f"DDIM {S}", "flow": f"Euler {S}"}.get(name, "one pass")
                row = [name, label]
                for B in args.batches:
                    obs = task.sample_obs(B, torch.Generator().manual_seed(0)).to(device)
                    gen = torch.Generator(device=device).manual_seed(0) if device.type != "mps" else None
                    pol.sample(obs, 1, generator=gen, **extra)  # warm-up
                    ts = timed(lambda: pol.sample(obs, 1, generator=gen, **extra), device, args.repeats)
                    row += [median_range([1e3 * t for t in ts], "{:.2f}"), f"{1e6 * statistics.median(ts) / B:,.1f}"]
                rows.append(row)
        print(f"  done {name}", flush=True)
    header = ["family", "sampler"]
    for B in args.batches:
        header += [f"B={B}: ms/call", f"B={B}: µs/chunk"]
    print(table(header, rows))
    if device.type != "cuda":
        print("CUDA rows: not measured (no GPU on this machine)")
    print(f"load after: {machine_line(device).rsplit('load ', 1)[1]}")


if __name__ == "__main__":
    main()
