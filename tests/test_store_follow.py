"""Following a run in the store by cursor (``store/follow.py``, ``dag/stored.FollowedGraph``):
a graph built while the run goes on and then fed only the changes written since ends exactly
where a graph rebuilt from every task run does. On SQLite and PostgreSQL (conftest's
BOTH_BACKENDS): the cursor is SQLite's rowid there and a BIGSERIAL column here.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest

from labloom import ThreadExecutor, flow, task, unmapped
from labloom.dag.stored import stored_graph, task_run_info
from labloom.server_extension.graphs import RunGraphs, _build, _catch_up
from labloom.store import follow, open_store
from labloom.store.reader import RunStore

RELEASE = threading.Event()
RESTING = {"Pending": 32, "Retrying": 1, "Running": 8}  # followed(40) until RELEASE


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


def _forget_moves(store: RunStore, run_id: str, after: int, which: str) -> None:
    """The run's state rows after ``after`` as an older labloom wrote them (schema version 11
    and before: no node, no state before; migrating leaves them NULL), all or some."""
    if which == "none":
        return
    conn = store.conn
    some = " AND rowid % 20 < 7" if which == "some" else ""  # some reads all new
    with conn.transaction():
        conn.execute("UPDATE task_states SET node_id = NULL, before_state = NULL "
                     f"WHERE run_id = ? AND rowid > ?{some}", (run_id, after))


@pytest.mark.parametrize("old_rows", ["none", "some", "all"])
def test_a_followed_graph_ends_where_a_rebuilt_one_does(
    store_backend: str, monkeypatch: pytest.MonkeyPatch, old_rows: str
) -> None:
    """Also when some or all of the rows read were written by an older labloom (no node or
    state before in them): those ranges are counted per task run instead."""
    # Changes read a few cursor positions at a time: the moves of consecutive reads add up.
    monkeypatch.setattr(follow, "SPAN", 7)
    RELEASE.clear()
    run = followed.run(background=True)
    graphs = RunGraphs()
    try:
        with open_store() as store:
            # Built once the run rests, so that counts read one after another agree: on the
            # first few Running the pool was still filling (a count read a moment later had
            # more), and the test failed now and then. It rests with the pool's 8 threads in
            # step (children 0-2 and 4-8: 3 failed at once and its retry waits behind the 31
            # not started), total waiting for them.
            _wait_for(lambda: store.get_run(run.id) is not None
                      and store.get_run(run.id).counts == RESTING)  # type: ignore[union-attr]
            record = follow.run_without_counts(store, run.id)
            assert record is not None and record.state == "Running"
            graph = _build(store, record)  # built while the run goes on...
            built_at = graph.cursor
            assert graph.store_counts() == store.get_run(run.id).counts  # type: ignore[union-attr]
            with graphs.use(store, record) as same:
                assert same.store_counts() == graph.store_counts()
    finally:
        RELEASE.set()
        run.wait(30)
    with open_store() as store:
        _wait_for(lambda: store.get_run(run.id).state == "Failed")  # type: ignore[union-attr]
        record = follow.run_without_counts(store, run.id)
        assert record is not None
        _forget_moves(store, run.id, built_at, old_rows)
        _catch_up(store, record, graph)  # ... then fed only what moved since
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


def _net(moves: list[follow.NodeMove]) -> dict[tuple[Any, ...], int]:
    """What moves do to a graph's counts by node: (node, name, a map, state or "width")."""
    net: Counter[tuple[Any, ...]] = Counter()
    for node, name, is_map, state, before, n in moves:
        net[(node, name, is_map, state)] += n
        if before is None:
            net[(node, name, is_map, "width")] += n
        else:
            net[(node, name, is_map, before)] -= n
    return {key: n for key, n in net.items() if n}


