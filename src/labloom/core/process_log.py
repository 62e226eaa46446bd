"""labloom's own lines on the process's log (the ``labloom`` logger) that a thread holding a
run's lock has to say (``sinks.ExecutorSink.warn``: calls of a batch that came late, a stored
result that could not be read): said by one thread of their own, in order, holding no lock.

``logging`` takes each handler's lock around its emit, and a handler may take a run's lock
inside it: labloom's capture handler keeps a task's record in its run's logs, and so does a
``StreamHandler`` made on ``sys.stderr`` while tasks ran (labloom's proxy, which keeps a
task's lines). A line said under the run's lock waited for such a handler's lock while a task
logging through that handler held it and waited for the run's lock: the run never ended.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from typing import Any

IDLE_EXIT = 5.0  # seconds the saying thread waits for a line before it ends


class _Sayer:
    """Started by the first line, ended when idle (a later line starts another)."""

    def __init__(self) -> None:
        self._lines: queue.SimpleQueue[tuple[str, tuple[Any, ...]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def say(self, message: str, *args: Any) -> None:
        self._lines.put((message, args))
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="labloom-say",
                                                daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        logger = logging.getLogger("labloom")
        while True:
            try:
                message, args = self._lines.get(timeout=IDLE_EXIT)
            except queue.Empty:
                with self._lock:
                    if self._lines.empty():
                        self._thread = None
                        return
                continue
            with contextlib.suppress(Exception):  # a filter that raised: the next lines too
                logger.warning(message, *args)


_sayer = _Sayer()


def warn_later(message: str, *args: Any) -> None:
    """``logging.getLogger("labloom").warning(message, *args)``, said soon by another thread:
    for a thread that holds a run's lock."""
    _sayer.say(message, *args)
