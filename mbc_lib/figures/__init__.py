"""Drawing and table formatting for the chapters — the only matplotlib users besides the widgets.

One module per experiment module of :mod:`mbc_lib.experiments` (``figures.averaging`` draws what
``experiments.averaging`` measured, and so on), plus :mod:`~mbc_lib.figures.common` (the book's figure
style, mode colours, chunks as curves, log axes). The experiments measure and return data; these
functions turn that data into figures and tables and compute nothing a chapter's claims rest on.
Nothing in the library imports this package; the chapters do::

    from mbc_lib import figures
    figures.averaging.plot_result(result)

Submodules are imported on first use, so that drawing chapter 1 never loads MuJoCo.
"""
from __future__ import annotations

import importlib

#: one drawing module per experiment module, plus the shared helpers
SUBMODULES = ("common", "averaging", "chunking", "latent", "prior_coverage", "transport", "bridges", "synthetic",
              "robot", "robot_modes", "guidance", "prior_surgery", "tradeoff", "separation", "unequal",
              "stochastic_samplers", "adaptive_beta", "seeds", "failures")

__all__ = list(SUBMODULES)


def __getattr__(name: str):
    if name in SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(SUBMODULES))
