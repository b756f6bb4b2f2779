"""The habits that keep the library's shape: its floors (import-linter contracts in pyproject.toml) and its lint
rules (ruff, configured there too) hold on every commit. Both tools come with the ``test`` extra."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    """The console script ``name`` of this Python's environment (or on PATH)."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: it comes with the test extra (pip install -e '.[test]')")
    return found


def test_import_contracts_hold():
    out = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, f"an import breaks the library's floors (ARCHITECTURE.md):\n{out.stdout}{out.stderr}"
    assert "0 broken" in out.stdout and "kept" in out.stdout


def test_ruff_is_clean():
    out = subprocess.run([_tool("ruff"), "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, f"ruff check . finds problems (fix them, or `ruff check --fix .`):\n{out.stdout}{out.stderr}"


def test_the_floor_contract_catches_an_upward_import(tmp_path):
    """The layers contract is not vacuous: a copy of the package where a diagnostic imports a policy breaks it."""
    pkg = tmp_path / "mbc_lib"
    shutil.copytree(ROOT / "mbc_lib", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    with open(pkg / "diagnostics" / "modes.py", "a") as f:
        f.write("\nfrom ..policies import make as _upward  # an import from a higher floor\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    out = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(tmp_path), "PATH": str(Path(sys.executable).parent)})
    assert out.returncode != 0 and "mbc_lib.diagnostics.modes -> mbc_lib.policies" in out.stdout, out.stdout
