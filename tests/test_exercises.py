"""Exercises: generated from solutions/, checks pass on solutions and report 'not implemented' on exercises."""
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
    """Run ``path``; the printed report of every check cell (a failed check's assert raises: allowed here)."""
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(ROOT)}}).execute()
    outs = []
    for cell in nb.cells:
        if cell.cell_type == "code" and "grading.check_" in cell.source:
            text = "".join(o.get("data", {}).get("text/plain", "") + o.get("text", "") + o.get("ename", "")
                           for o in cell.outputs)
            outs.append(text)
    return outs


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_solution_checks_pass_and_exercise_checks_say_not_implemented(path):
    solved = _check_outputs(path)
    assert solved and all(o.startswith("✓") for o in solved), solved
    stubbed = _check_outputs(ROOT / "exercises" / path.name)
    assert len(stubbed) == len(solved)
    assert all("not implemented yet" in o and "AssertionError" in o for o in stubbed), stubbed


def _tool():
    sys.path.insert(0, str(ROOT / "tools"))
    import make_exercises

    return make_exercises


def test_annotate_marks_cells_for_nbgrader_and_keeps_hints_visible():
    tool = _tool()
    nb = {"cells": [
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": 3, "source": [
            "def f(x):\n", "    ### BEGIN SOLUTION\n", "    # hint: double it\n", "    return 2 * x\n", "    ### END SOLUTION\n"]},
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": 4, "source": ["grading.check_f(f)"]},
        {"cell_type": "markdown", "metadata": {}, "source": ["Q?\n", "### BEGIN SOLUTION\n", "secret\n", "### END SOLUTION\n"]},
    ]}
    out = tool.annotate(nb, "ex9-1")
    code, check, md = out["cells"]
    assert "".join(code["source"]).splitlines()[1:3] == ["    # hint: double it", "    ### BEGIN SOLUTION"]
    assert code["metadata"]["nbgrader"] == {"grade": False, "grade_id": "ex9-1-solution-1", "locked": False,
                                            "schema_version": 3, "solution": True, "task": False}
    assert "".join(check["source"]).splitlines() == [
        "result = grading.check_f(f)", "print(result)", 'assert result, "this check failed: see its report above"']
    assert check["metadata"]["nbgrader"]["grade"] and check["metadata"]["nbgrader"]["points"] == 1
    assert check["metadata"]["nbgrader"]["locked"] and not check["metadata"]["nbgrader"]["solution"]
    assert md["metadata"]["nbgrader"]["solution"] and md["metadata"]["nbgrader"]["grade"]
    assert code["execution_count"] is None and tool.annotate(out, "ex9-1") == out  # idempotent
    with pytest.raises(ValueError, match="without"):
        tool.annotate({"cells": [{"cell_type": "code", "metadata": {}, "outputs": [],
                                  "source": ["### BEGIN SOLUTION\n", "x = 1\n"]}, nb["cells"][1]]}, "bad")


def test_nbgrader_release_drops_solutions_and_hidden_tests():
    tool = _tool()
    nb = tool.annotate({"cells": [
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "id": "a", "source": [
            "def f(x):\n", "    # hint: double it\n", "    ### BEGIN SOLUTION\n", "    return 2 * x\n", "    ### END SOLUTION\n"]},
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "id": "b", "source": [
            "result = grading.check_f(f)\n", "### BEGIN HIDDEN TESTS\n", "assert f(3) == 6\n", "### END HIDDEN TESTS\n",
            "print(result)\n", 'assert result, "this check failed: see its report above"']},
        {"cell_type": "markdown", "metadata": {}, "id": "c", "source": ["Q?\n", "### BEGIN SOLUTION\n", "secret\n", "### END SOLUTION"]},
    ], "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5}, "ex9-1")
    released = tool.release({"ex9-1": nb})["ex9-1"]
    code, check, md = ("".join(c["source"]) for c in released["cells"])
    assert "return 2 * x" not in code and "# hint: double it" in code and "raise NotImplementedError()" in code
    assert "assert f(3) == 6" not in check and "grading.check_f(f)" in check
    assert "secret" not in md and "YOUR ANSWER HERE" in md
