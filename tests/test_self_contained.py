"""The course is self-contained: it cites only what is in the repository.

* No page, exercise, docstring, test or tool refers to a document outside the repository (design
  or theory notes, their section numbers "§2b", equation numbers "criterion (3)", a "../shared" path).
  The mathematics lives in the book: in the chapters and in the appendix (book/appendix.ipynb).
* Every appendix label that the chapters, exercises and book pages cite with {ref}`app-...`, and
  that the library, the tests and the README name as "app-...", is one the appendix defines — on a
  section heading.
"""
import json
import re

import pytest
from bookutil import ROOT

APPENDIX = ROOT / "book" / "appendix.ipynb"
AREAS = ["notebooks", "solutions", "exercises", "book", "mbc_lib", "tests", "tools", "README.md"]
SUFFIXES = {".py", ".ipynb", ".md", ".yml", ".yaml", ".bib", ".txt", ".toml", ".cfg", ".rst", ".sh", ".mjs"}
SKIP_DIRS = {"__pycache__", ".ipynb_checkpoints", "_build", ".pytest_cache"}
# a reference to a document outside the repository (the patterns are split so this file does not match itself)
OUTSIDE = re.compile("|".join([
    "THE" + "ORY",                # the theory notes, with or without ".md"
    "DES" + r"IGN\.md",           # the design notes
    "DES" + r"IGN\s*§",           # ... cited by section
    r"criterion \(" + r"3\)",     # an equation number of the theory notes
    r"\.\./sha" + "red",          # a path out of the repository
    "§" + r"\s*\d",               # any section number: the book cites its own sections by label or chapter
]))
# the appendix labels the rest of the course may cite (a section heading of the appendix each)
REQUIRED_LABELS = {
    "app-rate", "app-fano", "app-collapse", "app-collapse-l2", "app-collapse-l1", "app-beta-hard",
    "app-collapse-check", "app-trained-collapse", "app-act", "app-aggregate", "app-counting",
    "app-counting-d", "app-isoperimetry", "app-transport-check", "app-diagnostics",
}
REF_ROLE = re.compile(r"\{ref\}`(?:[^`<]*<)?(app-[A-Za-z0-9_-]+)>?`")
PLAIN_LABEL = re.compile(r"(?<![\w/.-])(app-[a-z0-9]+(?:-[a-z0-9]+)*)\b")


def _files(area: str) -> list:
    path = ROOT / area
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES
                  and not SKIP_DIRS.intersection(p.relative_to(ROOT).parts) and p.name != "test_self_contained.py")


def _lines(path):
    """(where, text) for every line a reader sees: the cells' sources of a notebook, else the file's lines."""
    rel = path.relative_to(ROOT).as_posix()
    if path.suffix == ".ipynb":
        nb = json.loads(path.read_text(encoding="utf-8"))
        for i, cell in enumerate(nb["cells"]):
            for j, line in enumerate("".join(cell["source"]).splitlines(), 1):
                yield f"{rel}:cell {i}:line {j}", line
    else:
        for j, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            yield f"{rel}:{j}", line


def _markdown(path) -> str:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")


def appendix_labels() -> dict[str, str]:
    """label -> the heading it sits on, for every ``(app-...)=`` target of the appendix."""
    labels = {}
    lines = _markdown(APPENDIX).splitlines()
    for i, line in enumerate(lines):
        m = re.fullmatch(r"\((app-[A-Za-z0-9_-]+)\)=\s*", line)
        if m:
            following = next((t for t in lines[i + 1:] if t.strip()), "")
            labels[m.group(1)] = following
    return labels


@pytest.mark.parametrize("area", AREAS)
def test_no_reference_to_documents_outside_the_repository(area):
    hits = [f"{where}: {line.strip()[:140]}" for path in _files(area) for where, line in _lines(path)
            if OUTSIDE.search(line)]
    assert not hits, (f"{len(hits)} reference(s) to documents outside the repository in {area} — cite the book "
                      "instead (a chapter, or the appendix by label, e.g. 'book appendix, app-fano'):\n"
                      + "\n".join(hits))


def test_the_appendix_is_in_the_book_and_stored_without_outputs():
    assert APPENDIX.exists(), "book/appendix.ipynb is missing"
    toc = (ROOT / "_toc.yml").read_text()
    assert re.search(r"file:\s*book/appendix\b", toc), "book/appendix is not in _toc.yml"
    nb = json.loads(APPENDIX.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "clear the outputs"


def test_the_appendix_defines_its_labels_on_headings():
    labels = appendix_labels()
    missing = REQUIRED_LABELS - set(labels)
    assert not missing, f"the appendix lacks the labels {sorted(missing)}"
    not_on_heading = {k: v for k, v in labels.items() if not v.startswith("#")}
    assert not not_on_heading, f"labels not followed by a section heading: {not_on_heading}"


def test_every_cited_appendix_label_exists():
    labels = set(appendix_labels())
    unknown = []
    for area in ["notebooks", "solutions", "exercises", "book"]:
        for path in _files(area):
            for where, line in _lines(path):
                unknown += [f"{where}: {{ref}}`{m}`" for m in REF_ROLE.findall(line) if m not in labels]
    for area in ["mbc_lib", "tests", "README.md"]:
        for path in _files(area):
            for where, line in _lines(path):
                unknown += [f"{where}: {m}" for m in PLAIN_LABEL.findall(line) if m not in labels]
    assert not unknown, "appendix labels cited but not defined in book/appendix.ipynb:\n" + "\n".join(unknown)
