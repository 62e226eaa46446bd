"""Following a run in the store by cursor (``store/follow.py``, ``dag/stored.FollowedGraph``):
a graph built while the run goes on and then fed only the changes written since ends exactly
where a graph rebuilt from every task run does. On SQLite and PostgreSQL (conftest's
BOTH_BACKENDS): the cursor is SQLite's rowid there and a BIGSERIAL column here.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Any

import pytest

from labloom import ThreadExecutor, flow, task, unmapped
from labloom.dag.stored import FollowedGraph, stored_graph, task_run_info
from labloom.server_extension.graphs import RunGraphs, _build, _catch_up
from labloom.store import follow, open_store
from labloom.store.follow_states import TaskStates

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


@pytest.mark.parametrize("in_memory", [False, True], ids=["sql", "in_memory"])
def test_a_followed_graph_ends_where_a_rebuilt_one_does(
    store_backend: str, in_memory: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Followed the SQL way (``node_moves``), or with its task runs' states in memory
    (``TaskStates``: what the server does for running runs), through retries and failures."""
    # Changes read a few cursor positions at a time: the moves of consecutive reads add up.
    monkeypatch.setattr(follow, "SPAN", 7)
    monkeypatch.setattr("labloom.store.follow_states.SPAN", 7)
    RELEASE.clear()
    run = followed.run(background=True)
    graphs = RunGraphs()
    try:
        with open_store() as store:
            _wait_for(lambda: store.get_run(run.id) is not None
                      and store.get_run(run.id).counts.get("Running", 0) >= 4)  # type: ignore[union-attr]
            record = follow.run_without_counts(store, run.id)
            assert record is not None and record.state == "Running"
            states = TaskStates(run.id) if in_memory else None
            graph = _build(store, record, states)  # built while the run goes on...
            built_at = graph.cursor
            assert graph.store_counts() == store.get_run(run.id).counts  # type: ignore[union-attr]
            with graphs.use(store, record) as same:
                assert same.store_counts() == graph.store_counts()
            # The server keeps a running run's task runs' states in memory, within its bound.
            assert graphs.kept_in_memory() == follow.count_task_runs(store, run.id) >= 40
            bounded = RunGraphs(in_memory=39)
            with bounded.use(store, record) as same:
                assert same.store_counts() == graph.store_counts()
            assert bounded.kept_in_memory() == 0, "past the bound: followed the SQL way"
    finally:
        RELEASE.set()
        run.wait(30)
    with open_store() as store:
        _wait_for(lambda: store.get_run(run.id).state == "Failed")  # type: ignore[union-attr]
        record = follow.run_without_counts(store, run.id)
        assert record is not None
        seeks = _seeks_of_task_states_by_task_run(store)
        assert _catch_up(store, record, graph, states=states)  # ... then fed what moved since
        if in_memory and store_backend == "sqlite":
            assert seeks == [], "in memory: task_states is read by rowid range only"
        elif store_backend == "sqlite":
            assert seeks, "the SQL way seeks each changed task run's state before"
        assert graph.cursor > built_at
        assert graph.graph.task_runs == {}  # kept by node: nothing held per task run
        mine = (graph.graph.states_json(), graph.graph.header_json(0.0), graph.store_counts())
        rebuilt = stored_graph(record, store.task_runs(run.id), store.nodes(run.id))
        stored = store.get_run(run.id)
        assert stored is not None
        # ... ends where a graph rebuilt from every task run does ...
        assert mine == (rebuilt.states_json(), rebuilt.header_json(0.0), stored.counts)
        assert graph.digest == _build(store, record).digest
        # ... and so does the server's graph of the ended run (counted afresh).
        with graphs.use(store, record) as ended:
            assert (ended.graph.states_json(), ended.store_counts()) == mine[::2]
        assert graphs.kept_in_memory() == 0, "an ended run is counted once, nothing kept"
        # The task runs stay in the store, read by node a page at a time.
        step_node = next(n.id for n in rebuilt.nodes.values() if n.name == "step")
        children = follow.node_task_runs(store, run.id, step_node, 10, 5)
        assert [t.map_index for t in children] == [10, 11, 12, 13, 14]
        total_node = next(n.id for n in rebuilt.nodes.values() if n.name == "total")
        [total_run] = follow.node_task_runs(store, run.id, total_node)
        info = task_run_info(record, total_run)
        assert info.to_json() == rebuilt.task_runs[total_run.id].to_json()
        [failed] = follow.node_task_runs(store, run.id, step_node, 3, 1)
        assert "step 3 fails" in task_run_info(record, failed).traceback
        # A page of task runs by cursor, in the order they were created.
        first = follow.task_runs_after(store, run.id, 0, 10)
        rest = follow.task_runs_after(store, run.id, first[-1][0], 1000)
        names = [t.name for _, t in first + rest]
        assert names == [t.name for t in store.task_runs(run.id)]
        failed_runs = follow.task_runs_after(store, run.id, 0, 1000, state="Failed")
        assert {t.map_index for _, t in failed_runs} == {i for i in range(40) if i % 7 == 3}


def _seeks_of_task_states_by_task_run(store: Any) -> list[str]:
    """SQLite: from now on, each statement the store's connection runs that reads
    ``task_states`` through its index by task run (its plan says so)."""
    seeks: list[str] = []
    if store.conn.kind != "sqlite":
        return seeks
    planner = sqlite3.connect(store.path)

    def traced(sql: str) -> None:
        if "task_states" in sql and not sql.lstrip().upper().startswith("EXPLAIN"):
            plan = " ".join(str(row[-1]) for row in planner.execute(
                "EXPLAIN QUERY PLAN " + sql.replace("?", "NULL")).fetchall())
            if "task_states_by_task_run" in plan:
                seeks.append(sql)

    store.conn.raw.set_trace_callback(traced)
    return seeks


