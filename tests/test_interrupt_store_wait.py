"""A Ctrl-C while a run's end waits for the store's last commit acts at once, and the store
still gets the run's end: nothing recorded is lost.

A run's end waits (up to ``recorder.FINAL_WAIT``, 30 s) for the commit of its last events, so
that the store agrees once ``run.wait()`` returns. That wait sits inside the run's held end
(interrupts_held.py): a Ctrl-C during it was held until the store answered, or the 30 s
passed; a store locked by another process (a long SQLite write, a PostgreSQL lock) kept the
user's Ctrl-C waiting that long. Now the wait gives up when a held Ctrl-C waits to be raised
(``interrupts_held.pending``); the writer's thread still writes what waits."""

from __future__ import annotations

import signal
import threading

import pytest

from cli_helpers import wait_for
from interrupt_checks import (
    one,
    quiet_progress,  # noqa: F401  (an autouse fixture)
    store_agrees,
    store_locked,
)
from labloom import flow
from labloom.store import open_store, recorder
from labloom.store.db import get_database
from labloom.store.writer_registry import writer_for
from run_helpers import runs_started


def test_a_ctrl_c_as_a_runs_end_waits_for_a_locked_store_acts_before_the_store_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(recorder, "FINAL_WAIT", 600.0)  # longer than the guard below

    @flow(name="slow_store", executor="local")
    def sweep() -> list[int]:
        return one.map(range(3))

    sweep.run()  # the store made
    writer = writer_for(get_database())
    def ctrl_c_as_the_end_waits() -> None:
        wait_for(lambda: writer._hurry > 0, 60, "the run's end to wait for the store")
        main = threading.main_thread().ident
        assert main is not None
        signal.pthread_kill(main, signal.SIGINT)  # a real Ctrl-C, in the main thread

    came_while_locked: list[bool] = []
    with store_locked() as locked:  # another process's long write: nothing commits
        sender = threading.Thread(target=ctrl_c_as_the_end_waits, daemon=True)
        sender.start()
        try:
            with runs_started() as runs:
                try:
                    sweep.run()
                except KeyboardInterrupt:
                    came_while_locked.append(locked[0])
        finally:
            sender.join(60)
    assert came_while_locked == [True], "the Ctrl-C waited for the store to answer"
    [run] = runs
    assert run.state.value == "Completed"  # it came as the run ended: its end stands
    store_agrees("after the Ctrl-C", run)
    with open_store() as store:
        record = store.get_run(run.id)
    assert record is not None and record.counts == {"Completed": 3}
