"""A thread of its own for work handed over in order (``put``): started by the first piece,
ended once it has waited ``IDLE_EXIT`` seconds for the next (a later ``put`` starts another),
or by ``stop`` once what is queued is done. Its owner is whoever made it and calls ``stop``;
between bursts of work it holds no thread at all.

Used where a piece must not run in the thread handing it over: the Dask executor's deliveries
of worker events and future completions (``executors/dask_events.Dispatcher``), and labloom's
lines on the process's log said while a run's lock is held (``process_log``).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

IDLE_EXIT = 5.0  # seconds the thread waits for work before it ends


def _STOP() -> None:
    """Queued by ``IdleEndingThread.stop``: the thread ends when it gets here."""


class IdleEndingThread:
    def __init__(self, name: str, failed: str) -> None:
        self._name = name
        self._failed = failed  # logged (with the traceback) when a piece raises
        self._queue: queue.SimpleQueue[tuple[Callable[..., None], tuple[Any, ...]]]
        self._queue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def put(self, fn: Callable[..., None], *args: Any) -> None:
        """Call ``fn(*args)`` in the thread, after what was put before."""
        self._queue.put((fn, args))
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name,
                                                daemon=True)
                self._thread.start()

    def wait_done(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for what was put before to be done; False if it
        was not by then."""
        done = threading.Event()
        with self._lock:
            if self._thread is None:
                return True  # nothing queued: a piece put always has a thread
            self._queue.put((done.set, ()))
        return done.wait(timeout)

    def stop(self) -> None:
        """End the thread once what is queued is done."""
        with self._lock:
            if self._thread is not None:
                self._queue.put((_STOP, ()))

    def _loop(self) -> None:
        while True:
            try:
                fn, args = self._queue.get(timeout=IDLE_EXIT)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            if fn is _STOP:
                with self._lock:
                    self._thread = None
                return
            try:
                fn(*args)
            except Exception:  # a broken piece must not stop the others
                logging.getLogger("labloom").exception(self._failed)
            # Not kept while waiting: a piece's arguments may hold what must go (a run's
            # futures).
            del fn, args
