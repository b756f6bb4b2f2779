"""The notebooks' shared first cell, generated from the repository URL in _config.yml.

    python tools/setup_cell.py sync     # rewrite the setup cell of every chapter
    python tools/setup_cell.py check    # exit 1 if any chapter's setup cell is stale

The URL lives in one place (``repository.url`` in ``_config.yml``); the launch buttons
read it there and this tool copies it into the cells. tests/test_book.py runs ``check``.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = "# mbc-setup"

TEMPLATE = '''{marker} — works locally and on Colab: installs the course library when it is missing.
import importlib.util, subprocess, sys
if importlib.util.find_spec("mbc_lib") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "mbc_lib @ git+{url}"], check=True)
import mbc_lib
info = mbc_lib.setup({args})'''


def repository_url() -> str:
    text = (ROOT / "_config.yml").read_text()
    m = re.search(r"^repository:\s*\n\s+url:\s*(\S+)", text, flags=re.M)
    if not m:
        raise SystemExit("_config.yml has no repository.url")
    return m.group(1).rstrip("/")


def setup_source(robot: bool = False) -> str:
    return TEMPLATE.format(marker=MARKER, url=repository_url(), args="render=True" if robot else "")


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
    if src != setup_source(robot="render=True" in src):
        return "setup cell differs from tools/setup_cell.py's template (run: python tools/setup_cell.py sync)"
    return None


def sync(path: Path) -> bool:
    nb = json.loads(path.read_text())
    i = _setup_index(nb)
    if i is None:
        return False
    robot = "render=True" in "".join(nb["cells"][i]["source"])
    nb["cells"][i]["source"] = setup_source(robot).splitlines(keepends=True)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
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
