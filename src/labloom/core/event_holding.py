"""What a thread emits inside ``EventBus.holding`` (``events.py``): held, then handed on at
once when the thread's outermost hold ends."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class Held(threading.local):
    """What a thread emitting inside a hold holds. None by default on every thread: a
    ``threading.local`` without the attribute made each read in a thread that never held (the
    flow body's, about ten emits a run) raise and drop an AttributeError, 0.6 µs."""

    events: list[Any] | None = None


class Holding:
    """``EventBus.holding``'s context. A class, not a ``contextlib.contextmanager``: it is
    entered for every batch of reports a run applies (``inbox.py``), in a small run about
    once per task run (0.6-0.9 batches a task run at 1,000, 0.14 at 100,000), and the
    generator's context cost 1.3 µs a use against 0.6 (issue 21 §2)."""

    __slots__ = ("_emit_all", "_held", "_mine")

    def __init__(self, held: Held, emit_all: Callable[[list[Any]], None]) -> None:
        self._held = held
        self._emit_all = emit_all
        self._mine: list[Any] | None = None  # what this hold holds; None when nested

    def __enter__(self) -> None:
        held = self._held
        if held.events is None:  # else nested: the outermost hands them on
            self._mine = held.events = []

    def __exit__(self, *exc_info: object) -> None:
        mine = self._mine
        if mine is not None:
            self._mine = None
            self._held.events = None
            self._emit_all(mine)
