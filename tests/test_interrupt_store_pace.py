"""A Ctrl-C while ``Writer.put`` paces its caller (more than a transaction waits, the store
behind) acts at once: the events stay queued and are written when the store lets them.

A run's end (``_finalize``, held) delivers what its bus still has in the main thread
(``EventBus.close``: the last batches go to the store's recorder there), and ``put`` held its
caller while the store was behind, ``NO_PROGRESS`` (5 s) at a time for as long as the store
kept writing: a held Ctrl-C waited for the backlog to shrink. Now the pacing gives up once a
held Ctrl-C waits to be raised (``interrupts_held.pending``), as ``Writer.wait`` does."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from interrupt_checks import (
    one,
    quiet_progress,  # noqa: F401  (an autouse fixture)
)
from labloom import flow
from labloom.core import events as ev
from labloom.core.interrupts_held import InterruptsHeld
from labloom.store.db import get_database
from labloom.store.recorder import Recorder
from labloom.store.writer_registry import writer_for


def test_a_held_ctrl_c_stops_the_pacing_of_a_put_before_the_store_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ev, "NO_PROGRESS", 600.0)  # paced past the guard below

    @flow(name="paced", executor="local")
    def sweep() -> list[int]:
        return one.map(range(3))

    run = sweep.run(background=True)
    assert run.wait(60).value == "Completed"  # the store made, the run's rows written
    writer = writer_for(get_database())
    assert writer.wait(timeout=60)
    # More than a transaction's worth, so that ``put`` paces its caller.
    lines = [ev.LogRecord(run.id, None, 20, time.time(), f"line {i}")
             for i in range(writer.room() + 100)]
    blocker = get_database().connect()
    blocker.execute("BEGIN IMMEDIATE")  # another process's long write: nothing commits
    locked = [True]

    def unlock() -> None:
        if locked[0]:
            locked[0] = False
            blocker.execute("COMMIT")

    guard = threading.Timer(120, unlock)  # the store answers at last (a failing test ends)
    guard.start()
    returned_while_locked: list[bool] = []
    try:
        with pytest.raises(KeyboardInterrupt), InterruptsHeld():  # as a run's end is
            signal.raise_signal(signal.SIGINT)  # a Ctrl-C, held: raised as the block ends
            writer.put(Recorder(run, writer), lines)
            returned_while_locked.append(locked[0])
    finally:
        guard.cancel()
        unlock()
        blocker.close()
    assert returned_while_locked == [True], "the pacing waited for the store to answer"
    assert writer.wait(timeout=60), "what was queued was not written once the store answered"
    assert not writer.missing(run.id).count
