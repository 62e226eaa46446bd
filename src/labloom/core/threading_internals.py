"""The private internals of ``threading`` labloom uses, each with its fallback. ``in_use()``
names the path this Python takes; ``tests/test_run_at_exit.py`` checks it and the fallback.

- ``register_at_exit``: ``threading._register_atexit`` (Python >= 3.9; the hook
  ``concurrent.futures`` itself uses) runs a callback at exit *before* threads are joined, so
  a run still going is cancelled before the thread pools run every queued task and before
  distributed's ``atexit`` handler closes the cluster the cancel must reach. Fallback:
  ``atexit.register``, which still ends the run, only later.
- ``held_here``: ``RLock._is_owned``, what ``threading.Condition`` asks its lock. Fallback:
  True, the safe answer for a caller that must not wait on others while it holds the lock.
- ``stack_of``: ``sys._current_frames``, where a thread is now. Fallback: None.
"""

from __future__ import annotations

import atexit
import sys
import threading
from collections.abc import Callable
from types import FrameType

BEFORE_THREADS_JOIN = "threading._register_atexit"
AT_EXIT = "atexit.register"


def in_use() -> str:
    """Which exit hook this Python gives ``register_at_exit``."""
    return BEFORE_THREADS_JOIN if hasattr(threading, "_register_atexit") else AT_EXIT


def register_at_exit(callback: Callable[[], None]) -> str:
    """Run ``callback`` at exit, before threads are joined where this Python allows; returns
    the path taken."""
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        try:
            register(callback)
            return BEFORE_THREADS_JOIN
        except RuntimeError:  # the interpreter is already shutting down
            pass
    atexit.register(callback)
    return AT_EXIT


def held_here(lock: threading.RLock) -> bool:
    """Whether this thread holds ``lock``."""
    owned = getattr(lock, "_is_owned", None)
    return True if owned is None else bool(owned())


def stack_of(thread: threading.Thread) -> FrameType | None:
    """The frame ``thread`` runs now (a timed-out task's, to say where it was stuck):
    ``sys._current_frames``, CPython's and PyPy's. Fallback: None (no stack said)."""
    frames = getattr(sys, "_current_frames", None)
    if frames is None or thread.ident is None:
        return None
    frame: FrameType | None = frames().get(thread.ident)
    return frame
