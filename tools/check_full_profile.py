"""Run every experiment with the *structure* of the ``full`` profile at toy sizes, on any machine.

    python tools/check_full_profile.py [NAME ...]                  # the experiments
    python tools/check_full_profile.py --notebooks [NOTEBOOK ...]  # the chapters, executed

The ``full`` profile (opt-in, sized for a GPU) has grids (settings, β ratios, step
counts, executors, chunk lengths) differ from the ones CI exercises. This check keeps every
grid of ``BUDGETS[...]["full"]`` and shrinks only the sizes (training steps, sample counts,
widths), so a configuration that cannot run — an unknown executor, a task that rejects a K —
fails here in minutes instead of after an hour on a GPU. It checks that the code runs, not
what it finds: the numbers at toy sizes mean nothing.

``--notebooks`` executes the chapters the same way (``MBC_PROFILE=full``, toy sizes, results
cache off), each in a fresh kernel. The chapters' ``assert`` statements check claims that need
real budgets, so they are removed before each cell runs (an IPython AST transformer); any other
exception fails the chapter. This catches a cell written for the grids of ``fast``/``standard`` —
unpacking three β values when ``full`` trains five, say — without the hours ``full`` takes on a CPU.
"""
from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

#: toy tables must never reach chapter 11's cache; no progress bars
ENV = {"MBC_CACHE": "off", "MBC_PROGRESS": "0"}

from kernel_wakeup import keep_awake  # noqa: E402  (tools/ is on the path wherever this module is imported)
from mbc_lib import experiments, profiles  # noqa: E402

#: size key -> toy value (grids and other keys are left as the full profile has them)
TOY = dict(steps=20, n_demos=256, n_episodes=24, n_eval=8, n_samples=128, n_sinkhorn=64,
           n_prior=128, n_hole=256, n_per_state=64, n_states=2, n_obs=2, n_grid=501, n_segments=8, n_points=65,
           n_jac=4, width=32, depth=2, batch_size=64, n_query=2)
#: the closed-loop experiments of chapter 8 count demonstrations in episodes, and attribute every failed rollout
#: (expert re-runs per mode and segment): a handful of each is enough to find a full-only bug
TOY_ROBOT = dict(n_demos=16, n_eval=4)
ROBOT_EXPERIMENTS = ("robot", "failures")


def shrink() -> None:
    for name, table in profiles.BUDGETS.items():
        full = table["full"]
        for key, value in TOY.items():
            if key in full and isinstance(full[key], int):
                full[key] = min(full[key], TOY_ROBOT.get(key, value) if name in ROBOT_EXPERIMENTS else value)


ROOT = Path(__file__).resolve().parents[1]

#: run first in each chapter's kernel: the toy sizes, and no asserts in the cells that follow
PREAMBLE = f"""import ast, sys
sys.path.insert(0, {str(ROOT / "tools")!r})
import check_full_profile
check_full_profile.shrink()

class _DropAsserts(ast.NodeTransformer):
    def visit_Assert(self, node):
        return ast.Pass()

get_ipython().ast_transformers.append(_DropAsserts())"""


def check_notebook(path: Path, timeout: int = 900) -> str:
    """Execute ``path`` at the full profile's grids with toy sizes; ``"ok"`` or what failed."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(PREAMBLE))
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        # the environment is the kernel's, not this process's; a kernel that misses a request is woken (kernel_wakeup)
        with client.setup_kernel(env={**os.environ, **ENV, "MBC_PROFILE": "full"}), keep_awake(client.km):
            for i, cell in enumerate(nb.cells):
                client.execute_cell(cell, i)
    except CellExecutionError as err:
        cell = next((i for i, c in enumerate(nb.cells) if any(o.get("output_type") == "error" for o in c.get("outputs", []))), 0)
        last = re.sub(r"\x1b\[[0-9;]*m", "", str(err).strip().splitlines()[-1])  # without terminal colours
        return f"code cell {sum(c.cell_type == 'code' for c in nb.cells[1:cell])}: {last[:300]}"
    except (CellTimeoutError, DeadKernelError) as err:  # a hung or crashed kernel: say so, do not raise
        return f"{type(err).__name__}: {str(err).strip().splitlines()[0][:300]}"
    return "ok"


def main_notebooks(paths: list[str]) -> int:
    chapters = [Path(p).resolve() for p in paths] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    failed = 0
    for path in chapters:
        t0 = time.perf_counter()
        status = check_notebook(path)
        failed += status != "ok"
        print(f"{'ok    ' if status == 'ok' else 'FAILED'}  {path.name:40s} {time.perf_counter() - t0:6.1f} s  "
              f"{'' if status == 'ok' else status}", flush=True)
    return 1 if failed else 0


def main(names: list[str]) -> int:
    if names[:1] == ["--notebooks"]:
        return main_notebooks(names[1:])
    for key, value in ENV.items():
        os.environ.setdefault(key, value)
    shrink()
    names = names or [n for n in experiments.EXPERIMENTS if n != "guidance"] + ["guidance"]
    failed = []
    for name in names:
        t0 = time.perf_counter()
        try:
            rows = experiments.run(name, profile="full", use_cache=name == "guidance")
            print(f"ok      {name:16s} {len(rows):4d} rows  {time.perf_counter() - t0:6.1f} s", flush=True)
        except Exception as err:  # report every failure, then fail
            failed.append(name)
            print(f"FAILED  {name:16s} {type(err).__name__}: {err}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
