"""A wake-up flag that a Ctrl-C cannot jam: one thread waits on it, others raise it.

``threading.Event.set`` takes the event's lock in Python (``Condition.__enter__``): a Ctrl-C
landing in the main thread as that returned kept the lock taken for good, and the thread
waiting on the event then waited for ever (the Dask executor's submitting thread: no later run
of the kernel sent a task). A ``queue.SimpleQueue``'s put and get are C, with no point between
taking its lock and letting it go where a signal's handler runs.
"""

from __future__ import annotations

import queue


class Wakeup:
    """``set``, ``is_set``, and ``wait(timeout)`` that lowers the flag it saw raised (one
    waiter)."""

    __slots__ = ("_raised",)

    def __init__(self) -> None:
        self._raised: queue.SimpleQueue[bool] = queue.SimpleQueue()

    def set(self) -> None:
        if self._raised.qsize() == 0:  # raised twice by two threads at once: lowered at once
            self._raised.put(True)

    def is_set(self) -> bool:
        return self._raised.qsize() > 0

    def wait(self, timeout: float) -> bool:
        """Whether it was raised within ``timeout`` seconds; lowered again either way."""
        try:
            self._raised.get(timeout=timeout)
        except queue.Empty:
            return False
        try:
            while True:
                self._raised.get_nowait()
        except queue.Empty:
            return True
