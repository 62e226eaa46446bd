"""The rows of one write (``store/rows.py``): a task run created and moved in the same write is
one INSERT carrying where it stands, and what is stored is what an INSERT and an UPDATE stored;
a row the database refuses still costs only itself. On SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from labloom import State
from labloom.core import events as ev
from labloom.store.db import Conn, get_database, is_transient
from labloom.store.rows import Rows

N = 80  # past 50 rows of each kind: PostgreSQL's COPY, staged INSERT and UPDATE
ODD = "caf\udce9 \x00 end"  # a lone surrogate and a NUL: escaped, with a note
COLUMNS = ("id", "node_id", "task_name", "map_index", "upstream", "state", "attempts", "created",
           "started", "ended", "message", "traceback", "cache_key", "result_path", "worker")


@pytest.fixture
def conn() -> Iterator[Conn]:
    conn = get_database().connect()
    try:
        yield conn
    finally:
        conn.close()


def created(run: str) -> list[Any]:
    return [ev.TaskRunCreated(run, f"{run}.{i}", "n0", "t", i, (f"{run}.up",), 1.0 + i)
            for i in range(N)]


def interleaved(i: int) -> int:
    return i % 4


def in_order(i: int) -> int:  # the first ones moved, the last ones still Pending
    return (0, 1, 3)[i % 3] if i < N - 20 else 2


def moved(run: str, kind_of: Callable[[int], int] = interleaved) -> list[Any]:
    """Keyed, then by kind: completed on a worker; failed twice with odd text; left Pending;
    cancelled before it ran."""
    events: list[Any] = []
    for i in range(N):
        tr, kind = f"{run}.{i}", kind_of(i)
        events.append(ev.TaskRunKeyed(run, tr, f"k{i}", f"/res/{i}.pkl", 1.5 + i))
        if kind in (0, 1):
            events.append(ev.StateChanged(run, tr, State.RUNNING, 2.0 + i, "", 1,
                                          worker=f"w{i % 3}", before=State.PENDING,
                                          node_id="n0"))
        if kind == 0:
            events.append(ev.StateChanged(run, tr, State.COMPLETED, 3.0 + i, "", 1,
                                          before=State.RUNNING, node_id="n0"))
        elif kind == 1:
            events.append(ev.StateChanged(run, tr, State.RETRYING, 3.0 + i, "again", 1,
                                          f"Traceback 1 {ODD}", before=State.RUNNING))
            events.append(ev.StateChanged(run, tr, State.FAILED, 4.0 + i, f"no {ODD}", 2,
                                          f"Traceback 2 {ODD}", worker="w9"))
        elif kind == 3:
            events.append(ev.StateChanged(run, tr, State.CANCELLED, 3.0 + i, "stopped"))
    return events


def write(conn: Conn, writes: Sequence[Sequence[Any]],
          statements: list[str] | None = None) -> list[str]:
    """Each list of events folded and written as the writer does, one transaction each; the
    tables of the rows the database refused."""
    refused: list[str] = []
    for events in writes:
        rows = Rows()
        rec: Any = SimpleNamespace(moves_known=True, noted_escapes=False, host="h", pid=1,
                                   target={"flow": "f"}, user="u")
        rows.add_all(rec, events)  # as the writer folds a delivery's batch
        rows.finish()
        if statements is not None and conn.kind == "sqlite":
            conn.raw.set_trace_callback(statements.append)
        try:
            with conn.transaction():
                rows.write(conn)
        except Exception:
            rows.write_one_by_one(conn, lambda exc: False,
                                  lambda table, run, exc: refused.append(table.what))
        finally:
            if conn.kind == "sqlite":
                conn.raw.set_trace_callback(None)
    return refused


def stored(conn: Conn, run: str) -> list[tuple[Any, ...]]:
    """Its task runs and their state rows, its log lines, with the run's id left out."""
    def rows(sql: str) -> list[tuple[Any, ...]]:
        return [tuple(v.replace(f"{run}.", "R.") if isinstance(v, str) else v for v in r)
                for r in conn.execute(sql, (run,)).fetchall()]

    return [
        *rows(f"SELECT {', '.join(COLUMNS)} FROM task_runs WHERE run_id = ? ORDER BY rowid"),
        *rows("SELECT task_run_id, state, time, message, attempt, node_id, before_state "
              "FROM task_states WHERE run_id = ? ORDER BY time, task_run_id, state"),
        *rows("SELECT task_run_id, level, text FROM logs WHERE run_id = ? ORDER BY id"),
    ]


