"""A sweep as one stacked run vs one ``train`` call per model, for several policy families.

    python benchmarks/batched_sweep.py                          # cvae, flow, diffusion: 48 models each, 200 steps
    python benchmarks/batched_sweep.py --families mixture regression --models 16
    python benchmarks/batched_sweep.py --families cvae --compile  # + a torch.compile row (compile time included)

Chapter 3's model size (the ``latent`` budget of the fast profile: width 64, depth 2, batch 256,
1024 demos of the fork, one dataset per seed). Per family, the sweep is ``--models`` models:

* ``cvae`` — ``--models / --seeds`` values of β (log-spaced in [0.02, 2]) × ``--seeds`` seeds
  (the β sweep of chapter 3: dz = 2, L2 reconstruction);
* ``mixture`` — the floor ``min_std`` (log-spaced in [0.01, 0.3]) × seeds;
* ``flow``, ``diffusion``, ``regression`` — ``--models`` seeds (these families' configs have
  no scalar that training reads, so a sweep of them is a sweep of seeds).

``sequential`` trains the models one after the other with ``mbc_lib.train.train``; ``stacked``
passes them to the same ``train`` as one list (stacked weights, the family's loss under vmap).
Both give the same models (``max |Δ final loss|`` checks it here; ``tests/test_batched.py``
checks weights). Each row: median [min–max] wall time of ``--repeats`` runs, alternating the
two. Goal: stacked ≥ 2× faster on a CPU (≥ 5× on CUDA).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("MBC_PROGRESS", "0")

import torch  # noqa: E402

from mbc_lib import policies, tasks  # noqa: E402
from mbc_lib.benchmarking import machine_line, median_range, sync, table  # noqa: E402
from mbc_lib.runtime import select_device  # noqa: E402
from mbc_lib.train import train  # noqa: E402

#: per family: (config field swept, its grid's endpoints) or None for a sweep of seeds only
SWEPT = {"cvae": ("beta", (0.02, 2.0)), "mixture": ("min_std", (0.01, 0.3)),
         "flow": None, "diffusion": None, "regression": None}
FIXED = {"cvae": dict(latent_dim=2, recon="l2"), "mixture": {}, "flow": {}, "diffusion": {}, "regression": {}}


def specs_for(family: str, models: int, seeds: int) -> list[tuple[dict, int]]:
    """The sweep: ``models`` (config overrides, seed) pairs."""
    if SWEPT[family] is None:
        return [({}, s) for s in range(models)]
    name, (lo, hi) = SWEPT[family]
    n = max(1, models // seeds)
    grid = torch.logspace(torch.log10(torch.tensor(lo)), torch.log10(torch.tensor(hi)), n).tolist()
    return [({name: v}, s) for s in range(seeds) for v in grid]


def bench(family: str, args, task, datasets, device) -> list[list[object]]:
    specs = specs_for(family, args.models, args.seeds)
    M = len(specs)

    def build():
        return [policies.make(family, seed=s, obs_dim=1, action_dim=1, chunk_len=task.chunk_len, width=args.width,
                              depth=args.depth, **FIXED[family], **cfg) for cfg, s in specs]

    data = [datasets[s % args.seeds] for _, s in specs]
    kw = dict(steps=args.steps, batch_size=args.batch_size, lr=3e-3, device=device, progress=False)

    def sequential():
        return [train(p, d, seed=s, **kw) for p, d, (_, s) in zip(build(), data, specs)]

    def stacked(compile=False):
        return train(build(), data, seed=[s for _, s in specs], compile=compile, **kw)

    times: dict[str, list[float]] = {"sequential (train × M)": [], "stacked (train on the list)": []}
    diffs = []
    for _ in range(args.repeats):
        for name, fn in zip(times, (sequential, stacked)):
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
        stacked(compile=True)
        sync(device)
        times["stacked + torch.compile (incl. compile)"] = [time.perf_counter() - t0]
    seq = statistics.median(times["sequential (train × M)"])
    rows = []
    for name, ts in times.items():
        med = statistics.median(ts)
        rows.append([f"{family} × {M}", name, median_range(ts, "{:.2f}"),
                     f"{M * args.steps * args.batch_size / med:,.0f}", f"{seq / med:.2f}x", f"{max(diffs):.1e}"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="*", default=["cvae", "flow", "diffusion"], choices=sorted(SWEPT))
    parser.add_argument("--models", type=int, default=48, help="models per sweep")
    parser.add_argument("--seeds", type=int, default=3, help="seeds (and datasets) of the cvae/mixture grids")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--n-demos", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="also time the stacked run with compile=True")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    device = select_device(args.device)
    task = tasks.make("fork", K=2, delta=2.0)
    datasets = {s: task.dataset(args.n_demos, seed=s) for s in range(args.seeds)}
    print(f"== stacked sweeps vs one train() per model: {args.models} models per family (width {args.width}, "
          f"depth {args.depth}, batch {args.batch_size}, {args.steps} steps)")
    print(machine_line(device))
    rows = []
    for family in args.families:
        rows += bench(family, args, task, datasets, device)
        print(f"  done {family}", flush=True)
    print(table(["sweep", "run", "wall s", "samples/s (all models)", "speed-up vs sequential",
                 "max |Δ final loss|"], rows))
    print("Δ final loss: stacked vs sequential, same seeds (float rounding only)")
    if device.type != "cuda":
        print("CUDA: not measured (no GPU on this machine)")
    print(f"load after: {machine_line(device).rsplit('load ', 1)[1]}")


if __name__ == "__main__":
    main()
