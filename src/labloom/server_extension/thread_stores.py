"""The API's pool threads' connections to the store: one per thread and store URL, opened
again when the SQLite file changed under it, or when PostgreSQL dropped it.

A SQLite file replaced (deleted, a backup moved in place, or copied over it with ``cp``, which
keeps its inode) must be let go of by every connection of this server, not only by the thread
that noticed: a connection still open on the old file keeps it locked in WAL mode, and a backup
made by SQLite's backup API or ``VACUUM INTO`` (in rollback-journal mode) cannot be switched to
WAL while it is, so the thread that noticed would wait out its busy timeout (30 s) and the
request time out. So the thread that notices closes every idle connection to that URL; one in
use is closed by its own thread when its call ends and it looks next.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

from ..core.errors import StoreUnreachableError
from ..store.reader import RunStore

T = TypeVar("T")


class _Held:
    """One thread's store, which another thread may close while no call uses it."""

    def __init__(self, url: str) -> None:
        self.store: RunStore | None = RunStore(url=url)
        self.lock = threading.Lock()

    def let_go(self) -> None:
        """Under ``lock``."""
        store, self.store = self.store, None
        if store is not None:
            with contextlib.suppress(Exception):
                store.close()


class ThreadStores:
    """``call(url, fn)`` runs ``fn(store)`` on the calling thread's own store for ``url``."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._all: list[tuple[str, _Held]] = []
        self._lock = threading.Lock()

    def call(self, url: str, fn: Callable[[RunStore], T]) -> T:
        held = self._held(url)
        with held.lock:
            if held.store is not None and held.store.conn.file_changed():
                held.let_go()
                self._let_go_idle(url, held)
            if held.store is None:
                held.store = RunStore(url=url)
            store = held.store
            try:
                return fn(store)
            except StoreUnreachableError:
                # A new connection was already tried, and waited for past
                # LABLOOM_DB_CONNECT_TIMEOUT (a change's outcome asked, or it found not made):
                # not run again here, whose own connection would fail too and answer only
                # "cannot reach the store", losing what the error says: "may or may not"
                # (``StoreChangeUnknownError``), or, of a Lab delete whose later batch was cut
                # before its COMMIT, the runs its earlier batches deleted (``done``).
                held.let_go()
                raise
            except Exception:
                if not store.conn.broken:
                    raise
            # PostgreSQL dropped the connection (a restart): once more on a new one (503 while
            # away).
            held.let_go()
            held.store = RunStore(url=url)
            return fn(held.store)

    def _held(self, url: str) -> _Held:
        mine: dict[str, _Held] = getattr(self._local, "held", None) or {}
        self._local.held = mine
        held = mine.get(url)
        if held is None:
            held = mine[url] = _Held(url)
            with self._lock:
                self._all.append((url, held))
        return held

    def _let_go_idle(self, url: str, noticed: _Held) -> None:
        with self._lock:
            others = [held for each, held in self._all if each == url and held is not noticed]
        for held in others:
            if held.lock.acquire(blocking=False):  # in use: its thread closes it next time
                try:
                    held.let_go()
                finally:
                    held.lock.release()
