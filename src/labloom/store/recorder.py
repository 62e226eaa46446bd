"""The store's subscriber of one run: it queues the run's events for the writer, and keeps
the count of what the store could not take (``Unrecorded``)."""

from __future__ import annotations

import os
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..core import events as ev
from ..core.env_numbers import env_number
from . import code_location
from .home import host_name, user_name

if TYPE_CHECKING:
    from .writer import Writer

FINAL_WAIT = 30.0  # how long a run's end waits for its last commit


def log_line_cap() -> int:
    """Log lines kept per task run (``LABLOOM_LOG_LINES``, default 1000); the rest are counted.
    Read once per run, as it is attached (``store.attach``), before its writer writes: a bad
    value raises there, never in the writer's thread, where raising would lose records."""
    return int(env_number("LABLOOM_LOG_LINES", 1000, "a whole number >= 0", lambda n: n >= 0,
                          meaning="log lines the store keeps per task run", whole=True))


UNWRITTEN = "still waiting to be written when the run ended"  # a reason of ``Unrecorded``


class Unrecorded:
    """What of a run is not in the store: ``count`` records (rows or events), and why.

    A plain class: making a dataclass compiles its methods, some 0.3 ms that every process's
    first run paid when it imported this module (issue 21 §2)."""

    __slots__ = ("count", "reasons", "store")

    def __init__(self, count: int, reasons: list[str] | None = None, store: str = "") -> None:
        self.count = count
        self.reasons = reasons if reasons is not None else []
        self.store = store

    def __repr__(self) -> str:
        return f"Unrecorded(count={self.count}, reasons={self.reasons!r}, store={self.store!r})"

    def plus(self, count: int, why: str) -> Unrecorded:
        """These and ``count`` more, for ``why`` (itself when ``count`` is 0)."""
        if not count:
            return self
        return Unrecorded(self.count + count, [*self.reasons, why], self.store)


class Recorder:
    """The bus subscriber of one run."""

    # Task runs' states before the rest of a map's announcements (see delivery.Delivery): a
    # view of the store sees a state change within a slice, not after the whole map.
    news_first = True
    # Handed over every 10 ms, not the bus's 50: the writer writes along with the run, and a
    # run's end waits only for what is left (issue 21 §2: a fresh run of 1,000 no-op task
    # runs waited a median 37 ms at its end for the writer to write what the last 50 ms had
    # queued, 17 ms now). An idle run's delivery still wakes every 50 ms (``Delivery``).
    flush_interval = 0.01

    def __init__(self, run: Any, writer: Writer, log_cap: int | None = None) -> None:
        self.run_id: str = run.id
        self._run = weakref.ref(run)  # to replay it into a new store file; never kept alive
        self.writer = writer
        self.pid = os.getpid()
        self.host = host_name()
        self.user = user_name()
        self.target = code_location.describe(run.flow)
        # Read before the writer takes the run (``attach``); a fresh one is given its own's.
        self.log_cap = log_line_cap() if log_cap is None else log_cap
        self.log_counts: dict[str, int] = {}  # lines seen per task run
        self.log_dropped: dict[str, int] = {}  # lines the engine counted but never sent
        self.noted_escapes = False
        self.unstored = 0  # lines and values shed for want of room (``room.py``)
        self.noted_unstored = False  # and the note of them written
        # Whether its state rows say what they moved from (``Rows.add``): no longer once its
        # run ended (a retry in this process announces task runs stored already), once a
        # record of it was lost, or for a run written again into a new store file.
        self.moves_known = True
        self.stale = False  # replaced by a new recorder: the store file changed
        self.lost = Unrecorded(0, store=writer.database.display)

    def __call__(self, batch: Sequence[ev.Event]) -> None:
        if self.stale:
            return
        seq = self.writer.put(self, batch)
        # A replay delivered on the writer's own thread must not wait for that thread.
        if ev.RunFinished in map(type, batch) and not self.writer.is_me():
            self.writer.wait(seq, FINAL_WAIT)

    def room(self) -> int:
        """Events the run's delivery hands at once and lets wait (``delivery.Delivery``)."""
        return self.writer.room()

    def start_over(self) -> None:
        """Its run written again from the start into a new store file (``Writer._reopen``),
        by a fresh recorder of it; this one ignores what it still gets."""
        if self.stale:
            return
        self.stale = True
        run = self._run()
        if run is None:
            return
        fresh = Recorder(run, self.writer, self.log_cap)  # the writer's thread: not read
        fresh.lost = self.lost
        fresh.moves_known = False  # the file now there may hold some of its task runs
        # The stale subscription stays (it ignores what it gets): unsubscribing here would
        # wait for its delivery, which may be waiting for this very thread.
        run.subscribe(fresh, replay=True)

    def drop(self, count: int, why: str) -> None:
        self.moves_known = False
        self.lost.count += count
        if why not in self.lost.reasons:
            self.lost.reasons.append(why)
        self.writer.lost[self.run_id] = self
