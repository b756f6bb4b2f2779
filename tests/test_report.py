"""mbc_lib.report: values glued into the prose are plain scalars, and bad keys or values fail clearly."""
import numpy as np
import pytest
import torch

from mbc_lib import report


@pytest.mark.parametrize("value, expected, kind", [
    (np.float64(0.5), 0.5, float), (np.float32(0.25), 0.25, float), (np.int64(3), 3, int),
    (torch.tensor(2.5), 2.5, float), (torch.tensor([7]), 7, int), (True, True, bool), ("both modes", "both modes", str),
])
def test_glued_values_are_plain_python_scalars(value, expected, kind):
    out = report.glue("key", value)
    assert out == expected and type(out) is kind


@pytest.mark.parametrize("value", [np.arange(3), torch.zeros(2, 2), [1, 2], {"a": 1}, None])
def test_glue_refuses_anything_but_one_scalar(value):
    with pytest.raises(TypeError, match="glue"):
        report.glue("key", value)


@pytest.mark.parametrize("name", ["", "a b", "x:y", 3])
def test_glue_refuses_keys_that_markdown_cannot_quote(name):
    with pytest.raises(ValueError, match="glue key"):
        report.glue(name, 1.0)


def test_glue_all_prefixes_every_key_and_choose_picks_the_measured_wording():
    assert report.glue_all({"a": np.float64(1.0), "b": 2}, prefix="ch1_") == {"ch1_a": 1.0, "ch1_b": 2}
    assert report.choose(0.9 > 0.5, "reaches both", "misses one") == "reaches both"
    assert report.choose(np.bool_(False), "reaches both", "misses one") == "misses one"


def test_setup_states_profile_seed_and_device(capsys, monkeypatch):
    import mbc_lib

    monkeypatch.setenv("MBC_PROFILE", "fast")
    info = mbc_lib.setup(seed=3)
    out = capsys.readouterr().out
    assert info["seed"] == 3 and info["profile"] == "fast"
    assert "profile fast" in out and "training seed 3" in out and f"device {info['device']}" in out
    with pytest.raises(ValueError, match="seed"):
        mbc_lib.setup(seed=-1)


def test_show_source_displays_the_library_code_itself():
    from mbc_lib.control import ChunkExecutor
    from mbc_lib.policies.regression import RegressionPolicy

    src = report.show_source(RegressionPolicy.loss)
    assert src.title == "mbc_lib.policies.regression.RegressionPolicy.loss"
    assert src.code.startswith("def loss(") and "return" in src.code  # dedented, complete
    html = src._repr_html_()
    assert html.startswith('<details class="mbc-source">') and "RegressionPolicy.loss" in html and "<pre" in html
    assert "open" in report.show_source(ChunkExecutor, open=True)._repr_html_().split(">")[0]
    with pytest.raises(TypeError, match="show_source"):
        report.show_source(3)
