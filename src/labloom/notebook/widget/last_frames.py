"""Every shown widget's last frame at process exit: a kernel shut down or restarted mid-run.

``core/at_exit.py`` ends the runs still going then, but a widget hears of the end on its
subscription's thread and draws it on its timer's, and the kernel (its output channel with it)
could be gone before either ran: the output kept the widget view instead of the bundle without
it (``RunWidget.finished_bundle``), and a notebook saved afterwards exported blank offline. The
refresh was lost in 4 of 21 shutdowns here. A kernel killed outright runs no exit hook at all.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

from ...core import at_exit
from ...core.threading_internals import register_at_exit

log = logging.getLogger(__name__)
_shown: weakref.WeakSet[Any] = weakref.WeakSet()  # RunWidgets shown and not closed
_lock = threading.Lock()
_registered = False


def remember(widget: Any) -> None:
    """``widget`` (a RunWidget) is shown: refresh its outputs at exit if its run ends then."""
    global _registered
    with _lock:
        _shown.add(widget)
        if not _registered:
            _registered = True
            register_at_exit(draw_last_frames)


def forget(widget: Any) -> None:
    with _lock:
        _shown.discard(widget)


def draw_last_frames() -> None:
    # Exit callbacks run last registered first: this one may come before core's. The runs'
    # end is what the frames show, so end them here (core's hook then finds none left).
    at_exit.end_unfinished_runs()
    with _lock:
        widgets = [w for w in _shown if not w.view.finished]
    for widget in widgets:
        try:
            widget.view.settle()  # its last frame refreshes its outputs (``on_finished``)
        except Exception:
            # One widget's failure must not cost the others their last frame.
            log.exception("[labloom] a widget's last frame at exit failed")
