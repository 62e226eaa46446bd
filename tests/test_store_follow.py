"""Following a run in the store by cursor (``store/follow.py``, ``dag/stored.FollowedGraph``):
a graph built while the run goes on and then fed only the changes written since ends exactly
where a graph rebuilt from every task run does. On SQLite and PostgreSQL (conftest's
BOTH_BACKENDS): the cursor is SQLite's rowid there and a BIGSERIAL column here.
"""

from __future__ import annotations

import threading
import time

from labloom import ThreadExecutor, flow, task
from labloom.dag.stored import stored_graph
from labloom.server_extension.graphs import RunGraphs
from labloom.store import follow, open_store

RELEASE = threading.Event()


@task(retries=1)
def step(i: int) -> int:
    if i % 7 == 3:
        raise ValueError(f"step {i} fails")
    RELEASE.wait(30)
    return i


@task
def total(values: list[int]) -> int:
    return sum(values)


@flow(executor=ThreadExecutor(8))
def followed(n: int = 40) -> int:
    return total(step.map(range(n)))  # type: ignore[return-value]


def _wait_for(check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_followed_graph_ends_where_a_rebuilt_one_does() -> None:
    RELEASE.clear()
    run = followed.run(background=True)
    graphs = RunGraphs()
    try:
        with open_store() as store:
            _wait_for(lambda: store.get_run(run.id) is not None
                      and store.get_run(run.id).counts.get("Running", 0) >= 4)  # type: ignore[union-attr]
            record = follow.run_without_counts(store, run.id)
            assert record is not None and record.state == "Running"
            with graphs.use(store, record) as graph:
                built_at = graph.cursor
                assert graph.store_counts() == store.get_run(run.id).counts  # type: ignore[union-attr]
    finally:
        RELEASE.set()
        run.wait(30)
    with open_store() as store:
        _wait_for(lambda: store.get_run(run.id).state == "Failed")  # type: ignore[union-attr]
        record = follow.run_without_counts(store, run.id)
        assert record is not None
        with graphs.use(store, record) as graph:
            assert graph.cursor > built_at  # it read on from its cursor...
            assert graph.graph is not None
            mine = (graph.graph.states_json(), graph.graph.header_json(0.0), graph.store_counts())
            tracebacks = {t.id: t.traceback for t in graph.graph.task_runs.values()}
            task_runs = {t.id: t.to_json() for t in graph.graph.task_runs.values()}
        rebuilt = stored_graph(record, store.task_runs(run.id), store.nodes(run.id))
        stored = store.get_run(run.id)
        assert stored is not None
        # ... and ends where a graph rebuilt from every task run does.
        assert mine == (rebuilt.states_json(), rebuilt.header_json(0.0), stored.counts)
        assert tracebacks == {t.id: t.traceback for t in rebuilt.task_runs.values()}
        # Alike but for when a retried task run started: its first attempt, as the live
        # widget shows it; the store's row keeps a later attempt's start.
        again = {t.id: {**t.to_json(), "start": task_runs[t.id]["start"]} if t.attempt > 1
                 else t.to_json() for t in rebuilt.task_runs.values()}
        assert task_runs == again
        assert any("step 3 fails" in text for text in tracebacks.values())
        # A page of task runs by cursor, in the order they were created.
        first = follow.task_runs_after(store, run.id, 0, 10)
        rest = follow.task_runs_after(store, run.id, first[-1][0], 1000)
        names = [t.name for _, t in first + rest]
        assert names == [t.name for t in store.task_runs(run.id)]
        failed = follow.task_runs_after(store, run.id, 0, 1000, state="Failed")
        assert {t.map_index for _, t in failed} == {i for i in range(40) if i % 7 == 3}
