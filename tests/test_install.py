"""Installing the course changes none of the packages Colab preinstalls (constraints/colab.txt).

Resolved with pip's dry run for Colab's Python (3.13) from binary wheels only: metadata is read from
the package index, nothing is downloaded or installed. Skipped when the index cannot be reached.
"""
import json
import re
import subprocess
import sys
import urllib.request

import pytest
from bookutil import ROOT

COLAB = ROOT / "constraints" / "colab.txt"


def _pins(path):
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = re.split(r"==", line.split(";")[0])
            pins[name.strip().lower()] = version.strip()
    return pins


def _index_reachable():
    try:
        urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=10)
    except OSError:
        return False
    return True


def test_colab_constraints_name_the_packages_the_course_depends_on():
    pins = _pins(COLAB)
    assert {"torch", "numpy", "matplotlib", "ipywidgets", "gymnasium"} <= set(pins)
    deps = (ROOT / "pyproject.toml").read_text()
    for name in pins:
        assert f'"{name}' in deps, f"{name} is pinned for Colab but the course does not depend on it"


@pytest.mark.skipif(not _index_reachable(), reason="the package index (pypi.org) cannot be reached")
def test_installing_the_course_on_colab_keeps_every_preinstalled_package(tmp_path):
    report = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
           "--report", str(report), "--python-version", "3.13", "--only-binary=:all:",
           "--target", str(tmp_path / "target"), "-c", str(COLAB), str(ROOT)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, "mbc_lib cannot be installed next to Colab's packages:\n" + result.stderr[-3000:]
    resolved = {item["metadata"]["name"].lower(): item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}
    assert "mbc-lib" in resolved or "mbc_lib" in resolved
    changed = {name: (version, resolved.get(name)) for name, version in _pins(COLAB).items()
               if resolved.get(name) != version}
    assert not changed, f"installing the course would change Colab's packages (Colab, resolved): {changed}"


def test_one_version_everywhere():
    """pyproject's version is the library's and the one every setup cell installs (tools/setup_cell.py)."""
    import mbc_lib

    version = re.search(r'^version\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(), flags=re.M).group(1)
    assert mbc_lib.__version__ == version
    setups = ["".join(json.loads(p.read_text())["cells"][1]["source"]) for p in (ROOT / "notebooks").glob("*.ipynb")]
    assert setups and all(f'VERSION = "{version}"' in src for src in setups)


def test_robot_chapters_ask_colab_for_a_gpu():
    for name in ("08_robot_experiments", "09_robot_mode_diagnostics", "10_decisive_tests"):
        meta = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())["metadata"]
        assert meta.get("accelerator") == "GPU" and meta.get("colab", {}).get("gpuType"), name
