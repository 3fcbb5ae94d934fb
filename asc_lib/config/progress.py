"""Progress bars: tqdm's, with one switch per process instead of a flag through every function.

A notebook's ``progress`` parameter sets the switch (:func:`show`); ``None`` shows bars only when someone
watches (:func:`watched`), so the outputs papermill and nbval save stay free of them. Library code makes
its bars with :func:`bar` (``tqdm.auto.tqdm``'s arguments); a bar inside another one passes
``leave=False``, as tqdm does for nested bars. ``TQDM_DISABLE=1`` in the environment also hides them.
"""
from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm

_shown: bool | None = None


def kernel():
    """The IPython kernel this process runs in, or None (a script, a test, a command line)."""
    ipython = sys.modules.get("IPython")
    return getattr(ipython.get_ipython() if ipython is not None else None, "kernel", None)


def watched() -> bool:
    """Whether someone watches the run, so that progress bars help rather than clutter the saved outputs:
    in a kernel, whether the current request lets the kernel ask for input (JupyterLab does; papermill and
    nbval, which save the outputs, do not); outside a kernel, whether stderr is a terminal."""
    if (running := kernel()) is not None:
        return bool(getattr(running, "_allow_stdin", False))
    return sys.stderr.isatty()


def show(flag: bool | None) -> bool:
    """Switch bars on (True), off (False) or on only when someone watches (None); returns what was chosen."""
    global _shown
    _shown = watched() if flag is None else bool(flag)
    return _shown


def shown() -> bool:
    """Whether bars are shown now (the switch, else whether someone watches)."""
    if os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes"):
        return False
    return watched() if _shown is None else _shown


def bar(*args, **kwargs) -> tqdm:
    """A ``tqdm.auto`` bar that obeys the switch (``disable=True`` still hides it)."""
    kwargs["disable"] = kwargs.get("disable", False) or not shown()
    kwargs.setdefault("mininterval", 2.0)
    return tqdm(*args, **kwargs)
