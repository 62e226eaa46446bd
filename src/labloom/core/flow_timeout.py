"""``@flow(timeout=3600)``: a run that takes longer is stopped and Failed.

What a nightly run needs when something it waits on hangs (a database lock, a stuck
download, a task with no timeout of its own): it ends, recorded Failed with why, so the
schedule's failure alert says so and tomorrow's run is not held behind it. At the timeout
the run is cancelled as ``run.cancel()`` does (pending task runs and those running are
Cancelled, naming the timeout; Python cannot stop a thread, so a call may go on in the
background, as a task's timeout says; on the local executor the call running in your thread
ends first); the run's state is then Failed, not Cancelled, and calling the flow (or
``run.result()``) raises ``FlowTimeoutError``. A retry (``run.retry()``) has the timeout anew.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .engine import RunEngine


class FlowClock:
    def __init__(self, engine: RunEngine) -> None:
        self._engine = engine
        self._timer: threading.Timer | None = None
        self.expired: str | None = None  # why the run was stopped, once it timed out

    def start(self) -> None:
        seconds = self._engine.flow.timeout
        self.expired = None
        if seconds is None:
            return
        self._timer = threading.Timer(seconds, self._expire, args=(seconds,))
        self._timer.name = f"labloom-timeout-{self._engine.id}"
        self._timer.daemon = True
        self._timer.start()

    @property
    def stopped_it(self) -> bool:
        """Whether the timeout cancelled the run: it may also have ended, or been cancelled
        by its user, between the timer's look and its cancel (which then did nothing)."""
        return self.expired is not None and self._engine.graph.cancelled == self.expired

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self, seconds: float) -> None:
        engine = self._engine
        with engine.lock:
            if engine.finished.is_set() or engine.graph.cancelled is not None:
                return  # ended, or cancelled by the user, meanwhile
            self.expired = (
                f"flow {engine.flow.name!r} timed out after {seconds:g}s (timeout={seconds:g}); "
                "what had not ended was cancelled: raise the timeout, or give the task that "
                "hangs a timeout of its own (its traceback then shows where it waited)"
            )
        engine.cancel(self.expired)
