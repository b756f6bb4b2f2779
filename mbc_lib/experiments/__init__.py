"""Every experiment of the book as a named function (one module per chapter or topic): measurement only.

Notebooks, tests and benchmarks call these; each takes ``profile`` (sizes come from
:data:`mbc_lib.profiles.BUDGETS`) and ``seed``, and returns tidy results — dataclasses and rows, never a
figure (those are drawn by :mod:`mbc_lib.figures`). No chapter module imports another: what several
share lives a floor down (:mod:`mbc_lib.fitting`, :mod:`mbc_lib.measure`, :mod:`mbc_lib.theory`,
:mod:`mbc_lib.diagnostics`, :mod:`mbc_lib.control`), and :mod:`~mbc_lib.experiments.tables` holds the
queries over one chapter's rows that another chapter reads.

:func:`run` is the one place that writes the results cache (:mod:`~mbc_lib.experiments.cache`):
``run(name, use_cache=True)`` returns the summary rows, read from the cache when an earlier run stored
them; ``run(name, use_cache=True, keep_result=True)`` computes the experiment's whole result (what the
chapter's figures draw) and stores its rows for the chapters that read them later (chapter 11).
``python -m mbc_lib run NAME`` runs one from the shell and prints its summary.
"""
from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from ..profiles import PROFILES
from ..profiles import profile as active_profile
from ..runtime import env_threads, select_device
from ..validation import check_seed
from . import averaging, bridges, cache, grid, guidance, latent, prior_coverage, synthetic, tables, transport
from . import prior_surgery, separation, tradeoff, unequal  # chapter 10 (MuJoCo loaded on first use)
from . import adaptive_beta, stochastic_samplers  # stochastic samplers; state-adaptive β (MuJoCo on first use)

#: submodules that need MuJoCo: imported on first use, so that the synthetic chapters never load it
_ROBOT_MODULES = ("robot", "robot_modes", "failures")


def __getattr__(name: str):
    if name in _ROBOT_MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["EXPERIMENTS", "RESULTS", "run", "cache", "grid", "tables", "averaging", "latent", "prior_coverage", "transport",
           "bridges", "synthetic", "robot_modes", "robot", "guidance", "prior_surgery", "tradeoff", "separation",
           "unequal", "failures"]


def _robot_module(name: str):
    return importlib.import_module(f"{__name__}.{name}")


#: name -> (compute(profile=..., seed=...) -> the experiment's result, summarize(result) -> tidy rows),
#: for the experiments whose chapter draws more than its rows (``run(..., keep_result=True)``)
RESULTS: dict[str, tuple[Callable[..., Any], Callable[[Any], list[dict[str, Any]]]]] = {
    "averaging": (lambda profile=None, seed=0: averaging.sweep(profile=profile, seed=seed), averaging.summary),
    "latent": (lambda profile=None, seed=0: latent.beta_sweep(profile=profile, seed=seed),
               lambda sweep: [{**row, "beta_star": sweep.thresholds.beta_star, "beta_hard": sweep.thresholds.beta_hard}
                              for row in latent.summary(sweep)]),
    "prior_coverage": (lambda profile=None, seed=0: prior_coverage.compare(profile=profile, seed=seed),
                       prior_coverage.summary),
    "bridges": (lambda profile=None, seed=0: bridges.sweep(profile=profile, seed=seed),
                lambda result: bridges.summary(result[1])),
    "synthetic": (lambda profile=None, seed=0: synthetic.sweep(profile=profile, seed=seed), synthetic.summary),
    "robot": (lambda profile=None, seed=0: _robot_module("robot").sweep(profile=profile, seed=seed),
              lambda result: _robot_module("robot").summary(result)),
    "robot_modes": (lambda profile=None, seed=0: _robot_module("robot_modes").diagnose(profile=profile, seed=seed),
                    lambda result: _robot_module("robot_modes").summary(result)),
    "failures": (lambda profile=None, seed=0: _robot_module("failures").study(profile=profile, seed=seed),
                 lambda result: _robot_module("failures").summary(result)),
    # chapter 10, the decisive tests
    "prior_surgery": (lambda profile=None, seed=0: prior_surgery.run(profile=profile, seed=seed), prior_surgery.summary),
    "tradeoff": (lambda profile=None, seed=0: tradeoff.run(profile=profile, seed=seed), tradeoff.summary),
    "separation": (lambda profile=None, seed=0: separation.sweep(profile=profile, seed=seed), separation.summary),
    "unequal": (lambda profile=None, seed=0: unequal.run(profile=profile, seed=seed), unequal.summary),
    "stochastic_samplers": (lambda profile=None, seed=0: stochastic_samplers.run(profile=profile, seed=seed),
                            stochastic_samplers.summary),
    "adaptive_beta": (lambda profile=None, seed=0: adaptive_beta.run(profile=profile, seed=seed), adaptive_beta.summary),
}


