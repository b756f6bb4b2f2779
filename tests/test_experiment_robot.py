"""Chapter 8's claims, checked on the experiment functions the notebook calls (fast profile, CPU)."""
import numpy as np
import pytest

from mbc_lib import experiments, figures, profiles
from mbc_lib.experiments import cache, robot, tables


@pytest.fixture(scope="module")
def swept():
    return robot.sweep(envs_=("PathGaps",), labels=("regression", "mixture", "diffusion"), executors=("whole chunk",),
                       seed=0, profile="fast", progress=False)


def _rows(result):
    return {(r["env"], r["policy"], r["executor"]): r for r in robot.summary(result)}


def test_regression_averages_the_gaps_into_the_wall(swept):
    rows = _rows(swept)
    expert, reg, mix = (rows[("PathGaps", p, ex)] for p, ex in
                        (("expert", "scripted"), ("regression", "whole chunk"), ("mixture", "whole chunk")))
    assert expert["success_rate"] >= 0.9 and expert["modes_used"] == 2  # the demonstrations use both gaps
    assert reg["success_rate"] <= 0.1 and reg["failure_rate"] >= 0.9  # straight between the gaps: collisions
    assert reg["failure_rate"] > mix["failure_rate"] + 0.2
    assert mix["success_rate"] > reg["success_rate"]
    # the regression policy's paths end at the wall between the gaps (|x| < the inner gap edges)
    task = robot.envs.make_env_task("mbc/PathGaps-v0", K=2)
    inner = task.gap_centers[1] - task.gap_width / 2
    ends = np.array([q[-1] for q in swept.results[("PathGaps", 2, "regression", "whole chunk")].qpos])
    assert np.all(np.abs(ends[:, 0]) < inner) and np.all(ends[:, 1] < task.wall_y)


def test_a_multimodal_family_succeeds_through_both_gaps(swept):
    rows = _rows(swept)
    diff = rows[("PathGaps", "diffusion", "whole chunk")]
    assert diff["modes_used"] == 2 and diff["min_mode_fraction"] > 0.1
    assert diff["success_rate"] > 0.3


def test_the_token_head_succeeds_through_both_gaps_at_its_token_count():
    """Chapter 8's token head (a 64-wide GRU over H·d_a = 16 tokens) on PathGaps at the fast budget:
    it reaches both gaps and beats regression, and its row prices a query at 16 sequential evaluations."""
    res = robot.sweep(envs_=("PathGaps",), labels=("autoregressive",), executors=("whole chunk",), seed=0,
                      profile="fast", progress=False)
    model = res.models[("PathGaps", 2, "autoregressive")]
    assert model.policy.config.token_width == 64 and model.policy.config.decoder == "gru"
    r = _rows(res)[("PathGaps", "autoregressive", "whole chunk")]
    assert r["nfe"] == 16 == model.chunk_len * 2
    assert r["modes_used"] == 2 and r["min_mode_fraction"] > 0.2
    assert r["success_rate"] > 0.5  # regression: at most 0.1 (test above)
    assert np.isnan(_rows(res)[("PathGaps", "expert", "scripted")]["nfe"])


def test_summary_columns_and_consistency(swept):
    rows = robot.summary(swept)
    assert len(rows) == 1 + 3  # the expert + three policies × one executor
    for r in rows:
        for col in ("env", "K", "policy", "family", "executor", "chunk_len", "nfe", "n_action_steps", "ensemble_m", "n_episodes",
                    "success_rate", "success_lo", "success_hi", "modes_used", "min_mode_fraction", "failure",
                    "failure_rate", "mode0_rate", "mode1_rate"):
            assert col in r, col
        assert all(isinstance(v, (int, float, str)) for v in r.values())
        assert r["success_lo"] <= r["success_rate"] <= r["success_hi"]
        assert r["mode0_rate"] + r["mode1_rate"] == pytest.approx(r["success_rate"])
        assert r["failure"] == "collision"
    r = _rows(swept)[("PathGaps", "regression", "whole chunk")]
    assert r["n_action_steps"] == r["chunk_len"] == 8 and np.isnan(r["ensemble_m"])


def test_every_failure_has_a_first_cause(swept):
    from mbc_lib.envs.attribution import CAUSES

    rows = _rows(swept)
    for (env, policy, ex), r in rows.items():
        if policy == "expert":
            continue
        assert (env, 2, policy, ex) in swept.attributions and (env, 2) in swept.references
        causes = [r["cause_" + c.replace("-", "_")] for c in CAUSES]
        assert all(0 <= c <= 1 for c in causes) and sum(causes) == pytest.approx(1 - r["success_rate"])
        assert r["switches_per_episode"] >= 0 and 0 <= r["switched_episodes"] <= 1
    reg = rows[("PathGaps", "regression", "whole chunk")]
    assert reg["cause_averaged"] + reg["cause_off_support"] >= 0.8 * (1 - reg["success_rate"])  # collapse: the average
    assert reg["collapse_share"] >= 0.8


