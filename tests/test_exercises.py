"""Exercises: generated from solutions/, checks pass on solutions and report 'not implemented' on exercises."""
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


def test_exercises_are_in_sync_with_solutions():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "make_exercises.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_solution_has_regions_and_checks():
    assert len(SOLUTIONS) >= 3
    for path in SOLUTIONS:
        text = path.read_text()
        assert "### BEGIN SOLUTION" in text and "grading.check_" in text, path.name


def _check_outputs(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    outs = []
    for cell in nb.cells:
        if cell.cell_type == "code" and "grading.check_" in cell.source:
            text = "".join(o.get("data", {}).get("text/plain", "") + o.get("text", "") for o in cell.outputs)
            outs.append(text)
    return outs


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_solution_checks_pass_and_exercise_checks_say_not_implemented(path):
    solved = _check_outputs(path)
    assert solved and all(o.startswith("✓") for o in solved), solved
    stubbed = _check_outputs(ROOT / "exercises" / path.name)
    assert len(stubbed) == len(solved)
    assert all("not implemented yet" in o for o in stubbed), stubbed


def test_generated_stub_keeps_hints_and_drops_the_solution():
    sys.path.insert(0, str(ROOT / "tools"))
    from make_exercises import exercise_from_solution

    nb = {"cells": [
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": 3, "source": [
            "def f(x):\n", "    ### BEGIN SOLUTION\n", "    # hint: double it\n", "    return 2 * x\n", "    ### END SOLUTION\n"]},
        {"cell_type": "markdown", "metadata": {}, "source": ["Q?\n", "### BEGIN SOLUTION\n", "secret\n", "### END SOLUTION\n"]},
    ]}
    out = exercise_from_solution(nb)
    code, md = "".join(out["cells"][0]["source"]), "".join(out["cells"][1]["source"])
    assert "return 2 * x" not in code and "raise NotImplementedError('double it')" in code
    assert code.splitlines()[-1].startswith("    raise")  # indented like the region
    assert "secret" not in md and "Your answer here" in md
    assert out["cells"][0]["execution_count"] is None
    bad = {"cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "source": ["### BEGIN SOLUTION\n", "x = 1\n"]}]}
    with pytest.raises(ValueError, match="without"):
        exercise_from_solution(bad)
