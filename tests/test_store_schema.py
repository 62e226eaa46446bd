"""The store's schema on both backends: fresh stores, upgrades from the first schema, from
version 20 (before ``task_runs.left_map``) and from 21 (before ``schedule_refusals``), newer
stores refused, and the URL's password never shown."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import labloom, write
from labloom import State, flow, task
from labloom.store import follow, open_store
from labloom.store.db import get_database
from labloom.store.home import db_path, host_name
from labloom.store.schema import (
    SCHEMA_VERSION,
    StoreVersionError,
    _set_version,
    ensure_schema,
    version_of,
)
from test_left_map import WHY, chained
from test_schedule_serve import FLOW


@task
def double(x: int) -> int:
    return 2 * x


@flow
def doubles(n: int) -> list[int]:
    return double.map(range(n))  # type: ignore[return-value]


def test_fresh_store_is_current(store_backend: str) -> None:
    with open_store() as store:
        assert version_of(store.conn) == SCHEMA_VERSION
        assert store.database.kind == store_backend
        if store_backend == "sqlite":  # a file: owner-only, write-ahead log
            assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert stat.S_IMODE(db_path().stat().st_mode) == 0o600
        else:
            assert store.conn.execute("SELECT version FROM labloom_schema").fetchall() == [
                (SCHEMA_VERSION,)
            ]


def test_upgrade_from_the_first_schema_keeps_old_runs() -> None:
    conn = get_database().connect(migrate=False)
    ensure_schema(conn, target=1)
    conn.execute(
        "INSERT INTO flow_runs (id, flow_name, parameters, state, created, started, ended, host,"
        " pid, executor, origin) VALUES ('old1', 'legacy', '{\"n\": 3}', 'Completed', 1.0, 1.0,"
        " 2.0, 'h', 1, 'threads', 'script')"
    )
    conn.execute(
        "INSERT INTO task_runs (id, run_id, task_name, state, attempts, created) "
        "VALUES ('old1.0', 'old1', 'step', 'Completed', 1, 1.0)"
    )
    conn.close()

    with open_store() as store:
        assert version_of(store.conn) == SCHEMA_VERSION
        old = store.get_run("old1")
        assert old is not None and old.state == "Completed" and old.parameters == {"n": 3}
        [tr] = store.task_runs("old1")
        assert tr.name == "step" and tr.cache_key is None
    # New runs are written to the upgraded file.
    run = doubles.run(n=2)
    with open_store() as store:
        assert {r.id for r in store.list_runs()} == {"old1", run.id}


def test_a_newer_store_is_refused_with_a_clear_message() -> None:
    conn = get_database().connect(migrate=False)
    ensure_schema(conn)
    _set_version(conn, SCHEMA_VERSION + 5)
    conn.close()
    with pytest.raises(StoreVersionError, match=r"newer than this labloom.*Upgrade labloom"):
        open_store()


def test_store_off_writes_nothing(
    monkeypatch: pytest.MonkeyPatch, labloom_home: Path, store_backend: str
) -> None:
    monkeypatch.setenv("LABLOOM_STORE", "0")
    assert doubles(3) == [0, 2, 4]
    assert not (labloom_home / "labloom.db").exists()
    conn = get_database().connect(migrate=False)
    if store_backend == "postgresql":
        assert conn.execute("SELECT to_regclass('flow_runs')").fetchone()[0] is None
    conn.close()


def test_states_written_before_version_12_are_followed_after_the_upgrade(
    store_backend: str,
) -> None:
    """A labloom before schema version 12 wrote task-run states without their node and state
    before: upgraded, those rows are NULL there, and a view following the run counts them per
    task run (``follow.node_moves``), as before."""
    conn = get_database().connect(migrate=False)
    ensure_schema(conn, target=11)
    with conn.transaction():
        conn.execute("INSERT INTO flow_runs (id, flow_name, state, created) "
                     "VALUES ('old', 'legacy', 'Running', 1.0)")
        conn.executemany(
            "INSERT INTO task_runs (id, run_id, node_id, task_name, map_index, state) "
            "VALUES (?, 'old', 'n0', 'step', ?, ?)",
            [("old.0", 0, "Completed"), ("old.1", 1, "Running")])
        conn.executemany(  # as rows.py wrote them then
            "INSERT INTO task_states (task_run_id, run_id, state, time, message, attempt) "
            "VALUES (?, 'old', ?, 1.0, '', 0)",
            [("old.0", "Pending"), ("old.1", "Pending"), ("old.0", "Running"),
             ("old.1", "Running"), ("old.0", "Completed")])
    conn.close()
    with open_store() as store:
        assert version_of(store.conn) == SCHEMA_VERSION
        top, moves = follow.node_moves(store, "old", 0)
        assert sorted(moves) == [("n0", "step", 1, "Completed", None, 1),
                                 ("n0", "step", 1, "Running", None, 1)]
        _, later = follow.node_moves(store, "old", top - 2)  # old.1 Running, old.0 Completed
        assert sorted(later) == [("n0", "step", 1, "Completed", "Running", 1),
                                 ("n0", "step", 1, "Running", "Pending", 1)]


def _as_v21(conn: Any) -> None:
    """The store as labloom before schema 22 left it: version 22 only added this table."""
    with conn.transaction():
        conn.execute("DROP TABLE schedule_refusals")
        _set_version(conn, 21)


def _as_v20(conn: Any) -> None:
    """The store as labloom before schema 21 left it: version 21 only added this column."""
    _as_v21(conn)
    with conn.transaction():
        conn.execute("ALTER TABLE task_runs DROP COLUMN left_map")
        _set_version(conn, 20)


def test_a_v20_store_with_a_mapped_run_upgrades_and_stores_children_that_leave(
    tmp_path: Path, store_backend: str,
) -> None:
    """A run of a map of three, recorded before schema 21, reads back the same after the
    upgrade (none of its children left a map); its retry, in the upgraded store, cuts two of
    them off, and the store keeps why."""
    run = chained.run(path=tmp_path / "runs")
    assert run.result() == [0, 10, 20]
    with open_store() as store:
        before = (store.get_run(run.id), store.task_runs(run.id, history=True),
                  store.nodes(run.id), follow.node_counts(store, run.id))
    database = get_database()
    conn = database.connect(migrate=False)
    _as_v20(conn)
    columns = [row[0] for row in conn.execute("SELECT * FROM task_runs").description]
    conn.close()
    database.forget_schema()  # this process read the store as current: as a new one would
    assert "left_map" not in columns and "map_index" in columns
    with open_store() as store:
        assert version_of(store.conn) == SCHEMA_VERSION
        after = (store.get_run(run.id), store.task_runs(run.id, history=True),
                 store.nodes(run.id), follow.node_counts(store, run.id))
    assert after == before
    assert [(t.name, t.left_map) for t in after[1]] == [
        ("gate", None), ("listing", None), ("times_ten[0]", None), ("times_ten[1]", None),
        ("times_ten[2]", None)]
    assert run.retry().state is State.COMPLETED and run.result() == [0]
    with open_store() as store:
        left = {t.name: (t.state, t.left_map) for t in store.task_runs(run.id) if t.left_map}
        assert store.get_run(run.id).counts == {"Completed": 3}
    assert left == {"times_ten[1]": ("Cancelled", WHY), "times_ten[2]": ("Cancelled", WHY)}


def test_a_v21_store_with_a_schedule_upgrades_and_lists_a_live_serves_refusal(
    labloom_home: Path, store_backend: str,
) -> None:
    """A store before schema 22 (no refusals table) with a schedule: `labloom schedule list`
    upgrades it and lists the schedule as before, refused by nobody; a refusal a live serve
    keeps then (this process stands for it: its pid lives on this host) is listed."""
    write(labloom_home / "flows.py", FLOW)
    added = labloom(labloom_home, "schedule", "add", "flows.py:job", "--every", "1h",
                    "--name", "nightly", "-p", "out=x.txt")
    assert added.returncode == 0, added.stderr
    before = _schedules(labloom_home)
    database = get_database()
    conn = database.connect(migrate=False)
    _as_v21(conn)
    conn.close()
    database.forget_schema()
    after = _schedules(labloom_home)  # upgraded by the command
    assert after == before and after["nightly"]["refused_by"] is None
    conn = database.connect()
    assert version_of(conn) == SCHEMA_VERSION
    with conn.transaction():
        conn.execute("INSERT INTO schedulers (id, host, pid, started, beat) VALUES "
                     "('me', ?, ?, ?, ?)", (host_name(), os.getpid(), time.time(), time.time()))
        conn.execute("INSERT INTO schedule_refusals (scheduler, schedule, reason, since) "
                     "VALUES ('me', 'nightly', 'why and the fix', ?)", (time.time(),))
    conn.close()
    [refusal] = _schedules(labloom_home)["nightly"]["refused_by"]
    assert (refusal["scheduler"], refusal["pid"], refusal["reason"]) == (
        "me", os.getpid(), "why and the fix")


def _schedules(home: Path) -> dict[str, Any]:
    out = labloom(home, "schedule", "list", "--json")
    assert out.returncode == 0, out.stderr
    return {row["name"]: row for row in json.loads(out.stdout)["schedules"]}
