"""Numbers in the prose: the book's sentences quote the computation that produced them.

A chapter never types a measured number into its text. It *glues* the value under a key,
and the Markdown quotes the key, so the page cannot contradict its own figure at any profile::

    report.glue("l2_off", summary["off_support"])        # in a code cell
    ... {glue:text}`l2_off:.0%` of the chunks are off-support ...   # in the Markdown

Claims whose truth depends on the budget are written as text chosen from the values
(:func:`choose`) and glued as Markdown (``{glue:md}`key```), or stated as an ``assert`` in the
chapter, which then holds at every profile.

In the book build (myst-nb) :func:`glue` stores the value in the cell's outputs; anywhere else
(Colab, a plain Jupyter) it only returns the value, so the notebook still runs.
"""
from __future__ import annotations

import html
import inspect
import numbers
import textwrap
from collections.abc import Mapping
from typing import Any

__all__ = ["glue", "glue_all", "choose", "plain", "in_notebook", "provenance_line", "show_source", "Source"]


def plain(value: Any) -> Any:
    """``value`` as a plain Python scalar or string: numpy and torch scalars become ``int``/``float``
    (myst-nb formats the text of a glued value, and ``np.float64(0.5)`` is not a number to it).
    Raises ``TypeError`` for anything that is not a scalar, a string or a ``bool``."""
    if isinstance(value, (bool, str)):
        return value
    if hasattr(value, "item"):  # numpy / torch scalars and one-element arrays
        try:
            value = value.item()
        except (ValueError, RuntimeError):
            raise TypeError(f"glue takes one number per key (got an array of shape {tuple(value.shape)})") from None
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    raise TypeError(f"glue takes a number, a bool or a str (got {type(value).__name__}); "
                    "glue one scalar per key, e.g. float(tensor.mean())")


def _myst_glue():
    try:
        from myst_nb import glue as myst_glue
    except ImportError:  # Colab or a plain Jupyter: nothing to paste into
        return None
    return myst_glue


def glue(name: str, value: Any) -> Any:
    """Store ``value`` under ``name`` for the page's Markdown and return it (as a plain scalar).

    Numbers: ``{glue:text}`name:.2f``` (any format spec). Strings are glued as Markdown:
    ``{glue:md}`name```. Keys are per page; the build (``-W``) fails on a key no cell glued.
    """
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"glue key must be letters, digits, '_' or '-' (got {name!r})")
    value = plain(value)
    myst_glue = _myst_glue()
    if myst_glue is not None:
        if isinstance(value, str):
            from IPython.display import Markdown

            myst_glue(name, Markdown(value), display=False)
        else:
            myst_glue(name, value, display=False)
    return value


def glue_all(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """:func:`glue` every ``prefix + key`` of ``values``; returns the plain values."""
    return {prefix + k: glue(prefix + k, v) for k, v in values.items()}


def choose(condition: bool, if_true: str, if_false: str) -> str:
    """The wording that the measurement supports (glue it and quote it with ``{glue:md}``)."""
    return if_true if bool(condition) else if_false


def in_notebook() -> bool:
    """True inside a Jupyter/Colab kernel (where Markdown renders), False in a script or a test."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return hasattr(get_ipython(), "kernel")


def provenance_line(profile: str, device: str, seed: int, version: str) -> str:
    """The one rendered line under each chapter's setup cell: which budget produced the page's numbers."""
    return (f"**Numbers on this page:** profile `{profile}`, training seed {seed}, device `{device}` "
            f"(mbc_lib {version}). Every number in the text is read off this run; a build at another "
            f"profile prints its own (see *How to use this course*, Profiles).")


class Source:
    """The source of a library object, shown in a chapter (``_repr_html_``: highlighted, in a fold).

    The book displays the code it teaches from the library itself, never a copy: the text is read with
    :func:`inspect.getsource` when the cell runs, so an object that disappears fails the build.
    """

    def __init__(self, obj: object, title: str | None = None, open: bool = False):
        try:
            self.code = inspect.getsource(obj)
        except (TypeError, OSError) as err:
            raise TypeError(f"show_source needs a module, class, function or method of mbc_lib, got {obj!r}") from err
        self.code = textwrap.dedent(self.code)  # methods are indented in their class
        module = inspect.getmodule(obj)
        where = module.__name__ if module else ""
        name = getattr(obj, "__qualname__", getattr(obj, "__name__", ""))
        self.title = title or f"{where}.{name}".strip(".")
        self.open = open

    def _repr_html_(self) -> str:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonLexer

        body = highlight(self.code, PythonLexer(), HtmlFormatter(noclasses=True, nowrap=False))
        return (f'<details class="mbc-source"{" open" if self.open else ""}><summary>source: '
                f"<code>{html.escape(self.title)}</code></summary>{body}</details>")

    def __repr__(self) -> str:
        return f"# {self.title}\n{self.code}"


def show_source(obj: object, title: str | None = None, open: bool = False) -> Source:
    """Display ``obj``'s source (a function, method, class or module of mbc_lib) as the last
    expression of a cell: highlighted, folded unless ``open``, titled with its qualified name."""
    return Source(obj, title, open)
