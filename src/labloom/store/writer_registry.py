"""One writer per store in this process (``writer_for``): let go of with its store
(``db.forget``), and given its last seconds to write at exit."""

from __future__ import annotations

import atexit
import threading

from .db import Database, on_forget
from .writer import Writer

_writers: dict[str, Writer] = {}
_writers_lock = threading.Lock()


def writer_for(database: Database) -> Writer:
    with _writers_lock:
        writer = _writers.get(database.url)
        if writer is None or writer.retired is not None:
            fresh = _writers[database.url] = Writer(database)
            if writer is not None:  # what the retired one could not write is still told
                fresh.lost = writer.lost
            writer = fresh
        return writer


def _let_go(url: str) -> None:  # ``db.forget(url)``: the store goes away, so does its writer
    if (writer := _writers.get(url)) is not None:
        writer.retire("this process let go of the store (labloom.store.stop_writing)")


on_forget(_let_go)


def writers() -> list[Writer]:
    return list(_writers.values())


def exit_wait(database: Database) -> float:
    """Seconds a process waits at its exit for ``database`` when it is away
    (``LABLOOM_STORE_EXIT_WAIT``; by default 5 for SQLite, 15 for a server)."""
    return database.settings.exit_seconds(database.kind)


@atexit.register
def _drain_at_exit() -> None:
    # A script that exits while a background run is still going: keep what was emitted.
    for writer in list(_writers.values()):
        if writer.pending():
            writer.wait(timeout=exit_wait(writer.database))
