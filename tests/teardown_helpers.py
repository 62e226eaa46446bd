"""What a test leaves running is stopped at its end, so that the next test of the worker starts
clean (``tests/conftest.py``'s ``nothing_left_running``).

A test that fails mid-run leaves its run going and the store's writer retrying: a PostgreSQL
database the fixture drops, a SQLite folder the test removed, waited out for up to
``LABLOOM_STORE_OUTAGE`` (600 s). Every later test of that worker that waits for the store's
thread to end (``labloom-store``) then timed out: one failure became many. At the test's end:

- the runs it started that still go are cancelled (``cancel_runs``, while the test's
  environment still names its store);
- every store it opened is let go of (``labloom.store.db.forget``: the writer drops what waits,
  counted, and its thread ends; pools and the limits' connections close);
- what still runs after that is named once, in that test's own report (``still_running``).

Only labloom's documented hooks: ``add_run_observer`` (the runs a test starts), ``db.known_urls``
and ``db.forget`` (the stores it opened), thread names.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from typing import Any

from labloom.core.observers import add_run_observer
from labloom.store import db

STORE_THREAD = "labloom-store"  # a store's writer (store/writer.py)
# Seconds for cancelled runs to end and let-go writers' threads to stop; LABLOOM_TEST_SETTLE
# for a test of this teardown that runs pytest in pytest, with a writer that cannot stop.
SETTLE = float(os.environ.get("LABLOOM_TEST_SETTLE", "10"))
LEFT_REASON = "the test ended with this run still going (tests/teardown_helpers.py)"


class LeftBehind:
    """What one test started: its runs, its stores, its store threads."""

    def __init__(self) -> None:
        self._runs: list[weakref.ref[Any]] = []
        self._stop_watching = add_run_observer(lambda run: self._runs.append(weakref.ref(run)))
        self._stores = set(db.known_urls())
        self._threads = set(_store_threads())

    def _going(self) -> list[Any]:
        return [run for ref in self._runs if (run := ref()) is not None
                and not run.state.is_final]

    def cancel_runs(self) -> None:
        self._stop_watching()
        for run in self._going():
            run.cancel(LEFT_REASON)

    def let_go_of_stores(self) -> None:
        for url in sorted(set(db.known_urls()) - self._stores):
            db.forget(url)

    def still_running(self) -> list[str]:
        """What of this test still runs ``SETTLE`` seconds after it was stopped, named."""
        deadline = time.monotonic() + SETTLE
        while True:
            runs = self._going()
            threads = [t for t in _store_threads() if t not in self._threads]
            if not (runs or threads) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        return ([f"run {run.id} of flow {run.flow_name!r} ({run.state.value})" for run in runs]
                + [f"thread {t.name} (a store's writer still writing)" for t in threads])


def _store_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == STORE_THREAD and t.is_alive()]
