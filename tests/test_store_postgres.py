"""What only PostgreSQL has: a server that restarts under a running flow costs no recorded
event and stores none twice, and a password in the URL is never printed or logged, even when
the server is away."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labloom import State, ThreadExecutor, flow, log_metrics, task
from labloom.store import db, open_store
from pg_stored import stored_once
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
    time.sleep(0.02)  # 300 of them on 4 threads: the run outlasts the restart
    return i


@flow
def steady(n: int) -> object:
    return step.map(range(n))


@pytest.fixture(scope="module")
def durable_server() -> Iterator[Any]:
    """A server of its own that flushes its commits as servers do by default (the session's
    server skips that): crashed (``pg_ctl stop -m immediate``), it keeps every commit it
    answered, so what a run then lacks or holds twice is the writer's doing."""
    import pg_server
    from system_programs import require_system

    require_system(pg_server.missing())
    server = pg_server.PostgresServer(fast=False)
    yield server
    server.close()


@pytest.fixture(params=["fast", "immediate"])
def restarting(request: pytest.FixtureRequest,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str, str]]:
    """A server to restart mid-run, how it stops ("fast": every connection ended, as by
    ``pg_ctl restart``; "immediate": a crash), and the URL of a database of its own."""
    mode = request.param
    server = request.getfixturevalue("postgres_server" if mode == "fast" else "durable_server")
    name = server.new_database()
    url = server.url(name, password="hunter2")  # trust auth: accepted, unused
    monkeypatch.setenv("LABLOOM_DATABASE_URL", url)
    yield server, mode, url
    db.forget(url)
    server.drop_database(name)


@task
def logged_step(i: int) -> int:
    print("step", i)
    log_metrics(score=i)
    time.sleep(0.01)  # 2,000 of them on 8 threads: the run outlasts the restart
    return i


@flow
def wide(n: int) -> object:
    return logged_step.map(range(n))


def test_a_server_restart_mid_run_stores_every_event_once(
    restarting: tuple[Any, str, str], caplog: pytest.LogCaptureFixture
) -> None:
    # Every line, state and logged value of a 2,000-child map stored exactly once across a
    # restart: none lost, and none twice (a batch whose commit landed as the server went,
    # written again: session 51 saw lines twice after a crash).
    server, mode, url = restarting
    wide.run(n=2)  # the store exists, the writer holds a connection
    run = wide.run(n=2000, executor=ThreadExecutor(8), background=True)

    missed: list[str] = []

    def completed_at_least(count: int, what: str) -> None:
        deadline = time.monotonic() + 60
        while sum(tr.state is State.COMPLETED for tr in run.tasks) < count:
            if time.monotonic() > deadline:
                missed.append(what)
                return
            time.sleep(0.01)

    def restart() -> None:
        completed_at_least(200, "steps before the restart")  # mid-run
        server.stop(mode)  # every connection dies
        down = sum(tr.state is State.COMPLETED for tr in run.tasks)
        completed_at_least(down + 100, "steps while the server was down")  # events keep coming
        server.start()

    bouncer = threading.Thread(target=restart)
    bouncer.start()
    run.wait()
    bouncer.join()
    assert not missed, f"timed out waiting for {missed}"
    assert run.state.value == "Completed"
    with open_store() as store:
        record = store.get_run(run.id)
        assert record is not None and record.state == "Completed"
        assert record.counts == {"Completed": 2000}
    stored_once(url, run.id, 2000)
    said = [r.getMessage() for r in caplog.records if r.name == "labloom"]
    assert sum("cannot be written now" in m for m in said) == 1  # it did go away: said once
    assert sum("is written again" in m for m in said) == 1
    assert not any("hunter2" in r.getMessage() for r in caplog.records)
    # Nothing else on stderr: the pool's "discarding closed connection: <psycopg.Connection
    # [BAD] at 0x...>", once per connection the restart broke, printed there before.
    assert [r.getMessage() for r in caplog.records
            if r.name.startswith("psycopg") and r.levelno >= logging.WARNING] == []


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


def test_one_transaction_stages_new_task_runs_and_their_updates(pg_url: str) -> None:
    # A batch with both thousands of new task runs and thousands of state updates stages two
    # copies shaped differently (both were eight columns wide): each needs a table of its own.
    # The store writer's bounded batches of a million-task-run flow meet this every time.
    from labloom.store.new_task_runs import COLUMNS as _TASK_COLUMNS

    update = ("id", "state", "message", "attempts", "started", "ended", "traceback", "worker")
    database = db.get_database(pg_url)
    with database.connect() as conn, conn.transaction():
        new = conn.stage("task_runs", _TASK_COLUMNS, [
            (f"r.{i}", "r", "n0", "one", i, "[]", "Pending", 1.0, None, None)
            for i in range(60)])
        changed = conn.stage("task_runs", update, [
            (f"r.{i}", "Completed", "", 1, 1.0, 2.0, "", "w") for i in range(60)])
        assert new != changed
        assert conn.execute(f"SELECT count(*) FROM {changed}").fetchone()[0] == 60


