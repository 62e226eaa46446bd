"""The store writer's inserts on SQLite: a few multi-row statements per batch, not one per
row (each statement let go of the GIL and waited for it again: issue 21 §2)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from labloom import State, ThreadExecutor
from labloom.store.db import get_database
from store_helpers import wide


def few(rows: int) -> int:
    """The most statements ``multirow.many_rows`` may take for ``rows`` rows."""
    from labloom.store import multirow

    return rows // multirow.ROWS + multirow.ROWS.bit_length()


def test_a_batch_of_rows_is_a_few_statements_in_order_with_its_conflict_clause() -> None:
    conn = get_database().connect()
    try:
        if conn.kind != "sqlite":
            return
        conn.execute("CREATE TEMP TABLE t (id TEXT PRIMARY KEY, n INTEGER, note TEXT)")
        conn.execute("INSERT INTO t VALUES ('k.5', -1, 'kept')")
        statements: list[str] = []
        conn.raw.set_trace_callback(statements.append)
        rows = [(f"k.{i}", i, "x" * (i % 7)) for i in range(1000)]
        with conn.transaction():
            conn.insert_rows("t", ("id", "n", "note"), rows, "ON CONFLICT (id) DO NOTHING")
        conn.raw.set_trace_callback(None)
        inserts = [s for s in statements if s.startswith("INSERT")]
        # a full statement per ROWS rows, then at most one of each smaller size; one per row
        # before: 1000
        assert 0 < len(inserts) <= few(len(rows)), len(inserts)
        got = conn.execute("SELECT id, n, note FROM t ORDER BY rowid").fetchall()
        assert [tuple(r) for r in got] == [("k.5", -1, "kept"),
                                          *[r for r in rows if r[0] != "k.5"]]
    finally:
        conn.close()


def test_a_run_of_many_task_runs_is_stored_whole() -> None:
    run = wide.run(n=3000, executor=ThreadExecutor(4))
    assert run.state is State.COMPLETED
    conn = get_database().connect()
    try:
        def one_value(sql: str) -> Any:
            return conn.execute(sql, (run.id,)).fetchone()[0]

        assert one_value("SELECT count(*) FROM task_runs WHERE run_id = ? "
                         "AND state = 'Completed' AND started IS NOT NULL") == 3000
        assert one_value("SELECT count(*) FROM task_states WHERE run_id = ?") == 9000
    finally:
        conn.close()


def test_task_runs_updates_are_a_few_statements_and_keep_each_field() -> None:
    from labloom.core import events as ev
    from labloom.store import multirow
    from labloom.store.rows import Rows

    conn = get_database().connect()
    try:
        if conn.kind != "sqlite" or not multirow.UPDATE_FROM:
            return
        n = 500
        rec: Any = SimpleNamespace(moves_known=True)  # the folding reads only this of it
        created = Rows()
        for i in range(n):
            created.add(rec, ev.TaskRunCreated("r1", f"r1.{i}", "n0", "t", i, (), 1.0))
        with conn.transaction():
            created.finish().write(conn)
        ended = Rows()
        for i in range(n):
            ended.add(rec, ev.StateChanged("r1", f"r1.{i}", State.RUNNING, 2.0 + i, "", 1,
                                            worker=f"w{i % 4}"))
            state, tb = (State.FAILED, f"trace {i}") if i % 5 == 0 else (State.COMPLETED, "")
            ended.add(rec, ev.StateChanged("r1", f"r1.{i}", state, 3.0 + i, f"m{i}", 1, tb))
        statements: list[str] = []
        conn.raw.set_trace_callback(statements.append)
        with conn.transaction():
            ended.finish().write(conn)
        conn.raw.set_trace_callback(None)
        assert 0 < sum(s.startswith("UPDATE task_runs") for s in statements) <= few(n)
        got = conn.execute("SELECT id, state, message, attempts, started, ended, traceback, "
                           "worker FROM task_runs WHERE run_id = 'r1'").fetchall()
        assert len(got) == n
        for row in got:
            i = int(row[0].split(".")[1])
            failed = i % 5 == 0
            assert tuple(row[1:]) == ("Failed" if failed else "Completed", f"m{i}", 1, 2.0 + i,
                                      3.0 + i, f"trace {i}" if failed else "", f"w{i % 4}")
    finally:
        conn.close()
