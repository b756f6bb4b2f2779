"""Chapter 11's decision logic on hand-made tables with known answers (no training)."""
import math

import matplotlib
import pytest

from mbc_lib import figures
from mbc_lib.experiments import guidance

matplotlib.use("Agg")


def _row(family, K, coverage, min_mass, knob="none", value=0.0, ratio=math.nan, sinkhorn=0.1):
    return {"family": family, "task": "fork", "K": K, "knob": knob, "knob_value": value, "beta_ratio": ratio,
            "coverage": coverage, "min_mass": min_mass, "off_support": 1 - coverage, "sinkhorn": sinkhorn,
            "modes_covered": K}


@pytest.fixture()
def evidence():
    rows = [
        _row("regression", 2, 0.0, 0.0),
        _row("cvae", 2, 0.9, 0.40, "beta", 0.3, 0.1),
        _row("cvae", 2, 0.0, 0.0, "beta", 6.0, 2.0),
        _row("mixture", 2, 0.95, 0.30),  # covers, but unbalanced: score .95 × .6 = .57
        _row("flow", 2, 0.0, 0.0, "steps", 1.0),
        _row("flow", 2, 0.99, 0.49, "steps", 16.0),
        _row("flow", 2, 0.97, 0.49, "steps", 16.0, sinkhorn=0.3),  # a second setting with K = 2: averaged
        _row("vq", 4, 1.0, 0.25),
    ]
    return guidance.Evidence("fast", 0, {"synthetic": rows})


def test_candidates_average_settings_and_count_evaluations(evidence):
    cards = {c.label: c for c in guidance.candidates(evidence, 2)}
    assert set(cards) == {"regression", "cvae β=0.1β*", "cvae β=2β*", "mixture", "flow 1 steps", "flow 16 steps"}
    flow = cards["flow 16 steps"]
    assert flow.nfe == 16 and flow.n_settings == 2
    assert flow.coverage == pytest.approx(0.98) and flow.sinkhorn == pytest.approx(0.2)
    assert cards["mixture"].balance == pytest.approx(0.6) and cards["cvae β=0.1β*"].nfe == 1


def test_the_token_head_costs_one_evaluation_per_token(evidence):
    """The autoregressive head's NFE is its token count (stored in chapter 7's rows), the longest over the settings."""
    rows = evidence.rows("synthetic") + [{**_row("autoregressive", 2, 0.97, 0.45), "nfe": 8.0},
                                         {**_row("autoregressive", 2, 0.95, 0.45), "nfe": 16.0}]
    ev = guidance.Evidence("fast", 0, {"synthetic": rows})
    card = {c.label: c for c in guidance.candidates(ev, 2)}["autoregressive"]
    assert card.nfe == 16 and card.n_settings == 2 and card.coverage == pytest.approx(0.96)
    assert guidance.recommend(ev, 2, 8).choice.family != "autoregressive"  # 16 sequential evaluations exceed 8
    with pytest.raises(ValueError, match="tokens"):
        guidance.nfe("autoregressive")


def test_recommendation_is_the_best_measured_score_within_the_budget(evidence):
    assert guidance.recommend(evidence, 2, max_nfe=16).choice.label == "flow 16 steps"  # .98 × .98
    one = guidance.recommend(evidence, 2, max_nfe=1)
    assert one.choice.label == "cvae β=0.1β*"  # .9 × .8 = .72 beats the unbalanced mixture (.57)
    assert [c.label for c in one.excluded] == ["flow 16 steps"]
    # when any one mode will do, coverage alone ranks: the mixture wins
    assert guidance.recommend(evidence, 2, max_nfe=1, need_all_modes=False).choice.family == "mixture"
    assert guidance.recommend(evidence, 2, 16, families=("mixture", "vq")).choice.family == "mixture"


def test_k1_needs_no_generative_model_and_missing_k_uses_the_nearest_measured_below(evidence):
    assert guidance.recommend(evidence, 1).choice is None
    rec = guidance.recommend(evidence, 3, max_nfe=16)
    assert "evidence from K=2" in rec.reason and rec.choice.K == 2
    assert guidance.recommend(evidence, 5, max_nfe=1).choice.family == "vq"


def test_bad_input_gets_clear_errors(evidence):
    with pytest.raises(ValueError, match="positive integer"):
        guidance.recommend(evidence, 0)
    with pytest.raises(ValueError, match="max_nfe"):
        guidance.recommend(evidence, 2, max_nfe=0)
    with pytest.raises(ValueError, match="unknown famil"):
        guidance.recommend(evidence, 2, families=("gan",))
    with pytest.raises(ValueError, match="no setting with K=3"):
        guidance.candidates(evidence, 3)
    with pytest.raises(ValueError, match="sampler steps"):
        guidance.nfe("flow")
    with pytest.raises(ValueError, match="no experiment named"):
        guidance.gather(names=("nope",))


