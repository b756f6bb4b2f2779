"""Every chapter runs at the grids of the ``full`` profile — the default on a GPU (Colab) — at toy sizes.

CI runs the chapters at ``fast`` (nbval) whose grids are smaller: a cell written for them (say,
unpacking three β values when ``full`` trains five) would only fail on a reader's GPU, an hour
in. ``tools/check_full_profile.py --notebooks`` keeps every ``full`` grid, shrinks the sizes and
drops the chapters' ``assert`` statements (their claims need real budgets); any other exception
fails. Seconds to two minutes per chapter on a CPU.
"""
import os
import sys

import pytest
from bookutil import CHAPTERS, ROOT

sys.path.insert(0, str(ROOT / "tools"))
import check_full_profile  # noqa: E402


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_runs_at_the_full_profiles_grids(path):
    assert check_full_profile.check_notebook(path) == "ok"


def test_the_check_fails_a_cell_written_for_the_smaller_grids(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in (
        "from mbc_lib import budget",
        "assert False, 'asserts are dropped: claims need real budgets'",
        "weak, mid, strong = budget('synthetic')['beta_ratios']  # three at standard, eight at full",
    )])
    path = tmp_path / "grids.ipynb"
    nbformat.write(nb, path)
    status = check_full_profile.check_notebook(path)
    assert "too many values to unpack" in status and "code cell 2" in status
    assert "MBC_PROFILE" not in os.environ or os.environ["MBC_PROFILE"] != "full", "the kernel's env, not ours"
