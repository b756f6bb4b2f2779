"""Every experiment of the book as a named function (one module per chapter or topic).

Notebooks, tests and benchmarks call these; each takes ``profile`` (sizes come from
:data:`mbc_lib.profiles.BUDGETS`) and ``seed``, and returns tidy results.
``python -m mbc_lib run NAME`` runs one from the shell and prints its summary.
"""
from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any

from ..profiles import PROFILES
from ..profiles import profile as active_profile
from ..train import env_threads, select_device
from ..validation import check_seed
from . import averaging, bridges, cache, guidance, latent, prior_coverage, synthetic, transport

#: submodules that need MuJoCo: imported on first use, so that the synthetic chapters never load it
_ROBOT_MODULES = ("robot", "robot_modes")


def __getattr__(name: str):
    if name in _ROBOT_MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["EXPERIMENTS", "run", "cache", "averaging", "latent", "prior_coverage", "transport", "bridges", "synthetic",
           "robot_modes", "robot", "guidance"]


def _averaging(profile: str | None = None, seed: int = 0) -> list[dict[str, Any]]:
    return averaging.summary(averaging.sweep(profile=profile, seed=seed))


def _latent(profile: str | None = None, seed: int = 0) -> list[dict[str, Any]]:
    sweep = latent.beta_sweep(profile=profile, seed=seed)
    return [{**row, "beta_star": sweep.thresholds.beta_star, "beta_hard": sweep.thresholds.beta_hard}
            for row in latent.summary(sweep)]


def _prior_coverage(profile: str | None = None, seed: int = 0) -> list[dict[str, Any]]:
    return prior_coverage.summary(prior_coverage.compare(profile=profile, seed=seed))


def _transport(profile: str | None = None, seed: int = 0) -> list[dict[str, Any]]:
    return transport.summary(profile=profile, seed=seed)


def _bridges(profile: str | None = None, seed: int = 0) -> list[dict[str, Any]]:
    return bridges.summary(bridges.sweep(profile=profile, seed=seed)[1])


def _synthetic(profile: str | None = None, seed: int = 0) -> list[dict[str, Any]]:
    return synthetic.summary(synthetic.sweep(profile=profile, seed=seed))


def _robot(profile: str | None = None, seed: int = 0) -> list[dict[str, Any]]:
    from . import robot

    return robot.summary(robot.sweep(profile=profile, seed=seed))


def _robot_modes(profile: str | None = None, seed: int = 0) -> list[dict[str, Any]]:
    from . import robot_modes

    return robot_modes.summary(robot_modes.diagnose(profile=profile, seed=seed))


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
    "averaging": _averaging,
    "latent": _latent,  # chapter 3: β sweep against the predicted collapse threshold β*
    "prior_coverage": _prior_coverage,  # chapter 4: decoded coverage and holes per regulariser
    "transport": _transport,  # chapter 5: mode-count bounds, the 2-D counterexample, trained 1-D maps
    "bridges": _bridges,  # chapter 6: Lipschitz estimates and bridge mass of trained flows/diffusions
    "synthetic": _synthetic,  # chapter 7: every family × (K, Δ, β / sampler steps): coverage, bridge, Sinkhorn
    "robot": _robot,  # chapter 8: every family on the MuJoCo tasks × executor: success, modes used, failures
    "robot_modes": _robot_modes,  # chapter 9: modes per observation on robot demos, β*(s), holes, bridges, rollouts
    "guidance": _guidance,  # chapter 11: the recommendation per (K, NFE budget), from the tables of chapters 7–9
}


#: experiment -> the chapter that runs it (for messages); the cost per profile comes from mbc_lib.profiles
CHAPTER_OF: dict[str, int] = {"averaging": 1, "latent": 3, "prior_coverage": 4, "transport": 5, "bridges": 6,
                              "synthetic": 7, "robot": 8, "robot_modes": 9, "guidance": 11}


def _cost_note(name: str, profile: str) -> str:
    chapter = CHAPTER_OF.get(name)
    if chapter is None:
        return ""
    if profile == "full":
        from ..profiles import FULL_PROFILE_COST

        return f" (chapter {chapter}'s experiment; at the full profile: {FULL_PROFILE_COST.get(chapter, 'not measured')})"
    return f" (chapter {chapter}'s experiment; {'seconds to a minute' if profile == 'fast' else 'minutes on a laptop CPU'})"


def run(name: str, profile: str | None = None, seed: int = 0, use_cache: bool = False) -> list[dict[str, Any]]:
    """Run experiment ``name`` and return its summary rows.

    With ``use_cache=True`` a table stored by an earlier run of the same library source,
    profile and seed (:mod:`mbc_lib.experiments.cache`) is returned instead of recomputing,
    and a computed table is stored for next time; when it cannot be stored (a read-only
    directory, ``$MBC_CACHE`` under a file) a warning says so and the rows are still returned.
    ``seed``, ``profile`` and ``$MBC_DEVICE`` are checked before anything runs.
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose one of: {', '.join(sorted(EXPERIMENTS))}")
    prof = active_profile() if profile is None else profile
    if prof not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)} (or None for $MBC_PROFILE), got {prof!r}")
    seed = check_seed(seed)
    select_device()  # an unavailable $MBC_DEVICE fails here, before any work, whatever device the experiment uses
    env_threads()
    if use_cache and (rows := cache.load(name, prof, seed)) is not None:
        return rows
    if use_cache:  # a reader on a fresh machine (Colab) meets this: say what runs now and roughly how long
        print(f"No cached table for {name!r} (profile {prof}, seed {seed}, this library version): computing it now"
              f"{_cost_note(name, prof)}. Later runs read it from {cache.cache_dir()}.")
    rows = EXPERIMENTS[name](profile=prof, seed=seed)
    if use_cache:
        try:
            cache.store(name, rows, prof, seed)
        except OSError as err:  # the table was computed: never lose it to a cache that cannot be written
            warnings.warn(f"experiment {name!r}: the results were computed but not cached ({err})", stacklevel=2)
    return rows