def test_figures_draw_from_the_table(evidence):
    import matplotlib.pyplot as plt

    text = " ".join(t.get_text() for t in figures.guidance.plot_chart(evidence, 2).axes[0].texts)
    assert "flow 16 steps" in text and "cvae β=0.1β*" in text and "mixture" in text
    # the scorecard: one row per candidate with its NFE, four columns, the numbers written in the cells
    fig = figures.guidance.plot_scorecard(evidence, 2)
    (ax,) = fig.axes
    cards = guidance.candidates(evidence, 2)
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"{c.label} ({c.nfe} NFE)" for c in cards]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["coverage", "balance", "bridge", "score"]
    assert len(ax.texts) == 4 * len(cards)
    # the recommendation: a bar per candidate, the ones over the budget grey, the choice outlined
    fig = figures.guidance.plot_recommendation(evidence, 2, 4)
    (ax,) = fig.axes
    bars = dict(zip((t.get_text() for t in ax.get_xticklabels()), ax.patches))
    assert list(bars) == [c.label for c in cards]
    assert bars["flow 16 steps"].get_facecolor()[:3] == pytest.approx((0.85, 0.85, 0.85))  # 16 NFE > 4: greyed out
    chosen = [label for label, b in bars.items() if b.get_linewidth() == 2.5]
    assert chosen == [guidance.recommend(evidence, 2, 4).choice.label] == ["cvae β=0.1β*"]
    fig = figures.guidance.plot_recommendation(evidence, 1, 4)  # K = 1: the reason instead of bars
    assert not fig.axes[0].patches and "regression" in fig.axes[0].texts[0].get_text()
    plt.close("all")


def test_robot_scorecard_averages_tasks_at_the_default_executor():
    def r(policy, executor, success, failure, env="PathGaps"):
        return {"env": env, "K": 2, "policy": policy, "family": policy.split()[0], "executor": executor,
                "success_rate": success, "failure_rate": failure, "modes_used": 2, "min_mode_fraction": 0.4}

    rows = [r("expert", "scripted", 1.0, math.nan), r("regression", "whole chunk", 0.0, 1.0),
            r("regression", "whole chunk", 0.5, 0.5, env="PushBins"), r("regression", "ensemble m=0.01", 0.9, 0.1),
            {**r("autoregressive", "whole chunk", 0.8, 0.1), "nfe": 16.0}]
    card = {c["policy"]: c for c in guidance.robot_scorecard(guidance.Evidence("fast", 0, {"robot": rows}))}
    assert list(card) == ["expert", "regression", "autoregressive"]
    assert card["autoregressive"]["nfe"] == 16 and math.isnan(card["regression"]["nfe"])  # a table without the column
    assert card["regression"]["success"] == pytest.approx(0.25) and card["regression"]["failure"] == pytest.approx(0.75)
    assert card["expert"]["failure"] == 0.0 and card["regression"]["n_tables"] == 2
    assert guidance.robot_scorecard(guidance.Evidence("fast", 0, {})) == []
    fig = figures.guidance.plot_robot(guidance.Evidence("fast", 0, {"robot": rows}))
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert ticks == ["expert", "regression", "autoregressive\n16 NFE"]  # the latency price where the table has it
    matplotlib.pyplot.close(fig)


def test_executor_effect_reads_chapter_8_for_the_generative_families():
    def r(policy, executor, success):
        return {"env": "PushBins", "K": 2, "policy": policy, "family": policy.split()[0], "executor": executor,
                "success_rate": success, "failure_rate": 1 - success, "modes_used": 1}

    rows = [r("expert", "scripted", 1.0), r("regression", "whole chunk", 0.0), r("regression", "ensemble m=0.01", 0.2),
            r("diffusion", "whole chunk", 0.06), r("diffusion", "ensemble m=0.01", 0.12),
            r("cvae β=10", "whole chunk", 0.3), r("cvae β=10", "ensemble m=0.01", 0.1),
            r("autoregressive", "whole chunk", 0.5), r("autoregressive", "ensemble m=0.01", 0.5)]
    eff = guidance.executor_effect(guidance.Evidence("fast", 0, {"robot": rows}))
    # regression left out; the token head is a generative family too
    assert {e["policy"]: e["change"] for e in eff} == {"diffusion": 1, "cvae β=10": -1, "autoregressive": 0}
    assert guidance.executor_effect(guidance.Evidence("fast", 0, {"robot": rows}), "half chunk") == []
    assert guidance.executor_effect(guidance.Evidence("fast", 0, {})) == []


def test_the_advice_is_asked_of_every_training_seed(monkeypatch, tmp_path):
    """Seed 0's rows come from the evidence, the other seeds' cells from the grid (computed once, then cached)."""
    from mbc_lib.experiments import grid

    def rows(seed):
        flow = 0.99 if seed != 1 else 0.5  # seed 1's flow lost a mode: the mixture is its best candidate
        return [{**r, "delta": 3.0} for r in (_row("mixture", 3, 0.95, 0.3), _row("flow", 3, flow, 0.33, "steps", 16.0))]

    calls = []

    def fake_rows(profile, seed, settings=None, **options):
        calls.append(seed)
        assert settings == [("fork", 3, 3.0)]
        return rows(seed)

    monkeypatch.setenv("MBC_CACHE", str(tmp_path))
    monkeypatch.setitem(grid.SPLITS, "synthetic", grid.Split(lambda p: [], fake_rows, grid.SPLITS["synthetic"].order))
    ev = guidance.Evidence("fast", 0, {"synthetic": rows(0) + [{**_row("vq", 2, 1.0, 0.5), "delta": 3.0}]})
    recs = guidance.recommend_across_seeds(ev, ("fork", 3, 3.0), [0, 1, 2], max_nfe=16)
    assert list(recs) == [0, 1, 2] and calls == [1, 2]
    assert [recs[s].choice.family for s in (0, 1, 2)] == ["flow", "mixture", "flow"]
    assert all(r.choice.K == 3 and r.choice.n_settings == 1 for r in recs.values())  # only the one setting
    again = guidance.recommend_across_seeds(ev, ("fork", 3, 3.0), [0, 1, 2], max_nfe=1)
    assert calls == [1, 2] and {r.choice.family for r in again.values()} == {"mixture"}  # cached cells, no retraining
    with pytest.raises(ValueError, match="no setting"):
        guidance.recommend_across_seeds(ev, ("ring", 4, 3.0), [0], max_nfe=16)
