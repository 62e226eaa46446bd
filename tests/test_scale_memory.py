"""What a finished task run costs to keep, measured in a real flow (threads, the store on), so
that a million of them fit in the 400 MB that issue 21 asks for. No timing: sizes only."""

from __future__ import annotations

import gc
import sys
import time
import tracemalloc
import weakref
from typing import cast

import pytest

from labloom import ThreadExecutor
from labloom.core.states import State
from labloom.core.task_runs import TaskRun
from store_helpers import wide

# Bytes of Python objects a finished no-op task run keeps (its record, its result, its map
# index, its times in its map, its place in the run's lists): what letting go of the finished
# run frees. About 230 now (219 to 237 over 42 runs, quiet or beside two CPU hogs, alone or
# in a process running Dask's embedded cluster); 297 before the session 26 pass (the local
# handle, a complex for the times, two more slots); about 850 before the compact records.
# It used to be the growth of the process's traced memory over the run, which also counts
# what the process allocates meanwhile outside the run: CPython's table of interned strings
# grew inside the measured run (1.9 MB at once: pathlib interns path parts, and the store's
# writer makes a Path per commit), and the threads of a Dask cluster that earlier tests may
# leave running (DaskExecutor's embedded one lives until the process exits). Measured that
# way: 232 to 449 bytes over the same runs (292 without Dask); CI measured 314.
PER_TASK_RUN = 280


def test_a_finished_task_run_keeps_a_compact_record(monkeypatch: pytest.MonkeyPatch) -> None:
    # The console progress keeps a name and a state per task run (left for later): off here,
    # as in benchmarks/task_runs_scale.py.
    monkeypatch.setenv("LABLOOM_PROGRESS", "0")
    wide.run(n=50, executor=ThreadExecutor(4))  # imports, the store's writer: not counted
    n = 10_000
    gc.collect()
    tracemalloc.start()  # the run's objects are traced from their making, so freeing counts
    try:
        run = wide.run(n=n, executor=ThreadExecutor(4))
        assert run.state is State.COMPLETED and len(run.tasks) == n
        _check_the_last_task_run(run.id, run.tasks[-1], n)  # copies only: freed already
        engine = weakref.ref(run._engine)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
        del run
        # The run's objects are cycles (the engine and its parts): the collector frees them.
        # A task thread may still be returning from the last report: poll with a deadline.
        deadline = time.monotonic() + 30
        while engine() is not None and time.monotonic() < deadline:
            time.sleep(0.01)
            gc.collect()
        kept = held - tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert engine() is None, "something still holds a finished run the user let go of"
    assert kept / n < PER_TASK_RUN, f"{kept / n:.0f} bytes kept per task run"


def _check_the_last_task_run(run_id: str, tr: TaskRun, n: int) -> None:
    assert isinstance(tr, TaskRun) and sys.getsizeof(tr) <= 128
    assert tr.handle == n - 1  # a finished local call keeps its value, not a handle object
    # What the user reads is still there, rebuilt from the compact record.
    assert [entry.state for entry in tr.history] == [State.PENDING, State.RUNNING,
                                                     State.COMPLETED]
    assert tr.history[-1].time == tr.ended and tr.history[1].time == tr.started
    assert tr.created <= cast(float, tr.started) <= cast(float, tr.ended)
    assert tr.attempts == 1 and tr.waiting == 0
    assert tr.args == (n - 1,) and tr.kwargs == {} and tr.name == f"one[{n - 1}]"
    assert tr.id == f"{run_id}.{n - 1}" and tr.node_id and tr.message == ""
