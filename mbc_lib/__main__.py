"""Command line: ``python -m mbc_lib run NAME [--profile P] [--seed S]`` and ``python -m mbc_lib list``."""
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
    args = parser.parse_args(argv)
    if args.command == "list":
        print("\n".join(sorted(experiments.EXPERIMENTS)))
        return 0
    try:
        rows = experiments.run(args.name, profile=args.profile, seed=args.seed)
    except (ValueError, TypeError) as err:  # bad arguments or environment (MBC_DEVICE, MBC_PROFILE, MBC_THREADS)
        print(f"error: {err}", file=sys.stderr)
        return 2
    if rows:
        keys = list(rows[0])
        print("  ".join(f"{k:>18}" for k in keys))
        for r in rows:
            print("  ".join(f"{r[k]:>18.4g}" if isinstance(r[k], float) else f"{r[k]!s:>18}" for k in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