def test_the_cursor_read_uses_an_index_on_postgresql(store_backend: str) -> None:
    """On PostgreSQL ``rowid`` is a column: the reads by cursor of one run's task-run states
    go through ``task_states_by_run`` (run_id, rowid), schema version 8, not a scan of the
    table. SQLite reads a range of the table's own b-tree (its key is the rowid)."""
    with open_store() as store:
        conn = store.conn
        rows = [(f"r{i % 50}.{i}", f"r{i % 50}", "Pending") for i in range(20_000)]
        with conn.transaction():
            conn.executemany(
                "INSERT INTO task_states (task_run_id, run_id, state) VALUES (?, ?, ?)", rows
            )
        if store_backend == "postgresql":
            conn.execute("ANALYZE task_states")
            plan = " ".join(row[0] for row in conn.execute(
                "EXPLAIN SELECT task_run_id, MIN(rowid), MAX(rowid) FROM task_states "
                "WHERE rowid > ? AND rowid <= ? AND run_id = ? GROUP BY 1", (19_000, 20_000, "r7")
            ).fetchall())
            assert "task_states_by_run" in plan, plan
            top = " ".join(row[0] for row in conn.execute(
                "EXPLAIN SELECT MAX(rowid) FROM task_states WHERE run_id = ?", ("r7",)
            ).fetchall())
            assert "task_states_by_run" in top, top
        else:
            plan = " ".join(str(row[-1]) for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT task_run_id || '', MIN(rowid), MAX(rowid) FROM "
                "task_states WHERE rowid > ? AND rowid <= ? AND run_id = ? GROUP BY 1",
                (19_000, 20_000, "r7")
            ).fetchall())
            assert "INTEGER PRIMARY KEY (rowid>? AND rowid<?)" in plan, plan
        top_at, moves = follow.node_moves(store, "r7", 19_000)
        assert 19_900 < top_at <= 20_000 and moves == []  # states of task runs not stored


@task
def base() -> int:
    return 10


@task
def add(i: int, b: int) -> int:
    return i + b


@flow(executor=ThreadExecutor(4))
def small(n: int = 5) -> list[int]:
    return add.map(range(n), unmapped(base()))  # type: ignore[return-value]


def test_a_run_recorded_before_nodes_were_stored_is_drawn_from_its_task_runs(
    store_backend: str,
) -> None:
    """Runs written before the store kept graph nodes (no ``run_nodes`` rows, no node ids):
    one node per task name, edges from the task runs' upstream lists, as ``stored_graph``."""
    run = small.run(n=5)
    with open_store() as store:
        with store.conn.transaction():
            store.conn.execute("DELETE FROM run_nodes WHERE run_id = ?", (run.id,))
            store.conn.execute("UPDATE task_runs SET node_id = NULL WHERE run_id = ?", (run.id,))
        record = follow.run_without_counts(store, run.id)
        assert record is not None
        graph = _build(store, record)
        rebuilt = stored_graph(record, store.task_runs(run.id))
        assert set(graph.graph.nodes) == {"task:base", "task:add"}
        assert graph.graph.edges() == rebuilt.edges() == [("task:base", "task:add")]
        assert graph.graph.states_json() == rebuilt.states_json()
        assert graph.store_counts() == {"Completed": 6}
        children = follow.node_task_runs(store, run.id, "task:add", 0, 100)
        assert [t.map_index for t in children] == [0, 1, 2, 3, 4]


def _net(moves: list[follow.NodeMove]) -> dict[tuple[str, str | None], int]:
    """Moves as what they add to each node's counts by state (None: its width)."""
    net: dict[tuple[str, str | None], int] = {}
    for node, _name, _map, state, before, n in moves:
        net[(node, state)] = net.get((node, state), 0) + n
        net[(node, before)] = net.get((node, before), 0) + (n if before is None else -n)
    return {key: n for key, n in net.items() if n}


def test_states_in_memory_move_as_the_sql_way_and_give_way_when_a_task_run_is_missing(
    store_backend: str,
) -> None:
    """From any cursor, ``TaskStates.moves`` adds up to what ``node_moves`` reads; a state row
    whose task run the store does not have (a store that broke the rule that both commit
    together) makes it give way: the graph is then followed the SQL way, and still right."""
    run = small.run(n=5)
    with open_store() as store:
        top, moves = follow.node_moves(store, run.id, 0)
        found = TaskStates(run.id).moves(store, 0)
        assert found is not None and found[0] == top
        assert _net(found[1]) == _net(moves) and _net(moves)
        record = follow.run_without_counts(store, run.id)
        assert record is not None
        child = next(t for t in store.task_runs(run.id) if t.map_index == 2)
        with store.conn.transaction():
            store.conn.execute("DELETE FROM task_runs WHERE id = ?", (child.id,))
        assert TaskStates(run.id).moves(store, 0) is None
        graph = FollowedGraph(record, [], store.nodes(run.id), 0)
        assert not _catch_up(store, record, graph, states=TaskStates(run.id))
        assert graph.store_counts() == {"Completed": 5}  # the 6 task runs less the missing one
