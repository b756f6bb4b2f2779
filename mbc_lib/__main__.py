"""Command line: ``python -m mbc_lib run NAME [--profile P] [--seed S]`` and ``python -m mbc_lib list``.

Several training seeds: ``python -m mbc_lib run synthetic --profile full --seeds 0-4 [--backend ray
[--address auto]]`` runs one cell per (setting, seed), in this process or on Ray, with a progress bar over
cells; a failed cell is reported with its setting and seed and the others' rows are printed (exit status 1)."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from . import experiments

    parser = argparse.ArgumentParser(prog="python -m mbc_lib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the experiments")
    run = sub.add_parser("run", help="run one experiment and print its summary table")
    run.add_argument("name", help="experiment name (see 'list')")
    run.add_argument("--profile", choices=["fast", "standard", "full"], default=None)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--seeds", default=None, help="several training seeds, e.g. 0-4 or 0,2,7 (rows get a seed column)")
    run.add_argument("--backend", choices=["local", "ray"], default="local",
                     help="with --seeds: run the cells in this process (local) or on Ray")
    run.add_argument("--address", default=None, help="with --backend ray: a running cluster (auto, ray://host:10001)")
    run.add_argument("--num-cpus", type=int, default=None, help="with --backend ray and no --address: cores to use")
    args = parser.parse_args(argv)
    if args.command == "list":
        print("\n".join(sorted(experiments.EXPERIMENTS)))
        return 0
    failed = []
    try:
        if args.seeds is None:
            if args.backend != "local" or args.address is not None or args.num_cpus is not None:
                raise ValueError("--backend, --address and --num-cpus fan out a grid of seeds: give --seeds too")
            rows = experiments.run(args.name, profile=args.profile, seed=args.seed)
        else:
            import warnings

            with warnings.catch_warnings():  # failed cells are printed below, once
                warnings.simplefilter("ignore")
                grid = experiments.grid.run_grid(args.name, args.seeds, profile=args.profile, backend=args.backend,
                                                 address=args.address, num_cpus=args.num_cpus)
            rows, failed = grid.rows, grid.failed
            print(f"{len(grid.seeds)} seeds, {args.backend}: {grid.wall_s:.1f} s", file=sys.stderr)
    except (ValueError, TypeError, ImportError) as err:  # bad arguments or environment (MBC_DEVICE, MBC_PROFILE, ...)
        print(f"error: {err}", file=sys.stderr)
        return 2
    if rows:
        keys = list(rows[0])
        print("  ".join(f"{k:>18}" for k in keys))
        for r in rows:
            print("  ".join(f"{r[k]:>18.4g}" if isinstance(r[k], float) else f"{r[k]!s:>18}" for k in keys))
    for f in failed:
        print(f"failed: {f.cell.label}: {f.error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
