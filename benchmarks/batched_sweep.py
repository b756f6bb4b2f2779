"""A β sweep × seeds as one batched run vs one ``train`` call per model.

    python benchmarks/batched_sweep.py                       # 16 β × 3 seeds = 48 CVAEs, 200 steps
    python benchmarks/batched_sweep.py --compile             # + a torch.compile row (compile time included)

Chapter 3's models (the ``latent`` budget of the fast profile: width 64, depth 2, dz = 2,
batch 256, 1024 demos of the fork, one dataset per seed). ``sequential`` trains the 48 CVAEs
one after the other with ``mbc_lib.train.train``; ``batched`` trains them together with
``mbc_lib.batched.train_batched`` (stacked weights, vmap over functional_call). Both give the
same models (``max |Δ final loss|`` checks it here; ``tests/test_batched.py`` checks weights).
Each row: median [min–max] wall time of ``--repeats`` runs, alternating the two. Goal: batched
≥ 2× faster on a CPU (≥ 5× on CUDA).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("MBC_PROGRESS", "0")

import torch  # noqa: E402

from mbc_lib import policies, tasks  # noqa: E402
from mbc_lib.batched import train_batched  # noqa: E402
from mbc_lib.benchmarking import machine_line, median_range, sync, table  # noqa: E402
from mbc_lib.train import select_device, train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--betas", type=int, default=16, help="β grid points (β ∈ [0.02, 2] log-spaced)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--n-demos", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="also time train_batched(compile=True)")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    device = select_device(args.device)
    task = tasks.make("fork", K=2, delta=2.0)
    datasets = {s: task.dataset(args.n_demos, seed=s) for s in range(args.seeds)}
    betas = torch.logspace(-1.7, 0.3, args.betas).tolist()
    specs = [(b, s) for s in range(args.seeds) for b in betas]
    M = len(specs)

    def build():
        return [policies.make("cvae", seed=s, obs_dim=1, action_dim=1, chunk_len=task.chunk_len, latent_dim=2,
                              width=args.width, depth=args.depth, beta=b, recon="l2") for b, s in specs]

    kw = dict(steps=args.steps, batch_size=args.batch_size, lr=3e-3, device=device, progress=False)

    def sequential():
        hs = []
        for p, (b, s) in zip(build(), specs):
            hs.append(train(p, datasets[s], seed=s, **kw))
        return hs

    def batched(compile=False):
        return train_batched(build(), [datasets[s] for _, s in specs], seed=[s for _, s in specs], compile=compile,
                             **kw)

    print(f"== batched sweep: {args.betas} β × {args.seeds} seeds = {M} CVAEs (width {args.width}, depth {args.depth}, "
          f"batch {args.batch_size}, {args.steps} steps)")
    print(machine_line(device))
    times: dict[str, list[float]] = {"sequential (train × M)": [], "batched (train_batched)": []}
    diffs = []
    for _ in range(args.repeats):
        for name, fn in (("sequential (train × M)", sequential), ("batched (train_batched)", batched)):
            sync(device)
            t0 = time.perf_counter()
            out = fn()
            sync(device)
            times[name].append(time.perf_counter() - t0)
            if name.startswith("seq"):
                seq_final = [h.final["loss"] for h in out]
            else:
                diffs.append(max(abs(a - h.final["loss"]) for a, h in zip(seq_final, out)))
    if args.compile:
        sync(device)
        t0 = time.perf_counter()
        batched(compile=True)
        sync(device)
        times["batched + torch.compile (incl. compile)"] = [time.perf_counter() - t0]
    seq = statistics.median(times["sequential (train × M)"])
    rows = []
    for name, ts in times.items():
        med = statistics.median(ts)
        rows.append([name, median_range(ts, "{:.2f}"), f"{M * args.steps * args.batch_size / med:,.0f}",
                     f"{seq / med:.2f}x"])
    print(table(["run", "wall s", "samples/s (all models)", "speed-up vs sequential"], rows))
    print(f"max |Δ final loss| batched vs sequential: {max(diffs):.2e} (same seeds, float rounding only)")
    if device.type != "cuda":
        print("CUDA: not measured (no GPU on this machine)")
    print(f"load after: {machine_line(device).rsplit('load ', 1)[1]}")


if __name__ == "__main__":
    main()