def test_the_grouped_count_of_moves_equals_the_count_per_task_run(
    store_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each state row says its node and state before (schema version 12), so a look is one
    grouped count of a range of rows: what it counts comes to the same as counting each task
    run's moves (the read before, ``follow._MOVES``) over any range, on a run with failures,
    retries of attempts and a retry of the run (whose rows say nothing: read the old way)."""
    RELEASE.set()
    run = followed.run(n=30)
    assert run.state == "Failed"
    with open_store() as store:
        conn = store.conn
        first_top = follow.state_cursor(store, run.id)
        unsaid = conn.execute("SELECT COUNT(*) FROM task_states WHERE run_id = ? AND "
                              "node_id IS NULL", (run.id,)).fetchone()[0]
        assert unsaid == 0  # this labloom's writer says them all: the grouped count is used
        states = {row[0] for row in conn.execute(
            "SELECT before_state FROM task_states WHERE run_id = ?", (run.id,))}
        assert {None, "Pending", "Running", "Retrying"} <= states
    run.retry()
    with open_store() as store:
        conn = store.conn
        top = follow.state_cursor(store, run.id)
        assert top > first_top
        monkeypatch.setattr(follow, "SPAN", 5)  # many reads, some across the retry
        for after, upto in [(0, top), (0, first_top), (3, 60), (17, first_top + 9),
                            (first_top - 4, top), (41, 42)]:
            _, grouped = follow.node_moves(store, run.id, after, upto - after)
            per_task_run = conn.execute(follow._MOVES, (after, upto, run.id, run.id)).fetchall()
            assert _net(grouped) == _net(per_task_run), (after, upto)
        assert _net(follow.node_moves(store, run.id, 0)[1])  # (not all empty)


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
            grouped = " ".join(row[0] for row in conn.execute(
                "EXPLAIN " + follow._COUNTS, (19_000, 20_000, "r7", "r7")).fetchall())
            assert "task_states_by_run" in grouped, grouped
        else:
            plan = " ".join(str(row[-1]) for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT task_run_id || '', MIN(rowid), MAX(rowid) FROM "
                "task_states WHERE rowid > ? AND rowid <= ? AND run_id = ? GROUP BY 1",
                (19_000, 20_000, "r7")
            ).fetchall())
            assert "INTEGER PRIMARY KEY (rowid>? AND rowid<?)" in plan, plan
            grouped = " ".join(str(row[-1]) for row in conn.execute(
                "EXPLAIN QUERY PLAN " + follow._COUNTS, (19_000, 20_000, "r7", "r7")).fetchall())
            assert "INTEGER PRIMARY KEY (rowid>? AND rowid<?)" in grouped, grouped
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


@task
def noop(i: int) -> int:
    return i


@flow(executor="local")
def wide(n: int) -> int:
    return total(noop.map(range(n)))  # type: ignore[return-value]


def test_reads_and_deletes_by_more_ids_than_a_statement_takes(store_backend: str) -> None:
    """``multirow.rows_in`` and ``in_chunks`` ask 500 ids a statement (SQLite's bound
    parameters): each reader and the deletion by ids see every row of 1,201 ids and more."""
    from labloom.store.copying import present_keys
    from labloom.store.multirow import IN_CHUNK
    from labloom.store.pruning import delete_run_rows

    run = wide.run(n=1_200)
    assert run.state.value == "Completed"
    others = [f"{i:012x}" for i in range(IN_CHUNK + 100)]  # ids that name nothing
    with open_store() as store:
        ids = [task.id for task in store.task_runs(run.id)]
        assert len(ids) == 1_201 > 2 * IN_CHUNK
        assert set(follow.task_runs_by_id(store, ids + others)) == set(ids)
        assert present_keys(store.conn, "task_runs", "id", others + ids) == set(ids)
        watched, _ = follow.runs_to_watch(store, {run.id, *others}, time.time() + 60)
        assert [r.id for r in watched] == [run.id] and watched[0].parameters == {}
        with store.conn.transaction() as conn:
            delete_run_rows(conn, [*others, run.id])
        assert store.get_run(run.id) is None and not follow.task_runs_by_id(store, ids)


@task
def talker(i: int) -> None:
    for line in range(5 if i == 3 else 1):
        print(f"child {i} line {line}")


@flow(executor="local")
def talkers(n: int) -> None:
    talker.map(range(n))


def test_a_tasks_logs_are_those_of_the_whole_run_it_names(
    store_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``RunStore.logs(run, task)`` (``labloom logs RUN --task``, ``run.logs(task)`` from the
    store) reads only the lines of the task runs ``task`` names: the same lines, names, order
    and cut notes as the whole run's kept by ``run_logs.named``; a map's name that names more
    task runs than an ``IN`` takes reads the run's lines (benchmarks/task_logs.py: the speed)."""
    from labloom.core.run_logs import named

    monkeypatch.setenv("LABLOOM_LOG_LINES", "2")
    run = talkers.run(n=620)
    assert run.state.value == "Completed"
    with open_store() as store:
        every, all_cuts = store.logs(run.id)
        assert len(every) == 621 and [c.task for c in all_cuts] == ["talker[3]"]
        child = next(line.task_run_id for line in every if line.task == "talker[7]")
        assert child is not None
        # talker[03] names no child (as run_logs.named says); talker[²] is no index (int()
        # refused it: `labloom logs RUN --task 'talker[²]'` was a traceback).
        for spec in ("talker", "talker[3]", child, "talker[619]", "talker[620]", "nothing",
                     "talker[03]", "talker[²]"):
            lines, cuts = store.logs(run.id, spec)
            kept = [line for line in every
                    if line.task_run_id and named(spec, line.task_run_id, line.task)]
            assert [(line.id, line.task, line.text, line.time) for line in lines] == [
                (line.id, line.task, line.text, line.time) for line in kept], spec
            assert cuts == [cut for cut in all_cuts if named(spec, cut.task_run_id, cut.task)]
        assert len(store.logs(run.id, "talker")[0]) == 621


def test_following_a_tasks_lines_gives_the_lines_its_logs_give(
    store_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``labloom logs -f RUN --task NAME`` reads the named task runs' lines after its cursor
    filtered in SQL (``named_logs.named_lines_after``; before, every line of the run was read
    a page at a time and named, then kept by ``run_logs.named``): the lines, names and order
    of ``labloom logs --task`` (written order), and the run's end said once they are read.
    Without ``--task`` (None), the run's lines a page at a time, as before."""
    from labloom.cli import log_follow

    monkeypatch.setattr(log_follow, "_PAGE", 4)  # the whole run's pages end inside task runs
    run = talkers.run(n=12)
    with open_store() as store:
        every, _ = store.logs(run.id)
        child = next(line.task_run_id for line in every if line.task == "talker[7]")
        for spec in ("talker", "talker[3]", child, "talker[11]", "talker[12]", "nothing", None):
            said: list[tuple[int, str, str]] = []

            def say(line: Any, name: str, said: list[tuple[int, str, str]] = said) -> None:
                said.append((line.id, name, line.text))

            ended = log_follow.follow(run.id, spec, False, say=say)
            lines = sorted(store.logs(run.id, spec)[0], key=lambda line: line.id)
            assert said == [(line.id, line.task, line.text) for line in lines], spec
            assert ended is not None and ended.state == "Completed"
        assert len(said) == len(every) == 16
