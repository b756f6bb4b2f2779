"""Hooks for every test run from the repository root, notebooks included (`pytest tests notebooks solutions`).

nbval executes each notebook in a kernel of its own; while a notebook's cells run, ``tools/kernel_wakeup.py``
pings that kernel so that a request it failed to read cannot stall the run (see that module).
"""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "tools"))
from kernel_wakeup import keep_awake  # noqa: E402

_AWAKE: dict[int, contextlib.ExitStack] = {}  # id(nbval notebook) -> its running pinger


def _kernel_manager(item):
    kernel = getattr(item.parent, "kernel", None)  # nbval's RunningKernel, started by the notebook's setup
    return getattr(kernel, "km", None)


@pytest.hookimpl(trylast=True)  # after the runner's setup, which starts the notebook's kernel
def pytest_runtest_setup(item) -> None:
    km = _kernel_manager(item)
    if km is not None and id(item.parent) not in _AWAKE:
        stack = contextlib.ExitStack()
        stack.enter_context(keep_awake(km))
        _AWAKE[id(item.parent)] = stack


@pytest.hookimpl(tryfirst=True)  # before the runner's teardown, which shuts the kernel down
def pytest_runtest_teardown(item, nextitem) -> None:
    if id(item.parent) in _AWAKE and (nextitem is None or nextitem.parent is not item.parent):
        _AWAKE.pop(id(item.parent)).close()  # the notebook's last cell: stop before nbval shuts the kernel down


def pytest_sessionfinish(session, exitstatus) -> None:
    for stack in _AWAKE.values():
        stack.close()
    _AWAKE.clear()
