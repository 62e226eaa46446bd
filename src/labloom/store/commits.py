"""How much the store writer commits at once: about ``COMMIT_EVERY`` seconds of writing at the
pace the last transaction went, at most ``MAX_BATCH`` events. Big batches committed late kept
every view of the store seconds behind a busy run (a map's 100,000 announcements went first,
10,000 a transaction, and its states waited); small ones committed often keep it a fraction
of a second behind, at the cost of a commit (a WAL append on SQLite) every 0.1 s."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..core import events as ev

if TYPE_CHECKING:
    from .recorder import Recorder

COMMIT_EVERY = 0.1  # seconds a transaction aims to take
LEAST = 200  # events a transaction takes at least, however slow the last one went

Queued = list[tuple["Recorder", Sequence[ev.Event]]]


class CommitSize:
    """The writer's measure of a transaction; ``events`` is also what a run's delivery may
    hand it at once and let wait (``Recorder.room``), and ``Writer.put`` holds a delivery
    while more than that waits: a state change is never more than a few transactions behind."""

    def __init__(self) -> None:
        self.events = ev.MAX_BATCH // 4
        self.commits = 0  # transactions so far, for tests and benchmarks

    def cut(self, queue: Queued) -> Queued:
        """The next transaction's share of ``queue`` (taken from it): ``events`` events, the
        last batch split when it goes past (its rest stays first, its seq not yet written)."""
        items: Queued = []
        room = self.events
        while queue and room > 0:
            rec, batch = queue[0]
            if len(batch) > room:
                items.append((rec, batch[:room]))
                queue[0] = (rec, batch[room:])
                break
            items.append(queue.pop(0))
            room -= len(batch)
        return items

    def timed(self, events: int, seconds: float) -> None:
        """A transaction of ``events`` took ``seconds``: size the next ones to that pace
        (halfway from the last size, so one slow commit on a busy machine does not halve it)."""
        self.commits += 1
        if events >= LEAST and seconds > 0:
            fit = int(events * COMMIT_EVERY / seconds)
            self.events = max(LEAST, min(ev.MAX_BATCH, (self.events + fit) // 2))
