"""The book's sources and, when built, the HTML a reader sees.

The built-book checks run when ``_build/html`` (or ``$MBC_BOOK_HTML``) exists; with ``MBC_REQUIRE_BUILT_BOOK=1``
(set by ``make test``, which builds the book first) a missing build is a failure.
"""
import ast
import html as html_lib
import json
import re
import subprocess
import sys

import pytest
from bookutil import CHAPTERS, HTML, ROOT
from bookutil import built as _built
from bookutil import repo_url as _repo_url
from bookutil import toc_files as _toc_files

sys.path.insert(0, str(ROOT / "tools"))
import checked_outputs as _checked_outputs  # noqa: E402


def test_there_are_chapters():
    assert CHAPTERS, "no notebooks found in notebooks/"


def test_every_chapter_is_in_the_toc_and_every_toc_entry_exists():
    toc = _toc_files()
    for nb in CHAPTERS:
        assert f"notebooks/{nb.stem}" in toc, f"{nb.name} is not in _toc.yml"
    for entry in toc:
        assert list(ROOT.glob(entry + ".*")), f"_toc.yml names {entry}, which does not exist"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapters_store_outputs_only_for_checked_cells_and_start_with_the_setup_cell(path):
    assert not _checked_outputs.problems(path)
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "".join(code[0]["source"]).startswith("# mbc-setup"), "the first code cell must be the setup cell"
    assert nb["cells"][0]["cell_type"] == "markdown" and "".join(nb["cells"][0]["source"]).startswith("# ")
    text = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert "Learning goals" in text and "## Summary" in text
    widget_cells = [c for c in code if "explore(" in "".join(c["source"])]
    assert widget_cells, "every chapter has an explorer"
    assert all("nbval-ignore-output" in c["metadata"].get("tags", []) for c in widget_cells)


def _ends_with_a_bare_glue(source: str) -> bool:
    """A cell whose last statement is ``report.glue(...)`` without a trailing ``;``: IPython echoes the value."""
    try:
        body = ast.parse(source).body
    except SyntaxError:  # IPython magics; none of the chapters' glue cells use them
        return False
    last = body[-1] if body else None
    return (isinstance(last, ast.Expr) and isinstance(last.value, ast.Call)
            and isinstance(last.value.func, ast.Attribute) and last.value.func.attr == "glue"
            and not source.rstrip().endswith(";"))


@pytest.mark.parametrize("path", CHAPTERS + [ROOT / "book" / "appendix.ipynb"], ids=lambda p: p.name)
def test_no_cell_echoes_a_glued_value(path):
    """A glued sentence belongs in the prose; as a cell's last expression it also prints as a stray quoted string."""
    cells = json.loads(path.read_text())["cells"]
    echo = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and _ends_with_a_bare_glue("".join(c["source"]))]
    assert not echo, f"cells {echo} end with a bare report.glue(...): assign it or end the line with ';'"


def test_the_echo_check_sees_a_bare_glue():
    assert _ends_with_a_bare_glue('x = 1\nreport.glue("a", x)')
    assert not _ends_with_a_bare_glue('report.glue("a", 1);') and not _ends_with_a_bare_glue('a = report.glue("a", 1)')


def test_setup_cells_use_the_repository_url_from_config():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "setup_cell.py"), "check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    url = _repo_url()
    for nb in CHAPTERS:
        assert url in nb.read_text()


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_built_chapter_has_figures_explorer_and_colab_button(path):
    _built()
    page = HTML / "notebooks" / f"{path.stem}.html"
    assert page.exists(), f"{page} was not built"
    html = page.read_text()
    assert html.count('src="data:image/png') + len(re.findall(r'<img[^>]+src="[^"]+\.png"', html)) >= 3
    assert 'class="mbc-explorer"' in html, "the explorer must be the static, offline one in the built book"
    assert "Traceback" not in html, "a cell raised during the build"
    colab = f"https://colab.research.google.com/github/{_repo_url().split('github.com/')[1]}/blob/main/notebooks/{path.name}"
    assert colab in html, f"no Colab launch link {colab}"


def test_built_pages_have_no_broken_internal_links():
    _built()
    broken = []
    for page in HTML.rglob("*.html"):
        for href in re.findall(r'href="([^"#?:]+\.html)(?:#[^"]*)?"', page.read_text()):
            if not (page.parent / href).resolve().exists():
                broken.append(f"{page.relative_to(HTML)} -> {href}")
    assert not broken, broken


def _page_text(page_html: str) -> str:
    """The text a reader sees, without scripts, styles and code blocks."""
    s = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", page_html, flags=re.S)
    s = re.sub(r"<pre[^>]*>.*?</pre>", " ", s, flags=re.S)
    return html_lib.unescape(re.sub(r"<[^>]+>", " ", s))


def test_built_pages_show_no_unrendered_math():
    """Math in glued text or in the bibliography is not rendered: a reader would see the dollars and backslashes."""
    _built()
    raw = {}
    for page in HTML.rglob("*.html"):
        found = re.findall(r"\$[^$\n]{1,60}\$", _page_text(page.read_text()))
        if found:
            raw[str(page.relative_to(HTML))] = found[:3]
    assert not raw, raw
