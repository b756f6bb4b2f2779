"""Build the book with its chapters executed in parallel: every notebook of the table of contents runs in its
own kernel, ``--jobs`` at a time, then Jupyter Book renders the executed copies.

    python tools/build_book.py                 # what `make book` runs (profile: $MBC_PROFILE, default standard)
    python tools/build_book.py --jobs 1        # one notebook at a time
    python tools/build_book.py --execute-one NB --out COPY   # internal: one notebook, in this process

Jupyter Book 1.x executes notebooks one after another, and the course's training runs on one CPU thread
(``mbc_lib.runtime.cpu_threads``), so a serial build leaves every other core idle. This tool

1. copies the book's sources into ``_build/stage`` (the repository stays output-free);
2. executes each chapter notebook there with nbclient, ``--jobs`` at a time. A chapter that reads another
   chapter's tables (``experiments.run("name", ...)`` or ``guidance.gather``, through the results cache)
   starts after that chapter has finished, so it reads the tables instead of recomputing them;
3. marks each executed copy ``execution_mode: off`` (myst-nb's per-file setting) and runs
   ``jupyter-book build -W -n --keep-going`` on the stage into ``_build/html``. Pages that were not
   pre-executed (executed MyST Markdown, e.g. ``book/how-to-use.md``) are executed by the build as before.

Any cell that raises, or a notebook past its time limit (``execute.timeout`` in ``_config.yml``, per cell),
fails the build before rendering, naming the notebook and the cell; the executed copy is kept in the stage
for inspection. Wall times per notebook are printed as they finish.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml
from kernel_wakeup import keep_awake

ROOT = Path(__file__).resolve().parents[1]
#: what the stage leaves out: the environment, build outputs, caches, version control
SKIP = {".git", ".venv", "_build", ".pytest_cache", "__pycache__", ".ipynb_checkpoints", "node_modules",
        "mbc_lib.egg-info"}


def toc_files(root: Path) -> list[Path]:
    """Every file of ``_toc.yml`` (root, chapters and sections), resolved to its path with suffix."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    names = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                names.append(e["file"])
            walk(e.get("sections"))
            walk(e.get("chapters"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    out = []
    for name in names:
        found = [root / f"{name}{suffix}" for suffix in (".ipynb", ".md") if (root / f"{name}{suffix}").exists()]
        if not found:
            raise FileNotFoundError(f"_toc.yml names {name!r}, but neither {name}.ipynb nor {name}.md exists")
        out.append(found[0])
    return out


def to_execute(root: Path) -> list[Path]:
    """The notebooks (``.ipynb``) of the table of contents that the book executes (not excluded in ``_config.yml``)."""
    cfg = yaml.safe_load((root / "_config.yml").read_text())
    excluded = cfg.get("execute", {}).get("exclude_patterns", [])
    nbs = [p for p in toc_files(root) if p.suffix == ".ipynb"]
    return [p for p in nbs if not any(p.relative_to(root).match(pat) for pat in excluded)]


def chapter_of(path: Path) -> int | None:
    """``notebooks/07_synthetic_experiments.ipynb`` -> 7; ``None`` for pages without a chapter number."""
    m = re.match(r"(\d+)_", path.name)
    return int(m.group(1)) if m else None


def reads_chapters(path: Path) -> set[int]:
    """The chapters whose tables ``path`` reads through the results cache: every ``experiments.run("name"``
    (chapter :data:`mbc_lib.experiments.CHAPTER_OF`) and ``guidance.gather`` (chapters 7–9), other than its own."""
    from mbc_lib.experiments import CHAPTER_OF
    from mbc_lib.experiments.guidance import SOURCES

    code = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
    chapters = {CHAPTER_OF[n] for n in re.findall(r"experiments\.run\(\s*[\"'](\w+)[\"']", code) if n in CHAPTER_OF}
    if re.search(r"guidance\.gather\(", code):
        chapters |= set(SOURCES.values())
    return chapters - {chapter_of(path)}


def execute_notebook(src: Path, out: Path, timeout: float, deadline: float | None = None) -> dict:
    """Execute ``src`` cell by cell in a fresh kernel (working directory: its folder), each cell within ``timeout``
    seconds and, with ``deadline``, the whole notebook within that many; write the executed copy to ``out``
    atomically, also when a cell fails. Returns ``{"status", "seconds", "slowest": [cell, s]}``; status is
    ``"ok"`` or says which cell failed and why."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    t0 = time.perf_counter()
    book = nbformat.read(src, as_version=4)
    client = NotebookClient(book, timeout=max(1, int(timeout)), kernel_name="python3",
                            resources={"metadata": {"path": str(src.parent)}})
    status, times = "ok", []
    with client.setup_kernel(), keep_awake(client.km):  # a kernel that misses a request is woken (kernel_wakeup)
        for i, cell in enumerate(book.cells):
            left = timeout if deadline is None else min(timeout, deadline - (time.perf_counter() - t0))
            if left <= 0:
                status = f"deadline before cell {i}"
                break
            client.timeout = max(1, int(left))
            c0 = time.perf_counter()
            try:
                client.execute_cell(cell, i)
            except CellTimeoutError:
                status = f"cell {i} ran past its {left:.0f} s limit"
                break
            except CellExecutionError as err:
                status = f"error in cell {i}: {str(err).strip().splitlines()[-1][:300]}"
                break
            except Exception as err:  # a dead kernel, ...: reported, the executed part still saved
                status = f"{type(err).__name__} in cell {i}: {str(err)[:300]}"
                break
            finally:
                times.append((i, time.perf_counter() - c0))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    nbformat.write(book, tmp)
    tmp.replace(out)
    slowest = max(times, key=lambda t: t[1]) if times else (-1, 0.0)
    return {"status": status, "seconds": round(time.perf_counter() - t0, 1),
            "slowest": [slowest[0], round(slowest[1], 1)]}


def stage(root: Path, where: Path) -> None:
    """A fresh copy of the book's sources at ``where`` (everything but :data:`SKIP`)."""
    if where.exists():
        shutil.rmtree(where)
    shutil.copytree(root, where, ignore=lambda d, names: [n for n in names if n in SKIP or n.endswith(".pyc")])


def run_all(notebooks: list[Path], root: Path, jobs: int, timeout: float) -> list[tuple[Path, dict]]:
    """Execute ``notebooks`` (paths inside the stage ``root``), each in its own process, ``jobs`` at a time,
    every one after the chapters whose tables it reads. Returns (notebook, result) in finishing order."""
    by_chapter = {chapter_of(p): p for p in notebooks if chapter_of(p) is not None}
    needs = {p: {by_chapter[c] for c in reads_chapters(p) if c in by_chapter} for p in notebooks}
    needed_by = {p: sum(p in n for n in needs.values()) for p in notebooks}
    # what others wait for first, then the later (longer) chapters
    todo = sorted(notebooks, key=lambda p: (-needed_by[p], -(chapter_of(p) or 0)))
    running: dict[subprocess.Popen, tuple[Path, float]] = {}
    done: list[tuple[Path, dict]] = []
    finished: set[Path] = set()
    start = time.perf_counter()
    while todo or running:
        for p in [p for p in todo if needs[p] <= finished][: max(0, jobs - len(running))]:
            todo.remove(p)
            cmd = [sys.executable, str(Path(__file__).resolve()), "--execute-one", str(p), "--timeout", str(timeout)]
            running[subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)] = (
                p, time.perf_counter())
        if not running:  # what is left waits for a notebook that is not in the build
            raise RuntimeError(f"cannot order {', '.join(map(str, todo))}: they wait for notebooks not in the build")
        time.sleep(0.5)
        for proc in [q for q in running if q.poll() is not None]:
            p, t0 = running.pop(proc)
            tail = proc.stdout.read() if proc.stdout else ""
            try:
                result = json.loads(next(x for x in reversed(tail.splitlines()) if x.startswith('{"status"')))
            except (StopIteration, ValueError):
                result = {"status": f"the executor exited with code {proc.returncode}: {tail[-1000:]}",
                          "seconds": round(time.perf_counter() - t0, 1), "slowest": [-1, 0.0]}
            done.append((p, result))
            finished.add(p)
            print(f"[{time.perf_counter() - start:7.1f} s] {p.relative_to(root)}: {result['seconds']:.1f} s, "
                  f"{result['status']} ({len(done)} of {len(notebooks)})", flush=True)
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="notebooks executed at once (default: 2, or 1 on a one-core machine)")
    parser.add_argument("--path-output", type=Path, default=ROOT,
                        help="the book goes to PATH_OUTPUT/_build/html (default: the repository)")
    parser.add_argument("--stage", type=Path, default=None,
                        help="where the sources are copied (default: PATH_OUTPUT/_build/stage)")
    parser.add_argument("--execute-one", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.execute_one is not None:  # internal: one notebook, executed in place in the stage
        print(json.dumps(execute_notebook(args.execute_one, args.execute_one, args.timeout)), flush=True)
        return
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    timeout = float(yaml.safe_load((ROOT / "_config.yml").read_text()).get("execute", {}).get("timeout", 1800))
    args.stage = args.stage or args.path_output / "_build" / "stage"
    t0 = time.perf_counter()
    stage(ROOT, args.stage)
    notebooks = to_execute(args.stage)
    print(f"executing {len(notebooks)} notebooks, {args.jobs} at a time (profile {os.environ.get('MBC_PROFILE') or 'standard'})",
          flush=True)
    results = run_all(notebooks, args.stage, args.jobs, timeout)
    failed = [(p, r) for p, r in results if r["status"] != "ok"]
    if failed:
        for p, r in failed:
            print(f"FAILED {p.relative_to(args.stage)}: {r['status']} (executed copy: {p})", file=sys.stderr)
        sys.exit(1)
    for p, _ in results:  # rendered from their outputs: myst-nb's per-file execution mode
        nb = json.loads(p.read_text())
        nb.setdefault("metadata", {}).setdefault("mystnb", {})["execution_mode"] = "off"
        p.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    executed = time.perf_counter() - t0
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", "-W", "-n", "--keep-going", str(args.stage),
           "--path-output", str(args.path_output)]
    rc = subprocess.call(cmd, cwd=ROOT)
    total = time.perf_counter() - t0
    print(f"notebooks executed in {executed:.0f} s ({args.jobs} at a time); book built in {total:.0f} s in all")
    sys.exit(rc)


if __name__ == "__main__":
    main()
