"""Rendering: which OpenGL backend works (:func:`doctor`), frames, and video files.

MuJoCo renders offscreen through one of three OpenGL backends, chosen by the
environment variable ``MUJOCO_GL`` *when mujoco is first imported* (later changes
have no effect in that process):

* ``egl``    — headless, GPU or Mesa software rasteriser (Debian: ``libegl1 libgl1
  libopengl0 libegl-mesa0 libgl1-mesa-dri``); the default this package sets on Linux;
* ``osmesa`` — headless, pure-software Mesa (Debian: ``libosmesa6``), the fallback;
* ``glfw``   — needs a display (desktops, macOS).

:func:`doctor` tries a 16×16 frame in this process; if that fails it probes the
other backends in fresh subprocesses (so a broken driver cannot crash you) and says
what to set or install. It never raises. Simulation without images needs no backend.

Frames are ``uint8 [H, W, 3]`` from the model's top-down camera ``"top"``; videos are
written with imageio (mp4 through imageio-ffmpeg, gif through Pillow). This module knows no
task: frames of a recorded trajectory are :func:`mbc_lib.envs.replay.render_trajectory`.
"""
from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import mujoco
import numpy as np

from . import _gl

__all__ = ["RenderDoctor", "doctor", "make_renderer", "save_video", "tile_videos", "show_video", "mp4_available"]

_TINY_XML = '<mujoco><worldbody><light pos="0 0 1"/><geom type="sphere" size=".1"/></worldbody></mujoco>'

_PROBE = f"""
import os, sys
os.environ["MUJOCO_GL"] = sys.argv[1]
if not os.environ["MUJOCO_GL"]:
    del os.environ["MUJOCO_GL"]
import mujoco
m = mujoco.MjModel.from_xml_string({_TINY_XML!r})
d = mujoco.MjData(m)
mujoco.mj_forward(m, d)
r = mujoco.Renderer(m, 16, 16)
r.update_scene(d)
assert r.render().shape == (16, 16, 3)
r.close()
print("ok")
"""

_INSTALL_HINT = (
    "To render headless on Debian/Ubuntu install EGL: `sudo apt-get install -y libegl1 libgl1 libopengl0 "
    "libegl-mesa0 libgl1-mesa-dri` (or OSMesa: `libosmesa6`, then MUJOCO_GL=osmesa); on Colab run the same "
    "apt-get line; on macOS leave MUJOCO_GL unset. Set MUJOCO_GL before anything imports mujoco (restart the "
    "kernel after changing it). State-only simulation, training and evaluation work without rendering."
)


@dataclass
class RenderDoctor:
    """What :func:`doctor` found.

    Attributes:
        backend: the backend that renders in *this* process (``"egl"``, ``"osmesa"``, ``"glfw"``...), or None.
        message: one paragraph: what works, or what to set / install.
        requested: ``MUJOCO_GL`` as mujoco read it at import ("" = platform default).
        elsewhere: backends that work in a fresh process (probed only when this process cannot render).
        errors: backend -> the error it raised.
        egl_vendor: with the egl backend, whose EGL renders: ``"nvidia"`` (GPU) or ``"mesa"`` (software).
    """

    backend: str | None
    message: str
    requested: str = ""
    elsewhere: tuple[str, ...] = ()
    errors: dict[str, str] = field(default_factory=dict)
    egl_vendor: str = ""

    @property
    def ok(self) -> bool:
        return self.backend is not None

    def __str__(self) -> str:
        return self.message


_cache: RenderDoctor | None = None
_here: tuple[bool, str | None] | None = None  # (subprocess probe ok, in-process error) — tried once


def _requested_backend() -> str:
    try:  # the value mujoco actually read at import time (private, so guarded)
        from mujoco.rendering.classic import gl_context

        value = getattr(gl_context, "_MUJOCO_GL", None)
    except Exception:  # pragma: no cover - older/newer mujoco layouts
        value = None
    return (value if value is not None else os.environ.get("MUJOCO_GL", "")).lower().strip()


