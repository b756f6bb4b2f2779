"""Queries over the tidy rows the experiments return (and :func:`mbc_lib.experiments.run` caches),
for the chapters that read a table another chapter computed: chapter 8 compares its executors, and
chapter 11 reads chapter 8's comparison from the cache; chapter 7 picks one model per family to compare
across training seeds. Rows are flat dicts of numbers and strings.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["by_key", "executor_effect", "one_model_per_family"]

Rows = list[dict[str, Any]]


def by_key(rows: list[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    """Chapter 8's rows (:func:`mbc_lib.experiments.robot.summary`) keyed by (env, K, policy, executor)."""
    return {(r["env"], r["K"], r["policy"], r["executor"]): r for r in rows}


def executor_effect(rows: list[dict[str, Any]], other: str, base: str = "whole chunk",
                    labels: Sequence[str] | None = None, tol: float = 0.0) -> list[dict[str, Any]]:
    """From chapter 8's rows (:func:`mbc_lib.experiments.robot.summary`), per (task, K, policy) measured
    under both executors: success and failure rate and modes used with ``base`` and with ``other``, and
    ``change`` = +1 / −1 / 0 when ``other`` raised / lowered /
    kept the success rate (a difference of at most ``tol`` counts as kept). Expert rows are skipped;
    ``labels`` restricts the policies."""
    table = by_key(rows)
    out = []
    for (e, K, lab, ex), r in table.items():
        if ex != base or lab == "expert" or (labels is not None and lab not in labels):
            continue
        o = table.get((e, K, lab, other))
        if o is None:
            continue
        d = o["success_rate"] - r["success_rate"]
        out.append({"env": e, "K": K, "policy": lab, "family": r.get("family", lab),
                    "success": r["success_rate"], "success_other": o["success_rate"],
                    "failure": r["failure_rate"], "failure_other": o["failure_rate"],
                    "modes_used": r["modes_used"], "modes_used_other": o["modes_used"],
                    "change": 0 if abs(d) <= tol else (1 if d > 0 else -1)})
    return out


def one_model_per_family(rows: Rows, knobs: dict[str, float]) -> Rows:
    """Chapter 7's rows (:func:`mbc_lib.experiments.synthetic.summary`, possibly with a ``seed`` column) cut to one
    model per family: for each family in ``knobs`` the row at that knob — β/β* (``beta_ratio``) for the cvae,
    sampler steps (``knob_value``) for diffusion and flow; families not in ``knobs`` keep every row — each with a
    ``model`` label such as ``"cvae β=0.1β*"`` or ``"flow 16 steps"``."""
    out = []
    for r in rows:
        fam, knob = r["family"], r["knob"]
        value = r["beta_ratio"] if knob == "beta" else r["knob_value"]
        if fam in knobs and value != knobs[fam]:
            continue
        model = {"beta": f"{fam} β={value:g}β*", "steps": f"{fam} {value:g} steps"}.get(knob, fam)
        out.append({**r, "model": model})
    return out