def test_the_failure_study_is_registered_and_cached(monkeypatch, tmp_path):
    from mbc_lib.experiments import failures

    monkeypatch.setenv("MBC_CACHE", str(tmp_path))
    tiny = dict(profiles.BUDGETS["failures"]["fast"], envs=("PathGaps",), Hs=(4, 8), policies=("cvae",),
                switch_policies=("cvae",), executors=("whole chunk", "whole chunk, coherent"), steps=50, n_demos=16,
                n_eval=4)
    monkeypatch.setitem(profiles.BUDGETS["failures"], "fast", tiny)
    result = experiments.run("failures", profile="fast", seed=0, use_cache=True, keep_result=True)
    assert isinstance(result, failures.FailureStudy) and result.Hs == [4, 8]
    stored = cache.load("failures", "fast", 0)
    # the expert + cvae at two H: whole chunks free and committed, coherent free only (one fixed draw has no choice)
    assert stored is not None and len(stored) == 1 + 2 * 3
    assert {(r["H"], r["executor"], r["committed"]) for r in stored if r["policy"] == "cvae"} == {
        (H, ex, c) for H in (4, 8) for ex, c in (("whole chunk", False), ("whole chunk", True),
                                                 ("whole chunk, coherent", False))}
    assert experiments.run("failures", profile="fast", seed=0, use_cache=True) == stored
    assert experiments.CHAPTER_OF["failures"] == 8


def test_rollouts_are_deterministic_and_take_executor_settings(swept):
    model = swept.models[("PathGaps", 2, "mixture")]
    a = robot.rollout(model, "ensemble m=0.01", n_episodes=8, seed=3)
    b = robot.rollout(model, {"temporal_ensemble": 0.01}, n_episodes=8, seed=3)
    assert np.array_equal(a.success, b.success) and np.array_equal(a.modes, b.modes)
    assert all(np.array_equal(x, y) for x, y in zip(a.qpos, b.qpos))
    c = robot.rollout(model, {"n_action_steps": 4}, n_episodes=8, seed=3)
    assert c.n_episodes == 8


def test_bad_settings_raise_clear_errors(swept):
    model = swept.models[("PathGaps", 2, "regression")]
    with pytest.raises(ValueError, match="unknown robot task"):
        robot.env_id("Maze")
    with pytest.raises(ValueError, match="unknown robot task"):
        robot.sweep(envs_=("Maze",), profile="fast")
    with pytest.raises(ValueError, match="unknown policy"):
        robot.fit("PathGaps", "transformer", profile="fast")
    with pytest.raises(ValueError, match="unknown policy"):
        robot.sweep(labels=("transformer",), profile="fast")
    with pytest.raises(ValueError, match=r"n_action_steps must be an integer in \[1, chunk_len=8\]"):
        robot.rollout(model, {"n_action_steps": 9})
    with pytest.raises(ValueError, match="coefficient m must be a finite number >= 0"):
        robot.rollout(model, {"temporal_ensemble": -0.1})
    with pytest.raises(ValueError, match="unknown executor"):
        robot.sweep(executors=("twice per chunk",), profile="fast")
    with pytest.raises(ValueError, match="executor settings are"):
        robot.rollout(model, {"horizon": 4})


def test_run_keeps_the_sweep_and_stores_its_table_for_chapter_11(monkeypatch, tmp_path):
    monkeypatch.setenv("MBC_CACHE", str(tmp_path))
    tiny = dict(profiles.BUDGETS["robot"]["fast"], envs=("PushBins",), policies=("regression",),
                executors=("whole chunk",), steps=50, n_demos=16, n_eval=8)
    monkeypatch.setitem(profiles.BUDGETS["robot"], "fast", tiny)
    result = experiments.run("robot", profile="fast", seed=0, use_cache=True, keep_result=True)
    assert isinstance(result, robot.RobotSweep)
    stored = cache.load("robot", "fast", 0)
    assert stored is not None and len(stored) == 2
    assert [r["policy"] for r in stored] == ["expert", "regression"]
    assert stored[1]["failure"] == "between_bins"
    assert stored[1]["success_rate"] == pytest.approx(robot.summary(result)[1]["success_rate"])
    assert experiments.run("robot", profile="fast", seed=0, use_cache=True) == stored


