"""The run store: SQLite under ``LABLOOM_HOME``, or PostgreSQL at ``LABLOOM_DATABASE_URL``
(see ``db.py``), fed by the event stream, read by the CLI, ``%flow_runs`` and the scheduler.

- ``attach(run)``: record a run (``defaults.attach_default_observers`` calls it for every run) and
  act on cancel requests for it from other processes (see ``cancel.py``);
- ``open_store()``: a ``RunStore`` to read runs, task runs and logs (see ``reader.py``);
- ``unrecorded(run_id)``: what of a run the store could not take (``labloom run`` says it);
- ``stop_writing()``: let go of a store gone for good, at once (its writer would retry);
- ``enabled()``: False when ``LABLOOM_STORE=0`` (nothing is written);
- ``persist_mode()``: which task results persist (see ``core/results.py``).

>>> from labloom.store import open_store
>>> with open_store() as store:
...     runs = store.list_runs(flow="nightly", limit=5)
...     tasks = store.task_runs(runs[0].id)
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .reader import RunStore

log = logging.getLogger("labloom")

_OFF = ("0", "false", "no", "off")
PERSIST_MODES = ("all", "cached")


def enabled() -> bool:
    return os.environ.get("LABLOOM_STORE", "1").strip().lower() not in _OFF


def persist_mode() -> str:
    """``LABLOOM_RESULTS``: "cached" (default) or "all"; always "cached" with the store off.

    Default "cached": task data stays where the user put it (only ``cache=True`` results are
    written under ``LABLOOM_HOME/results``), and quick tasks pay no pickling. "all" persists
    every result that pickles, so ``labloom retry`` from another process reuses them.
    """
    if not enabled():
        return "cached"
    mode = os.environ.get("LABLOOM_RESULTS", "cached").strip().lower() or "cached"
    if mode not in PERSIST_MODES:
        raise ValueError(
            f"[labloom] LABLOOM_RESULTS={mode!r} is not a choice; use 'all' (persist every "
            "task result, so `labloom retry` reuses them) or 'cached' (only cache=True tasks)"
        )
    return mode


def attach(run: Any) -> None:
    """Record ``run`` in the store (no-op when the store is off). A store that cannot be used
    (no state folder, a damaged file) never stops the run: one warning says it is unrecorded."""
    if not enabled():
        return
    from ..core.interrupts_held import InterruptsHeld

    # A Ctrl-C (or `labloom run`'s SIGTERM) landing here left the run going unrecorded, its
    # record never begun: `labloom run` reported a Cancelled run the store never had. Held,
    # it ends the run right after, recorded. A bounded step: a server away costs at most
    # LABLOOM_DB_CONNECT_TIMEOUT seconds (5).
    with InterruptsHeld():
        _attach(run)


def _attach(run: Any) -> None:
    from ..core.errors import StoreUnavailableError
    from .cancel import watch
    from .db import get_database, is_transient
    from .recorder import Recorder, log_line_cap
    from .writer_registry import writer_for

    log_cap = log_line_cap()  # a bad LABLOOM_LOG_LINES raises here, before anything is written
    database = writer = None
    try:
        database = get_database()  # may make LABLOOM_HOME, which may fail
        writer = writer_for(database)
        # A writer whose thread holds a connection that wrote to this very file without
        # trouble (moments ago: an idle writer's thread ends within seconds) has checked the
        # store; a connection made here would only be closed again (0.4 ms of every run that
        # follows another, issue 21 §2). Otherwise a PostgreSQL server away or refusing costs
        # at most LABLOOM_DB_CONNECT_TIMEOUT seconds; the flow still runs (a scheduled job's
        # work matters more than its record). A file damaged in place since that write is
        # found by the writer, not here: the run is attached, its rows refused and counted
        # (``unrecorded``), as for damage during a run.
        checked = None if writer.writing_to(database.file_id()) else database.connect()
    except StoreUnavailableError as exc:
        log.warning("%s. Run %s of %r is not being recorded.", exc, run.id, run.flow_name)
        return
    except Exception as exc:
        if not is_transient(exc):
            raise  # a busy or full SQLite disk now: the writer waits it out
    else:
        if checked is not None:
            # The writer writes with it: closing the last connection of a new SQLite file
            # costs a checkpoint and a sync, and the writer would connect again at once.
            writer.adopt(checked)
    run.subscribe(Recorder(run, writer or writer_for(get_database()), log_cap), replay=True)
    watch(run, database=database)  # a cancel request from another process reaches the run


def import_recording() -> None:
    """Import the modules ``attach`` records a run with (the writer's, its rows', the cancel
    watcher's, the schema check's), when the store is on: ``labloom``'s first public name
    calls it (``defaults.import_observers``), so that they are not imported inside a
    process's first run, where they were 1.5 ms of a run of 1,000 task runs (issue 21 §2).
    Not ``import labloom.store`` itself: the CLI and the readers import this package and
    need none of them."""
    if enabled():
        from . import cancel, recorder, schema, writer, writer_registry  # noqa: F401


def unrecorded(run_id: str, timeout: float = 5.0) -> Any:
    """What of run ``run_id`` (of this process) the store is missing (an ``Unrecorded``:
    ``count``, ``reasons``, ``store``), after waiting up to ``timeout`` seconds for what is
    still being written; None when the record is whole (or the store is off)."""
    if not enabled():
        return None
    from .writer_registry import writers

    for writer in writers():
        if not writer.knows(run_id):
            continue
        writer.wait(timeout=timeout)
        lost = writer.missing(run_id)
        if lost.count:
            return lost
    return None


def stop_writing(url: str | None = None) -> None:
    """Let go of the store ``url`` (default: the one in force) in this process, for a store gone
    for good (a dropped database, a retired server, an unplugged disk): its writer stops now
    instead of retrying for ``LABLOOM_STORE_OUTAGE`` seconds (600), and its connections close.
    What waits to be written, and what runs still going send to it later, is dropped and
    counted (``unrecorded``); runs started afterwards are recorded again (a new writer).

    >>> import labloom.store
    >>> labloom.store.stop_writing()  # the warning said the store cannot be written now
    """
    from .db import database_url, forget

    forget(url or database_url())


def open_store(path: Path | None = None, url: str | None = None) -> RunStore:
    from .reader import RunStore

    return RunStore(path, url)


__all__ = ["PERSIST_MODES", "attach", "enabled", "import_recording", "open_store", "persist_mode",
           "stop_writing", "unrecorded"]
