"""Measuring and drawing apart: the experiments return data and import no matplotlib, and no chapter module
imports another; the figures package draws what they measured (the shared helpers, and chapters 1–2)."""
import ast
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import same_color  # noqa: E402

import mbc_lib  # noqa: E402
from mbc_lib import figures  # noqa: E402
from mbc_lib.experiments import averaging, chunking  # noqa: E402
from mbc_lib.figures.common import OFF_SUPPORT_COLOR, log_scale, mode_color  # noqa: E402

LIB = Path(mbc_lib.__file__).parent
EXPERIMENTS = LIB / "experiments"
#: the chapter modules of mbc_lib.experiments (the others are its infrastructure: cache, tables, grid, the registry)
CHAPTERS = sorted(p.stem for p in EXPERIMENTS.glob("*.py") if p.stem not in ("__init__", "cache", "tables", "grid"))
#: modules that belong to one chapter together (chapter 8's robot tables, chapter 10's decisive tests) may import each other
SAME_CHAPTER = [{"prior_surgery", "tradeoff", "separation", "unequal"}, {"robot", "failures"}]


def _same_chapter(a: str, b: str) -> bool:
    return a == b or any(a in group and b in group for group in SAME_CHAPTER)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(level, module) of every import in ``path``; ``from . import x`` gives (1, "x") per name."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(0, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.module:
                out.append((node.level, node.module))
            else:
                out += [(node.level, a.name) for a in node.names]
    return out


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*.py")), ids=lambda p: p.name)
def test_experiments_measure_and_import_no_matplotlib_nor_another_chapter(path):
    for level, module in _imports(path):
        assert not module.startswith("matplotlib"), f"{path.name} imports {module}: drawing belongs in mbc_lib.figures"
        assert not (level == 2 and module.startswith("figures")), f"{path.name} imports the figures package"
        other = module.split(".")[0]
        if path.stem in CHAPTERS and level == 1 and other in CHAPTERS:
            assert _same_chapter(path.stem, other), f"chapter module {path.stem} imports chapter module {module}"


def test_figures_and_widgets_are_the_only_matplotlib_users():
    users = {str(p.relative_to(LIB)) for p in LIB.rglob("*.py")
             if any(m.startswith("matplotlib") for _, m in _imports(p))}
    assert users <= {str(p.relative_to(LIB)) for p in (LIB / "figures").glob("*.py")} | {"widgets.py"}, users


def test_every_figures_module_loads_on_first_use():
    assert set(figures.SUBMODULES) == {p.stem for p in (LIB / "figures").glob("*.py")} - {"__init__"}
    assert figures.averaging.plot_result is not None and "figures" in figures.averaging.__name__


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


def test_averaging_figures_show_the_regression_between_the_modes():
    res = averaging.fit_regression(K=2, delta=2.0, loss="l2", seed=0, profile="fast", progress=False)
    fig = figures.averaging.plot_result(res)
    chunks, mass = fig.axes
    n = res.obs.shape[0]
    black = [line for line in chunks.get_lines() if same_color(line.get_color(), "k")]
    assert len(black) == n and len(chunks.get_lines()) == 2 * n  # every demo and every regression chunk
    # the mode-mass bars: demos and regression, per mode and off-support, the last category in red
    assert [t.get_text() for t in mass.get_xticklabels()] == ["mode 0", "mode 1", "off-support"]
    bars = mass.patches
    assert len(bars) == 2 * 3 and same_color(bars[2].get_facecolor()[:3], OFF_SUPPORT_COLOR)
    assert bars[5].get_height() == pytest.approx(res.off_support_policy)
    assert f"regression {res.off_support_policy:.0%}" in mass.get_title()
    plt.close(fig)
    fig = figures.averaging.plot_sweep({(2, 2.0): res})
    off, modes = fig.axes
    assert list(off.get_lines()[0].get_ydata()) == [res.off_support_policy]
    assert modes.get_lines()[1].get_ydata()[0] == 2  # the thin line: modes demonstrated
    plt.close(fig)
    fig = figures.averaging.plot_distances(res)
    assert r"$\Delta_c/2$ (corollary)" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    plt.close(fig)


def test_chunking_figures_show_the_measured_fractions():
    rows = chunking.separation_vs_horizon(Hs=(1, 2, 4), n=500, seed=0)
    fig = figures.chunking.plot_separation(rows)
    delta, conf = fig.axes
    assert list(delta.get_lines()[0].get_ydata()) == [r["delta_c"] for r in rows]
    assert conf.get_yscale() == "log"
    plt.close(fig)
    stats = chunking.closed_loop("ensemble m=0", H=8, steps=16, n=8, seed=0)
    fig = figures.chunking.plot_rollouts(stats)
    bars = fig.axes[1].patches
    assert [b.get_height() for b in bars] == pytest.approx([stats.on_branch, stats.between, stats.switches])
    assert same_color(bars[1].get_facecolor(), OFF_SUPPORT_COLOR)  # steps between the branches: red
    plt.close(fig)
    results = chunking.executor_sweep(Hs=(8,), labels=("whole chunk", "ensemble m=0"), steps=16, n=8, seed=0)
    fig = figures.chunking.plot_executor_summary(results, H=8)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["whole chunk", "ensemble m=0"]
    assert len(ax.patches) == 4 and ax.patches[1].get_height() == pytest.approx(results[(8, "ensemble m=0")].between)
    assert mode_color(-1) == OFF_SUPPORT_COLOR
    plt.close(fig)
