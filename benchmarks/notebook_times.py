"""Notebook and book timings: fast-profile nbval per notebook, and the standard-profile book build.

    python benchmarks/notebook_times.py                     # every notebook, then the standard book build
    python benchmarks/notebook_times.py --skip-book         # only the fast-profile nbval table
    python benchmarks/notebook_times.py --notebooks notebooks/03_latent_variable_policies.ipynb --skip-book

Long (minutes to an hour on 2 CPU cores), so ``make bench-book`` runs it and plain
``make bench`` does not. Each notebook is run by ``pytest --nbval-lax`` with
``MBC_PROFILE=fast`` in its own process (what CI does, one notebook at a time), ``--repeats``
times; then ``jupyter-book build`` at ``MBC_PROFILE=standard`` into a temporary folder
(the real ``_build`` is left alone). Wall times; load averages before and after each run.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mbc_lib.benchmarking import load_average, machine_line, median_range, table  # noqa: E402


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    return time.perf_counter() - t0, proc.returncode, (proc.stdout + proc.stderr)[-2000:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notebooks", nargs="*", default=None, help="default: notebooks/*.ipynb")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--skip-book", action="store_true", help="skip the standard-profile book build")
    parser.add_argument("--skip-notebooks", action="store_true")
    args = parser.parse_args()

    py = sys.executable
    base_env = {**os.environ, "MBC_PROGRESS": "0"}
    print("== notebook times")
    print(machine_line("cpu"))
    if not args.skip_notebooks:
        notebooks = args.notebooks or sorted(str(p.relative_to(ROOT)) for p in (ROOT / "notebooks").glob("*.ipynb"))
        rows, total = [], 0.0
        for nb in notebooks:
            times, status = [], "ok"
            load_before = load_average()
            for _ in range(args.repeats):
                t, rc, tail = _run([py, "-m", "pytest", "-q", "--nbval-lax", "-p", "no:cacheprovider", nb],
                                   {**base_env, "MBC_PROFILE": "fast"})
                times.append(t)
                if rc != 0:
                    status = f"FAILED (rc {rc})"
                    print(tail, file=sys.stderr)
            total += statistics.median(times)
            rows.append([nb, median_range(times, "{:.1f}"), status, f"{load_before} → {load_average()}"])
            print(f"  done {nb}", flush=True)
        rows.append(["total (medians)", f"{total:.1f}", "", ""])
        print(table(["notebook (fast profile, nbval-lax)", "wall s", "status", "load before → after"], rows))
    if not args.skip_book:
        with tempfile.TemporaryDirectory() as out:
            load_before = load_average()
            t, rc, tail = _run([str(Path(py).parent / "jupyter-book"), "build", "-W", "-n", "--keep-going",
                                "--path-output", out, "."],
                               {**base_env, "MBC_PROFILE": "standard", "MBC_STATIC_WIDGETS": "1"})
            if rc != 0:
                print(tail, file=sys.stderr)
            print(table(["book build", "wall s", "status", "load before → after"],
                        [["standard profile (jupyter-book build)", f"{t:.1f}", "ok" if rc == 0 else f"FAILED (rc {rc})",
                          f"{load_before} → {load_average()}"]]))


if __name__ == "__main__":
    main()
