"""Grids over training seeds: every headline number measured on several trained models, in this process
or fanned out with Ray.

A grid's **cells** are independent units of work: one training seed of an experiment, and — for the
experiments listed in :data:`SPLITS` — one of its settings (chapter 7's ``(task, K, Δc)`` triples). A cell
is computed by :func:`compute_cell`, the same function in this process and on a Ray worker, so both
backends give the same rows (each tagged with its ``seed``). A cell that fails is reported with its
setting and seed, and the other cells' rows are kept.

* ``backend="local"`` (the default) runs the cells one after another in this process; Ray is not needed.
* ``backend="ray"`` sends each cell to a Ray task (``pip install 'mbc_lib[scale]'``): ``ray.init()`` with
  this machine's cores, or a running cluster with ``address="auto"`` / ``"ray://host:10001"`` (its nodes
  need ``mbc_lib`` installed). No scheduler of our own: Ray places the cells.

Results go through the same cache as :func:`mbc_lib.experiments.run`: with ``use_cache=True`` a seed whose
table is cached is not recomputed, and a seed whose cells all succeeded is stored — so a cluster run and a
laptop build share tables. A grid restricted to some settings (``settings=[...]``) caches each (setting, seed)
cell on its own, so a later chapter asking for the same cells reads them. :func:`across_seeds` turns the rows
into mean and min–max per metric.
"""
from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..profiles import PROFILES, training_seeds
from ..profiles import profile as active_profile
from ..runtime import progress_enabled
from ..validation import check_seed
from . import cache

__all__ = ["BACKENDS", "SPLITS", "Cell", "CellFailure", "GridResult", "cells", "compute_cell", "run_grid",
           "parse_seeds", "across_seeds"]

Rows = list[dict[str, Any]]
BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class Split:
    """How an experiment's grid splits into settings: ``settings(profile)`` lists them,
    ``rows(profile=, seed=, settings=, **options)`` computes the rows of a subset, and ``order(row)`` sorts
    one seed's rows into the order the whole experiment returns them (so a seed's table, cached, is the same)."""

    settings: Callable[[str], list[tuple]]
    rows: Callable[..., Rows]
    order: Callable[[dict[str, Any]], tuple]


def _synthetic_settings(profile: str) -> list[tuple]:
    from ..profiles import budget

    return [(str(t), int(k), float(d)) for t, k, d in budget("synthetic", profile)["settings"]]


def _synthetic_rows(profile: str, seed: int, settings: Sequence[tuple] | None = None, **options: Any) -> Rows:
    from . import synthetic

    return synthetic.summary(synthetic.sweep(settings=settings, seed=seed, profile=profile, progress=False, **options))


def _synthetic_order(row: dict[str, Any]) -> tuple:
    from .synthetic import FAMILIES

    return FAMILIES.index(row["family"]), row["task"], row["K"], row["delta"], row["knob_value"]


#: experiments whose cells are (setting, seed); every other experiment has one cell per seed
SPLITS: dict[str, Split] = {"synthetic": Split(_synthetic_settings, _synthetic_rows, _synthetic_order)}


@dataclass(frozen=True)
class Cell:
    """One unit of work: experiment ``name`` at ``profile`` trained with ``seed``; ``setting`` is one of its
    settings (:data:`SPLITS`) or ``None`` for the whole experiment; ``options`` are extra keyword arguments
    of the experiment's sweep (e.g. ``(("families", ("regression",)),)``), for grids smaller than the profile's."""

    name: str
    profile: str
    seed: int
    setting: tuple | None = None
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def label(self) -> str:
        where = "" if self.setting is None else " " + " ".join(str(x) for x in self.setting)
        return f"{self.name}{where} seed {self.seed}"

    @property
    def cache_name(self) -> str | None:
        """The cache entry of this cell alone (a setting of a :data:`SPLITS` experiment, no other options), e.g.
        ``synthetic__fork_3_3p0``; ``None`` for a whole-experiment cell or one with options."""
        if self.setting is None or self.options:
            return None
        part = "_".join(str(x).replace(".", "p").replace("-", "m") for x in self.setting)
        return f"{self.name}__{''.join(c if c.isalnum() else '_' for c in part)}"


@dataclass
class CellFailure:
    """A cell that raised: which one, and the error it raised (type and message)."""

    cell: Cell
    error: str


@dataclass
class GridResult:
    """The rows of every cell that succeeded (each with its ``seed``; in seed order, then setting order), the
    cells that failed, and how the grid ran."""

    name: str
    profile: str
    seeds: tuple[int, ...]
    rows: Rows = field(default_factory=list)
    failed: list[CellFailure] = field(default_factory=list)
    backend: str = "local"
    wall_s: float = 0.0
    cached_seeds: tuple[int, ...] = ()

    def by_seed(self) -> dict[int, Rows]:
        out: dict[int, Rows] = {s: [] for s in self.seeds}
        for r in self.rows:
            out[r["seed"]].append(r)
        return out


