"""What the book tests share: where the book's sources and built HTML are, the TOC, the repository.

``$MBC_BOOK_HTML`` points the built-book tests at another build (default ``_build/html``);
``MBC_REQUIRE_BUILT_BOOK=1`` (set by ``make test``, which builds the book first) turns a
missing build from a skip into a failure.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("MBC_BOOK_HTML") or ROOT / "_build" / "html").resolve()
CHAPTERS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def toc_files() -> list[str]:
    """The ``file:`` entries of ``_toc.yml`` (without suffix), in book order."""
    return re.findall(r"file:\s*(\S+)", (ROOT / "_toc.yml").read_text())


def toc_root() -> str:
    """The ``root:`` page of ``_toc.yml`` (without suffix)."""
    return re.search(r"^root:\s*(\S+)", (ROOT / "_toc.yml").read_text(), re.M).group(1)


def repository() -> dict[str, str]:
    """The ``repository:`` block of ``_config.yml`` (url, branch, path_to_book), as strings."""
    text = (ROOT / "_config.yml").read_text()
    block = re.search(r"^repository:\s*\n((?:[ \t]+.*\n?)+)", text, re.M).group(1)
    out = {}
    for key, value in re.findall(r"^\s+(\w+):\s*(.*?)\s*(?:#.*)?$", block, re.M):
        out[key] = value.strip("\"'")
    return out


def repo_url() -> str:
    return repository()["url"]


def colab_url(source: str) -> str:
    """The Colab launch link of the notebook ``source`` (a path relative to the book, with suffix)."""
    repo = repository()
    slug = repo["url"].rstrip("/").split("github.com/")[1]
    prefix = repo.get("path_to_book", "").strip("/")
    path = f"{prefix}/{source}" if prefix else source
    return f"https://colab.research.google.com/github/{slug}/blob/{repo.get('branch', 'main')}/{path}"


def built() -> bool:
    """True when the book is built; otherwise skip (or fail under ``MBC_REQUIRE_BUILT_BOOK=1``)."""
    if (HTML / "index.html").exists():
        return True
    if os.environ.get("MBC_REQUIRE_BUILT_BOOK") == "1":
        pytest.fail(f"the book was not built ({HTML / 'index.html'} is missing): run `make book-fast` first")
    pytest.skip(f"book not built ({HTML} is absent); `make test` builds it")