def test_a_task_run_created_and_moved_in_one_write_is_one_insert_and_stored_the_same(
    conn: Conn,
) -> None:
    statements: list[str] = []
    assert write(conn, [created("one") + moved("one", in_order)], statements) == []
    assert write(conn, [created("two"), moved("two", in_order)]) == []  # INSERT, then UPDATE
    if conn.kind == "sqlite":
        assert not [s for s in statements if s.startswith("UPDATE")], statements
        assert 0 < sum(s.startswith("INSERT INTO task_runs") for s in statements) <= 8
    one = stored(conn, "one")
    assert one == stored(conn, "two")
    by_id = {r[0]: r for r in one[:N]}
    assert list(by_id) == [f"R.{i}" for i in range(N)]  # in the order created (rowid)
    assert by_id["R.3"] == ("R.3", "n0", "t", 3, '["R.up"]', "Completed", 1, 4.0, 5.0, 6.0,
                            "", "", "k3", "/res/3.pkl", "w0")
    assert by_id["R.4"][5:12] == ("Failed", 2, 5.0, 6.0, 8.0, "no caf\\udce9 \\x00 end",
                                  "Traceback 2 caf\\udce9 \\x00 end")
    assert by_id["R.4"][14] == "w9"
    assert by_id["R.5"][5:12] == ("Cancelled", 0, 6.0, None, 8.0, "stopped", "")
    assert by_id["R.79"][5:12] == ("Pending", 0, 80.0, None, None, "", "")
    notes = [r for r in one if r[1] == 30]
    assert len(notes) == 1 and "task messages and tracebacks stored with" in notes[0][2]


def test_a_few_task_runs_all_moved_in_one_write_are_one_insert_and_stored_the_same(
    conn: Conn,
) -> None:
    # Fewer than a stretch's least (a small flow's whole run in one write), none left Pending:
    # one INSERT, no UPDATE; stored as an INSERT and then an UPDATE stored them.
    few = 3

    def made(run: str) -> list[Any]:
        return [event for event in created(run) if int(event.task_run_id.split(".")[1]) < few]

    def ended(run: str) -> list[Any]:
        return [event for event in moved(run, lambda i: 0 if i % 2 else 3)
                if int(event.task_run_id.split(".")[1]) < few]

    statements: list[str] = []
    assert write(conn, [made("one") + ended("one")], statements) == []
    assert write(conn, [made("two"), ended("two")]) == []
    if conn.kind == "sqlite":
        assert not [s for s in statements if s.startswith("UPDATE")], statements
        assert sum(s.startswith("INSERT INTO task_runs") for s in statements) == 1, statements
    one = stored(conn, "one")
    assert one == stored(conn, "two")
    assert [(r[0], r[5]) for r in one[:few]] == [
        ("R.0", "Cancelled"), ("R.1", "Completed"), ("R.2", "Cancelled")]


def test_task_runs_moved_among_pending_ones_are_stored_the_same_in_order(conn: Conn) -> None:
    # One of every four still Pending: short stretches, written the old way.
    assert write(conn, [created("one") + moved("one")]) == []
    assert write(conn, [created("two"), moved("two")]) == []
    one = stored(conn, "one")
    assert one == stored(conn, "two")
    assert [r[0] for r in one[:N]] == [f"R.{i}" for i in range(N)]
    assert [r[5] for r in one[:4]] == ["Completed", "Failed", "Pending", "Cancelled"]


def test_a_task_run_already_stored_changes_as_an_update_changed_it(conn: Conn) -> None:
    # A retry in this process announces its task runs again, as does a run written again into
    # a file that holds them (the writer's ``_reopen``): created again in the same write as
    # their moves, their rows change as an UPDATE changed them (started, traceback and worker
    # kept when not known again, the rest replaced), the rows themselves kept.
    def again(run: str) -> list[Any]:
        return [ev.TaskRunCreated(run, f"{run}.{i}", "n9", "renamed", 9, (), 500.0)
                for i in range(N)]

    def completed(run: str) -> list[Any]:
        return [ev.StateChanged(run, f"{run}.{i}", State.COMPLETED, 600.0 + i, "fine", 2)
                for i in range(N)]

    one = [created("one") + moved("one", in_order), again("one") + completed("one")]
    two = [created("two") + moved("two", in_order), again("two"), completed("two")]
    assert write(conn, one) == [] and write(conn, two) == []
    stored_one = stored(conn, "one")
    assert stored_one == stored(conn, "two")
    rows = stored_one[:N]
    assert [r[0] for r in rows] == [f"R.{i}" for i in range(N)]
    assert {r[1:5] for r in rows} == {("n0", "t", r[3], '["R.up"]') for r in rows}
    assert {(r[5], r[6], r[10]) for r in rows} == {("Completed", 2, "fine")}
    assert rows[4][8] == 6.0 and rows[4][11].startswith("Traceback 2")  # kept
    assert rows[4][14] == "w9" and rows[3][14] == "w0"
    assert (rows[5][8], rows[5][9]) == (None, 605.0)  # cancelled before it ran


