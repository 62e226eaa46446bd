"""What a thread emits inside ``EventBus.holding`` (``events.py``): held, then handed on at
once when the thread's outermost hold ends."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

Emit = Callable[[list[Any]], None]


class Held(threading.local):
    """What a thread emitting inside a hold holds. None by default on every thread: a
    ``threading.local`` without the attribute made each read in a thread that never held (the
    flow body's, about ten emits a run) raise and drop an AttributeError, 0.6 µs."""

    events: list[Any] | None = None
    # An ``EventBlock`` among ``events`` (a map expanded, rare): they are then handed on one
    # by one. Said as it is held, so a batch of plain events is not looked at one by one.
    blocks = False


class Holder:
    """A bus's holds, for its inbox (``inbox.py``), which holds once per batch of reports: in
    a small run about once per task run (0.6-0.9 batches a task run at 1,000, 0.14 at
    100,000; issue 21 §2). Two calls, no object per hold: a ``Holding`` made and entered per
    batch cost 0.7-1.0 µs of the 3 µs a batch cost."""

    __slots__ = ("_emit_all", "_emit_each", "_held")

    def __init__(self, held: Held, emit_all: Emit, emit_each: Emit) -> None:
        self._held = held
        self._emit_all = emit_all  # events without a block: under the bus's lock at once
        self._emit_each = emit_each  # a block among them

    def hold(self) -> list[Any] | None:
        """Hold what this thread emits from now on; returns what to give ``let_go``: the list
        held into, or None when the thread holds already (the outermost hands them on)."""
        held = self._held
        if held.events is None:
            mine: list[Any] = []
            held.events = mine
            return mine
        return None

    def let_go(self, mine: list[Any] | None) -> None:
        """End the hold ``hold`` returned ``mine`` for: what it held goes to the subscribers."""
        if mine is None:
            return
        held = self._held
        held.events = None
        if held.blocks:
            held.blocks = False
            self._emit_each(mine)
        elif mine:
            self._emit_all(mine)


class Holding:
    """``EventBus.holding``'s context (a class, not a ``contextlib`` generator: 0.6 against
    1.3 µs a use)."""

    __slots__ = ("_holder", "_mine")

    def __init__(self, holder: Holder) -> None:
        self._holder = holder
        self._mine: list[Any] | None = None  # what this hold holds; None when nested

    def __enter__(self) -> None:
        self._mine = self._holder.hold()

    def __exit__(self, *exc_info: object) -> None:
        mine, self._mine = self._mine, None
        self._holder.let_go(mine)


class NoHolder:
    """A ``Holder`` for an inbox without a bus (tests): nothing held."""

    def hold(self) -> None:
        return None

    def let_go(self, mine: list[Any] | None) -> None:
        pass
