"""Concurrency limits within one process: a count per tag and a first-come queue.

Grants to a waiting task run are handed to a small thread of their own, because the engine
releases a slot while holding its run's lock and the grant takes another run's lock.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Protocol


class Limiter(Protocol):
    def acquire(self, tags: frozenset[str], holder: str, granted: Callable[[], None]) -> bool:
        """True when ``holder`` may start now; else ``granted()`` is called later."""
        ...

    def release(self, tags: frozenset[str], holder: str) -> None: ...


LimitLookup = Callable[[Iterable[str]], dict[str, int]]


class ProcessLimiter:
    def __init__(self, lookup: LimitLookup) -> None:
        self._lookup = lookup
        self._lock = threading.Lock()
        self._running: dict[str, set[str]] = {}
        self._waiting: deque[tuple[frozenset[str], str, Callable[[], None]]] = deque()
        self._grants: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._granter: threading.Thread | None = None

    def acquire(self, tags: frozenset[str], holder: str, granted: Callable[[], None]) -> bool:
        if not tags:
            return True
        limits = self._lookup(tags)
        with self._lock:
            if not limits:
                return True
            if self._fits(tags, limits):
                self._take(tags, holder)
                return True
            self._waiting.append((tags, holder, granted))
            return False

    def release(self, tags: frozenset[str], holder: str) -> None:
        if not tags:
            return
        with self._lock:
            for tag in tags:
                self._running.get(tag, set()).discard(holder)
            self._waiting = deque(w for w in self._waiting if w[1] != holder)
            still_waiting: deque[tuple[frozenset[str], str, Callable[[], None]]] = deque()
            for waiter in self._waiting:
                limits = self._lookup(waiter[0])
                if self._fits(waiter[0], limits):
                    self._take(waiter[0], waiter[1])
                    self._hand_over(waiter[2])
                else:
                    still_waiting.append(waiter)
            self._waiting = still_waiting

    def _fits(self, tags: frozenset[str], limits: dict[str, int]) -> bool:
        return all(len(self._running.get(tag, ())) < limits[tag] for tag in tags if tag in limits)

    def _take(self, tags: frozenset[str], holder: str) -> None:
        for tag in tags:
            self._running.setdefault(tag, set()).add(holder)

    def _hand_over(self, granted: Callable[[], None]) -> None:
        if self._granter is None:
            self._granter = threading.Thread(target=self._grant_loop, name="labloom-limits", daemon=True)
            self._granter.start()
        self._grants.put(granted)

    def _grant_loop(self) -> None:
        while True:
            self._grants.get()()


_process_limiter: ProcessLimiter | None = None


def process_limiter() -> ProcessLimiter:
    global _process_limiter
    if _process_limiter is None:
        from . import limits

        _process_limiter = ProcessLimiter(limits.lookup)
    return _process_limiter
