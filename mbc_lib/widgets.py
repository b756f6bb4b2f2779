"""Explorers over precomputed sweeps: live ipywidgets in Jupyter/Colab, a scrubbable
static figure in the built book.

``explore(render, grid)`` takes ``render(**params) -> matplotlib Figure`` (drawing from
results that were computed beforehand — no training inside ``render``) and a grid
``{"param": [values...]}``.

* Live (Jupyter, Colab, nbval): one ``SelectionSlider`` per parameter; the figure is
  redrawn on change.
* Static (``$MBC_STATIC_WIDGETS=1``, which ``make book`` sets): every grid point is
  rendered once to a PNG and embedded in self-contained HTML with one range slider
  per parameter and a few lines of inline JavaScript — no CDN, no kernel, so the built
  book keeps a working explorer offline. Without JavaScript the first frame still shows.
"""
from __future__ import annotations

import base64
import html
import io
import itertools
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import matplotlib.pyplot as plt

__all__ = ["explore", "StaticExplorer", "static_mode"]


def static_mode() -> bool:
    """True while building the book (``$MBC_STATIC_WIDGETS=1``)."""
    return os.environ.get("MBC_STATIC_WIDGETS", "0") in ("1", "true", "True")


def _check_grid(grid: dict[str, Sequence[Any]]) -> dict[str, list[Any]]:
    if not grid:
        raise ValueError("explore needs at least one parameter in the grid")
    out = {}
    for name, values in grid.items():
        values = list(values)
        if not values:
            raise ValueError(f"parameter {name!r} has no values to explore")
        out[name] = values
    return out


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _png(fig: plt.Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class StaticExplorer:
    """All grid points pre-rendered into one self-contained HTML block (``_repr_html_``)."""

    _counter = 0

    def __init__(self, render: Callable[..., plt.Figure], grid: dict[str, Sequence[Any]], title: str = ""):
        self.grid = _check_grid(grid)
        self.title = title
        names = list(self.grid)
        self.frames: dict[str, str] = {}
        for combo in itertools.product(*(range(len(v)) for v in self.grid.values())):
            params = {n: self.grid[n][i] for n, i in zip(names, combo)}
            self.frames["|".join(map(str, combo))] = _png(render(**params))
        StaticExplorer._counter += 1
        self.id = f"mbc-explorer-{StaticExplorer._counter}"

    def _repr_html_(self) -> str:
        names = list(self.grid)
        first = self.frames["|".join("0" for _ in names)]
        rows = []
        for n in names:
            vals = self.grid[n]
            rows.append(
                f'<label style="margin-right:1.5em">{html.escape(n)} = <b data-value="{html.escape(n)}">'
                f"{html.escape(_fmt(vals[0]))}</b> "
                f'<input type="range" min="0" max="{len(vals) - 1}" step="1" value="0" '
                f'data-param="{html.escape(n)}" aria-label="{html.escape(n)}"></label>'
            )
        labels = {n: [_fmt(v) for v in self.grid[n]] for n in names}
        title = f"<div><b>{html.escape(self.title)}</b></div>" if self.title else ""
        return f"""<div class="mbc-explorer" id="{self.id}">{title}
<div class="mbc-explorer-controls">{''.join(rows)}</div>
<img class="mbc-explorer-frame" alt="{html.escape(self.title or 'explorer')}" style="max-width:100%" src="{first}">
<script>(function(){{
  var root = document.getElementById("{self.id}");
  var frames = {json.dumps(self.frames)};
  var labels = {json.dumps(labels)};
  var names = {json.dumps(names)};
  var img = root.querySelector("img.mbc-explorer-frame");
  function update() {{
    var key = names.map(function(n) {{
      var i = root.querySelector('input[data-param="' + n + '"]').value;
      root.querySelector('b[data-value="' + n + '"]').textContent = labels[n][i];
      return i; }}).join("|");
    img.src = frames[key];
  }}
  root.querySelectorAll("input[data-param]").forEach(function(el) {{ el.addEventListener("input", update); }});
}})();</script></div>"""


def explore(
    render: Callable[..., plt.Figure],
    grid: dict[str, Sequence[Any]],
    title: str = "",
    static: bool | None = None,
):
    """An explorer of ``render(**params)`` over ``grid``; live widget or static HTML (see module doc).

    Returns an object to display (the last expression of a notebook cell).
    """
    grid = _check_grid(grid)
    if static if static is not None else static_mode():
        return StaticExplorer(render, grid, title)
    import ipywidgets as w
    from IPython.display import clear_output, display

    sliders = {
        n: w.SelectionSlider(options=[(_fmt(v), v) for v in vals], value=vals[0], description=n, continuous_update=False)
        for n, vals in grid.items()
    }
    out = w.Output()

    def update(_change=None) -> None:
        with out:
            clear_output(wait=True)
            fig = render(**{n: s.value for n, s in sliders.items()})
            display(fig)
            plt.close(fig)

    for s in sliders.values():
        s.observe(update, names="value")
    update()
    header = [w.HTML(f"<b>{html.escape(title)}</b>")] if title else []
    return w.VBox([*header, w.HBox(list(sliders.values())), out])