def test_labloom_serve_waits_out_a_server_restart(
    pg_url: str, postgres_server: Any, tmp_path: Path
) -> None:
    # A team's scheduler runs for weeks; the PostgreSQL server restarts (an upgrade, a
    # failover). Before, the scheduler's next heartbeat raised and `labloom serve` exited with
    # a traceback: no schedule ran again until someone restarted it by hand.
    import signal
    import subprocess

    from cli_helpers import cli_env, labloom, read_lines, slot_rows, stop, wait_for, write

    write(tmp_path / "flows.py", "from labloom import flow\n\n@flow\ndef tick():\n    return 1\n")
    assert labloom(tmp_path, "schedule", "add", "flows.py:tick", "--every", "1s").returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "labloom", "serve", "--tick", "0.1"], cwd=tmp_path, text=True,
        env=cli_env(tmp_path, LABLOOM_DB_CONNECT_TIMEOUT="1"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    said: list[str] = []
    reader = read_lines(proc.stdout, said)

    def completed() -> int:
        return sum(r["status"] == "completed" for r in slot_rows(tmp_path))

    try:
        wait_for(completed, 60, "a first scheduled run")
        postgres_server.stop("fast")  # every connection dies
        try:
            wait_for(lambda: proc.poll() is not None
                     or any("waits for it" in line for line in said), 60,
                     "the scheduler to notice that the store is away")
        finally:
            postgres_server.start()
        assert proc.poll() is None, "".join(said)
        before = completed()
        wait_for(lambda: completed() >= before + 2, 60, "scheduled runs after the restart")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        reader.join(60)  # before ``stop``, whose communicate would read (and lose) its last lines
    finally:
        stop(proc)
        reader.join(60)
    text = "".join(said)
    assert proc.returncode == 0, text
    assert "Traceback" not in text
    assert sum("waits for it" in line for line in said) == 1, text  # said once, not per tick
    assert "the store is back" in text
    assert "hunter2" not in text


@flow
def loads(n: int) -> object:
    return step.with_options(tags=["warehouse"]).map(range(n))


def test_a_server_restart_mid_run_under_a_concurrency_limit(
    pg_url: str, postgres_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # A team's nightly load behind `labloom limit set warehouse 2`; the server restarts (an
    # upgrade, a failover). Before, the limits' own connection stayed broken: each slot given
    # back raised into the task thread (a traceback each), the line was never asked again
    # ("the store is unavailable (the connection is closed)" every second) and the run hung.
    import labloom
    from labloom.store import concurrency_slots

    labloom.limits.set("warehouse", 2)
    run = loads.run(n=200, executor=ThreadExecutor(4), background=True)
    deadline = time.monotonic() + 60
    while sum(tr.state is State.COMPLETED for tr in run.tasks) < 20:
        assert time.monotonic() < deadline, "no task run completed before the restart"
        time.sleep(0.01)
    postgres_server.stop("fast")  # every connection dies
    time.sleep(1.0)
    postgres_server.start()
    assert run.wait(60) is State.COMPLETED, [tr.state for tr in run.tasks].count(State.PENDING)
    assert len(run.tasks) == 200
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert not tracebacks, tracebacks[0].getMessage()
    said = [r.getMessage() for r in caplog.records if "concurrency limits" in r.getMessage()]
    assert len(said) <= 2, said  # away once, back once: not a line a second
    with open_store() as store:
        record = store.get_run(run.id)
        assert record is not None and record.counts == {"Completed": 200}
    conn = concurrency_slots.connection()  # the slots were all given back, none leaked
    assert conn.execute("SELECT count(*) FROM concurrency_slots").fetchone()[0] == 0


def test_a_user_who_may_not_create_tables_gets_the_reserve_its_owner_makes(
    pg_url: str, tmp_path: Path,
) -> None:
    # A team's store upgraded by the database's owner and used by a role with rights on its
    # rows only (PostgreSQL 15's public schema lets only its owner create; revoked here for
    # older servers too): that role cannot make the reserve of room for the runs' states, and
    # `db check` says what its owner must run, which then works. Before, the role's runs
    # refused the owner's table (CREATE ... IF NOT EXISTS needs the right to create).
    import psycopg

    from store_helpers import cli

    role = f"app_{uuid.uuid4().hex[:8]}"
    user_url = pg_url.replace("postgres:hunter2@", f"{role}@")
    assert cli(tmp_path, "--database-url", pg_url, "db", "upgrade").returncode == 0
    with psycopg.connect(pg_url, autocommit=True) as owner:
        owner.execute(f"CREATE ROLE {role} LOGIN")
        owner.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        owner.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public "
                      f"TO {role}")
        owner.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}")
    try:
        check = cli(tmp_path, "--database-url", user_url, "db", "check", "--json")
        report = json.loads(check.stdout)
        assert report["ok"] and report["reserve_bytes"] == 0, report
        note = report["reserve_note"]
        assert f"user {role} may not create tables in schema public" in note, note
        with psycopg.connect(pg_url, autocommit=True) as owner:
            for statement in note.split("`")[1].split(";"):  # what the note says to run
                owner.execute(statement)
        (tmp_path / "flows.py").write_text(
            "from labloom import flow, task\n\n@task\ndef one():\n    return 1\n\n"
            "@flow\ndef tiny():\n    return one()\n")
        ran = cli(tmp_path, "--database-url", user_url, "run",
                  f"{tmp_path / 'flows.py'}:tiny", LABLOOM_STORE_RESERVE="1")
        assert ran.returncode == 0, ran.stderr
        report = json.loads(
            cli(tmp_path, "--database-url", user_url, "db", "check", "--json").stdout)
        assert report["reserve_note"] is None and report["reserve_bytes"] >= 2**20, report
    finally:
        db.forget(user_url)
        with psycopg.connect(pg_url, autocommit=True) as owner:
            owner.execute(f"DROP OWNED BY {role}")
            owner.execute(f"DROP ROLE {role}")


