"""Coalesce bursts of updates into at most one call per interval.

Events arrive up to twenty times a second per run; a front end needs no more than ten frames a
second. ``request`` never runs the callback itself: it arranges one call on the scheduler's
thread, at once if the last call is older than the interval, otherwise when it is due. Requests
made before that call happens are folded into it. The clock and scheduler are parameters so
tests can count calls without sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

Cancel = Callable[[], None]
Scheduler = Callable[[float, Callable[[], None]], Cancel]


def timer_scheduler(delay: float, fn: Callable[[], None]) -> Cancel:
    timer = threading.Timer(delay, fn)
    timer.daemon = True
    timer.start()
    return timer.cancel


class Throttle:
    def __init__(
        self,
        fn: Callable[[], None],
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        schedule: Scheduler = timer_scheduler,
    ) -> None:
        self._fn = fn
        self._interval = interval
        self._clock = clock
        self._schedule = schedule
        self._lock = threading.Lock()
        self._last = -float("inf")
        self._cancel: Cancel | None = None
        self._closed = False

    def request(self) -> None:
        with self._lock:
            if self._cancel is not None or self._closed:
                return
            delay = max(0.0, self._last + self._interval - self._clock())
            self._cancel = self._schedule(delay, self._fire)

    def _fire(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._cancel = None
            self._last = self._clock()
        # Outside the lock: the callback may take a while (a layout) and requests made
        # meanwhile must only queue the next call, not wait.
        self._fn()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._cancel is not None:
                self._cancel()
                self._cancel = None
