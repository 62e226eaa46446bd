"""What a finished task run costs to keep, measured in a real flow (threads, the store on), so
that a million of them fit in the 400 MB that issue 21 asks for. No timing: sizes only."""

from __future__ import annotations

import gc
import sys
import tracemalloc
from typing import cast

import pytest

from labloom import ThreadExecutor
from labloom.core.states import State
from labloom.core.task_runs import TaskRun
from store_helpers import wide

# Bytes of Python objects kept per finished no-op task run (its record, its result, its map
# index, its times in its map, its place in the run's lists). About 226 now; 297 before the
# session 26 pass (the local handle, a complex for the times, two more slots); about 850
# before the compact records. 226 to 259 measured over runs (what is still in flight when the
# run returns varies: CI measured 259), so the bound keeps a margin above that spread.
PER_TASK_RUN = 280


def test_a_finished_task_run_keeps_a_compact_record(monkeypatch: pytest.MonkeyPatch) -> None:
    # The console progress keeps a name and a state per task run (left for later): off here,
    # as in benchmarks/task_runs_scale.py.
    monkeypatch.setenv("LABLOOM_PROGRESS", "0")
    wide.run(n=50, executor=ThreadExecutor(4))  # imports, the store's writer: not counted
    n = 10_000
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        run = wide.run(n=n, executor=ThreadExecutor(4))
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert run.state is State.COMPLETED and len(run.tasks) == n
    assert kept / n < PER_TASK_RUN, f"{kept / n:.0f} bytes kept per task run"
    tr = run.tasks[-1]
    assert isinstance(tr, TaskRun) and sys.getsizeof(tr) <= 128
    assert tr.handle == n - 1  # a finished local call keeps its value, not a handle object
    # What the user reads is still there, rebuilt from the compact record.
    assert [entry.state for entry in tr.history] == [State.PENDING, State.RUNNING,
                                                     State.COMPLETED]
    assert tr.history[-1].time == tr.ended and tr.history[1].time == tr.started
    assert tr.created <= cast(float, tr.started) <= cast(float, tr.ended)
    assert tr.attempts == 1 and tr.waiting == 0
    assert tr.args == (n - 1,) and tr.kwargs == {} and tr.name == f"one[{n - 1}]"
    assert tr.id == f"{run.id}.{n - 1}" and tr.node_id and tr.message == ""
