"""The argument rules every public entry point shares, written once.

Each checker returns the value as a plain Python ``int``/``float`` and raises a
``ValueError`` (a ``TypeError`` for a value of the wrong kind) whose message names the
argument, says what was expected and what was given:

* :func:`check_seed` — a seed is a non-negative integer below 2**63 (not a bool): what
  ``torch.Generator.manual_seed``, ``numpy.random.default_rng`` and gymnasium all accept;
* :func:`check_int` — a whole number (a Python or numpy integer, not a bool, not 2.0);
* :func:`check_real` — a real number (int, float, numpy scalar, 0-d array or one-element
  tensor; not a string, not a bool, not an array), optionally finite and bounded.
"""
from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = ["SEED_LIMIT", "check_seed", "check_int", "check_real"]

#: seeds must lie in [0, SEED_LIMIT)
SEED_LIMIT = 2**63


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool) or type(value).__name__ == "bool_"  # numpy.bool_ without importing numpy


def check_seed(seed: Any, name: str = "seed") -> int:
    """``seed`` as an ``int``, after checking it is an integer in [0, 2**63) and not a bool."""
    if _is_bool(seed) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{name} must be a non-negative integer below 2**63, got {type(seed).__name__} {_show(seed)}")
    seed = int(seed)
    if not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"{name} must be a non-negative integer below 2**63, got {seed}; use e.g. {name}=0")
    return seed


def check_int(value: Any, name: str, minimum: int | None = None, maximum: int | None = None, what: str = "") -> int:
    """``value`` as an ``int`` in [``minimum``, ``maximum``]; ``what`` says what it counts (for the message)."""
    bounds = (f" >= {minimum}" if minimum is not None else "") + (f" and <= {maximum}" if maximum is not None else "")
    expected = f"{name} must be an integer{bounds}{f' ({what})' if what else ''}"
    if _is_bool(value) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{expected}, got {type(value).__name__} {_show(value)}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{expected}, got {value}")
    return value


def _as_number(value: Any, name: str, expected: str) -> float:
    if isinstance(value, (str, bytes)) or _is_bool(value):
        raise TypeError(f"{expected}, got {type(value).__name__} {_show(value)}; pass a number, e.g. {name}=1.0")
    if isinstance(value, numbers.Real):
        return float(value)
    size = getattr(value, "size", None)
    size = size() if callable(size) else size  # torch.Tensor.size is a method; numpy's .size a number
    numel = getattr(value, "numel", None)
    count = numel() if callable(numel) else (size if isinstance(size, int) else None)
    shape = tuple(getattr(value, "shape", ()))
    if count == 1 and len(shape) <= 1:
        try:
            return float(value.item())
        except (TypeError, ValueError, AttributeError):
            pass
    if count is not None:
        raise TypeError(f"{expected}, got an array of shape {shape}; pass one number (index or reduce the array)")
    raise TypeError(f"{expected}, got {type(value).__name__} {_show(value)}")


def check_real(value: Any, name: str, *, finite: bool = True, low: float | None = None, high: float | None = None,
               low_open: bool = False, high_open: bool = False, what: str = "") -> float:
    """``value`` as a ``float``: a real number (finite unless ``finite=False``) in the interval
    given by ``low``/``high`` (closed unless ``low_open``/``high_open``)."""
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    kind = f"a {'finite ' if finite else ''}number"
    if parts:
        expected = f"{name} must be {' and '.join(parts)} ({kind}{f'; {what}' if what else ''})"
    else:
        expected = f"{name} must be {kind}{f' ({what})' if what else ''}"
    x = _as_number(value, name, expected)
    bad = math.isnan(x) or (finite and math.isinf(x))
    if low is not None and not bad:
        bad = x <= low if low_open else x < low
    if high is not None and not bad:
        bad = bad or (x >= high if high_open else x > high)
    if bad:
        raise ValueError(f"{expected}, got {x}")
    return x
