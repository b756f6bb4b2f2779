"""Chapter 2's claims, checked on the experiment functions the notebook calls."""
import pytest

from mbc_lib.experiments import chunking


def test_mode_confusion_follows_the_gaussian_prediction_and_falls_with_H():
    rows = chunking.separation_vs_horizon(Hs=(1, 2, 3, 8), rate=0.05, sigma=0.05, n=4000, seed=0)
    for r in rows:
        assert abs(r["confusion"] - r["confusion_predicted"]) < 0.02
    conf = [r["confusion"] for r in rows]
    assert conf[0] > 0.25 and conf[-1] == 0.0 and conf == sorted(conf, reverse=True)
    assert rows[-1]["delta_c"] > 2 * rows[-1]["radius"] and rows[0]["delta_c"] < 2 * rows[0]["radius"]


def test_queue_execution_never_averages_but_ensembling_does():
    res = chunking.executor_sweep(Hs=(8,), seed=0)
    for label in ("re-plan every step", "half chunk", "whole chunk"):
        assert res[(8, label)].between == 0.0 and res[(8, label)].on_branch == 1.0
    assert res[(8, "ensemble m=0")].between > 0.2
    # committing to whole chunks switches direction far less often than re-planning every step
    assert res[(8, "whole chunk")].switches < 0.1 < 0.4 < res[(8, "re-plan every step")].switches


def test_unknown_executor_is_rejected():
    with pytest.raises(ValueError, match="unknown executor"):
        chunking.closed_loop("teleport")
