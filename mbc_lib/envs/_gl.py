"""The OpenGL backend mujoco will load, checked *before* the first ``import mujoco``.

mujoco picks its rendering backend from ``MUJOCO_GL`` when it is first imported, and with
``MUJOCO_GL=osmesa`` but no libOSMesa installed that import itself crashes (inside
PyOpenGL: "'NoneType' object has no attribute 'glGetError'"), so nothing — not even
:func:`mbc_lib.envs.doctor` — could say what to do. :func:`prepare` therefore checks that
the requested backend's shared libraries load; when they do not, mujoco is imported with
rendering disabled (simulation, training and evaluation need no OpenGL), ``MUJOCO_GL`` is
given back its value, and :data:`PROBLEM` holds the message the doctor reports.

On a Colab GPU runtime EGL reaches NVIDIA's driver only once glvnd knows its vendor library:
Colab installs the driver without the vendor file, so :func:`prepare` writes
``/usr/share/glvnd/egl_vendor.d/10_nvidia.json`` there (as MuJoCo's own Colab tutorial does)
and :data:`EGL_VENDOR` records whether EGL renders on the GPU (``"nvidia"``) or with Mesa's
software rasteriser (``"mesa"``); the doctor says which.
"""
from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["PROBLEM", "REQUESTED", "EGL_VENDOR", "prepare", "nvidia_egl_vendor_file"]

#: why this process cannot render (the requested backend's library is missing), else None
PROBLEM: str | None = None
#: ``MUJOCO_GL`` as it was when mujoco was imported ("" = platform default)
REQUESTED: str = ""
#: whose EGL renders: "nvidia" (the GPU's driver), "mesa" (software), or "" when EGL is not the backend
EGL_VENDOR: str = ""
#: what :func:`nvidia_egl_vendor_file` did on this machine (for the doctor), "" when nothing applied
EGL_NOTE: str = ""

#: glvnd's vendor file for NVIDIA's EGL library (the content MuJoCo's Colab tutorial writes)
NVIDIA_VENDOR_FILE = "usr/share/glvnd/egl_vendor.d/10_nvidia.json"
NVIDIA_VENDOR_JSON = '{\n    "file_format_version" : "1.0.0",\n    "ICD" : {\n        "library_path" : "libEGL_nvidia.so.0"\n    }\n}\n'

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


def on_colab() -> bool:
    """True in a Google Colab runtime."""
    return "COLAB_RELEASE_TAG" in os.environ or "google.colab" in sys.modules


def nvidia_egl_loads() -> bool:
    """True when NVIDIA's EGL library (installed with the GPU driver) loads in this process."""
    try:
        ctypes.CDLL("libEGL_nvidia.so.0")
    except OSError:
        return False
    return True


def nvidia_egl_vendor_file(root: str | os.PathLike = "/", colab: bool | None = None,
                           nvidia: bool | None = None) -> tuple[str, str]:
    """Make EGL use NVIDIA's driver on a Colab GPU: write glvnd's vendor file under ``root``.

    Only on Colab (``colab``, default :func:`on_colab`) with NVIDIA's EGL library present (``nvidia``,
    default :func:`nvidia_egl_loads`); an existing file is left alone. Returns ``(vendor, note)``:
    ``"nvidia"`` when EGL will use the GPU, else ``"mesa"``, and one sentence saying why.
    """
    from pathlib import Path

    path = Path(root) / NVIDIA_VENDOR_FILE
    nvidia = nvidia_egl_loads() if nvidia is None else nvidia
    if not nvidia:
        return "mesa", "no NVIDIA EGL library here: EGL renders with Mesa (software)"
    if path.exists():
        return "nvidia", f"NVIDIA's EGL vendor file {path} is present: EGL renders on the GPU"
    if not (on_colab() if colab is None else colab):
        return "mesa", (f"NVIDIA's EGL library is installed but glvnd has no vendor file for it ({path}); "
                        "EGL may fall back to Mesa (software). Outside Colab this package leaves system files alone")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(NVIDIA_VENDOR_JSON)
        tmp.replace(path)
    except OSError as err:
        return "mesa", f"could not write {path} ({err}): EGL renders with Mesa (software)"
    return "nvidia", f"wrote NVIDIA's EGL vendor file {path} (Colab GPU): EGL renders on the GPU"


def prepare() -> None:
    """Choose the default backend (``egl`` on Linux) and import mujoco safely. Call it before
    anything imports mujoco; it does nothing once mujoco is imported."""
    global PROBLEM, REQUESTED, EGL_VENDOR, EGL_NOTE
    if "mujoco" in sys.modules:
        REQUESTED = os.environ.get("MUJOCO_GL", "").lower().strip()
        return
    linux = sys.platform.startswith("linux")
    if linux:
        os.environ.setdefault("MUJOCO_GL", "egl")
    REQUESTED = os.environ.get("MUJOCO_GL", "").lower().strip()
    if linux and REQUESTED == "egl":
        EGL_VENDOR, EGL_NOTE = nvidia_egl_vendor_file()
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
