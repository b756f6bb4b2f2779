"""Generate exercises/ from solutions/ through nbgrader: exercises/ is exactly what nbgrader releases.

    python tools/make_exercises.py          # annotate solutions/ for nbgrader, (re)write exercises/
    python tools/make_exercises.py --check  # exit 1 if solutions/ or exercises/ is out of sync

solutions/ is the single source of the exercises and doubles as nbgrader's *source* notebooks:

* code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` is what students write; nbgrader
  replaces it with ``# YOUR CODE HERE`` / ``raise NotImplementedError()``. Hints belong in ``# hint:``
  comments just above the region, so students keep them (this script moves any it finds inside);
* prose between the markers in a markdown cell is a manually graded answer (1 point);
* a code cell that calls ``grading.check_…`` is an autograded test (1 point): it prints the check's
  report and asserts that it passed, so nbgrader's autograder gives no points for a failed check.
  Lines between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS`` in such a cell are graded but
  removed from the release.

The script writes the nbgrader cell metadata into solutions/ (grade ids from the notebook's name and
each cell's rank), runs ``nbgrader generate_assignment`` in a temporary course directory, and copies
its release to exercises/. Never edit exercises/ by hand: tests/test_exercises.py fails when it
differs from what this script generates, and tests/test_nbgrader.py autogrades both folders.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS, EXERCISES = ROOT / "solutions", ROOT / "exercises"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
CHECK = re.compile(r"^grading\.(check_\w+)\((.*)\)\s*$")
ASSERT = 'assert result, "this check failed: see its report above"'


def _lines(cell: dict) -> list[str]:
    src = cell["source"]
    return src if isinstance(src, list) else src.splitlines(keepends=True)


def _hints_above_region(lines: list[str]) -> list[str]:
    """Move ``# hint:`` comment lines from inside a solution region to just above its BEGIN marker."""
    out, region, begin = [], None, ""
    for line in lines:
        stripped = line.strip()
        if stripped == BEGIN:
            region, begin = [], line
        elif stripped == END:
            if region is None:
                raise ValueError(f"'{END}' without '{BEGIN}'")
            hints = [ln for ln in region if ln.strip().lower().startswith("# hint:")]
            indent = begin[: len(begin) - len(begin.lstrip())]
            out += [indent + h.strip() + "\n" for h in hints] + [begin]
            out += [ln for ln in region if ln not in hints] + [line]
            region = None
        elif region is not None:
            region.append(line)
        else:
            out.append(line)
    if region is not None:
        raise ValueError(f"'{BEGIN}' without '{END}'")
    return out


def _check_cell(lines: list[str]) -> list[str]:
    """``grading.check_x(f)`` → print the report and assert it passed (idempotent)."""
    text = "".join(lines).strip()
    m = CHECK.match(text)
    if m is None:
        return lines
    return [f"result = grading.{m.group(1)}({m.group(2)})\n", "print(result)\n", ASSERT]


def _meta(grade_id: str, *, solution: bool, grade: bool, points: int | None = None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": grade and not solution, "schema_version": 3,
            "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    return meta


def annotate(nb: dict, stem: str) -> dict:
    """``nb`` with nbgrader metadata on its solution, answer and check cells (a new dict)."""
    out = json.loads(json.dumps(nb))
    counts = {"solution": 0, "answer": 0, "check": 0}
    for cell in out["cells"]:
        lines = _lines(cell)
        text = "".join(lines)
        cell["metadata"].pop("nbgrader", None)
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
            if BEGIN in text:
                lines = _hints_above_region(lines)
                counts["solution"] += 1
                cell["metadata"]["nbgrader"] = _meta(f"{stem}-solution-{counts['solution']}", solution=True, grade=False)
            elif "grading.check_" in text:
                lines = _check_cell(lines)
                counts["check"] += 1
                cell["metadata"]["nbgrader"] = _meta(f"{stem}-check-{counts['check']}", solution=False, grade=True,
                                                     points=1)
        elif cell["cell_type"] == "markdown" and BEGIN in text:
            if text.count(BEGIN) != text.count(END):
                raise ValueError(f"{stem}: unbalanced solution markers in a markdown cell")
            counts["answer"] += 1
            cell["metadata"]["nbgrader"] = _meta(f"{stem}-answer-{counts['answer']}", solution=True, grade=True,
                                                 points=1)
        if lines:
            lines[-1] = lines[-1].rstrip("\n")
        cell["source"] = lines
    if not counts["check"]:
        raise ValueError(f"{stem}: no cell calls grading.check_… (nothing to autograde)")
    return out


def render(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def release(sources: dict[str, dict]) -> dict[str, dict]:
    """nbgrader's release of the annotated source notebooks (``stem -> notebook``): one nbgrader call
    for all of them, as one assignment, without a gradebook."""
    with tempfile.TemporaryDirectory() as tmp:
        course = Path(tmp)
        (course / "nbgrader_config.py").write_text(f"c = get_config()\nc.CourseDirectory.root = {str(course)!r}\n")
        (course / "source" / "exercises").mkdir(parents=True)
        for stem, nb in sources.items():
            (course / "source" / "exercises" / f"{stem}.ipynb").write_text(render(nb))
        env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
        proc = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", "exercises", "--force",
                               "--no-db"], cwd=course, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"nbgrader generate_assignment failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        return {stem: json.loads((course / "release" / "exercises" / f"{stem}.ipynb").read_text()) for stem in sources}


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)  # atomic: never a half-written notebook


def main(argv: list[str]) -> int:
    check = "--check" in argv
    EXERCISES.mkdir(exist_ok=True)
    stale = []
    sources = {}
    for sol in sorted(SOLUTIONS.glob("*.ipynb")):
        annotated = annotate(json.loads(sol.read_text()), sol.stem)
        sources[sol.stem] = annotated
        if sol.read_text() != render(annotated):
            stale.append(f"solutions/{sol.name} lacks current nbgrader metadata")
            if not check:
                _write(sol, render(annotated))
    for stem, nb in release(sources).items():
        target = EXERCISES / f"{stem}.ipynb"
        if not target.exists() or target.read_text() != render(nb):
            stale.append(f"exercises/{target.name} is out of sync with solutions/")
            if not check:
                _write(target, render(nb))
    extra = [p for p in EXERCISES.glob("*.ipynb") if p.stem not in sources]
    stale += [f"exercises/{p.name} has no solution in solutions/" for p in extra]
    if check:
        for line in stale:
            print(f"{line} (run: make exercises)")
        return 1 if stale else 0
    for p in extra:
        p.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
