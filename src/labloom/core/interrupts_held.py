"""A Ctrl-C held back while a run is announced or ended, and handled right after.

A KeyboardInterrupt (a kernel's Interrupt, a terminal's Ctrl-C, the SIGTERM `labloom run` turns
into one) is raised in the main thread wherever its signal finds it: inside the few steps that
announce a run (its first event, the list of runs to end at exit, the collector's count of runs
going) or that end it (its last state and event, then ``finished``), it left them half done: a
run forever Pending or Running in the kernel and in the store, or one no later call could finish
(``_finalizing`` set, ``finished`` never). ``with InterruptsHeld():`` replaces the main
thread's Python-level SIGINT and SIGTERM handlers by one that notes the signal, and calls the
handler that was there once the block is done: the interrupt is raised there, after the steps,
where the engine's handlers take it. Only for short steps, or waits with a bound (a run's end
waits up to ``launching.RELEASE_WAIT`` for a slot another thread gives back): a Ctrl-C must
still end a long wait at once (a cluster closing is not held). Other threads never receive a
signal's Python handler: nothing to do there.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType
from typing import Any

from .signal_internals import get_handler, set_handler

_SIGNALS = (int(signal.SIGINT), int(signal.SIGTERM))  # ints: what ``_signal`` takes
HELD_WAIT = 0.2  # seconds of a held wait's slice: a Ctrl-C ends the wait that much later at most
_holding: list[InterruptsHeld] = []  # the main thread's holds going on, outermost first


class InterruptsHeld:
    __slots__ = ("_came", "_saved")

    def __init__(self) -> None:
        self._saved: list[tuple[int, Any]] = []
        self._came: list[int] = []

    def __enter__(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        try:
            for signum in _SIGNALS:
                handler = get_handler(signum)
                if callable(handler):  # SIG_DFL or SIG_IGN: nothing Python could hold
                    self._saved.append((signum, handler))  # before the swap: put back surely
                    set_handler(signum, self._note)
        except BaseException:  # the other signal, not held yet, came meanwhile
            _put_back(self._saved)
            raise
        if self._saved:  # (a signal now is noted: nothing raises between the swap and here)
            _holding.append(self)

    def _note(self, signum: int, frame: FrameType | None) -> None:
        self._came.append(signum)

    def __exit__(self, *exc_info: object) -> None:
        if not self._saved:
            return
        _holding.remove(self)  # before the handlers go back: no signal raises meanwhile
        saved = dict(self._saved)
        try:
            _put_back(self._saved)
        finally:
            for signum in self._came:  # the first raises (KeyboardInterrupt) as it would have
                saved[signum](signum, None)


def pending() -> bool:
    """Whether a Ctrl-C (or SIGTERM) came during a hold still going, to be raised as it ends.
    A bounded wait inside one, by any thread, gives up then: the store's last commit, which a
    run's end waits for (up to ``recorder.FINAL_WAIT``) held, is not waited for when the user
    asked to stop (the writer still writes it)."""
    return any(hold._came for hold in tuple(_holding))


def _put_back(saved: list[tuple[int, Any]]) -> None:
    """Each handler put back, even when one put back first is called meanwhile and raises."""
    if saved:
        try:
            set_handler(*saved[-1])
        finally:
            _put_back(saved[:-1])


def set_surely(event: threading.Event, lock: Any, then: Any) -> None:
    """``event.set()`` and ``then()`` under ``lock``, with interrupts held, done even when a
    Ctrl-C lands as the hold begins (before its swap): raised once they are done. Unheld,
    one landing inside ``Event.set`` (its lock taken in Python) kept that lock for good, and
    every wait on the event waited for ever; one before the hold skipped the set: a run's
    ``finished`` never set (tests/test_interrupt_dask.py, landings in threading.py)."""
    interrupt: BaseException | None = None
    while not event.is_set():
        try:
            with InterruptsHeld(), lock:
                event.set()
                then()
        except KeyboardInterrupt as exc:
            interrupt = exc
    if interrupt is not None:
        raise interrupt


def wait_held(event: threading.Event, timeout: float | None) -> bool:
    """``event.wait(timeout)`` in held slices of ``HELD_WAIT`` seconds: a Ctrl-C is raised
    between two, never inside threading's own Python. There ``Event.wait`` takes its lock
    (``Condition.__enter__``): one landing as that returned kept the lock for good, and every
    later wait on the event, and its ``set``, waited for ever (``run.wait_finished``); one in
    ``Condition.wait`` between the lock let go and its ``try`` raised RuntimeError in place of
    KeyboardInterrupt (tests/test_interrupt_waits.py)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = HELD_WAIT if deadline is None else min(HELD_WAIT, deadline - time.monotonic())
        with InterruptsHeld():
            if event.wait(max(left, 0.0)):
                return True
        if left <= 0:
            return False
