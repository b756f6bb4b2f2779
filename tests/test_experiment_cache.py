"""The results cache: atomic JSON tables keyed by experiment, profile, seed and library source."""
import json

import numpy as np
import pytest

from mbc_lib import experiments
from mbc_lib.experiments import cache


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MBC_CACHE", str(tmp_path))
    return tmp_path


def test_store_then_load_round_trips_and_cleans_numpy(cache_dir):
    rows = [{"family": "flow", "coverage": np.float32(0.5), "K": np.int64(3), "gap": float("nan")}]
    path = cache.store("demo", rows, "fast", seed=1)
    assert path.parent == cache_dir and not list(cache_dir.glob("*.tmp"))
    assert cache.load("demo", "fast", seed=1) == [{"family": "flow", "coverage": 0.5, "K": 3, "gap": None}]
    assert cache.load("demo", "fast", seed=2) is None and cache.load("demo", "standard", seed=1) is None


def test_a_table_from_other_library_source_is_not_reused(cache_dir):
    path = cache.store("demo", [{"x": 1}], "fast")
    payload = json.loads(path.read_text())
    payload["source"] = "0" * 12
    path.write_text(json.dumps(payload))
    assert cache.load("demo", "fast") is None


def test_failed_store_leaves_nothing_behind(cache_dir):
    with pytest.raises(TypeError, match="numbers and strings"):
        cache.store("demo", [{"model": object()}], "fast")
    assert not list(cache_dir.iterdir())


def test_cache_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("MBC_CACHE", "off")
    assert cache.store("demo", [{"x": 1}], "fast") is None and cache.load("demo", "fast") is None


def test_run_uses_the_cache_only_when_asked(cache_dir, monkeypatch):
    calls = []

    def fake(profile=None, seed=0):
        calls.append((profile, seed))
        return [{"value": len(calls)}]

    monkeypatch.setitem(experiments.EXPERIMENTS, "fake", fake)
    assert experiments.run("fake", profile="fast", use_cache=True) == [{"value": 1}]
    assert experiments.run("fake", profile="fast", use_cache=True) == [{"value": 1}]  # from disk
    assert experiments.run("fake", profile="fast") == [{"value": 2}]  # recomputed
    assert calls == [("fast", 0), ("fast", 0)]
    with pytest.raises(ValueError, match="unknown experiment"):
        experiments.run("nope")


def test_storing_a_table_removes_the_tables_of_older_library_sources(cache_dir):
    stale = cache_dir / "demo-fast-seed0-000000000000.json"
    stale.write_text("{}")
    other = cache_dir / "demo-fast-seed1-000000000000.json"
    other.write_text("{}")
    cache.store("demo", [{"x": 1}], "fast", seed=0)
    assert not stale.exists() and other.exists()


def test_run_keeps_a_result_and_is_the_one_place_that_stores_it(cache_dir, monkeypatch):
    calls = []

    def compute(profile=None, seed=0):
        calls.append((profile, seed))
        return {"rows": [{"value": seed + 0.5}], "figure data": object()}

    monkeypatch.setitem(experiments.RESULTS, "fake", (compute, lambda result: result["rows"]))
    monkeypatch.setitem(experiments.EXPERIMENTS, "fake", lambda profile=None, seed=0: compute(profile, seed)["rows"])
    result = experiments.run("fake", profile="fast", seed=2, keep_result=True)
    assert "figure data" in result and cache.load("fake", "fast", 2) is None  # nothing stored unless asked
    result = experiments.run("fake", profile="fast", seed=2, use_cache=True, keep_result=True)
    assert cache.load("fake", "fast", 2) == [{"value": 2.5}]  # the rows, for the chapters that read them later
    assert experiments.run("fake", profile="fast", seed=2, use_cache=True) == [{"value": 2.5}]  # read, not computed
    assert calls == [("fast", 2), ("fast", 2)]
    with pytest.raises(ValueError, match="returns rows only"):
        experiments.run("transport", profile="fast", keep_result=True)


def test_no_experiment_writes_the_cache_itself():
    # the cache is written by experiments.run's writer only (the seeded grids use it too): no module calls cache.store
    import ast
    from pathlib import Path

    root = Path(experiments.__file__).parent
    for path in root.glob("*.py"):
        if path.name in ("__init__.py", "cache.py"):
            continue
        calls = [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Attribute) and n.attr == "store"]
        assert not calls, f"{path.name} writes the results cache; only experiments.run may"