def test_db_check_flags_a_reserve_left_logged_with_its_fix(pg_url: str, tmp_path: Path) -> None:
    # A reserve made logged (by an older labloom, or by hand) stays logged for a role with
    # rights on rows only: only its owner may make it unlogged. Logged, its fill writes as much
    # WAL and a server stopped by a full disk does not empty it as it starts again, so it may
    # stay down (session 51). Before, `db check` said nothing of it.
    import psycopg

    from store_helpers import cli

    role = f"app_{uuid.uuid4().hex[:8]}"
    user_url = pg_url.replace("postgres:hunter2@", f"{role}@")
    assert cli(tmp_path, "--database-url", pg_url, "db", "upgrade").returncode == 0
    with psycopg.connect(pg_url, autocommit=True) as owner:
        owner.execute("CREATE TABLE labloom_reserve (filler VARCHAR(450) NOT NULL)")
        owner.execute(f"CREATE ROLE {role} LOGIN")
        owner.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        owner.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public "
                      f"TO {role}")
        owner.execute(f"GRANT TRUNCATE ON labloom_reserve TO {role}")
        owner.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}")

    def persistence() -> str:
        with psycopg.connect(pg_url) as conn:
            return str(conn.execute("SELECT relpersistence FROM pg_class "
                                    "WHERE oid = 'labloom_reserve'::regclass").fetchone()[0])

    try:
        (tmp_path / "flows.py").write_text(
            "from labloom import flow, task\n\n@task\ndef one():\n    return 1\n\n"
            "@flow\ndef tiny():\n    return one()\n")
        ran = cli(tmp_path, "--database-url", user_url, "run", f"{tmp_path / 'flows.py'}:tiny",
                  LABLOOM_STORE_RESERVE="1")
        assert ran.returncode == 0, ran.stderr
        assert persistence() == "p"  # filled by the role, left logged: not its to change
        for url in (user_url, pg_url):  # the role, and the owner (its next run would fix it)
            check = cli(tmp_path, "--database-url", url, "db", "check", "--json")
            report = json.loads(check.stdout)
            assert check.returncode == 1 and report["reserve_bytes"] >= 2**20, report
            assert report["reserve_note"] is None, report  # it is there, and usable
            [problem] = report["problems"]
            assert "table labloom_reserve is logged" in problem and "(postgres)" in problem
        text = cli(tmp_path, "--database-url", user_url, "db", "check").stdout
        assert "problem: table labloom_reserve is logged" in text, text
        with psycopg.connect(pg_url, autocommit=True) as owner:
            for statement in problem.split("`")[1].split(";"):  # what it says to run
                owner.execute(statement)
        assert persistence() == "u"
        check = cli(tmp_path, "--database-url", user_url, "db", "check", "--json")
        assert check.returncode == 0 and json.loads(check.stdout)["problems"] == [], check.stdout
    finally:
        db.forget(user_url)
        with psycopg.connect(pg_url, autocommit=True) as owner:
            owner.execute(f"DROP OWNED BY {role}")
            owner.execute(f"DROP ROLE {role}")