def test_a_run_started_and_ended_in_one_write_is_one_insert_and_stored_the_same(
    conn: Conn,
) -> None:
    # A small run's whole life in one write: its row carries its end, no UPDATE of it; stored
    # as an INSERT and then UPDATEs stored it, its odd message escaped with the same note.
    def life(run: str) -> list[Any]:
        return [ev.RunCreated(run, "flow", {"x": 1}, "threads(4)", "script", "h", 10.0, "abc",
                              {"k": 1}),
                ev.RunStateChanged(run, State.RUNNING, 10.5),
                ev.RunFinished(run, State.FAILED, 12.0, f"raised {ODD}", {"workers": 3})]

    def run_row(run: str) -> tuple[Any, ...]:
        return tuple(conn.execute(
            "SELECT flow_name, parameters, state, message, created, started, ended, metadata, "
            "heartbeat, target, username FROM flow_runs WHERE id = ?", (run,)).fetchone())

    statements: list[str] = []
    assert write(conn, [life("one")], statements) == []
    assert write(conn, [[event] for event in life("two")]) == []
    if conn.kind == "sqlite":
        assert not [s for s in statements if s.startswith("UPDATE flow_runs")], statements
    one = run_row("one")
    assert one == run_row("two")
    assert one[2:4] == ("Failed", "raised caf\\udce9 \\x00 end") and one[6] == 12.0
    assert '"workers": 3' in one[7]
    notes = stored(conn, "one")
    assert notes == stored(conn, "two") and len(notes) == 1
    assert "run messages" in notes[0][2] and "run parameters" not in notes[0][2]


def test_a_refused_move_costs_only_itself_and_the_task_run_row_stays(conn: Conn) -> None:
    # An attempt no INTEGER column holds: written one by one, that state row and that move are
    # dropped; the task run's row (Pending, keyed) and everything else is written.
    events = created("bad") + moved("bad", in_order)
    events.insert(N + 3, ev.StateChanged("bad", "bad.0", State.COMPLETED, 3.5, "", 2**70))
    assert sorted(write(conn, [events])) == ["state messages", "task messages and tracebacks"]
    assert write(conn, [created("good") + moved("good", in_order)]) == []
    bad, good = stored(conn, "bad"), stored(conn, "good")
    row0 = good[0]
    assert row0[0] == "R.0"
    assert bad[:N] == [(*row0[:5], "Pending", 0, row0[7], None, None, "", "", "k0",
                        "/res/0.pkl", None), *good[1:N]]
    # The run's state rows after a refused one lose their links (``write_one_by_one``).
    assert [r[:5] for r in bad[N:]] == [r[:5] for r in good[N:]]


def test_a_batch_folds_to_the_rows_of_its_events_one_by_one() -> None:
    # A run's end in the middle of a batch: the states after it no longer say what they moved
    # from (``Recorder.moves_known``), in the batch as one by one.
    tail = [ev.RunFinished("one", State.FAILED, 90.0),
            ev.StateChanged("one", "one.7", State.CANCELLED, 91.0, "late", 0,
                            before=State.PENDING, node_id="n0")]
    events = [*created("one"), *moved("one"), *tail]
    single, batch = Rows(), Rows()
    single_rec: Any = SimpleNamespace(moves_known=True, noted_escapes=False)
    batch_rec: Any = SimpleNamespace(moves_known=True, noted_escapes=False)
    for event in events:
        single.add(single_rec, event)
    batch.add_all(batch_rec, events)
    single.finish(), batch.finish()
    assert [t.rows for t in single.tables() if t is not single.logs] == \
        [t.rows for t in batch.tables() if t is not batch.logs]
    assert [r[4] for r in single.logs.rows] == [r[4] for r in batch.logs.rows]  # the note
    assert batch.events == single.events == len(events)
    assert batch.states.rows[-1] == ("one.7", "one", "Cancelled", 91.0, "late", 0, None, None)
    assert batch.states.rows[N] == ("one.0", "one", "Running", 2.0, "", 1, "n0", "Pending")
    assert batch.states.rows[0] == ("one.0", "one", "Pending", 1.0, "", 0, "n0", None)


