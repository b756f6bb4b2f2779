"""Grids over training seeds (mbc_lib.experiments.grid): cells, the in-process and Ray backends, failures, the
cache and the across-seed spread."""
from __future__ import annotations

import math
import subprocess
import sys
import warnings

import pytest
import torch

from mbc_lib import experiments, profiles
from mbc_lib.experiments import grid, synthetic

#: a tiny grid: the fast profile's two settings (fork K = 2 and 3), one cheap family, two seeds
TINY = dict(families=("regression",))


def _same(a: list[dict], b: list[dict]) -> bool:
    def eq(x, y):
        return x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))

    return len(a) == len(b) and all(list(r) == list(s) and all(eq(r[k], s[k]) for k in r) for r, s in zip(a, b))


@pytest.fixture(scope="module")
def local_rows():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as every Ray cell runs: the same arithmetic, the same rows
    try:
        return grid.run_grid("synthetic", "0-1", profile="fast", progress=False, **TINY)
    finally:
        torch.set_num_threads(threads)


def test_parse_seeds():
    assert grid.parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert grid.parse_seeds("0,2,7") == [0, 2, 7]
    assert grid.parse_seeds("1-2, 5") == [1, 2, 5]
    assert grid.parse_seeds(3) == [3] and grid.parse_seeds([4, 1]) == [4, 1]
    for bad, msg in [("3-1", "backwards"), ("a-b", "look like"), ("", "no seeds"), ("1,1", "repeat"),
                     ([-1], "seed"), ("0-2,2", "repeat")]:
        with pytest.raises(ValueError, match=msg):
            grid.parse_seeds(bad)


def test_the_profiles_set_the_seed_counts():
    assert [len(profiles.training_seeds(p)) for p in ("fast", "standard", "full")] == [1, 3, 5]
    assert profiles.training_seeds("standard", first=10) == (10, 11, 12)
    with pytest.raises(ValueError, match="profile"):
        profiles.training_seeds("huge")


def test_cells_are_seed_major_then_the_experiments_settings():
    cells = grid.cells("synthetic", "fast", [0, 1])
    settings = grid.SPLITS["synthetic"].settings("fast")
    assert [(c.seed, c.setting) for c in cells] == [(s, st) for s in (0, 1) for st in settings]
    assert [c.setting for c in grid.cells("averaging", "fast", [0, 1])] == [None, None]  # one cell per seed


def test_a_local_grid_gives_each_seeds_own_table(local_rows):
    res = local_rows
    assert res.seeds == (0, 1) and not res.failed
    by_seed = res.by_seed()
    assert [r["seed"] for r in res.rows] == [0] * len(by_seed[0]) + [1] * len(by_seed[1])
    for seed, rows in by_seed.items():  # split into cells, reassembled: the whole sweep's table, row for row
        whole = synthetic.summary(synthetic.sweep(seed=seed, profile="fast", progress=False, **TINY))
        assert _same([{k: v for k, v in r.items() if k != "seed"} for r in rows], whole)
    assert not _same(by_seed[0], [{**r, "seed": 0} for r in by_seed[1]])  # another seed, another model


def test_a_failed_cell_is_named_and_the_others_are_kept():
    settings = [("fork", 2, 3.0), ("nowhere", 2, 3.0)]
    with pytest.warns(UserWarning, match=r"1 of 2 cells .*nowhere 2 3\.0 seed 0.*unknown task"):
        res = grid.run_grid("synthetic", [0], profile="fast", progress=False, settings=settings, **TINY)
    assert [(f.cell.setting, f.cell.seed) for f in res.failed] == [(("nowhere", 2, 3.0), 0)]
    assert "ValueError" in res.failed[0].error
    assert res.rows and all(r["task"] == "fork" and r["K"] == 2 for r in res.rows)


def test_the_cache_is_shared_per_seed(monkeypatch, tmp_path):
    calls = []

    def fake(profile=None, seed=0):
        calls.append(seed)
        return [{"value": 2.5 * seed, "profile": profile}]

    monkeypatch.setenv("MBC_CACHE", str(tmp_path))
    monkeypatch.setitem(experiments.EXPERIMENTS, "fake", fake)
    first = grid.run_grid("fake", "0-2", profile="fast", use_cache=True, progress=False)
    assert calls == [0, 1, 2] and [r["value"] for r in first.rows] == [0.0, 2.5, 5.0]
    again = grid.run_grid("fake", "1-3", profile="fast", use_cache=True, progress=False)
    assert calls == [0, 1, 2, 3] and again.cached_seeds == (1, 2)  # only the new seed is computed
    assert [(r["seed"], r["value"]) for r in again.rows] == [(1, 2.5), (2, 5.0), (3, 7.5)]
    assert experiments.run("fake", profile="fast", seed=2, use_cache=True) == [{"value": 5.0, "profile": "fast"}]
    assert experiments.run("fake", profile="fast", seeds=[0, 3], use_cache=True) == [
        {"seed": 0, "value": 0.0, "profile": "fast"}, {"seed": 3, "value": 7.5, "profile": "fast"}]
    assert calls == [0, 1, 2, 3]


