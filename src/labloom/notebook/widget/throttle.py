"""Coalesce bursts of updates into at most one call per interval.

Events arrive up to twenty times a second per run; a front end needs no more than ten frames a
second. ``request`` never runs the callback itself: it arranges one call on the scheduler's
thread (one per throttle, see ``WidgetTimer``), at once if the last call is older than the
interval, otherwise when it is due. Requests
made before that call happens are folded into it. The clock and scheduler are parameters so
tests can count calls without sleeping.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("labloom")

Cancel = Callable[[], None]
# (delay, fn) -> cancel: arranges one later call; tests pass a manual clock's.
CallLater = Callable[[float, Callable[[], None]], Cancel]

IDLE_EXIT = 5.0  # seconds a widget's timer thread waits for work before it ends


class WidgetTimer:
    """One thread per widget for its delayed frames (not one per frame). It starts with the
    first call, ends after ``IDLE_EXIT`` idle seconds (a finished run's widget keeps none) and
    at ``stop()``; the next call starts it again."""

    def __init__(self, name: str = "labloom-widget-timer") -> None:
        self._name = name
        self._cond = threading.Condition()
        self._due: tuple[float, Callable[[], None]] | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    def __call__(self, delay: float, fn: Callable[[], None]) -> Cancel:
        with self._cond:
            entry = (time.monotonic() + delay, fn)
            self._due = entry
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify_all()

        def cancel() -> None:
            with self._cond:
                if self._due is entry:
                    self._due = None
                    self._cond.notify_all()

        return cancel

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._due = None
            thread, self._thread = self._thread, None
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _loop(self) -> None:
        idle_since = time.monotonic()
        while True:
            with self._cond:
                if self._stopped:
                    return
                now = time.monotonic()
                if self._due is None:
                    if now - idle_since > IDLE_EXIT:
                        self._thread = None
                        return
                    self._cond.wait(IDLE_EXIT)
                    continue
                when, fn = self._due
                if when > now:
                    self._cond.wait(when - now)
                    continue
                self._due = None
            try:
                fn()  # outside the lock: a frame may take a while
            except Exception:
                # One bad frame must not end the widget's frames for good.
                log.exception("[labloom] a widget frame failed")
            idle_since = time.monotonic()


class Throttle:
    def __init__(
        self,
        fn: Callable[[], None],
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        schedule: CallLater | None = None,
    ) -> None:
        self._timer = WidgetTimer() if schedule is None else None
        self._fn = fn
        self._interval = interval
        self._clock = clock
        self._schedule: CallLater = schedule or self._timer  # type: ignore[assignment]
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
        if self._timer is not None:
            self._timer.stop()
