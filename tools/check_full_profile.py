"""Run every experiment with the *structure* of the ``full`` profile at toy sizes, on any machine.

    python tools/check_full_profile.py [NAME ...]

The ``full`` profile is the default on CUDA (Colab), and its grids (settings, β ratios, step
counts, executors, chunk lengths) differ from the ones CI exercises. This check keeps every
grid of ``BUDGETS[...]["full"]`` and shrinks only the sizes (training steps, sample counts,
widths), so a configuration that cannot run — an unknown executor, a task that rejects a K —
fails here in minutes instead of after an hour on a GPU. It checks that the code runs, not
what it finds: the numbers at toy sizes mean nothing.
"""
from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("MBC_PROGRESS", "0")
os.environ.setdefault("MBC_CACHE", "off")  # toy tables must never reach chapter 10

from mbc_lib import experiments, profiles  # noqa: E402

#: size key -> toy value (grids and other keys are left as the full profile has them)
TOY = dict(steps=20, train_steps=20, n_demos=256, n_episodes=24, n_eval=8, n_samples=128, n_sinkhorn=64,
           n_prior=128, n_hole=256, n_per_state=64, n_states=2, n_obs=2, n_grid=501, n_segments=8, n_points=65,
           n_jac=4, width=32, depth=2, batch_size=64, n_query=2)
#: robot tasks count demonstrations in episodes
TOY_ROBOT = dict(n_demos=16)


def shrink() -> None:
    for name, table in profiles.BUDGETS.items():
        full = table["full"]
        for key, value in TOY.items():
            if key in full and isinstance(full[key], int):
                full[key] = min(full[key], TOY_ROBOT.get(key, value) if name == "robot" else value)


def main(names: list[str]) -> int:
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