def _render_here() -> str | None:
    """Render one tiny frame in this process; the error text, or None on success."""
    try:
        m = mujoco.MjModel.from_xml_string(_TINY_XML)
        d = mujoco.MjData(m)
        mujoco.mj_forward(m, d)
        r = mujoco.Renderer(m, 16, 16)
        try:
            r.update_scene(d)
            img = r.render()
        finally:
            r.close()
        return None if img.shape == (16, 16, 3) else f"unexpected frame shape {img.shape}"
    except Exception as err:  # any failure means "no backend here"; doctor never raises
        return f"{type(err).__name__}: {err}".strip()


def _probe(backend: str, same_env: bool = False, timeout: float = 60.0) -> str | None:
    """Try ``backend`` ("" = platform default) in a fresh Python process; the error text, or None.

    ``same_env`` keeps this process's other variables (e.g. ``PYOPENGL_PLATFORM``) to mirror it.
    """
    env = dict(os.environ)
    if not same_env:
        env.pop("PYOPENGL_PLATFORM", None)
    try:
        out = subprocess.run(
            [sys.executable, "-c", _PROBE, backend],
            env=env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as err:
        return f"{type(err).__name__}: {err}"
    if out.returncode == 0 and "ok" in out.stdout:
        return None
    lines = [ln for ln in (out.stderr or out.stdout).strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else f"exit code {out.returncode}"


def doctor(verbose: bool = False, refresh: bool = False) -> RenderDoctor:
    """Check that MuJoCo can render offscreen here; never raises.

    Returns a :class:`RenderDoctor` whose ``backend`` is the working backend (or None) and
    whose ``message`` says what to do when none works. With ``verbose`` the message is
    printed. The result is cached; ``refresh=True`` probes the alternatives again.

    A failed OpenGL initialisation can leave a process unable to try again (glfw without a
    display even aborts on the second attempt), so this process's backend is first tried in
    a subprocess with the same environment, and only then — once per process — in here.
    """
    global _cache, _here
    if _cache is None or refresh:
        requested = _gl.REQUESTED if _gl.PROBLEM else _requested_backend()
        name = requested or ("cgl/glfw" if sys.platform == "darwin" else "glfw")
        if _here is None and _gl.PROBLEM:  # mujoco was imported without rendering: the backend's library is missing
            _here = (False, _gl.PROBLEM)
        if _here is None:  # this process is tried at most once, ever
            err = _probe(requested, same_env=True)
            _here = (err is None, err if err is not None else _render_here())
        probe_ok, err = _here
        if probe_ok and err is None:
            vendor = f" ({_gl.EGL_NOTE})" if name == "egl" and _gl.EGL_NOTE else ""
            _cache = RenderDoctor(backend=name, message=f"MuJoCo renders offscreen with MUJOCO_GL={name}{vendor}.",
                                  requested=requested, egl_vendor=_gl.EGL_VENDOR if name == "egl" else "")
        else:
            errors = {name: err or "unknown error"}
            candidates = ("egl", "osmesa") if sys.platform.startswith("linux") else ()
            for b in candidates:
                if b != requested:
                    errors[b] = _probe(b)
            elsewhere = tuple(b for b in candidates if b != requested and errors[b] is None)
            errors = {k: v for k, v in errors.items() if v is not None}
            msg = (f"MuJoCo cannot render in this process: {errors[name]}." if _gl.PROBLEM else
                   f"MuJoCo cannot render in this process (MUJOCO_GL={requested or 'unset'}: {errors[name]}).")
            if elsewhere:
                msg += (
                    f" A fresh process renders with MUJOCO_GL={elsewhere[0]}: set os.environ['MUJOCO_GL'] = "
                    f"'{elsewhere[0]}' before anything imports mujoco (restart the kernel first), or import "
                    "mbc_lib.envs before mujoco (it sets MUJOCO_GL=egl on Linux)."
                )
            elif not _gl.PROBLEM:
                msg += " No backend works on this machine. " + _INSTALL_HINT
            _cache = RenderDoctor(backend=None, message=msg, requested=requested, elsewhere=elsewhere, errors=errors)
    if verbose:
        print(("render: " if _cache.ok else "render: NOT AVAILABLE — ") + _cache.message)
    return _cache


def make_renderer(model: mujoco.MjModel, height: int, width: int) -> mujoco.Renderer:
    """A ``mujoco.Renderer``; a RuntimeError that says what to install when it cannot be made."""
    doc = doctor()  # never attempt a context where it is known to fail (a retry can abort the process)
    if not doc.ok:
        raise RuntimeError(f"cannot render: {doc.message}")
    try:
        return mujoco.Renderer(model, height, width)
    except ValueError:
        raise  # size larger than the model's offscreen buffer: mujoco's own message is clear
    except Exception as err:
        raise RuntimeError(f"MuJoCo cannot create an OpenGL context ({err}). {doctor().message}") from err


def tile_videos(videos: Sequence[np.ndarray], ncols: int | None = None, pad: int = 2) -> np.ndarray:
    """Lay videos ``[T_i, H, W, 3]`` out in a grid, ``[T_max, rows·(H+pad), cols·(W+pad), 3]``.

    Shorter videos hold their last frame, so episodes that end early stay visible.
    """
    if not videos:
        raise ValueError("no videos to tile")
    shapes = {v.shape[1:] for v in videos}
    if len(shapes) != 1:
        raise ValueError(f"videos must share one frame size, got {sorted(shapes)}")
    n = len(videos)
    ncols = ncols or int(np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncols))
    T = max(len(v) for v in videos)
    H, W, C = videos[0].shape[1:]
    out = np.full((T, nrows * (H + pad), ncols * (W + pad), C), 255, np.uint8)
    for i, v in enumerate(videos):
        r, c = divmod(i, ncols)
        idx = np.minimum(np.arange(T), len(v) - 1)  # hold the last frame
        out[:, r * (H + pad) : r * (H + pad) + H, c * (W + pad) : c * (W + pad) + W] = v[idx]
    return out


def save_video(frames: np.ndarray | Sequence[np.ndarray], path: str | os.PathLike, fps: int = 25) -> Path:
    """Write frames ``[T, H, W, 3]`` (uint8) to ``path`` (``.mp4`` or ``.gif``); returns the path."""
    import imageio.v2 as iio

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"frames must be [T>0, H, W, 3], got shape {frames.shape}")
    frames = frames.astype(np.uint8, copy=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".mp4":
        # H.264 with yuv420p needs even sides: pad one white row/column where needed.
        ph, pw = frames.shape[1] % 2, frames.shape[2] % 2
        if ph or pw:
            frames = np.pad(frames, ((0, 0), (0, ph), (0, pw), (0, 0)), constant_values=255)
        iio.mimwrite(path, frames, fps=fps, codec="libx264", macro_block_size=1, quality=7)
    elif path.suffix.lower() == ".gif":
        iio.mimwrite(path, frames, duration=1000.0 / fps, loop=0)  # duration per frame in ms (Pillow)
    else:
        raise ValueError(f"unsupported video format {path.suffix!r}; use .mp4 or .gif")
    return path


def mp4_available() -> bool:
    """Whether :func:`save_video` can write ``.mp4`` here (imageio-ffmpeg and its ffmpeg binary)."""
    try:
        import imageio_ffmpeg

        imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError, OSError):
        return False
    return True


def show_video(video: np.ndarray | str | os.PathLike, fps: int = 25, width: int | None = None):
    """An ``IPython.display.HTML`` that plays frames (or an mp4/gif file) inline in a notebook."""
    import base64
    import tempfile

    from IPython.display import HTML

    if not isinstance(video, (str, os.PathLike)):
        suffix = ".mp4" if mp4_available() else ".gif"
        if suffix == ".gif":
            warnings.warn("no ffmpeg for mp4 (pip install imageio-ffmpeg); showing the video as a GIF instead",
                          stacklevel=2)
        with tempfile.TemporaryDirectory() as tmp:
            data = save_video(video, Path(tmp) / f"video{suffix}", fps=fps).read_bytes()
    else:
        data, suffix = Path(video).read_bytes(), Path(video).suffix.lower()
    b64 = base64.b64encode(data).decode()
    size = f' width="{width}"' if width else ""
    if suffix == ".gif":
        return HTML(f'<img src="data:image/gif;base64,{b64}"{size}/>')
    return HTML(f'<video controls loop autoplay muted{size}><source src="data:video/mp4;base64,{b64}" type="video/mp4"></video>')