def test_prose_helpers_read_the_measured_rows(swept):
    rows = robot.summary(swept)
    labels = ["regression", "mixture", "diffusion"]
    used = robot.modes_used(rows, "PathGaps", labels)
    assert used == {p: _rows(swept)[("PathGaps", p, "whole chunk")]["modes_used"] for p in labels}
    sentence = figures.robot.modes_sentence(rows, "PathGaps", labels)
    assert sentence.startswith("On `PathGaps`, ") and sentence.endswith(".")
    for p in labels:  # every policy is named once, with the words for its own count
        assert sentence.count(f"`{p}`") == 1
    assert f"used {figures.robot.count_words(used['diffusion'], 2, 'gap')}" in sentence
    table = figures.robot.outcome_table(rows, ["PathGaps"], labels)
    lines = table.splitlines()
    assert len(lines) == 2 + 1 + len(labels)  # header, rule, the expert, the policies
    assert all(line.count("|") == 7 for line in lines)  # policy, NFE + four columns per task
    assert lines[2].startswith("| `expert` | — |") and "collision" in lines[0]
    nfe = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in lines[3:]}
    assert nfe == {"`regression`": "1", "`mixture`": "1", "`diffusion`": str(swept.models[("PathGaps", 2, "diffusion")].policy.config.steps)}
    with pytest.raises(ValueError, match="no row"):
        figures.robot.outcome_table(rows, ["PushBins"], labels)


def test_count_words():
    words = figures.robot.count_words
    assert words(2, 2, "gap") == "both gaps" and words(3, 3, "bin") == "all 3 bins"
    assert words(1, 2, "gap") == "one gap only" and words(0, 2, "bin") == "no bin"
    assert words(2, 3, "gap") == "2 of 3 gaps"
    with pytest.raises(ValueError, match="modes used"):
        words(3, 2, "gap")


def test_figures_show_each_policys_outcomes(swept):
    import matplotlib.pyplot as plt
    from matplotlib.colors import same_color

    from mbc_lib.figures.common import OFF_SUPPORT_COLOR

    fig = figures.robot.plot_outcomes(swept, "whole chunk")
    (ax,) = fig.axes
    names = ["expert", *swept.labels]
    assert [t.get_text() for t in ax.get_xticklabels()] == names
    rows = _rows(swept)
    # per policy: one bar per gap (successes through it), the collision bar in red, the rest grey
    bars = ax.patches
    assert len(bars) == 4 * len(names)
    for i, name in enumerate(names):
        r = rows[("PathGaps", name, "scripted" if name == "expert" else "whole chunk")]
        via0, via1, fail, _ = bars[4 * i: 4 * i + 4]
        assert (via0.get_height(), via1.get_height()) == pytest.approx((r["mode0_rate"], r["mode1_rate"]))
        assert same_color(fail.get_facecolor(), OFF_SUPPORT_COLOR) and fail.get_height() == pytest.approx(
            r["failure_rate"] if name != "expert" else 0.0)
    plt.close(fig)
    fig = figures.robot.plot_trajectories(swept, "PathGaps", "regression", "whole chunk", n_show=8)
    res = swept.results[("PathGaps", 2, "regression", "whole chunk")]
    red = [line for line in fig.axes[0].get_lines() if same_color(line.get_color(), OFF_SUPPORT_COLOR)]
    assert len(red) == int((~res.success[:8] & res.failures[:8]).sum())  # every collision drawn in red
    plt.close(fig)


def test_executor_effect_pairs_the_two_executors():
    def r(policy, executor, success, failure=0.5):
        return {"env": "PathGaps", "K": 2, "policy": policy, "family": policy, "executor": executor,
                "success_rate": success, "failure_rate": failure, "modes_used": 2}

    rows = [r("expert", "scripted", 1.0), r("vq", "whole chunk", 0.50), r("vq", "ensemble m=0.01", 0.78),
            r("flow", "whole chunk", 0.28), r("flow", "ensemble m=0.01", 0.09), r("mixture", "whole chunk", 0.16),
            r("mixture", "ensemble m=0.01", 0.16), r("cvae", "whole chunk", 0.1)]  # cvae: no ensembling row
    eff = tables.executor_effect(rows, "ensemble m=0.01")
    assert eff == robot.executor_effect(rows, "ensemble m=0.01")  # chapter 8's name for it
    assert {e["policy"]: e["change"] for e in eff} == {"vq": 1, "flow": -1, "mixture": 0}
    vq = next(e for e in eff if e["policy"] == "vq")
    assert vq["success"] == 0.5 and vq["success_other"] == 0.78
    assert {e["policy"]: e["change"] for e in tables.executor_effect(rows, "ensemble m=0.01", tol=0.3)}["vq"] == 0
    assert [e["policy"] for e in tables.executor_effect(rows, "ensemble m=0.01", labels=["flow"])] == ["flow"]
