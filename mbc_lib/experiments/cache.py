"""A small on-disk cache of experiment summaries (tidy rows), so later chapters can read
earlier chapters' tables without retraining.

Chapter 11 draws its decision chart from the tables of chapters 7 and 8. When the book is
built (or the notebooks run in order) those chapters have just computed them; they
:func:`store` their summary rows and chapter 11 :func:`load`\\ s them. A cached table is
only reused when it was produced by the *same library source* (a hash of every
``mbc_lib/*.py`` file), the same profile and the same seed; otherwise it is recomputed.

Location: ``$MBC_CACHE`` if set, else ``~/.cache/mbc_lib/results``. Files are JSON,
written atomically (a temporary file renamed into place), so an interrupted run never
leaves a half-written table behind. ``MBC_CACHE=off`` disables the cache.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..profiles import PROFILES
from ..validation import check_seed

__all__ = ["cache_dir", "source_hash", "key", "load", "store", "clear"]

Rows = list[dict[str, Any]]


def cache_dir() -> Path | None:
    """The cache directory, or ``None`` when ``MBC_CACHE=off``."""
    where = os.environ.get("MBC_CACHE", "").strip()
    if where.lower() in {"off", "0", "none", "false"}:
        return None
    return Path(where).expanduser() if where else Path.home() / ".cache" / "mbc_lib" / "results"


@lru_cache(maxsize=1)
def source_hash() -> str:
    """SHA-256 (first 12 hex digits) of the library's Python source: a new library, a new key."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def key(name: str, profile: str, seed: int) -> str:
    """File stem for experiment ``name`` at ``profile`` and ``seed`` (all three checked)."""
    if not isinstance(name, str) or not name.replace("_", "").isalnum():
        raise ValueError(f"experiment name {name!r} must be alphanumeric (underscores allowed)")
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    return f"{name}-{profile}-seed{check_seed(seed)}-{source_hash()}"


def _clean(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python numbers, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store {type(value).__name__} in an experiment table; use numbers and strings")


def _is_rows(rows: Any) -> bool:
    return isinstance(rows, list) and all(isinstance(r, dict) for r in rows)


def store(name: str, rows: Rows, profile: str, seed: int = 0) -> Path | None:
    """Save ``rows`` (a list of flat dicts of numbers/strings) atomically; returns the path.

    Raises ``ValueError``/``TypeError`` for bad arguments and an ``OSError`` that says where and
    what to do when the cache directory cannot be written (:func:`mbc_lib.experiments.run`
    turns that into a warning and still returns its rows).
    """
    stem = key(name, profile, seed)
    if not _is_rows(rows):
        raise TypeError(f"rows must be a list of dicts (one flat dict per table row), got {type(rows).__name__}")
    payload = {"name": name, "profile": profile, "seed": int(seed), "source": source_hash(), "rows": _clean(rows)}
    where = cache_dir()
    if where is None:
        return None
    path = where / f"{stem}.json"
    try:
        where.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=where, prefix=f".{path.stem}.", suffix=".tmp")
    except OSError as err:
        raise OSError(err.errno, f"cannot write the results cache in {where}: {err.strerror or err}; set MBC_CACHE "
                                 "to a writable directory, or MBC_CACHE=off to run without a cache") from err
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f)
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise OSError(err.errno, f"cannot write the results cache file {path}: {err.strerror or err}; set "
                                     "MBC_CACHE to a writable directory, or MBC_CACHE=off") from err
        raise
    for old in where.glob(f"{name}-{profile}-seed{int(seed)}-*.json"):  # tables of older library sources
        if old != path:
            old.unlink(missing_ok=True)
    return path


def load(name: str, profile: str, seed: int = 0) -> Rows | None:
    """The cached rows of ``name`` at ``profile``/``seed`` from this library source, or ``None``."""
    where = cache_dir()
    if where is None:
        return None
    path = where / f"{key(name, profile, seed)}.json"
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError):  # missing, unreadable, not UTF-8, not JSON
        return None
    if not isinstance(payload, dict) or payload.get("source") != source_hash():
        return None
    rows = payload.get("rows")
    return rows if _is_rows(rows) else None  # anything else is a malformed file: recompute


def clear() -> int:
    """Delete every cached table; returns how many files were removed."""
    where = cache_dir()
    if where is None or not where.exists():
        return 0
    files = list(where.glob("*.json"))
    for f in files:
        f.unlink(missing_ok=True)
    return len(files)
