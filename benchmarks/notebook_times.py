"""Notebook and book timings: fast-profile nbval per notebook, and the standard-profile book build.

    python benchmarks/notebook_times.py                     # every notebook, then the standard book build
    python benchmarks/notebook_times.py --skip-book         # only the fast-profile nbval table
    python benchmarks/notebook_times.py --notebooks notebooks/03_latent_variable_policies.ipynb --skip-book

Long (minutes to an hour on 2 CPU cores), so ``make bench-book`` runs it and plain
``make bench`` does not. Each notebook is run by ``pytest --nbval-lax`` with
``MBC_PROFILE=fast`` in its own process (what CI does, one notebook at a time), ``--repeats``
times; then the book build of ``make book`` (``tools/build_book.py``: chapters executed two at a time,
then ``jupyter-book build``) at ``MBC_PROFILE=standard`` into a temporary folder (the real ``_build`` is
left alone). Wall times; load averages before and after each run.

Another profile, in parallel, keeping the executed notebooks (how the ``full`` profile is
checked on a GPU machine)::

    python benchmarks/notebook_times.py --profile full --jobs 9 --save executed/ --deadline 600 --skip-book

With ``--save`` each notebook is executed by nbclient instead of nbval, with the same rule as
``--nbval-lax`` (an exception or a failed ``assert`` in any cell fails the notebook; outputs are
not compared), and the executed copy — outputs, per-cell times in the cells' metadata — is
written to the folder, also when a cell fails or the ``--deadline`` (seconds from the start of
that notebook) interrupts it. The table then names the slowest cell of each notebook.
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

import torch  # noqa: E402

from mbc_lib.benchmarking import load_average, machine_line, median_range, table  # noqa: E402


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    return time.perf_counter() - t0, proc.returncode, (proc.stdout + proc.stderr)[-2000:]


def _execute_one(nb: str, save: Path, deadline: float) -> None:
    """Execute ``nb`` in a fresh kernel (``tools/build_book.execute_notebook``, within ``deadline`` seconds);
    write the executed copy to ``save``; print a JSON status line (``status``, ``slowest`` = [cell index,
    seconds]). Exit 1 if a cell failed."""
    import json

    sys.path.insert(0, str(ROOT / "tools"))
    from build_book import execute_notebook

    result = execute_notebook(ROOT / nb, save / Path(nb).name, deadline, deadline=deadline)
    print(json.dumps(result))
    sys.exit(0 if result["status"] == "ok" else 1)


def _run_parallel(notebooks: list[str], env: dict[str, str], args: argparse.Namespace) -> list[list[str]]:
    """Each notebook in its own process, ``args.jobs`` at a time; rows of the table."""
    import json
    from concurrent.futures import ThreadPoolExecutor

    py = sys.executable

    def one(nb: str) -> list[str]:
        if args.save:
            cmd = [py, __file__, "--one", nb, "--save", str(args.save), "--deadline", str(args.deadline)]
        else:
            cmd = [py, "-m", "pytest", "-q", "--nbval-lax", "-p", "no:cacheprovider", nb]
        t, rc, tail = _run(cmd, env)
        status, slowest = ("ok" if rc == 0 else f"FAILED (rc {rc})"), ""
        if args.save:
            try:
                info = json.loads(next(line for line in reversed(tail.splitlines()) if line.startswith('{"status"')))
                status, slowest = info["status"], "cell {} {:.1f} s".format(*info["slowest"])
            except (StopIteration, ValueError, KeyError):
                status = f"FAILED (rc {rc})"
        if rc != 0:
            print(f"--- {nb}\n{tail}", file=sys.stderr, flush=True)
        print(f"  done {nb}: {t:.1f} s, {status}", flush=True)
        return [nb, f"{t:.1f}", status, slowest]

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        return list(pool.map(one, notebooks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notebooks", nargs="*", default=None, help="default: notebooks/*.ipynb")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--skip-book", action="store_true", help="skip the standard-profile book build")
    parser.add_argument("--skip-notebooks", action="store_true")
    parser.add_argument("--profile", default="fast", choices=("fast", "standard", "full"),
                        help="MBC_PROFILE of the notebook runs (default fast, as in CI)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="notebooks run at once (>1: in parallel, one table row each, no repeats)")
    parser.add_argument("--save", type=Path, default=None,
                        help="execute with nbclient and keep the executed notebooks in this folder")
    parser.add_argument("--deadline", type=float, default=3600.0, help="with --save: seconds per notebook")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: one --save execution
    args = parser.parse_args()
    if args.one:
        _execute_one(args.one, args.save, args.deadline)

    py = sys.executable
    base_env = {**os.environ, "MBC_PROGRESS": "0"}
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print("== notebook times")
    print(machine_line(device))
    failed: list[str] = []  # notebooks (or the book) that did not run clean: exit status 1
    notebooks = args.notebooks or sorted(str(p.relative_to(ROOT)) for p in (ROOT / "notebooks").glob("*.ipynb"))
    if not args.skip_notebooks and (args.jobs > 1 or args.save):
        env = {**base_env, "MBC_PROFILE": args.profile, "MBC_STATIC_WIDGETS": "1",
               "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // max(1, args.jobs)))}
        t0 = time.perf_counter()
        rows = _run_parallel(notebooks, env, args)
        failed += [r[0] for r in rows if r[2] != "ok"]
        rows.append([f"all ({args.jobs} at a time)", f"{time.perf_counter() - t0:.1f}", "", ""])
        print(table([f"notebook ({args.profile} profile)", "wall s", "status", "slowest cell"], rows))
    elif not args.skip_notebooks:
        rows, total = [], 0.0
        for nb in notebooks:
            times, status = [], "ok"
            load_before = load_average()
            for _ in range(args.repeats):
                t, rc, tail = _run([py, "-m", "pytest", "-q", "--nbval-lax", "-p", "no:cacheprovider", nb],
                                   {**base_env, "MBC_PROFILE": args.profile})
                times.append(t)
                if rc != 0:
                    status = f"FAILED (rc {rc})"
                    print(tail, file=sys.stderr)
                    failed.append(nb)
            total += statistics.median(times)
            rows.append([nb, median_range(times, "{:.1f}"), status, f"{load_before} → {load_average()}"])
            print(f"  done {nb}", flush=True)
        rows.append(["total (medians)", f"{total:.1f}", "", ""])
        print(table([f"notebook ({args.profile} profile, nbval-lax)", "wall s", "status", "load before → after"], rows))
    if not args.skip_book:
        with tempfile.TemporaryDirectory() as out:
            load_before = load_average()
            t, rc, tail = _run([py, "tools/build_book.py", "--path-output", out],
                               {**base_env, "MBC_PROFILE": "standard", "MBC_STATIC_WIDGETS": "1"})
            if rc != 0:
                print(tail, file=sys.stderr)
                failed.append("book")
            print(table(["book build", "wall s", "status", "load before → after"],
                        [["standard profile (tools/build_book.py, as make book)", f"{t:.1f}", "ok" if rc == 0 else f"FAILED (rc {rc})",
                          f"{load_before} → {load_average()}"]]))
    if failed:
        sys.exit(f"not clean: {', '.join(dict.fromkeys(failed))}")


if __name__ == "__main__":
    main()
