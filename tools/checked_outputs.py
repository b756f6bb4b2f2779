"""Reference outputs for the cells marked ``# NBVAL_CHECK_OUTPUT``, and only for them.

    python tools/checked_outputs.py store                 # execute and store, every chapter
    python tools/checked_outputs.py store notebooks/05_transport_maps.ipynb
    python tools/checked_outputs.py check                 # exit 1 if a chapter breaks the rule

Chapters are stored without outputs, except the cells whose printout is deterministic and worth
checking: those carry the output they printed (and the values they glue into the prose), and ``pytest --nbval-lax`` compares a fresh run
against it. nbval skips a cell that has never run (no ``execution_count``), so a marked cell
without a stored output would check nothing; ``check`` (run by tests/test_book.py) refuses that.

``store`` runs a chapter in a fresh kernel at ``MBC_PROFILE=fast`` up to its last marked cell
(the marked cells are theory printouts near the top; they do not depend on the profile), keeps
the outputs of the marked cells, clears every other cell, and writes the file atomically.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARK = "# NBVAL_CHECK_OUTPUT"


def chapters() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "solutions").glob("*.ipynb"))


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return src if isinstance(src, str) else "".join(src)


def is_marked(cell: dict) -> bool:
    return cell.get("cell_type") == "code" and _source(cell).lstrip().startswith(MARK)


def _code_cells(path: Path) -> tuple[dict, list[dict]]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return nb, [c for c in nb["cells"] if c["cell_type"] == "code"]


def _checkable(output: dict) -> bool:
    """Printed text, or a value the cell glues into the prose (myst-nb's glue: a display tagged ``scrapbook``)."""
    return output["output_type"] == "stream" or (
        output["output_type"] == "display_data" and "scrapbook" in output.get("metadata", {}))


def problems(path: Path) -> list[str]:
    """What breaks the rule in ``path``: unmarked code cells with outputs or an execution count,
    marked cells without a stored, text-only output."""
    out = []
    for i, cell in enumerate(_code_cells(path)[1]):
        if is_marked(cell):
            if not cell.get("outputs") or cell.get("execution_count") is None:
                out.append(f"{path.name}: code cell {i} is marked {MARK} but has no stored output "
                           f"(run `python tools/checked_outputs.py store {_shown(path)}`)")
            elif not all(_checkable(o) for o in cell["outputs"]):
                out.append(f"{path.name}: code cell {i} is marked {MARK}; only printed text and glued values "
                           "may be checked (no figures, no rich displays)")
        elif cell.get("outputs") or cell.get("execution_count") is not None:
            out.append(f"{path.name}: code cell {i} has outputs: clear them (only {MARK} cells keep theirs)")
    return out


def _write_atomic(nb: dict, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".ipynb.tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def store(path: Path, timeout: int = 600) -> int:
    """Execute ``path`` up to its last marked cell and store the marked cells' outputs (only);
    returns how many cells were stored."""
    import nbformat
    from nbclient import NotebookClient

    nb, code = _code_cells(path)
    marked = [i for i, c in enumerate(code) if is_marked(c)]
    for cell in code:
        cell["outputs"], cell["execution_count"] = [], None
    if marked:
        os.environ.update(MBC_PROFILE="fast", MBC_PROGRESS="0")
        run = nbformat.v4.new_notebook(metadata=nb["metadata"], cells=[
            nbformat.v4.new_code_cell(_source(c)) for c in code[: marked[-1] + 1]])
        client = NotebookClient(run, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        with client.setup_kernel():
            for j, cell in enumerate(run.cells):
                client.execute_cell(cell, j)
        for n, i in enumerate(marked, start=1):
            code[i]["outputs"] = [dict(o) for o in run.cells[i].outputs]
            code[i]["execution_count"] = n
    _write_atomic(nb, path)
    return len(marked)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"store", "check"}:
        print(__doc__)
        return 2
    paths = [Path(p).resolve() for p in argv[1:]] or chapters()
    if argv[0] == "store":
        for path in paths:
            print(f"{_shown(path)}: {store(path)} checked cell(s) stored")
        return 0
    found = [p for path in paths for p in problems(path)]
    print("\n".join(found) or f"{len(paths)} notebooks: outputs stored only for {MARK} cells, all of them")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