def parse_seeds(text: str | int | Iterable[int]) -> list[int]:
    """Seeds from ``"0-4"``, ``"0,2,7"``, ``"3"``, an int or an iterable of ints; each checked, no repeats."""
    if isinstance(text, str):
        seeds: list[int] = []
        for part in text.replace(" ", "").split(","):
            if not part:
                continue
            lo, sep, hi = part.partition("-")
            try:
                a, b = int(lo), int(hi) if sep else int(lo)
            except ValueError:
                raise ValueError(f"seeds must look like '0-4' or '0,2,7', got {text!r}") from None
            if b < a:
                raise ValueError(f"seed range {part!r} runs backwards; write it as '{b}-{a}'")
            seeds += range(a, b + 1)
    elif isinstance(text, int) and not isinstance(text, bool):
        seeds = [text]
    else:
        seeds = list(text)
    seeds = [check_seed(s) for s in seeds]
    if not seeds:
        raise ValueError(f"no seeds in {text!r}: give at least one, e.g. '0-2'")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds repeat in {text!r}: each training seed once")
    return seeds


def cells(name: str, profile: str, seeds: Sequence[int], **options: Any) -> list[Cell]:
    """The grid's cells in the order their rows are returned: seed-major, then the experiment's settings."""
    opts = tuple(sorted(options.items()))
    if name in SPLITS:
        settings = options.get("settings") or SPLITS[name].settings(profile)
        opts = tuple((k, v) for k, v in opts if k != "settings")
        return [Cell(name, profile, s, tuple(setting), opts) for s in seeds for setting in settings]
    return [Cell(name, profile, s, None, opts) for s in seeds]


def compute_cell(cell: Cell, threads: int | None = None, quiet: bool = False) -> Rows:
    """The rows of one cell, each tagged with the cell's ``seed`` — what a Ray worker runs, and this process.

    ``threads`` sets torch's CPU threads for the cell (a Ray task gets one core unless told otherwise);
    ``quiet`` turns the library's progress bars off (a worker's bars would interleave)."""
    import torch

    from . import EXPERIMENTS

    if quiet:
        os.environ["MBC_PROGRESS"] = "0"
    if threads is not None:
        torch.set_num_threads(threads)
    options = dict(cell.options)
    if cell.setting is not None:
        rows = SPLITS[cell.name].rows(profile=cell.profile, seed=cell.seed, settings=[cell.setting], **options)
    elif options:
        raise ValueError(f"experiment {cell.name!r} takes no grid options (only {', '.join(SPLITS)} do); "
                         f"got {', '.join(options)}")
    else:
        rows = EXPERIMENTS[cell.name](profile=cell.profile, seed=cell.seed)
    return [{"seed": cell.seed, **row} for row in rows]


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


def _run_local(todo: list[Cell], bar) -> tuple[dict[Cell, Rows], list[CellFailure]]:
    done: dict[Cell, Rows] = {}
    failed: list[CellFailure] = []
    for cell in todo:
        bar.set_postfix_str(cell.label)
        try:
            done[cell] = compute_cell(cell)
        except Exception as err:  # a failed cell is reported; the others go on
            failed.append(CellFailure(cell, _describe(err)))
        bar.update(1)
    return done, failed


def _ray():
    try:
        import ray
    except ImportError:
        raise ImportError("backend='ray' needs Ray: pip install 'mbc_lib[scale]' (or pip install ray), "
                          "or use backend='local'") from None
    return ray


def _run_ray(todo: list[Cell], bar, address: str | None, num_cpus: int | None,
             threads: int) -> tuple[dict[Cell, Rows], list[CellFailure]]:
    ray = _ray()
    started = not ray.is_initialized()
    if started:
        kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
        if address is None:
            kwargs["num_cpus"] = num_cpus or os.cpu_count() or 1
        ray.init(address=address, **kwargs)
    done: dict[Cell, Rows] = {}
    failed: list[CellFailure] = []
    try:
        remote = ray.remote(num_cpus=threads)(compute_cell)
        pending = {remote.remote(cell, threads, True): cell for cell in todo}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            cell = pending.pop(ready[0])
            bar.set_postfix_str(cell.label)
            try:
                done[cell] = ray.get(ready[0])
            except ray.exceptions.RayTaskError as err:  # the cell's own exception, raised on the worker
                cause = err.cause if getattr(err, "cause", None) is not None else err
                failed.append(CellFailure(cell, _describe(cause)))
            except ray.exceptions.RayError as err:  # a worker that died, a node that left
                failed.append(CellFailure(cell, _describe(err)))
            bar.update(1)
    finally:
        if started:
            ray.shutdown()
    return done, failed


