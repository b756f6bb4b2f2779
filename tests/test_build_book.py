"""tools/build_book.py: which notebooks the book executes, and in which order they may run."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import build_book  # noqa: E402


def test_every_chapter_and_the_appendix_are_executed_and_no_exercise_is():
    executed = {p.relative_to(ROOT).as_posix() for p in build_book.to_execute(ROOT)}
    chapters = {p.relative_to(ROOT).as_posix() for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    assert chapters <= executed and "book/appendix.ipynb" in executed
    assert not any(p.startswith("exercises/") for p in executed)  # shown as students get them


def test_a_chapter_that_reads_other_chapters_tables_waits_for_them():
    nb = {build_book.chapter_of(p): p for p in build_book.to_execute(ROOT) if build_book.chapter_of(p)}
    assert build_book.reads_chapters(nb[11]) == {4, 7, 8, 9, 10}  # the guidance chapter reads the evidence
    assert build_book.reads_chapters(nb[12]) == {7}  # chapter 7's table
    assert build_book.reads_chapters(nb[3]) == set()


def test_the_runner_orders_dependencies_and_reports_a_failing_cell(tmp_path):
    def notebook(name, code):
        path = tmp_path / name
        cells = [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [],
                  "source": src} for i, src in enumerate(code)]
        path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
        return path

    first = notebook("07_first.ipynb", ["open('order.txt', 'a').write('7')"])
    later = notebook("12_later.ipynb", ["# experiments.run(\"synthetic\")\nopen('order.txt', 'a').write('12')"])
    broken = notebook("05_broken.ipynb", ["x = 1", "raise ValueError('measured nothing')"])
    results = dict(build_book.run_all([later, broken, first], tmp_path, jobs=2, timeout=120))
    assert (tmp_path / "order.txt").read_text() == "712"  # chapter 12 reads chapter 7's table: after it
    assert results[first]["status"] == results[later]["status"] == "ok"
    assert results[broken]["status"].startswith("error in cell 1") and "measured nothing" in results[broken]["status"]
    executed = json.loads(broken.read_text())  # the executed copy is kept, with the error's traceback
    assert executed["cells"][1]["outputs"] and executed["cells"][1]["outputs"][0]["output_type"] == "error"


def test_bad_jobs_are_refused(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["build_book.py", "--jobs", "0"])
    with pytest.raises(SystemExit):
        build_book.main()
