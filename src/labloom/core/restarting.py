"""A run's own thread started, and a finished run restarted (``FlowRun.retry``), whole or not
at all under a Ctrl-C (interrupts_held.py).

``Thread.start`` waits in Python (``Event.wait``) for the new thread: a Ctrl-C landing there
raised RuntimeError (a lock let go by ``Condition.wait`` before its ``try``) in place of
KeyboardInterrupt, and one before the thread began left it unstarted while the caller took it
for the run's driver: the run Running for good. ``Driver.thread`` says, once the start is
done, that the thread ends the run; until then the interrupted caller does."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .interrupts_held import InterruptsHeld

if TYPE_CHECKING:
    from .engine import RunEngine


class Driver:
    """The run's own thread, once it started (None before)."""

    __slots__ = ("thread",)

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None

    def start(self, name: str, target: Callable[..., Any], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with InterruptsHeld():
            thread.start()
            self.thread = thread


def check_retriable(engine: RunEngine) -> None:
    """RuntimeError naming the fix when ``engine``'s run cannot be retried (its lock held)."""
    if not engine.finished.is_set():
        raise RuntimeError(
            f"flow run {engine.id} is still {engine.state}; wait() or cancel() it first")
    if engine.body_error is not None:
        raise RuntimeError(
            f"flow run {engine.id} failed in the flow body itself "
            f"({type(engine.body_error).__name__}); fix it and run the flow again")