def run_grid(name: str, seeds: Sequence[int] | str | int | None = None, profile: str | None = None,
             backend: str = "local", address: str | None = None, num_cpus: int | None = None, threads: int = 1,
             use_cache: bool = False, progress: bool | None = None, **options: Any) -> GridResult:
    """Run experiment ``name`` for every training seed in ``seeds`` (default: the profile's,
    :func:`mbc_lib.profiles.training_seeds`) and return every cell's rows with a ``seed`` column.

    ``backend``: ``"local"`` (in this process) or ``"ray"`` (``address``: a cluster to join, else a local
    Ray with ``num_cpus`` cores, default all; each cell gets ``threads`` CPU threads). ``use_cache``: reuse
    and store each seed's table as :func:`mbc_lib.experiments.run` does (for the profile's own grid), or
    each (setting, seed) cell (for a grid given only ``settings=[...]``). ``options``: keyword arguments of the experiment's sweep for a smaller grid
    (experiments of :data:`SPLITS` only, e.g. ``families=("regression",)``, ``settings=[...]``).
    A progress bar counts cells; failed cells are in ``.failed`` and a warning names them."""
    from tqdm.auto import tqdm

    from . import EXPERIMENTS, _store

    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose one of: {', '.join(sorted(EXPERIMENTS))}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if options and name not in SPLITS:
        raise ValueError(f"experiment {name!r} takes no grid options (only {', '.join(SPLITS)} do); "
                         f"got {', '.join(options)}")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads (CPU threads per cell) must be an integer >= 1, got {threads!r}")
    prof = active_profile() if profile is None else profile
    if prof not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)} (or None for $MBC_PROFILE), got {prof!r}")
    seed_list = list(training_seeds(prof)) if seeds is None else parse_seeds(seeds)
    if backend == "ray":
        _ray()  # a missing extra fails before anything runs
    cacheable = use_cache and not options
    cached = {s: rows for s in seed_list if cacheable and (rows := cache.load(name, prof, s)) is not None}
    todo = cells(name, prof, [s for s in seed_list if s not in cached], **options)
    cell_cached = {c: rows for c in todo
                   if use_cache and c.cache_name and (rows := cache.load(c.cache_name, prof, c.seed)) is not None}
    todo = [c for c in todo if c not in cell_cached]
    start = time.perf_counter()
    bar = tqdm(total=len(todo), desc=f"{name} cells ({backend})", disable=not progress_enabled(progress) or not todo)
    try:
        if backend == "local":
            done, failed = _run_local(todo, bar)
        else:
            done, failed = _run_ray(todo, bar, address, num_cpus, threads)
    finally:
        bar.close()
    for c, rows in done.items():
        if use_cache and c.cache_name:
            _store(c.cache_name, [{k: v for k, v in r.items() if k != "seed"} for r in rows], prof, c.seed)
    done.update({c: [{"seed": c.seed, **r} for r in rows] for c, rows in cell_cached.items()})
    todo += list(cell_cached)
    result = GridResult(name, prof, tuple(seed_list), backend=backend, cached_seeds=tuple(sorted(cached)))
    bad_seeds = {f.cell.seed for f in failed}
    for s in seed_list:
        if s in cached:
            result.rows += [{"seed": s, **{k: v for k, v in r.items() if k != "seed"}} for r in cached[s]]
            continue
        seed_rows = [row for c in todo if c.seed == s and c in done for row in done[c]]
        if name in SPLITS:
            seed_rows.sort(key=SPLITS[name].order)
        result.rows += seed_rows
        if cacheable and s not in bad_seeds:  # through run's writer: one place writes the cache, and warns
            _store(name, [{k: v for k, v in r.items() if k != "seed"} for r in seed_rows], prof, s)
    result.failed = failed
    result.wall_s = time.perf_counter() - start
    if failed:
        warnings.warn(f"{len(failed)} of {len(todo)} cells of {name!r} failed (their rows are missing, the others "
                      "are kept): " + "; ".join(f"{f.cell.label}: {f.error}" for f in failed), stacklevel=2)
    return result


def across_seeds(rows: Rows, by: Sequence[str], metrics: Sequence[str]) -> Rows:
    """Per group of ``by`` values: for each metric the mean over training seeds and the min–max spread.

    ``rows`` carry a ``seed`` column (:func:`run_grid`). Returns one row per group, in first-seen order, with
    ``n_seeds`` and ``<metric>_mean``, ``<metric>_min``, ``<metric>_max`` (non-finite values are skipped; a
    metric with none left gives NaN)."""
    if not rows:
        return []
    missing = [k for k in ("seed", *by, *metrics) if k not in rows[0]]
    if missing:
        raise ValueError(f"rows have no column {', '.join(map(repr, missing))}; they have: {', '.join(rows[0])}")
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in by), []).append(r)
    out = []
    for key, members in groups.items():
        row: dict[str, Any] = dict(zip(by, key))
        row["n_seeds"] = len({m["seed"] for m in members})
        for m in metrics:
            vals = [float(x[m]) for x in members if x[m] is not None and math.isfinite(float(x[m]))]
            row[f"{m}_mean"] = sum(vals) / len(vals) if vals else math.nan
            row[f"{m}_min"] = min(vals) if vals else math.nan
            row[f"{m}_max"] = max(vals) if vals else math.nan
        out.append(row)
    return out