def test_a_grid_of_some_settings_caches_each_cell(monkeypatch, tmp_path):
    calls = []

    def fake_rows(profile, seed, settings=None, **options):
        calls.append((seed, tuple(settings[0])))
        task, K, delta = settings[0]
        return [{"family": "regression", "task": task, "K": K, "delta": delta, "knob_value": 0.0, "value": seed + K}]

    split = grid.Split(lambda profile: [("fork", 2, 3.0), ("fork", 3, 3.0)], fake_rows,
                       grid.SPLITS["synthetic"].order)
    monkeypatch.setenv("MBC_CACHE", str(tmp_path))
    monkeypatch.setitem(experiments.EXPERIMENTS, "fakesplit", lambda profile=None, seed=0: [])
    monkeypatch.setitem(grid.SPLITS, "fakesplit", split)
    one = [("fork", 3, 3.0)]
    first = grid.run_grid("fakesplit", "0-1", profile="fast", use_cache=True, progress=False, settings=one)
    assert calls == [(0, one[0]), (1, one[0])] and [r["value"] for r in first.rows] == [3, 4]
    assert sorted(f.name.split("-")[0] for f in tmp_path.glob("*.json")) == ["fakesplit__fork_3_3p0"] * 2
    again = grid.run_grid("fakesplit", "1-2", profile="fast", use_cache=True, progress=False, settings=one)
    assert calls == [(0, one[0]), (1, one[0]), (2, one[0])]  # seed 1's cell was read, seed 2's computed
    assert [(r["seed"], r["value"]) for r in again.rows] == [(1, 4), (2, 5)]
    grid.run_grid("fakesplit", [1], profile="fast", progress=False, settings=one)  # without use_cache: computed
    assert len(calls) == 4


def test_across_seeds_gives_mean_and_spread():
    rows = [{"seed": s, "family": f, "coverage": c, "off": o}
            for s, f, c, o in [(0, "a", 0.5, 0.1), (1, "a", 0.7, math.nan), (2, "a", 0.9, 0.3), (0, "b", 1.0, 0.0)]]
    a, b = grid.across_seeds(rows, by=["family"], metrics=["coverage", "off"])
    assert a["family"] == "a" and a["n_seeds"] == 3
    assert a["coverage_mean"] == pytest.approx(0.7) and (a["coverage_min"], a["coverage_max"]) == (0.5, 0.9)
    assert a["off_mean"] == pytest.approx(0.2)  # the NaN of seed 1 is skipped
    assert b["n_seeds"] == 1 and b["coverage_min"] == b["coverage_max"] == 1.0
    with pytest.raises(ValueError, match="no column 'success'"):
        grid.across_seeds(rows, by=["family"], metrics=["success"])


def test_bad_grids_are_refused_before_anything_runs():
    with pytest.raises(ValueError, match="unknown experiment"):
        grid.run_grid("nope", [0])
    with pytest.raises(ValueError, match="backend must be one of"):
        grid.run_grid("synthetic", [0], backend="slurm")
    with pytest.raises(ValueError, match="takes no grid options"):
        grid.run_grid("averaging", [0], families=("regression",))
    with pytest.raises(ValueError, match="threads"):
        grid.run_grid("synthetic", [0], threads=0)
    with pytest.raises(ValueError, match="give seed=, not seeds="):
        experiments.run("synthetic", seeds=[0], keep_result=True)
    with pytest.raises(ValueError, match="give seeds= too"):
        experiments.run("synthetic", backend="ray")


def test_the_command_line_refuses_a_backend_without_seeds():
    out = subprocess.run([sys.executable, "-m", "mbc_lib", "run", "averaging", "--backend", "ray"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "give --seeds too" in out.stderr
    out = subprocess.run([sys.executable, "-m", "mbc_lib", "run", "averaging", "--seeds", "2-0"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "runs backwards" in out.stderr


def test_ray_gives_the_same_rows_as_this_process(local_rows):
    pytest.importorskip("ray", reason="the scale extra (pip install 'mbc_lib[scale]') is not installed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        res = grid.run_grid("synthetic", "0-1", profile="fast", backend="ray", num_cpus=2, progress=False, **TINY)
    assert res.backend == "ray" and not res.failed
    assert _same(res.rows, local_rows.rows)


def test_one_model_per_family_and_its_figure(local_rows):
    from mbc_lib.experiments import tables

    rows = [{"seed": 0, "family": "cvae", "knob": "beta", "knob_value": 0.05, "beta_ratio": 0.1, "cov": 0.9},
            {"seed": 0, "family": "cvae", "knob": "beta", "knob_value": 1.0, "beta_ratio": 2.0, "cov": 0.5},
            {"seed": 0, "family": "flow", "knob": "steps", "knob_value": 16.0, "beta_ratio": math.nan, "cov": 0.8},
            {"seed": 0, "family": "flow", "knob": "steps", "knob_value": 1.0, "beta_ratio": math.nan, "cov": 0.4},
            {"seed": 0, "family": "regression", "knob": "none", "knob_value": 0.0, "beta_ratio": math.nan, "cov": 0.0}]
    picked = tables.one_model_per_family(rows, {"cvae": 0.1, "flow": 16})
    assert [(r["model"], r["cov"]) for r in picked] == [("cvae β=0.1β*", 0.9), ("flow 16 steps", 0.8), ("regression", 0.0)]

    import matplotlib

    matplotlib.use("Agg")
    from mbc_lib import figures

    fig = figures.seeds.plot_across_seeds(local_rows.rows, "task", ["coverage", "off_support"])
    ax = fig.axes[0]
    dots = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert len(dots) == len(local_rows.rows)  # one dot per trained model (2 seeds × 2 settings here)
    assert {float(line.get_xdata()[0]) for line in dots} == {r["coverage"] for r in local_rows.rows}
    assert "2 training seeds" in fig._suptitle.get_text()
