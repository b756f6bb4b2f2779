"""The β trade-off (chapter 10): the grid's two sides on a small fork sweep, and the rules that read the grid."""
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from mbc_lib import figures, profiles  # noqa: E402
from mbc_lib.experiments import tradeoff as to  # noqa: E402

TOY = dict(n_demos=1024, steps=300, width=64, depth=2, batch_size=256, lr=3e-3, latent_dim=2, ratios=(0.1, 3.0),
           n_states=2, n_per_state=256, n_prior=256, n_hole=2048, alpha=0.5, n_episodes=24, n_eval=8)


@pytest.fixture(scope="module")
def fork_rows():
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(profiles.BUDGETS, "tradeoff", {"fast": dict(TOY)})
        return to.fork_tradeoff(seed=0, profile="fast")


def test_the_two_sides_of_the_trade_off_on_the_fork(fork_rows):
    weak, strong = fork_rows
    assert weak["ratio"] < strong["ratio"]
    # information: the weak model names the mode, the strong one has collapsed
    assert weak["mutual_information"] > 0.5 * math.log(2) and weak["fano"] <= weak["mutual_information"] + 0.05
    assert strong["mutual_information"] < 0.05 and strong["off_support"] > 0.9
    # coverage: the price of the information is a prior that covers q̄ worse
    assert weak["tv"] > strong["tv"] and weak["hole"] > strong["hole"] and weak["marginal_kl"] > strong["marginal_kl"]
    for r in fork_rows:
        assert r["hole"] <= r["hole_bound"] + 1e-12  # Hole_α ≤ TV/(1 − α)
        assert r["mean_kl"] == pytest.approx(r["mutual_information"] + r["marginal_kl"])


def _result(rows_fork, rows_robot):
    return to.TradeoffResult({"fork": rows_fork, "PathGaps": rows_robot})


def test_sweet_spot_and_row_at_on_known_rows():
    fork = [dict(ratio=r, K=2, modes_reached=m, off_support=o) for r, m, o in
            ((1 / 30, 2, 0.2), (0.1, 2, 0.1), (0.3, 1, 0.05), (1.0, 0, 1.0))]
    robot = [dict(ratio=r, K=2, modes_used=m, success=s) for r, m, s in
             ((1 / 30, 2, 0.6), (0.1, 2, 0.8), (0.3, 1, 0.9), (1.0, 0, 0.0))]
    res = _result(fork, robot)
    assert to.sweet_spot(res, "fork")["ratio"] == 0.1  # fewest off-support among those reaching both modes
    assert to.sweet_spot(res, "PathGaps")["ratio"] == 0.1  # 0.3 succeeds more but through one gap only
    assert to.row_at(res, "fork", 0.12)["ratio"] == 0.1 and to.row_at(res, "fork", 2.0)["ratio"] == 1.0
    none = _result([dict(ratio=1.0, K=2, modes_reached=0, off_support=1.0)],
                   [dict(ratio=1.0, K=2, modes_used=0, success=0.0)])
    assert to.sweet_spot(none, "fork") is None and to.sweet_spot(none, "PathGaps") is None


def test_figure_and_table_draw_the_grid(fork_rows):
    robot = [dict(r, task="PathGaps", success=0.5, success_0=0.25, success_1=0.25) for r in fork_rows]
    res = _result(fork_rows, robot)
    fig = figures.tradeoff.plot_tradeoff(res, {"fork": fork_rows[0], "PathGaps": None})
    assert len(fig.axes) >= 4
    plt.close(fig)
    table = figures.tradeoff.format_table(res, ratios=(0.1, 3.0))
    assert "β*/10" in table and "3β*" in table and table.count("\n") == 5
    assert figures.tradeoff.ratio_label(1 / 30) == "β*/30" and figures.tradeoff.ratio_label(1.0) == "β*"
    assert len(to.summary(res)) == 4
