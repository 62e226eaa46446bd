"""What only PostgreSQL has: a server that restarts under a running flow costs no recorded
event, and a password in the URL is never printed or logged, even when the server is away."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labloom import ThreadExecutor, flow, task
from labloom.store import db, open_store
from store_helpers import env_for


@pytest.fixture
def pg_url(postgres_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = postgres_server.new_database()
    url = postgres_server.url(name, password="hunter2")  # trust auth: accepted, unused
    monkeypatch.setenv("LABLOOM_DATABASE_URL", url)
    yield url
    db.forget(url)
    postgres_server.drop_database(name)


@task
def step(i: int) -> int:
    print("step", i)
    time.sleep(0.02)
    return i


@flow
def steady(n: int) -> object:
    return step.map(range(n))


def test_a_server_restart_mid_run_loses_no_event(
    pg_url: str, postgres_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    steady.run(n=2)  # the store exists, the writer holds a connection
    run = steady.run(n=300, executor=ThreadExecutor(4), background=True)

    def restart() -> None:
        time.sleep(0.5)
        postgres_server.stop("fast")  # every connection dies
        time.sleep(2.0)  # events keep coming meanwhile
        postgres_server.start()

    bouncer = threading.Thread(target=restart)
    bouncer.start()
    run.wait()
    bouncer.join()
    assert run.state.value == "Completed"
    with open_store() as store:
        record = store.get_run(run.id)
        assert record is not None and record.state == "Completed"
        assert record.counts == {"Completed": 300}
        lines, _ = store.logs(run.id)
        assert sorted(int(line.text.split()[1]) for line in lines) == list(range(300))
    said = [r.getMessage() for r in caplog.records if r.name == "labloom"]
    assert sum("cannot be written now" in m for m in said) == 1  # it did go away: said once
    assert sum("is written again" in m for m in said) == 1
    assert not any("hunter2" in r.getMessage() for r in caplog.records)


def test_the_password_is_never_printed_or_logged(pg_url: str, tmp_path: Path) -> None:
    import subprocess

    script = tmp_path / "flow.py"
    script.write_text(
        "import logging\nlogging.basicConfig(level=logging.DEBUG)\n"
        "from labloom import flow, task\n\n@task\ndef one():\n    return 1\n\n"
        "@flow\ndef tiny():\n    return one()\n\ntiny()\n"
    )
    home = tmp_path / "home"
    away = pg_url.replace("?host=", "?host=/nonexistent")  # same password, no server
    outputs = []
    for url in (pg_url, away):
        done = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, timeout=120,
            env=env_for(home, LABLOOM_DATABASE_URL=url, LABLOOM_PROGRESS="1",
                        LABLOOM_STORE_OUTAGE="2", LABLOOM_DB_CONNECT_TIMEOUT="1"),
        )
        assert done.returncode == 0, done.stderr  # the store never breaks a run
        outputs.append(done.stdout + done.stderr)
    for cli_args in (["runs"], ["db", "check"], ["schedule", "list"], ["limit", "list"]):
        done = subprocess.run(
            [sys.executable, "-m", "labloom", "--database-url", pg_url, *cli_args],
            capture_output=True, text=True, timeout=60, env=env_for(home),
        )
        outputs.append(done.stdout + done.stderr)
    assert "postgresql://postgres:***@" in outputs[1]  # the failure names the store...
    assert "is not being recorded" in outputs[1]
    assert "postgresql://postgres:***@" in outputs[3]  # ...and db check shows it
    assert all("hunter2" not in text for text in outputs)


def test_a_batch_staging_inserts_and_updates_of_one_table_in_one_transaction(pg_url: str) -> None:
    """The writer stages task-run inserts and task-run updates in one transaction; both had
    eight columns, and a staging table named by table and column count was the first one's
    shape for the second (every batch then went row by row, 45 s for 100,000 task runs)."""
    open_store().close()  # the schema
    conn = db.get_database(pg_url).connect()
    try:
        with conn.transaction():
            inserted = conn.stage("task_runs", ("id", "run_id", "node_id", "task_name",
                                                "map_index", "upstream", "state", "created"),
                                  [("t1", "r", "n", "x", 0, "[]", "Pending", 1.0)])
            updated = conn.stage("task_runs", ("id", "state", "message", "attempts", "started",
                                               "ended", "traceback", "worker"),
                                 [("t1", "Completed", "", 1, 1.0, 2.0, "", "w")])
            assert inserted != updated
            assert conn.execute(f"SELECT state, worker FROM {updated}").fetchall() == [
                ("Completed", "w")
            ]
    finally:
        conn.close()
