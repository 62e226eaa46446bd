"""Concurrency limits for local and thread runs: the ``Limiter`` protocol and ``StoreLimiter``
(slots counted in the store, shared by every process using it).

Grants to a waiting task run are handed out by a small thread of their own, because the engine
releases a slot while holding its run's lock and the grant takes another run's lock.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Protocol


class Limiter(Protocol):
    def acquire(self, tags: frozenset[str], holder: str, granted: Callable[[], None]) -> bool:
        """True when ``holder`` may start now; else ``granted()`` is called later."""
        ...

    def release(self, tags: frozenset[str], holder: str) -> None: ...


class StoreLimiter:
    """Slots counted in the store, shared by every process using the same ``LABLOOM_HOME``.

    A waiting task run holds no thread: one small thread retries the queue in order when a slot
    is given back here, and every 0.1 s while anything waits (slots freed by other processes).
    """

    POLL = 0.1

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: deque[tuple[dict[str, int], str, Callable[[], None]]] = deque()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self, tags: frozenset[str], holder: str, granted: Callable[[], None]) -> bool:
        if not tags:
            return True
        from . import limits as store

        limits = store.limits_for(tags)
        if not limits:
            return True
        with self._lock:
            blocked = {tag for waiter in self._waiting for tag in waiter[0]}
            if not blocked & limits.keys() and store.try_take(limits, holder):
                return True
            self._waiting.append((limits, holder, granted))
            self._ensure_thread()
            self._wake.set()
            return False

    def release(self, tags: frozenset[str], holder: str) -> None:
        if not tags:
            return
        from . import limits as store

        store.give_back(holder)
        with self._lock:
            self._waiting = deque(w for w in self._waiting if w[1] != holder)
            if self._waiting:
                self._wake.set()

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._loop, name="labloom-limits", daemon=True
            )
            self._thread.start()

    def _loop(self) -> None:
        from . import limits as store

        while True:
            self._wake.wait(self.POLL)
            self._wake.clear()
            grants = []
            with self._lock:
                still: deque[tuple[dict[str, int], str, Callable[[], None]]] = deque()
                for waiter in self._waiting:
                    # First come, first served: nobody overtakes a waiter sharing its tags.
                    blocked = {tag for w in still for tag in w[0]}
                    if not blocked & waiter[0].keys() and store.try_take(waiter[0], waiter[1]):
                        grants.append(waiter[2])
                    else:
                        still.append(waiter)
                self._waiting = still
            # Outside our lock: a grant takes the run's lock, whose holder may be releasing here.
            for granted in grants:
                granted()


_process_limiter: StoreLimiter | None = None


def process_limiter() -> StoreLimiter:
    """The limiter of local and thread runs: slots shared through the store."""
    global _process_limiter
    if _process_limiter is None:
        _process_limiter = StoreLimiter()
    return _process_limiter