def _rows_of(name: str) -> Callable[..., list[dict[str, Any]]]:
    compute, summarize = RESULTS[name]
    return lambda profile=None, seed=0: summarize(compute(profile=profile, seed=seed))


def _transport(profile: str | None = None, seed: int = 0) -> list[dict[str, Any]]:
    return transport.summary(profile=profile, seed=seed)


def _guidance(profile: str | None = None, seed: int = 0) -> list[dict[str, Any]]:
    ev = guidance.gather(profile=profile, seed=seed)
    ks = sorted({int(r["K"]) for r in ev.rows("synthetic")})
    budgets = sorted({c.nfe for k in ks for c in guidance.candidates(ev, k)})
    rows = []
    for k in ks:
        for n in budgets:
            for all_modes in (True, False):
                rec = guidance.recommend(ev, k, n, all_modes)
                c = rec.choice
                rows.append({"K": k, "max_nfe": n, "all_modes": all_modes, "choice": c.label if c else "none",
                             "score": c.score(all_modes) if c else float("nan"), "nfe": c.nfe if c else 0})
    return rows


#: name -> callable(profile=..., seed=...) returning a list of tidy rows
EXPERIMENTS: dict[str, Callable[..., list[dict[str, Any]]]] = {
    "averaging": _rows_of("averaging"),  # chapter 1: regression on the fork, off-support and modes reached per (K, Δc)
    "latent": _rows_of("latent"),  # chapter 3: β sweep against the predicted collapse threshold β*
    "prior_coverage": _rows_of("prior_coverage"),  # chapter 4: decoded coverage and holes per regulariser
    "transport": _transport,  # chapter 5: mode-count bounds, the 2-D counterexample, trained 1-D maps
    "bridges": _rows_of("bridges"),  # chapter 6: Lipschitz estimates and bridge mass of trained flows/diffusions
    "synthetic": _rows_of("synthetic"),  # chapter 7: every family × (K, Δ, β / sampler steps): coverage, bridge, Sinkhorn
    "robot": _rows_of("robot"),  # chapter 8: every family on the MuJoCo tasks × executor: success, modes used, failures
    "failures": _rows_of("failures"),  # chapter 8: switches per episode against H and executor, free and committed
    "robot_modes": _rows_of("robot_modes"),  # chapter 9: modes per observation on robot demos, β*(s), holes, bridges, rollouts
    "guidance": _guidance,  # chapter 11: the recommendation per (K, NFE budget), from the tables of chapters 7–9
    "prior_surgery": _rows_of("prior_surgery"),  # chapter 10: latent regions excluded / holes removed at deployment
    "tradeoff": _rows_of("tradeoff"),  # chapter 10: one β grid, information against prior coverage (fork, PathGaps)
    "separation": _rows_of("separation"),  # chapter 10: the mechanisms and every family as the mode gap closes
    "unequal": _rows_of("unequal"),  # chapter 10: per-mode mass against weights 0.6/0.3/0.1, every family
    "stochastic_samplers": _rows_of("stochastic_samplers"),  # DDPM/DDIM with η: bridge, spread, L̂ w.r.t. all noise
    "adaptive_beta": _rows_of("adaptive_beta"),  # β(s) from the demonstrations' β*(s) against constant β
}


#: experiment -> the chapter that runs it (for messages); the cost per profile comes from mbc_lib.profiles
CHAPTER_OF: dict[str, int] = {"averaging": 1, "latent": 3, "prior_coverage": 4, "transport": 5, "bridges": 6,
                              "synthetic": 7, "robot": 8, "failures": 8, "robot_modes": 9, "guidance": 11, "prior_surgery": 10,
                              "tradeoff": 10, "separation": 10, "unequal": 10, "stochastic_samplers": 12,
                              "adaptive_beta": 12}


