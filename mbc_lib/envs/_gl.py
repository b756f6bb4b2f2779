"""The OpenGL backend mujoco will load, checked *before* the first ``import mujoco``.

mujoco picks its rendering backend from ``MUJOCO_GL`` when it is first imported, and with
``MUJOCO_GL=osmesa`` but no libOSMesa installed that import itself crashes (inside
PyOpenGL: "'NoneType' object has no attribute 'glGetError'"), so nothing — not even
:func:`mbc_lib.envs.doctor` — could say what to do. :func:`prepare` therefore checks that
the requested backend's shared libraries load; when they do not, mujoco is imported with
rendering disabled (simulation, training and evaluation need no OpenGL), ``MUJOCO_GL`` is
given back its value, and :data:`PROBLEM` holds the message the doctor reports.
"""
from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["PROBLEM", "REQUESTED", "prepare"]

#: why this process cannot render (the requested backend's library is missing), else None
PROBLEM: str | None = None
#: ``MUJOCO_GL`` as it was when mujoco was imported ("" = platform default)
REQUESTED: str = ""

# backend -> groups of library names; one name of every group must load (as PyOpenGL loads them)
_LIBRARIES: dict[str, tuple[tuple[str, ...], ...]] = {
    "osmesa": (("OSMesa",),),
    "egl": (("EGL",), ("OpenGL", "GL")),
}
_FIX = {
    "osmesa": "install it (Debian/Ubuntu: `sudo apt-get install -y libosmesa6`) or use MUJOCO_GL=egl",
    "egl": ("install it (Debian/Ubuntu: `sudo apt-get install -y libegl1 libgl1 libopengl0 libegl-mesa0 "
            "libgl1-mesa-dri`) or use MUJOCO_GL=osmesa (needs libosmesa6)"),
}


def _loads(name: str) -> bool:
    """Whether ``lib<name>.so`` (or a versioned ``.so.N``) loads, trying the names PyOpenGL tries."""
    for filename in (f"lib{name}.so", *(f"lib{name}.so.{i}" for i in range(9, -1, -1))):
        try:
            ctypes.CDLL(filename, mode=ctypes.RTLD_GLOBAL)
            return True
        except OSError:
            continue
    return False


def missing_library(backend: str) -> str | None:
    """The first library ``backend`` needs that does not load here (e.g. ``"libOSMesa"``), else None."""
    for group in _LIBRARIES.get(backend, ()):
        if not any(_loads(name) for name in group):
            return f"lib{group[0]}"
    return None


def prepare() -> None:
    """Choose the default backend (``egl`` on Linux) and import mujoco safely. Call it before
    anything imports mujoco; it does nothing once mujoco is imported."""
    global PROBLEM, REQUESTED
    if "mujoco" in sys.modules:
        REQUESTED = os.environ.get("MUJOCO_GL", "").lower().strip()
        return
    linux = sys.platform.startswith("linux")
    if linux:
        os.environ.setdefault("MUJOCO_GL", "egl")
    REQUESTED = os.environ.get("MUJOCO_GL", "").lower().strip()
    missing = missing_library(REQUESTED) if linux else None
    if missing is None:
        return
    PROBLEM = (f"MUJOCO_GL={REQUESTED} needs the OpenGL library {missing}, which is not installed here: "
               f"{_FIX[REQUESTED]}. Set MUJOCO_GL before anything imports mujoco (restart the kernel after "
               "changing it). State-only simulation, training and evaluation work without rendering")
    original = os.environ["MUJOCO_GL"]
    os.environ["MUJOCO_GL"] = "disable"
    try:
        import mujoco  # noqa: F401  (physics only: no OpenGL backend is loaded)
    finally:
        os.environ["MUJOCO_GL"] = original
