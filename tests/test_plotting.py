"""Shared plotting helpers."""
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from mbc_lib.plotting import log_scale  # noqa: E402


def test_log_scale_keeps_an_axis_without_positive_values_linear_and_drawable():
    fig, (a, b) = plt.subplots(1, 2)
    a.plot([1, 2, 4], [math.nan, 0.0, math.nan])  # e.g. no segment crossed: widths undefined
    b.plot([1, 2, 4], [0.0, 0.01, math.nan])
    assert log_scale(a, "y") is False and a.get_yscale() == "linear"
    assert log_scale(b, "y") is True and b.get_yscale() == "log"
    fig.canvas.draw()
    plt.close(fig)


def test_log_scale_rejects_an_unknown_axis():
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="'x' or 'y'"):
        log_scale(ax, "z")
    plt.close(fig)
