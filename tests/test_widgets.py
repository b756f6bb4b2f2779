"""Explorers: live ipywidgets and the static, self-contained HTML fallback."""
import re

import matplotlib.pyplot as plt
import pytest

from mbc_lib.widgets import StaticExplorer, explore


def _render(a, b):
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [a, b])
    return fig


def test_static_explorer_embeds_every_frame_and_no_external_script():
    ex = explore(_render, {"a": [0, 1, 2], "b": [0.5, 1.5]}, title="demo", static=True)
    assert isinstance(ex, StaticExplorer) and len(ex.frames) == 6
    html = ex._repr_html_()
    assert html.count('type="range"') == 2
    assert len(set(ex.frames.values())) == 6  # every grid point is its own picture
    assert "data:image/png;base64," in html
    assert not re.search(r"<script[^>]+src=", html)  # works offline: nothing to fetch


def test_live_explorer_is_a_widget():
    import ipywidgets as w

    box = explore(_render, {"a": [0, 1], "b": [2]}, static=False)
    assert isinstance(box, w.VBox)


def test_empty_grid_is_rejected():
    with pytest.raises(ValueError, match="has no values"):
        explore(_render, {"a": []}, static=True)
