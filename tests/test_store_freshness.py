"""How far behind the run the store is: a task run's state change is committed soon after it
happens, not after every task run announced before it (issue 20: a map of 100,000 children
once kept every view of the store 11 to 16 s behind). No timing: orders of rows and sizes of
transactions, which is what decides the lag."""

from __future__ import annotations

from typing import Any

from labloom import State, ThreadExecutor
from labloom.core import events as ev
from labloom.store import open_store
from labloom.store.commits import COMMIT_EVERY, LEAST, CommitSize
from test_scale_memory import wide  # the benchmarks' flow: a no-op map of n

WIDTH = 20_000  # several of the store's transactions of announcements, even on a quiet machine


def test_a_map_s_first_states_are_committed_before_its_last_announcements() -> None:
    run = wide.run(n=WIDTH, executor=ThreadExecutor(4))
    assert run.state is State.COMPLETED
    store = open_store()
    rows = store.conn.execute(
        "SELECT rowid, task_run_id, state FROM task_states WHERE run_id = ? ORDER BY rowid",
        (run.id,)).fetchall()
    announced = [rowid for rowid, _, state in rows if state == "Pending"]
    first_done = min(rowid for rowid, _, state in rows if state == "Completed")
    # Before: every Pending row (the whole block) came first, then the states. Now the first
    # completion is committed while the map is still being announced. (How early depends on
    # how soon a thread runs the first child, which a loaded machine delays: the last slice
    # is the bound that holds on any machine, the first half is what a quiet one shows.)
    assert first_done < announced[-1], (first_done, announced[-1])
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
