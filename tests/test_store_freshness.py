"""How far behind the run the store is: a task run's state change is committed soon after it
happens, not after every task run announced before it (issue 20: a map of 100,000 children
once kept every view of the store 11 to 16 s behind). No timing: orders of rows and sizes of
transactions, which is what decides the lag."""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Any

import pytest

from labloom import State, ThreadExecutor, flow, task
from labloom.core import events as ev
from labloom.store import open_store
from labloom.store import writer as writer_module
from labloom.store.commits import COMMIT_EVERY, LEAST, CommitSize
from labloom.store.db import get_database
from labloom.store.writer_registry import writer_for
from test_scale_memory import wide  # the benchmarks' flow: a no-op map of n

WIDTH = 20_000  # several of the store's transactions of announcements, even on a quiet machine


def test_a_map_s_first_states_are_committed_before_its_last_announcements(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Which rows come first depends on whether a child ended while the map's announcements
    # were still being handed to the store. Left to the scheduler, that is a race: the task
    # thread that reports a child's start goes on to launch others (up to the pool's 1,000
    # queued calls) before it runs the child, so the first children took 80 ms to 2 s from
    # start to end here, and CI once committed all 20,000 announcements before the first
    # completion. So the test makes sure a child ended first: another connection holds
    # SQLite's write lock until the engine says one completed. Meanwhile the writer waits for
    # the lock and the run's delivery waits for the writer after a transaction or two
    # (``Writer.put``; with the usual ``NO_PROGRESS`` it would stop waiting for a store stuck
    # that long).
    monkeypatch.setattr(ev, "NO_PROGRESS", 300.0)
    store = open_store()  # the file and its tables, before the lock
    assert store.path is not None
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    completed = threading.Event()

    def watch(batch: list[Any]) -> None:
        if any(isinstance(e, ev.StateChanged) and e.state is State.COMPLETED for e in batch):
            completed.set()

    try:
        run = wide.run(n=WIDTH, executor=ThreadExecutor(4), background=True)
        run.subscribe(watch, replay=True)
        assert completed.wait(120), "no child of the map completed while the store was held"
    finally:
        blocker.rollback()
        blocker.close()
    assert run.wait(300) is State.COMPLETED
    rows = store.conn.execute(
        "SELECT rowid, task_run_id, state FROM task_states WHERE run_id = ? ORDER BY rowid",
        (run.id,)).fetchall()
    announced = [rowid for rowid, _, state in rows if state == "Pending"]
    first_done = min(rowid for rowid, _, state in rows if state == "Completed")
    # Before (issue 20): every Pending row (the whole block) came first, then the states.
    # Now a completion queued behind the block passes the rest of it: it is committed within
    # a few transactions (about 2,500 rows each here), not after 20,000 announcements.
    assert first_done < announced[WIDTH // 2], (first_done, announced[WIDTH // 2])
    # Each task run's own rows keep their order: announced, running, completed.
    seen: dict[str, list[str]] = {}
    for _, task_run_id, state in rows:
        seen.setdefault(task_run_id, []).append(state)
    assert len(seen) == WIDTH
    assert all(states == ["Pending", "Running", "Completed"] for states in seen.values())
    store.close()


def test_the_writer_commits_a_fraction_of_a_second_at_a_time() -> None:
    # A transaction takes about COMMIT_EVERY seconds of writing at the pace the last one
    # went: a slow one makes the next smaller, a quick one bigger (up to MAX_BATCH).
    size = CommitSize()
    start = size.events
    size.timed(start, 10 * COMMIT_EVERY)  # ten times too slow
    assert size.events < start
    for _ in range(20):
        size.timed(size.events, COMMIT_EVERY / 100)
    assert size.events == ev.MAX_BATCH
    for _ in range(20):
        size.timed(size.events, 100.0)
    assert size.events == LEAST
    # A batch bigger than a transaction is split, its rest first in the queue.
    size.events = 3
    queue: list[Any] = [("a", [1, 2]), ("b", [3, 4, 5]), ("c", [6])]
    assert size.cut(queue) == [("a", [1, 2]), ("b", [3])]
    assert queue == [("b", [4, 5]), ("c", [6])]


@task
def nap(x: int) -> int:
    time.sleep(0.002)
    return x


@flow
def naps(n: int) -> None:
    nap.map(range(n))


def _commits() -> int:
    return writer_for(get_database()).size.commits


def test_a_writer_that_caught_up_lets_a_small_batch_gather(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Tasks slower than the writer: it writes each 10 ms delivery as it comes. It used to
    # commit each one (23 transactions per 1,000 task runs sleeping 0.5 ms, against 1.3 when
    # the writer was the bottleneck), and its CPU per task run nearly doubled; now a
    # transaction follows the last one's start by ``GATHER`` seconds at least. With GATHER an
    # hour, no transaction of the run is paced by time: the run's 400 task runs (some 40
    # deliveries) are committed only when a transaction's worth waits or the run's end waits
    # for the writer, however slow the machine; committing each delivery makes dozens.
    monkeypatch.setattr(writer_module, "GATHER", 3600.0)
    naps.run(n=10, executor=ThreadExecutor(2))  # the writer's thread and connection made
    before = _commits()
    run = naps.run(n=400, executor=ThreadExecutor(2), background=True)
    assert run.wait(120) is State.COMPLETED  # a hang guard: the run's end hurries the writer
    commits = _commits() - before
    events = 3 * 400  # each task run's Pending, Running, Completed
    assert commits <= events // LEAST + 3, commits


def test_a_run_s_end_does_not_wait_for_a_batch_to_gather(monkeypatch: pytest.MonkeyPatch) -> None:
    # Whoever waits for the writer (a run's end, ``unrecorded``) has it write what is queued
    # now. GATHER is an hour: a run's end that waited for a batch to gather would hang past
    # the guard, not finish late.
    monkeypatch.setattr(writer_module, "GATHER", 3600.0)
    naps.run(n=10, executor=ThreadExecutor(2))
    run = naps.run(n=20, executor=ThreadExecutor(2), background=True)
    assert run.wait(120) is State.COMPLETED, "the run's end waited for the writer to gather"
    store = open_store()
    states = store.conn.execute("SELECT count(*) FROM task_states WHERE run_id = ? AND state = ?",
                                (run.id, "Completed")).fetchone()
    assert states == (20,)
    store.close()
