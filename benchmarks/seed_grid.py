"""A grid of training seeds in this process vs fanned out on a local Ray with every core.

    python benchmarks/seed_grid.py                       # chapter 7's fast grid, regression + flow, seeds 0-3
    python benchmarks/seed_grid.py --families cvae flow --seeds 0-7 --profile standard

The grid is ``synthetic`` (chapter 7) restricted to ``--families``: one cell per (setting, seed). ``local``
runs the cells one after another (torch with ``--threads`` threads); ``ray`` runs them as Ray tasks with
``--threads`` threads each on ``ray.init(num_cpus=<cores>)`` — its wall time includes starting Ray. Both
must give the same rows (checked here; ``tests/test_grid.py`` checks it in CI). On one machine Ray pays
when cells outnumber cores and each cell runs long enough to hide the start-up; across a cluster
(``--address``) it is the way past one machine.
"""
from __future__ import annotations

import argparse
import math
import os
import time

os.environ.setdefault("MBC_PROGRESS", "0")

import torch  # noqa: E402

from mbc_lib.benchmarking import machine_line, table  # noqa: E402
from mbc_lib.experiments import grid  # noqa: E402


def _same(a, b) -> bool:
    def eq(x, y):
        return x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))

    return len(a) == len(b) and all(all(eq(r[k], s[k]) for k in r) for r, s in zip(a, b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="+", default=["regression", "flow"])
    parser.add_argument("--seeds", default="0-3")
    parser.add_argument("--profile", default="fast", choices=["fast", "standard", "full"])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per cell (both backends)")
    parser.add_argument("--address", default=None, help="a Ray cluster to use instead of a local one")
    args = parser.parse_args()
    seeds = grid.parse_seeds(args.seeds)
    cores = os.cpu_count() or 1
    n_cells = len(grid.cells("synthetic", args.profile, seeds))
    print(machine_line("cpu"))
    print(f"grid: synthetic at {args.profile}, families {', '.join(args.families)}, seeds {args.seeds}: "
          f"{n_cells} cells; {args.threads} thread(s) per cell, {cores} cores")
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    local = grid.run_grid("synthetic", seeds, profile=args.profile, families=tuple(args.families), progress=False)
    t_local = time.perf_counter() - t0
    rows = [("local (in process)", f"{t_local:.1f}", f"{t_local / n_cells:.1f}", len(local.failed), "—")]
    try:
        import ray  # noqa: F401
    except ImportError:
        rows.append(("ray", "not installed (pip install 'mbc_lib[scale]')", "", "", ""))
    else:
        t0 = time.perf_counter()
        remote = grid.run_grid("synthetic", seeds, profile=args.profile, families=tuple(args.families),
                               backend="ray", address=args.address, num_cpus=None if args.address else cores,
                               threads=args.threads, progress=False)
        t_ray = time.perf_counter() - t0
        rows.append((f"ray ({args.address or f'local, {cores} cores'})", f"{t_ray:.1f}", f"{t_ray / n_cells:.1f}",
                     len(remote.failed), "yes" if _same(remote.rows, local.rows) else "NO"))
    print(table(["backend", "wall s", "s / cell", "failed", "same rows"], rows))


if __name__ == "__main__":
    main()
