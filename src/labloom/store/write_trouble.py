"""What a store's writer says when it cannot write as it meant to, and what it counts.

Each kind of trouble is said once on stderr (a busy store must not print a line per commit):
an outage when it starts and when it ends, a refused batch or row once per kind of error, a
backlog past its cap once; what is dropped is counted against its run (``Recorder.drop``),
which ``unrecorded`` and ``labloom run``'s exit status tell. The writer (``writer.py``) decides
when; this says it and keeps the count.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .db import is_disk_trouble, is_transient, short_error
from .row_tables import Table
from .rows import Rows
from .settings import StoreSettings

log = logging.getLogger("labloom")


class WriteTrouble:
    """One writer's trouble with its store ``display`` (the URL, its password masked)."""

    def __init__(self, display: str, settings: StoreSettings) -> None:
        self.display = display
        self.settings = settings
        self._said: set[str] = set()
        self._since: float | None = None  # since when writes fail

    def say_once(self, key: str, message: str) -> None:
        if key not in self._said:
            self._said.add(key)
            log.warning("%s", message)

    def failing(self, exc: BaseException, rows: Rows | None = None) -> None:
        """A write failed in a way that passes: said at the first failure of an outage. When
        for want of room, ``rows`` are tried again one by one, states first (``Rows.tables``):
        a batch made large by a task's log lines never fit again whole, and the run's states
        in it went with its lines (a completed run left Crashed, or not in the store at all)."""
        if rows is not None and is_disk_trouble(exc):
            rows.split = True
        if self._since is None:
            self._since = time.monotonic()
            log.warning("[labloom] the run store %s cannot be written now (%s); trying again for "
                        "up to %gs, keeping at most %d events in memory meanwhile%s (a store "
                        "gone for good: labloom.store.stop_writing() gives up now)",
                        self.display, short_error(exc), self.settings.outage, self.settings.backlog,
                        "; the runs' states first, in room kept for them, log lines and logged "
                        "values once there is room" if is_disk_trouble(exc) else "")

    def passes(self, exc: BaseException, rows: Rows) -> bool:
        """Whether a row's failure is waited out (tried again later), or costs the row. Of a
        batch split for want of room, once its states are in, a log line, metric or count
        that does not fit is dropped and counted: waited for, it held the states of every
        batch after it (the run's end), all lost when the outage outlasted the run."""
        said = (rows.logs, rows.values, rows.cuts)  # written last (``Rows.tables``)
        if rows.split and is_disk_trouble(exc) and all(
                t.done >= len(t.rows) for t in rows.tables() if t not in said):
            self._no_room_for_the_rest(rows, said, exc)
            return False
        return is_transient(exc)

    @contextmanager
    def spared(self, rows: Rows) -> Iterator[None]:
        """Around the heartbeat after a split batch's rows: with no room for it either, the
        beat waits for the next write, rather than the rows after these (the run's end) for
        the disk: tried again and again, it held them until the run's final wait was over."""
        try:
            yield
        except Exception as exc:
            if not (rows.split and is_disk_trouble(exc)):
                raise

    def _no_room_for_the_rest(self, rows: Rows, said: tuple[Table, ...],
                              exc: BaseException) -> None:
        """The rows of ``said`` after the one refused now go too, counted: each tried alone on
        a full disk cost a failed transaction (30,000 lines outlasted the run's final wait)."""
        current = next(t for t in said if t.done < len(t.rows))  # the row refused now
        for table in said:
            start = table.done + 1 if table is current else table.done
            if table is current or start < len(table.rows):
                counts: dict[str, int] = {}
                for run_id in table.runs[start:]:
                    counts[run_id] = counts.get(run_id, 0) + 1
                why = f"{table.what} refused by the store ({short_error(exc)})"
                for run_id, count in counts.items():
                    if (rec := rows.recorders.get(run_id)) is not None:
                        rec.drop(count, why)
                table.done = len(table.rows) - (table is current)

    def recovered(self) -> None:
        if self._since is not None:
            log.warning("[labloom] the run store %s is written again after %.1fs",
                        self.display, time.monotonic() - self._since)
            self._since = None

    def batch_refused(self, exc: BaseException) -> None:
        self.say_once(f"batch {type(exc).__name__}",
                      f"[labloom] the run store {self.display} refused a batch of rows "
                      f"({short_error(exc)}); writing them one by one, dropping only those it "
                      "refuses")

    def row_refused(self, rows: Rows, table: Table, run_id: str, exc: BaseException) -> None:
        why = f"{table.what} refused by the store ({short_error(exc)})"
        rec = rows.recorders.get(run_id)
        if rec is not None:
            rec.drop(1, why)
        self.say_once(f"row {table.what} {type(exc).__name__}",
                      f"[labloom] the run store {self.display} refused a row of run {run_id} "
                      f"({why}); that row is dropped and counted, the others are written")

    def gave_up(self, rows: Rows, exc: BaseException, let_go: str | None = None,
                explain: Callable[[str], str] = str) -> None:
        """The outage outlasted ``LABLOOM_STORE_OUTAGE`` (or the store was let go of, saying
        ``let_go``): the rows not written yet are dropped, counted per run; recording goes on
        with the next ones (not for a store let go of: see ``let_go``). ``explain`` adds to the
        reason (``Room.why_unwritten``: the full disk and its fix)."""
        counts: dict[str, int] = {}
        for table in rows.tables():
            for run_id in table.runs[table.done:]:
                counts[run_id] = counts.get(run_id, 0) + 1
            table.done = len(table.rows)
        cause = let_go or (f"the store could not be written for {self.settings.outage:g}s "
                           "(LABLOOM_STORE_OUTAGE)")
        why = explain(f"{cause}: {short_error(exc)}")
        for run_id, count in counts.items():
            rec = rows.recorders.get(run_id)
            if rec is not None:
                rec.drop(count, why)
        log.error("[labloom] %s; %d record(s) of run(s) %s dropped%s",
                  why.replace("the store", f"the run store {self.display}", 1),
                  sum(counts.values()), ", ".join(sorted(counts)) or "-",
                  "" if let_go else ", recording goes on with the next ones")
        self._since = None

    def let_go(self, count: int, why: str) -> None:
        """The store was let go of (``Writer.retire``) with ``count`` records waiting."""
        log.warning("[labloom] %s: %d record(s) waiting for the run store %s are dropped, and so "
                    "is what its runs still send (counted: labloom.store.unrecorded)",
                    why, count, self.display)
