"""The notebooks' shared first cell, generated from the repository URL in _config.yml and the version
in pyproject.toml.

    python tools/setup_cell.py sync     # rewrite the setup cell of every chapter
    python tools/setup_cell.py check    # exit 1 if any chapter's setup cell is stale

The URL lives in one place (``repository.url`` in ``_config.yml``); the launch buttons read it there
and this tool copies it into the cells. The version lives in one place too (``version`` in
``pyproject.toml``, equal to ``mbc_lib.__version__``): a notebook installs the library of the book it
belongs to (the git tag ``v<version>``), reinstalls when another version is installed, and stops with
what to do when another version is already loaded. tests/test_book.py runs ``check``.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = "# mbc-setup"
#: the book shows the setup cell folded (its output — device, profile, seed — stays visible)
HIDE = "hide-input"

TEMPLATE = '''{marker} — works locally and on Colab: installs the course library of this book's version when needed.
import importlib.metadata as metadata, subprocess, sys
VERSION = "{version}"  # the mbc_lib version this notebook belongs to (make sync-setup writes it)
try:
    installed = metadata.version("mbc_lib")
except metadata.PackageNotFoundError:
    installed = None
if installed != VERSION:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"mbc_lib @ git+{url}@v{{VERSION}}"], check=True)
import mbc_lib
if mbc_lib.__version__ != VERSION:
    raise RuntimeError(f"mbc_lib {{mbc_lib.__version__}} is loaded but this notebook needs {{VERSION}}: restart the "
                       "kernel (Colab: Runtime > Restart session) and run this cell again")
info = mbc_lib.setup({args})'''


def version() -> str:
    """The library's version, from pyproject.toml (``mbc_lib.__version__`` must agree)."""
    m = re.search(r'^version\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(), flags=re.M)
    if not m:
        raise SystemExit("pyproject.toml has no version")
    return m.group(1)


def repository_url() -> str:
    text = (ROOT / "_config.yml").read_text()
    m = re.search(r"^repository:\s*\n\s+url:\s*(\S+)", text, flags=re.M)
    if not m:
        raise SystemExit("_config.yml has no repository.url")
    return m.group(1).rstrip("/")


def setup_source(robot: bool = False, chapter: int | None = None) -> str:
    args = ", ".join([*(["render=True"] if robot else []), *([f"chapter={chapter}"] if chapter else [])])
    return TEMPLATE.format(marker=MARKER, url=repository_url(), version=version(), args=args)


def chapter_number(path: Path) -> int | None:
    """The chapter a notebook is (``notebooks/03_….ipynb`` -> 3), None for solutions and the appendix."""
    m = re.match(r"(\d+)_", path.name)
    return int(m.group(1)) if path.parent.name == "notebooks" and m else None


def chapters() -> list[Path]:
    """Every notebook with a setup cell: the chapters, the solutions, and the book's appendix."""
    appendix = [p for p in [ROOT / "book" / "appendix.ipynb"] if p.exists()]
    return sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "solutions").glob("*.ipynb")) + appendix


def _setup_index(nb: dict) -> int | None:
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code" and "".join(cell["source"]).startswith(MARKER):
            return i
    return None


def stale(path: Path) -> str | None:
    """A reason why ``path``'s setup cell is missing or out of date, or None."""
    nb = json.loads(path.read_text())
    i = _setup_index(nb)
    if i is None:
        return "no setup cell (a code cell starting with '# mbc-setup')"
    src = "".join(nb["cells"][i]["source"])
    if src != setup_source(robot="render=True" in src, chapter=chapter_number(path)):
        return "setup cell differs from tools/setup_cell.py's template (run: python tools/setup_cell.py sync)"
    if HIDE not in nb["cells"][i]["metadata"].get("tags", []):
        return f"setup cell lacks the {HIDE!r} tag (the book folds its code; run: python tools/setup_cell.py sync)"
    return None


def sync(path: Path) -> bool:
    nb = json.loads(path.read_text())
    i = _setup_index(nb)
    if i is None:
        return False
    robot = "render=True" in "".join(nb["cells"][i]["source"])
    nb["cells"][i]["source"] = setup_source(robot, chapter_number(path)).splitlines(keepends=True)
    tags = nb["cells"][i]["metadata"].setdefault("tags", [])
    if HIDE not in tags:
        tags.append(HIDE)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    tmp.replace(path)  # atomic: never a half-written notebook
    return True


def main(argv: list[str]) -> int:
    cmd = argv[1] if len(argv) > 1 else "check"
    if cmd == "sync":
        for p in chapters():
            sync(p)
        return 0
    bad = {p: r for p in chapters() if (r := stale(p))}
    for p, r in bad.items():
        print(f"{p.relative_to(ROOT)}: {r}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