class _FullOnce:
    """A connection whose disk fills once, as the first statement starting with ``sql`` runs."""

    def __init__(self, conn: Conn, sql: str) -> None:
        self.conn, self.sql, self.armed = conn, sql, True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)

    def execute(self, sql: str, params: Any = ()) -> Any:
        if self.armed and sql.startswith(self.sql):
            self.armed = False
            raise sqlite3.OperationalError("database or disk is full")
        return self.conn.execute(sql, params)


def test_a_run_written_one_by_one_ends_in_the_store_after_the_rest_of_its_write(
    conn: Conn,
) -> None:
    # A batch refused (one move no INTEGER holds) goes row by row, a transaction each; the
    # disk then fills before its task runs are in. Until they are, the store must not say the
    # run ended (a reader would show a finished run without its task runs; a process killed
    # then would leave it so for good, never marked Crashed); once written, all of it is there.
    events = [ev.RunCreated("bad", "flow", {"x": 1}, "threads(4)", "script", "h", 0.5, "abc",
                            {"k": 1}),
              ev.RunStateChanged("bad", State.RUNNING, 0.6),
              *created("bad"), *moved("bad", in_order),
              ev.StateChanged("bad", "bad.0", State.COMPLETED, 3.5, "", 2**70),
              ev.RunFinished("bad", State.COMPLETED, 99.0, "", {"workers": 3})]
    rows = Rows()
    rec: Any = SimpleNamespace(moves_known=True, noted_escapes=False, host="h", pid=1,
                               target={"flow": "f"}, user="u")
    rows.add_all(rec, events)
    rows.finish()  # then refused as a batch (not tried here), so written one by one:
    refused: list[str] = []
    with pytest.raises(sqlite3.OperationalError):
        rows.write_one_by_one(_FullOnce(conn, "INSERT INTO task_runs"), is_transient,
                              lambda table, run, exc: refused.append(table.what))

    def run_row() -> tuple[Any, ...]:
        return tuple(conn.execute("SELECT state, message, ended, metadata FROM flow_runs "
                                  "WHERE id = ?", ("bad",)).fetchone())

    assert conn.execute("SELECT COUNT(*) FROM task_runs WHERE run_id = ?",
                        ("bad",)).fetchone()[0] == 0
    state, _, ended, _ = run_row()
    assert (state, ended) == ("Pending", None)
    rows.write_one_by_one(conn, is_transient, lambda table, run, exc: refused.append(table.what))
    assert sorted(refused) == ["state messages", "task messages and tracebacks"]
    state, message, ended, metadata = run_row()
    assert (state, message, ended) == ("Completed", "", 99.0) and '"workers": 3' in metadata
    assert conn.execute("SELECT COUNT(*) FROM task_runs WHERE run_id = ?",
                        ("bad",)).fetchone()[0] == N


def test_a_write_cleared_for_a_store_file_written_again_goes_one_by_one_as_nothing(
    conn: Conn,
) -> None:
    # ``Writer._reopen`` empties a write's tables (its runs are written again from the start);
    # written one by one then, it writes nothing and fails on nothing.
    rows = Rows()
    rec: Any = SimpleNamespace(moves_known=True, noted_escapes=False, host="h", pid=1,
                               target={"flow": "f"}, user="u")
    rows.add_all(rec, [ev.RunCreated("gone", "flow", {}, "local", "script", "h", 1.0, "abc", {}),
                       *created("gone"), ev.RunFinished("gone", State.COMPLETED, 2.0)])
    rows.finish()
    for table in rows.tables():
        table.rows.clear()
        table.runs.clear()
    rows.write_one_by_one(conn, is_transient, lambda table, run, exc: None)
    assert conn.execute("SELECT COUNT(*) FROM flow_runs WHERE id = ?", ("gone",)).fetchone()[0] == 0