def _cost_note(name: str, profile: str) -> str:
    chapter = CHAPTER_OF.get(name)
    if chapter is None:
        return ""
    if profile == "full":
        from ..profiles import FULL_PROFILE_COST

        return f" (chapter {chapter}'s experiment; at the full profile: {FULL_PROFILE_COST.get(chapter, 'not measured')})"
    return f" (chapter {chapter}'s experiment; {'seconds to a minute' if profile == 'fast' else 'minutes on a laptop CPU'})"


def run(name: str, profile: str | None = None, seed: int = 0, use_cache: bool = False,
        keep_result: bool = False, seeds: Sequence[int] | str | None = None, backend: str = "local",
        address: str | None = None) -> Any:
    """Run experiment ``name`` and return its summary rows (or, with ``keep_result``, its whole result).

    With ``seeds`` (a list, or ``"0-4"``) it runs once per training seed instead of ``seed`` and returns
    every seed's rows, each with a ``seed`` column (:func:`mbc_lib.experiments.grid.run_grid`: in this
    process, or with ``backend="ray"`` on Ray — a local one, or the cluster at ``address``); cells that fail
    are named in a warning and the others' rows are returned.

    With ``use_cache=True`` a table stored by an earlier run of the same library source,
    profile and seed (:mod:`mbc_lib.experiments.cache`) is returned instead of recomputing,
    and a computed table is stored for next time; when it cannot be stored (a read-only
    directory, ``$MBC_CACHE`` under a file) a warning says so and the rows are still returned.

    With ``keep_result=True`` (the experiments of :data:`RESULTS`) the experiment is always computed
    and its whole result is returned — the object the chapter's figures draw (e.g. chapter 7's
    :class:`~mbc_lib.experiments.synthetic.SyntheticResult`); with ``use_cache=True`` its summary
    rows are stored too, so that a later chapter's ``run(name, use_cache=True)`` reads them instead of
    recomputing. This is the only place the cache is written.
    ``seed``, ``profile`` and ``$MBC_DEVICE`` are checked before anything runs.
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose one of: {', '.join(sorted(EXPERIMENTS))}")
    if seeds is not None:
        if keep_result:
            raise ValueError("keep_result returns one seed's whole result: give seed=, not seeds=")
        return grid.run_grid(name, seeds, profile=profile, backend=backend, address=address, use_cache=use_cache).rows
    if backend != "local" or address is not None:
        raise ValueError("backend and address fan a grid of seeds out: give seeds= too (e.g. seeds='0-4')")
    if keep_result and name not in RESULTS:
        raise ValueError(f"experiment {name!r} returns rows only; keep_result works for: {', '.join(sorted(RESULTS))}")
    prof = active_profile() if profile is None else profile
    if prof not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)} (or None for $MBC_PROFILE), got {prof!r}")
    seed = check_seed(seed)
    select_device()  # an unavailable $MBC_DEVICE fails here, before any work, whatever device the experiment uses
    env_threads()
    if keep_result:
        compute, summarize = RESULTS[name]
        result = compute(profile=prof, seed=seed)
        if use_cache:
            _store(name, summarize(result), prof, seed)
        return result
    if use_cache and (rows := cache.load(name, prof, seed)) is not None:
        return rows
    if use_cache:  # a reader on a fresh machine (Colab) meets this: say what runs now and roughly how long
        print(f"No cached table for {name!r} (profile {prof}, seed {seed}, this library version): computing it now"
              f"{_cost_note(name, prof)}. Later runs read it from {cache.cache_dir()}.")
    rows = EXPERIMENTS[name](profile=prof, seed=seed)
    if use_cache:
        _store(name, rows, prof, seed)
    return rows


def _store(name: str, rows: list[dict[str, Any]], profile: str, seed: int) -> None:
    try:
        cache.store(name, rows, profile, seed)
    except OSError as err:  # the table was computed: never lose it to a cache that cannot be written
        warnings.warn(f"experiment {name!r}: the results were computed but not cached ({err})", stacklevel=3)
