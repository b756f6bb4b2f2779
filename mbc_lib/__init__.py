"""mbc_lib — the library behind the course *Multimodal Behavioral Cloning: why
action-chunking policies lose modes*.

Modules (one idea each): ``tasks`` (synthetic tasks with known modes), ``data``
(chunk datasets), ``nets`` (shared backbones), ``policies`` (every family behind one
interface), ``train`` (the training loop), ``control`` (executing chunks),
``profiles`` (compute budgets), ``experiments`` (every experiment of the book).
"""
from __future__ import annotations

__version__ = "0.1.0"

from .profiles import budget, profile  # noqa: E402

__all__ = ["__version__", "budget", "profile", "setup"]


def setup(render: bool = False, quiet: bool = False) -> dict[str, str]:
    """The notebooks' first call: pick the device, report device and profile, set plot style.

    Returns ``{"device": ..., "profile": ..., "version": ...}``. With ``render=True`` it also
    checks the MuJoCo rendering backend (robot chapters).
    """
    from .train import select_device

    info = {"version": __version__, "device": str(select_device()), "profile": profile()}
    try:
        from . import plotting

        plotting.use_style()
    except ImportError:  # plotting is optional at this point
        pass
    if render:
        from .envs import doctor  # robot chapters only

        info["render"] = doctor(verbose=not quiet).backend or "none"
    if not quiet:
        print(f"mbc_lib {info['version']} | device: {info['device']} | profile: {info['profile']}")
    return info
