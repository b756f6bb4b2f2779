"""Generate exercises/ from solutions/ — the single source of the exercises.

    python tools/make_exercises.py          # (re)write exercises/*.ipynb
    python tools/make_exercises.py --check  # exit 1 if exercises/ is out of sync

In a solution notebook, what students write lies between ``### BEGIN SOLUTION`` and
``### END SOLUTION`` (the markers nbgrader understands):

* in a **code** cell the region becomes ``raise NotImplementedError(<hint>)``, indented like
  the region, where <hint> is the text of the region's ``# hint:`` comment lines;
* in a **markdown** cell the region becomes ``*Your answer here.*``.

Outputs are never stored. exercises/ is never edited by hand: tests/test_exercises.py
fails when it differs from what this script generates.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS, EXERCISES = ROOT / "solutions", ROOT / "exercises"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


def _strip_code(lines: list[str]) -> list[str]:
    out, region, indent = [], None, ""
    for line in lines:
        stripped = line.strip()
        if stripped == BEGIN:
            region, indent = [], line[: len(line) - len(line.lstrip())]
            continue
        if stripped == END:
            if region is None:
                raise ValueError(f"'{END}' without '{BEGIN}'")
            hints = [l.strip()[len("# hint:"):].strip() for l in region if l.strip().lower().startswith("# hint:")]
            message = " ".join(hints) or "write your solution here"
            out.extend(f"{indent}# hint: {h}\n" for h in hints)
            out.append(f"{indent}raise NotImplementedError({message!r})\n")
            region = None
            continue
        if region is not None:
            region.append(line)
        else:
            out.append(line)
    if region is not None:
        raise ValueError(f"'{BEGIN}' without '{END}'")
    return out


def _strip_markdown(lines: list[str]) -> list[str]:
    text = "".join(lines)
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if text.count(BEGIN) != text.count(END):
        raise ValueError("unbalanced solution markers in a markdown cell")
    return pattern.sub("*Your answer here.*", text).splitlines(keepends=True)


def exercise_from_solution(nb: dict) -> dict:
    """The student version of solution notebook ``nb`` (a new dict)."""
    out = json.loads(json.dumps(nb))
    for cell in out["cells"]:
        src = cell["source"] if isinstance(cell["source"], list) else cell["source"].splitlines(keepends=True)
        if cell["cell_type"] == "code":
            cell["source"] = _strip_code(src)
            cell["outputs"], cell["execution_count"] = [], None
        elif cell["cell_type"] == "markdown":
            cell["source"] = _strip_markdown(src)
    # ensure the last line of every cell has no trailing newline, as Jupyter stores it
    for cell in out["cells"]:
        if cell["source"]:
            cell["source"][-1] = cell["source"][-1].rstrip("\n")
    return out


def render(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    EXERCISES.mkdir(exist_ok=True)
    stale = []
    expected_names = set()
    for sol in sorted(SOLUTIONS.glob("*.ipynb")):
        text = render(exercise_from_solution(json.loads(sol.read_text())))
        target = EXERCISES / sol.name
        expected_names.add(sol.name)
        if not target.exists() or target.read_text() != text:
            stale.append(target.name)
            if not check:
                tmp = target.with_suffix(".tmp")
                tmp.write_text(text)
                tmp.replace(target)  # atomic: never a half-written notebook
    extra = [p.name for p in EXERCISES.glob("*.ipynb") if p.name not in expected_names]
    if check:
        for name in stale:
            print(f"exercises/{name} is out of sync with solutions/ (run: make exercises)")
        for name in extra:
            print(f"exercises/{name} has no solution in solutions/ (remove it or add the solution)")
        return 1 if stale or extra else 0
    for name in extra:
        (EXERCISES / name).unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
