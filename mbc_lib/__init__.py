"""mbc_lib — the library behind the course *Multimodal Behavioral Cloning: why
action-chunking policies lose modes*.

Modules (one idea each): ``runtime`` (device, seeded generators, CPU threads, progress
bars), ``tasks`` (synthetic tasks with known modes), ``data`` (chunk datasets), ``nets``
(shared backbones), ``policies`` (every family behind one interface), ``train`` (the one
training loop: one model, or many stacked under vmap), ``control`` (executing chunks),
``fitting`` (make a policy and train it with a budget), ``measure`` (what several experiments
measure on a trained policy), ``envs`` (MuJoCo robot tasks), ``profiles`` (compute budgets),
``experiments`` (every experiment of the book: measurement only), ``figures`` (their figures and
tables).
"""
from __future__ import annotations

__version__ = "0.1.0"

from .profiles import budget, profile  # noqa: E402

__all__ = ["__version__", "budget", "profile", "setup"]


def setup(render: bool = False, quiet: bool = False, seed: int = 0, chapter: int | None = None) -> dict[str, object]:
    """The notebooks' first call: pick the device, report device, profile and seed, set plot style.

    Returns ``{"device": ..., "profile": ..., "version": ..., "seed": ...}``; the chapters pass
    ``info["seed"]`` to their experiments. In a notebook it shows one rendered line saying which
    profile, seed and device produced the page's numbers. With ``render=True`` it also checks the
    MuJoCo rendering backend (robot chapters). With ``chapter`` the line also says how to run that
    chapter at the ``full`` profile and what it costs (:data:`mbc_lib.profiles.FULL_PROFILE_COST`).
    """
    from .report import in_notebook, provenance_line
    from .runtime import env_threads, select_device
    from .validation import check_seed

    seed = check_seed(seed)
    env_threads()  # a malformed $MBC_THREADS is reported here, before any chapter code runs
    info: dict[str, object] = {"version": __version__, "device": str(select_device()), "profile": profile(),
                               "seed": seed}
    try:
        from .figures.common import use_style

        use_style()
    except ImportError:  # matplotlib is optional at this point
        pass
    if render:
        from .envs import doctor  # robot chapters only

        info["render"] = doctor(verbose=not quiet).backend or "none"
    if not quiet:
        line = provenance_line(str(info["profile"]), str(info["device"]), seed, __version__)
        if chapter is not None and info["profile"] != "full":
            from .profiles import full_profile_note

            line += " " + full_profile_note(chapter)
        if in_notebook():
            from IPython.display import Markdown, display

            display(Markdown(line))
        else:
            print(line.replace("**", "").replace("`", "").replace("*", ""))
    return info
