"""A Ctrl-C while ``Writer.put`` paces its caller (more than a transaction waits, the store
behind) acts at once: the events stay queued and are written when the store lets them.

A run's end (``_finalize``, held) delivers what its bus still has in the main thread
(``EventBus.close``: the last batches go to the store's recorder there), and ``put`` held its
caller while the store was behind, ``NO_PROGRESS`` (5 s) at a time for as long as the store
kept writing: a held Ctrl-C waited for the backlog to shrink. Now the pacing gives up once a
held Ctrl-C waits to be raised (``interrupts_held.pending``), as ``Writer.wait`` does."""

from __future__ import annotations

import signal
import time

import pytest

from interrupt_checks import (
    quiet_progress,  # noqa: F401  (an autouse fixture)
    store_locked,
    sweep_on,
)
from labloom.core import events as ev
from labloom.core.interrupts_held import InterruptsHeld
from labloom.store.db import get_database
from labloom.store.recorder import Recorder
from labloom.store.writer_registry import writer_for


def test_a_held_ctrl_c_stops_the_pacing_of_a_put_before_the_store_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ev, "NO_PROGRESS", 600.0)  # paced past the guard below

    run = sweep_on("local", "paced").run(background=True)
    assert run.wait(60).value == "Completed"  # the store made, the run's rows written
    writer = writer_for(get_database())
    assert writer.wait(timeout=60)
    # More than a transaction's worth, so that ``put`` paces its caller.
    lines = [ev.LogRecord(run.id, None, 20, time.time(), f"line {i}")
             for i in range(writer.room() + 100)]
    returned_while_locked: list[bool] = []
    with store_locked() as locked, pytest.raises(KeyboardInterrupt), InterruptsHeld():
        signal.raise_signal(signal.SIGINT)  # a Ctrl-C, held (as a run's end is): raised at
        writer.put(Recorder(run, writer), lines)  # the block's end
        returned_while_locked.append(locked[0])
    assert returned_while_locked == [True], "the pacing waited for the store to answer"
    assert writer.wait(timeout=60), "what was queued was not written once the store answered"
    assert not writer.missing(run.id).count
