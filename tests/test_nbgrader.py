"""The classroom path of book/instructors.md, end to end: nbgrader generates the assignment from
solutions/ and its autograder gives the solutions full marks and the released stubs (exercises/) zero.

Every autograded test cell is a check cell that asserts its check passed; a check that only printed a
failed result would give the stub full marks, and this test would fail.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
nbgrader = pytest.importorskip("nbgrader")


def _nbgrader(course: Path, *args: str) -> None:
    env = {**os.environ, "MBC_PROFILE": "fast", "MBC_PROGRESS": "0",
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, capture_output=True,
                          text=True, timeout=1800)
    assert proc.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"


def test_nbgrader_autogrades_solutions_full_and_released_stubs_zero(tmp_path):
    from nbgrader.api import Gradebook

    course = tmp_path / "course"
    (course / "source" / "exercises").mkdir(parents=True)
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
        "c.ExecutePreprocessor.timeout = 900\n")
    for sol in SOLUTIONS:
        shutil.copy(sol, course / "source" / "exercises" / sol.name)
    _nbgrader(course, "generate_assignment", "exercises", "--force")
    released = course / "release" / "exercises"
    for sol in SOLUTIONS:  # exercises/ is exactly nbgrader's release
        assert json.loads((released / sol.name).read_text())["cells"] == \
            json.loads((ROOT / "exercises" / sol.name).read_text())["cells"], sol.name
    for student, folder in (("solution", ROOT / "solutions"), ("stub", ROOT / "exercises")):
        target = course / "submitted" / student / "exercises"
        target.mkdir(parents=True)
        for sol in SOLUTIONS:
            shutil.copy(folder / sol.name, target / sol.name)
    _nbgrader(course, "autograde", "exercises", "--force")
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for sol in SOLUTIONS:
            full = gb.find_submission_notebook(sol.stem, "exercises", "solution")
            stub = gb.find_submission_notebook(sol.stem, "exercises", "stub")
            assert full.max_code_score > 0, f"{sol.name} has no autograded test cell"
            assert full.code_score == full.max_code_score, f"{sol.name}: solution scored {full.code_score}/{full.max_code_score}"
            assert stub.code_score == 0, f"{sol.name}: the unanswered stub scored {stub.code_score}/{stub.max_code_score}"
