"""`labloom db copy`: a laptop's SQLite history brought into the store in force (a fresh
SQLite file, or a real PostgreSQL database): whole, ids kept, twice without doubles, resumed
after a kill, refused onto a store of another schema, streamed. Through the real CLI in fresh
processes; the stores compared table by table."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labloom.store import copying
from labloom.store.db import Database, get_database
from labloom.store.schema import SCHEMA_VERSION, ensure_schema
from store_helpers import cli, env_for, run_script

FLOWS = """
import sys
from labloom import flow, task, log_metrics, log_params

@task
def step(i):
    print(f"line {i} " + "x" * 40)
    log_params(i=i)
    log_metrics(loss=1.0 / (i + 1))
    return i

@task
def fail(values):
    raise ValueError("broken on purpose")

@flow
def sweep(n):
    return step.map(range(n))

@flow
def broken():
    fail(step.map(range(2)))

if __name__ == "__main__":
    for _ in range(int(sys.argv[1])):
        sweep.run(n=3)
    broken.run()
"""

# The tables a copy fills, and the columns the target numbers itself.
TABLES = ("flows", "flow_runs", "task_runs", "task_states", "run_nodes", "logs", "log_cuts",
          "experiment_values", "schedules", "schedule_slots", "concurrency_limits")
OWN_NUMBERS = {"rowid", "id"}


# The laptops made for this module, by their number of sweeps, each once (three CLI processes:
# most of the module's time), then copied whole for each test that asks; and where they are.
MADE: dict[int, Path] = {}
MADE_IN: list[Path] = []


@pytest.fixture(scope="module", autouse=True)
def made_laptops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    MADE.clear()
    MADE_IN[:] = [tmp_path_factory.mktemp("laptops")]
    yield
    MADE.clear()


def laptop(tmp_path: Path, runs: int = 2, fresh: bool = False) -> Path:
    """A user's SQLite store: ``runs`` sweeps and one failed run, a schedule, a limit; FLOWS as
    tmp_path's flows.py. The store is a copy in ``tmp_path`` of the one made first for the
    module (the same runs, ids and all), or, ``fresh``, one of its own (other runs: another
    user's)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "flows.py").write_text(FLOWS)
    if not fresh:
        if runs not in MADE:
            MADE[runs] = laptop(MADE_IN[0] / f"runs-{runs}", runs, fresh=True)
        shutil.copytree(MADE[runs].parent, tmp_path / "laptop")
        return tmp_path / "laptop" / "labloom.db"
    home = tmp_path / "laptop"
    script = tmp_path / "flows.py"
    local = {"LABLOOM_DATABASE_URL": ""}
    done = run_script(home, script, str(runs), **local)
    assert done.returncode == 0, done.stderr
    assert cli(home, "limit", "set", "db", "2", **local).returncode == 0
    added = cli(home, "schedule", "add", f"{script}:sweep", "--every", "1h", "-p", "n=1",
                **local)
    assert added.returncode == 0, added.stderr
    return home / "labloom.db"


def copy(home: Path, source: Path, *more: str, status: int = 0) -> Any:
    done = cli(home, "db", "copy", "--from", str(source), *more, "--json")
    assert done.returncode == status, done.stderr
    return json.loads(done.stdout) if status == 0 else done.stderr


def copy_here(source: Path) -> copying.CopyReport:
    """The SQLite file ``source`` copied into the store in force by this process (where a
    test's patch reaches the copy), both stores closed after."""
    src = copying.open_source(Database(f"sqlite:///{source}"))
    dst, _ = copying.open_target(get_database())
    try:
        return copying.copy_store(src, dst, copying.CopyReport("laptop", "team"))
    finally:
        src.close()
        dst.close()


def rows(database: Database, table: str) -> Counter[tuple[Any, ...]]:
    """A table's rows without the numbers each store gives its own (rowid, log ids)."""
    with database.connect(migrate=False) as conn:
        cursor = conn.execute(f"SELECT * FROM {table}")
        names = [column[0] for column in cursor.description]
        # paused: a schedule copied into PostgreSQL is copied paused (checked on its own).
        keep = [i for i, name in enumerate(names)
                if name not in ("rowid", "paused")
                and not (name == "id" and table in ("logs", "experiment_values"))]
        return Counter(tuple(row[i] for i in keep) for row in cursor.fetchall())


def log_order(database: Database) -> list[tuple[Any, ...]]:
    """Each run's log lines in their order (a run copied later is numbered after the others)."""
    with database.connect(migrate=False) as conn:
        return [tuple(row) for row in conn.execute(
            "SELECT run_id, task_run_id, text FROM logs ORDER BY run_id, id").fetchall()]


def same_stores(source: Path) -> None:
    mine, theirs = Database(f"sqlite:///{source}"), get_database()
    for table in TABLES:
        assert rows(theirs, table) == rows(mine, table), table
    assert log_order(theirs) == log_order(mine)


def test_a_copy_brings_the_whole_history_and_a_second_copies_nothing(
    labloom_home: Path, tmp_path: Path
) -> None:
    source = laptop(tmp_path)
    report = copy(labloom_home, source)
    assert report["created"] and report["runs_already_there"] == 0
    assert report["copied"]["flow_runs"] == 3 and report["copied"]["logs"] == 8
    assert report["copied"]["schedules"] == 1 and report["copied"]["concurrency_limits"] == 1
    same_stores(source)
    # What a user reads of the moved history, the same from either store.
    laptop_env = {"LABLOOM_DATABASE_URL": f"sqlite:///{source}"}
    for command in (["runs", "--json"], ["limit", "list", "--json"]):
        here, there = cli(labloom_home, *command), cli(labloom_home, *command, **laptop_env)
        assert here.returncode == 0 and here.stdout == there.stdout, command
    failed = next(r for r in json.loads(cli(labloom_home, "runs", "--json").stdout)
                  if r["state"] == "Failed")
    shown = cli(labloom_home, "show", failed["id"])
    assert "broken on purpose" in shown.stdout
    assert shown.stdout == cli(labloom_home, "show", failed["id"], **laptop_env).stdout
    again = copy(labloom_home, source)
    assert again["copied"] == {} and again["runs_already_there"] == 3
    assert again["schedules_already_there"] == ["sweep"]
    assert again["limits_already_there"] == ["db"]
    same_stores(source)


# Kills the copy in the middle of its second transaction: two runs a transaction, the third
# run's rows written, not committed.
KILLED = """
import os, signal, sys
from labloom.cli import main
from labloom.store import copying

copying.RUNS_PER_TRANSACTION = 2
copy_run, done = copying._copy_run, []

def copy_then_die(*args):
    copy_run(*args)
    done.append(1)
    if len(done) == 3:
        os.kill(os.getpid(), signal.SIGKILL)

copying._copy_run = copy_then_die
sys.exit(main(["db", "copy", "--from", sys.argv[1]]))
"""


def test_a_copy_killed_half_way_is_finished_by_the_next_with_nothing_doubled(
    labloom_home: Path, tmp_path: Path
) -> None:
    source = laptop(tmp_path, runs=4)  # five runs
    killed = subprocess.run([sys.executable, "-c", KILLED, str(source)],
                            env=env_for(labloom_home), capture_output=True, text=True,
                            timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    with get_database().connect() as conn:
        assert conn.execute("SELECT COUNT(*) FROM flow_runs").fetchone()[0] == 2
        # The third run's rows went with its transaction: none left without their run.
        assert conn.execute("SELECT COUNT(*) FROM task_runs WHERE run_id NOT IN "
                            "(SELECT id FROM flow_runs)").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM logs WHERE run_id NOT IN "
                            "(SELECT id FROM flow_runs)").fetchone()[0] == 0
    report = copy(labloom_home, source)
    assert report["copied"]["flow_runs"] == 3 and report["runs_already_there"] == 2
    same_stores(source)


def test_a_run_still_going_is_left_for_the_next_copy(labloom_home: Path, tmp_path: Path) -> None:
    source = laptop(tmp_path, runs=2)
    with sqlite3.connect(source) as conn:
        going, dead = (row[0] for row in conn.execute(
            "SELECT id FROM flow_runs ORDER BY rowid LIMIT 2").fetchall())
        # One whose process lives (this one, beating now); one whose process is gone, never
        # marked Crashed since (its kernel killed, the store not read): it was 'not ended,
        # copy again once it ends' at every copy, for good.
        conn.execute("UPDATE flow_runs SET state = 'Running', pid = ?, heartbeat = ? "
                     "WHERE id = ?", (os.getpid(), time.time(), going))
        conn.execute("UPDATE flow_runs SET state = 'Running' WHERE id = ?", (dead,))
    report = copy(labloom_home, source)
    assert "Crashed" in cli(labloom_home, "show", dead).stdout
    assert report["runs_not_ended"] == [going] and report["copied"]["flow_runs"] == 2
    text = cli(labloom_home, "db", "copy", "--from", str(source)).stdout
    assert "1 run(s) not ended" in text and going in text and "copy again" in text
    with sqlite3.connect(source) as conn:
        conn.execute("UPDATE flow_runs SET state = 'Completed' WHERE id = ?", (going,))
    report = copy(labloom_home, source)
    assert report["copied"]["flow_runs"] == 1 and report["runs_not_ended"] == []
    same_stores(source)


def test_a_target_of_another_schema_is_refused_naming_the_fix(
    labloom_home: Path, tmp_path: Path, store_backend: str
) -> None:
    source = laptop(tmp_path, runs=1)
    with get_database().connect(migrate=False) as conn:
        ensure_schema(conn, target=SCHEMA_VERSION - 1)
    older = copy(labloom_home, source, status=2)
    assert f"schema version {SCHEMA_VERSION - 1}" in older and "db upgrade` first" in older
    assert "Traceback" not in older
    with get_database().connect(migrate=False) as conn:
        ensure_schema(conn)
        if store_backend == "sqlite":
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        else:
            conn.execute("UPDATE labloom_schema SET version = ?", (SCHEMA_VERSION + 1,))
    newer = copy(labloom_home, source, status=2)
    assert "upgrade labloom" in newer
    with get_database().connect(migrate=False) as conn:
        assert conn.execute("SELECT COUNT(*) FROM flow_runs").fetchone()[0] == 0


def test_a_source_of_another_schema_the_same_store_or_no_file_is_refused(
    labloom_home: Path, tmp_path: Path
) -> None:
    old = tmp_path / "old.db"
    conn = Database(f"sqlite:///{old}").connect(migrate=False)
    ensure_schema(conn, target=3)
    conn.close()
    refused = copy(labloom_home, old, status=2)
    assert "schema version 3, older" in refused and "db upgrade`" in refused
    assert "no such file" in copy(labloom_home, tmp_path / "missing.db", status=2)
    source = laptop(tmp_path, runs=1)
    same = cli(labloom_home, "db", "copy", "--from", str(source), "--to", f"sqlite:///{source}")
    assert same.returncode == 2 and "is the store to copy into" in same.stderr
    # A script given for the store: it said "move it aside (labloom then starts a new one)".
    script = tmp_path / "flows.py"
    assert "is not a SQLite file" in copy(labloom_home, script, status=2)
    with socket.socket() as closed:  # a port nothing listens on: the connection is refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    refused = cli(labloom_home, "db", "copy", "--from", str(source), "--to",
                  f"postgresql://nobody@127.0.0.1:{port}/team")
    assert refused.returncode == 2 and "cannot reach the store" in refused.stderr
    assert "copy stopped" not in refused.stderr and "Traceback" not in refused.stderr


def test_a_large_run_is_streamed_not_read_whole(tmp_path: Path) -> None:
    # 200,000 log lines of 200 characters (40 MB of text): read whole, as a fetchall would, the
    # copy held them all at once; streamed, a batch at a time.
    source = laptop(tmp_path, runs=1)
    lines, text = 200_000, "y" * 200
    with sqlite3.connect(source) as conn:
        run_id, task_run = conn.execute(
            "SELECT run_id, id FROM task_runs WHERE task_name = 'step' LIMIT 1").fetchone()
        conn.executemany("INSERT INTO logs (run_id, task_run_id, level, time, text) "
                         "VALUES (?, ?, 20, 0, ?)", ((run_id, task_run, text),) * lines)
    tracemalloc.start()
    try:
        report = copy_here(source)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.rows["logs"] == lines + 5  # and the other runs' five
    assert peak < 15 * 2**20, f"{peak / 2**20:.1f} MB held at once"
    with get_database().connect() as conn:
        assert conn.execute("SELECT COUNT(*) FROM logs WHERE run_id = ?",
                            (run_id,)).fetchone()[0] == lines + 3


@pytest.mark.postgresql_only
def test_a_team_store_can_be_copied_back_to_a_file(labloom_home: Path, tmp_path: Path) -> None:
    # PostgreSQL as the source (read through a server-side cursor), SQLite as the target.
    source = laptop(tmp_path, runs=1)
    assert copy(labloom_home, source)["copied"]["flow_runs"] == 2
    back = tmp_path / "back.db"
    report = json.loads(cli(labloom_home, "db", "copy", "--from", os.environ[
        "LABLOOM_DATABASE_URL"], "--to", f"sqlite:///{back}", "--json").stdout)
    assert report["copied"]["flow_runs"] == 2
    for table in TABLES:
        assert rows(Database(f"sqlite:///{back}"), table) == rows(
            Database(f"sqlite:///{source}"), table), table


@pytest.mark.postgresql_only
def test_a_copy_stopped_by_a_server_restart_says_to_run_it_again_and_the_next_finishes(
    labloom_home: Path, tmp_path: Path, postgres_server: Any,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    # The team's server restarted (an upgrade, a failover) in the middle of a copy: it said
    # only "the store cannot be used now ...; try again later", as if the copy had to start
    # over or might double what went in.
    from labloom.cli import main

    source = laptop(tmp_path, runs=4)  # five runs
    monkeypatch.setattr(copying, "RUNS_PER_TRANSACTION", 2)
    copy_run, started = copying._copy_run, []

    def restart_in_the_second_transaction(*args: Any) -> None:
        started.append(1)
        if len(started) == 3:
            postgres_server.stop("fast")  # every connection dies
            postgres_server.start()
        copy_run(*args)

    monkeypatch.setattr(copying, "_copy_run", restart_in_the_second_transaction)
    assert main(["db", "copy", "--from", str(source)]) == 2
    err = capsys.readouterr().err
    assert "the copy stopped after 2 run(s)" in err and "run the same command again" in err, err
    assert "Traceback" not in err
    report = copy(labloom_home, source)
    assert report["copied"]["flow_runs"] == 3 and report["runs_already_there"] == 2
    same_stores(source)


@pytest.mark.postgresql_only  # SQLite's write transaction holds the whole file meanwhile
def test_a_teammates_schedule_and_limit_made_during_the_copy_are_kept(
    labloom_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A teammate's `limit set db 5` and `schedule add ... --name sweep` between the copy's look
    # at the target and its insert: the copy failed with a UniqueViolation traceback.
    source = laptop(tmp_path, runs=1)
    columns_of = copying._Columns.of

    def teammate_first(self: Any, table: str) -> list[str]:
        if table in ("schedules", "concurrency_limits") and table not in self._known:
            with get_database().connect() as other:
                if table == "schedules":
                    other.execute("INSERT INTO schedules (name, target, workdir, every, anchor, "
                                  "not_before, created) VALUES ('sweep', 'x.py:f', '/', 60, 0, "
                                  "0, 0)")
                else:
                    other.execute("INSERT INTO concurrency_limits (tag, slots, updated) "
                                  "VALUES ('db', 5, 0)")
        return columns_of(self, table)

    monkeypatch.setattr(copying._Columns, "of", teammate_first)
    report = copy_here(source)
    assert report.schedules_differing == ["sweep"] and report.limits_differing == [("db", 2, 5)]
    assert report.rows["flow_runs"] == 2 and not report.rows["schedule_slots"]
    with get_database().connect() as conn:
        assert conn.execute("SELECT slots FROM concurrency_limits").fetchall() == [(5,)]
        assert conn.execute("SELECT target FROM schedules").fetchall() == [("x.py:f",)]


@pytest.mark.postgresql_only  # SQLite holds NUL in text; PostgreSQL refuses it
def test_text_postgresql_cannot_hold_goes_in_escaped(labloom_home: Path, tmp_path: Path) -> None:
    source = laptop(tmp_path, runs=1)
    with sqlite3.connect(source) as conn:  # a SQLite file may hold it (another writer's)
        conn.execute("UPDATE logs SET text = ? WHERE id = (SELECT MIN(id) FROM logs)",
                     ("a\x00b",))
    assert copy(labloom_home, source)["copied"]["logs"] == 5
    with get_database().connect() as conn:
        assert conn.execute("SELECT COUNT(*) FROM logs WHERE text = ?",
                            ("a\\x00b",)).fetchone()[0] == 1


def test_two_copies_at_once_copy_each_run_once(labloom_home: Path, tmp_path: Path) -> None:
    # Two terminals (or two teammates with one laptop file on a share) copying together.
    source = laptop(tmp_path, runs=6)
    argv = [sys.executable, "-m", "labloom", "db", "copy", "--from", str(source), "--json"]
    both = [subprocess.Popen(argv, env=env_for(labloom_home), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    reports = []
    for proc in both:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        reports.append(json.loads(out))
    assert sum(r["copied"].get("flow_runs", 0) for r in reports) == 7
    assert sum(r["copied"].get("schedules", 0) for r in reports) == 1
    same_stores(source)


def test_a_run_changed_in_the_source_after_a_copy_is_replaced_whole(
    labloom_home: Path, tmp_path: Path
) -> None:
    source = laptop(tmp_path, runs=1)
    copy(labloom_home, source)
    # As a retry in place leaves it (same run id): the failed task run ends Completed, with a
    # new state and log line, and the run's state and end change.
    with sqlite3.connect(source) as conn:
        run_id, = conn.execute("SELECT id FROM flow_runs WHERE state = 'Failed'").fetchone()
        task_run, = conn.execute("SELECT id FROM task_runs WHERE run_id = ? AND state = "
                                 "'Failed'", (run_id,)).fetchone()
        conn.execute("UPDATE task_runs SET state = 'Completed' WHERE id = ?", (task_run,))
        conn.execute("INSERT INTO task_states (task_run_id, run_id, state, time) "
                     "VALUES (?, ?, 'Completed', 2e9)", (task_run, run_id))
        conn.execute("INSERT INTO logs (run_id, task_run_id, level, time, text) "
                     "VALUES (?, ?, 20, 2e9, 'second attempt works')", (run_id, task_run))
        conn.execute("UPDATE flow_runs SET state = 'Completed', ended = 2e9 WHERE id = ?",
                     (run_id,))
    report = copy(labloom_home, source)
    assert report["runs_updated"] == [run_id] and report["runs_already_there"] == 1
    assert "flow_runs" not in report["copied"]  # no new run
    same_stores(source)
    text = cli(labloom_home, "db", "copy", "--from", str(source)).stdout
    assert "updated" not in text and "0 copied, 2 already there" in text


def test_the_fix_a_refusal_prints_can_be_pasted_into_a_shell(tmp_path: Path) -> None:
    """A URL with a space, '&' or '?' was printed bare: pasted, the shell cut the command."""
    home = tmp_path / "home"
    source = laptop(tmp_path, runs=1)
    team = tmp_path / "team & co" / "labloom.db"
    team.parent.mkdir()
    url = f"sqlite:///{team}"
    conn = Database(url).connect(migrate=False)
    ensure_schema(conn, target=SCHEMA_VERSION - 1)
    conn.close()
    refused = cli(home, "db", "copy", "--from", str(source), "--to", url)
    assert refused.returncode == 2
    assert "LABLOOM_AUTO_MIGRATE" not in refused.stderr  # not set: not the reason
    command = refused.stderr.split("run `", 1)[1].split("`", 1)[0]
    words = shlex.split(command)
    assert words[0] == "labloom"
    assert cli(home, *words[1:]).returncode == 0  # the upgrade, as pasted
    assert copy(home, source, "--to", url)["copied"]["flow_runs"] == 2


def test_a_teammates_schedule_and_limit_are_reported_as_differing_and_new_slots_arrive(
    labloom_home: Path, tmp_path: Path, store_backend: str
) -> None:
    source = laptop(tmp_path, runs=1)
    first = copy(labloom_home, source)
    # Into PostgreSQL (other hosts' `labloom serve` fire from it) a schedule arrives paused.
    paused = [] if store_backend == "sqlite" else ["sweep"]
    assert first["schedules_copied_paused"] == paused
    listed = json.loads(cli(labloom_home, "schedule", "list", "--json").stdout)
    assert [bool(s["paused"]) for s in listed["schedules"]] == [bool(paused)]
    # The laptop's schedule fires twice after the copy: those slots were never copied.
    with sqlite3.connect(source) as conn:
        conn.executemany("INSERT INTO schedule_slots (schedule, slot_time, status) "
                         "VALUES ('sweep', ?, 'done')", [(1e9,), (1e9 + 3600,)])
    again = copy(labloom_home, source)
    assert again["copied"] == {"schedule_slots": 2}
    assert again["schedules_already_there"] == ["sweep"]
    same_stores(source)
    # A teammate's laptop: a schedule and a limit of the same names, other content.
    other = tmp_path / "teammate"
    other.mkdir()
    theirs = laptop(other, runs=1, fresh=True)  # runs of their own, not mine
    local = {"LABLOOM_DATABASE_URL": ""}
    assert cli(other / "laptop", "limit", "set", "db", "7", **local).returncode == 0
    report = copy(labloom_home, theirs)
    assert report["schedules_differing"] == ["sweep"] and report["schedules_already_there"] == []
    assert report["limits_differing"] == {"db": {"source": 7, "target": 2}}
    text = cli(labloom_home, "db", "copy", "--from", str(theirs)).stdout
    assert "schedule 'sweep' differs in the target" in text and "kept the target's" in text
    assert "limit 'db' is 7 in" in text and "limit set db 7`" in text
    mine = Database(f"sqlite:///{source}")
    for table in ("schedules", "schedule_slots", "concurrency_limits"):  # the first laptop's
        assert rows(get_database(), table) == rows(mine, table), table


def as_other_user(home: Path, *args: str) -> Any:
    """The CLI as a user who may not write what root made (root ignores file modes)."""
    env = env_for(home, LABLOOM_DATABASE_URL="")
    # As root: as the postgres user (the server's), with the system's Python (root's own
    # may be in a folder only root may read).
    runner = (["runuser", "-u", "postgres", "--", "env", *(f"{k}={v}" for k, v in env.items()),
               "/usr/bin/python3"] if os.geteuid() == 0 else [sys.executable])
    return subprocess.run([*runner, "-m", "labloom", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def test_a_source_in_a_folder_this_user_cannot_write_is_read_read_only(tmp_path: Path) -> None:
    """A backup, a read-only mount, a colleague's folder: it was refused with 'if it is
    damaged, move it aside (labloom then starts a new one)'."""
    source = laptop(tmp_path, runs=1)
    shared = Path(tempfile.mkdtemp(dir="/tmp", prefix="labloom-ro-"))
    try:
        shared.chmod(0o755)
        folder, mine = shared / "backup", shared / "me"
        folder.mkdir()
        mine.mkdir()
        if os.geteuid() == 0:
            shutil.chown(mine, "postgres")
        clean = folder / "labloom.db"
        with sqlite3.connect(source) as live, sqlite3.connect(clean) as copied:
            live.backup(copied)  # a whole file, no -wal beside it, as a backup holds it
        # Another store whose newest rows are still in its -wal file.
        logged = shared / "logged.db"
        held = sqlite3.connect(logged)
        live = sqlite3.connect(source)
        live.backup(held)
        live.close()
        held.execute("PRAGMA journal_mode=WAL")
        held.execute("PRAGMA wal_autocheckpoint=0")
        held.execute("UPDATE flow_runs SET message = 'in the log'")
        held.commit()
        (folder / "logged").mkdir()
        for name in ("logged.db", "logged.db-wal"):
            shutil.copy(shared / name, folder / "logged" / name)
        held.close()
        for path in (clean, *(folder / "logged").iterdir()):
            path.chmod(0o444)
        for path in (folder / "logged", folder):
            path.chmod(0o555)
        team = f"sqlite:///{mine / 'team.db'}"
        done = as_other_user(mine, "db", "copy", "--from", str(clean), "--to", team, "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["copied"]["flow_runs"] == 2
        assert sorted(os.listdir(folder)) == ["labloom.db", "logged"]  # nothing made there
        refused = as_other_user(mine, "db", "copy", "--from",
                                str(folder / "logged" / "logged.db"), "--to", team)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr
        assert "move it aside" not in refused.stderr
        assert "copy the folder somewhere you can write" in refused.stderr, refused.stderr
    finally:
        for path in (shared / "backup", shared / "backup" / "logged"):
            if path.exists():
                path.chmod(0o755)
        shutil.rmtree(shared)


# Ctrl-C lands just after the second transaction commits, before its runs are counted.
INTERRUPTED = """
import sys
from collections import Counter
from collections.abc import Iterator
from labloom.cli import main
from labloom.store import copying

copying.RUNS_PER_TRANSACTION = 2

class Late(Counter):
    pages = 0

    def update(self, *args, **kwargs):
        Late.pages += 1
        if Late.pages == 3:  # the first: Counter()
            raise KeyboardInterrupt
        super().update(*args, **kwargs)

class Report(copying.CopyReport):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rows = Late()

copying.CopyReport = Report
sys.exit(main(["db", "copy", "--from", sys.argv[1]]))
"""


def test_a_copy_interrupted_just_after_a_commit_counts_the_runs_the_target_holds(
    labloom_home: Path, tmp_path: Path
) -> None:
    source = laptop(tmp_path, runs=4)  # five runs
    stopped = subprocess.run([sys.executable, "-c", INTERRUPTED, str(source)],
                             env=env_for(labloom_home), capture_output=True, text=True,
                             timeout=120)
    assert stopped.returncode == 130, stopped.stderr
    with get_database().connect() as conn:
        assert conn.execute("SELECT COUNT(*) FROM flow_runs").fetchone()[0] == 4
    assert "stopped after 4 run(s) (interrupted)" in stopped.stderr  # it said 2


@pytest.mark.postgresql_only  # SQLite has no users
def test_an_empty_target_this_user_may_not_create_tables_in_is_one_line_naming_the_fix(
    tmp_path: Path
) -> None:
    import psycopg

    source = laptop(tmp_path, runs=1)
    admin = get_database().url
    with psycopg.connect(admin, autocommit=True) as conn:  # PostgreSQL 15: public is the owner's
        conn.execute("DROP ROLE IF EXISTS labloom_reader")
        conn.execute("CREATE ROLE labloom_reader LOGIN")
    try:
        reader = admin.replace("postgresql://postgres@", "postgresql://labloom_reader@")
        home = tmp_path / "reader"
        for command in (["db", "copy", "--from", str(source)], ["db", "upgrade"]):
            refused = cli(home, *command, LABLOOM_DATABASE_URL=reader)
            assert refused.returncode == 2, refused.stderr  # it was a 24-line traceback
            assert len(refused.stderr.splitlines()) == 1, refused.stderr
            assert "labloom db upgrade" in refused.stderr and "GRANT CREATE" in refused.stderr
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("DROP ROLE labloom_reader")


def test_a_run_deleted_from_the_target_is_not_copied_again_unless_asked(
    labloom_home: Path, tmp_path: Path
) -> None:
    source = laptop(tmp_path, runs=2)
    copy(labloom_home, source)
    with sqlite3.connect(source) as conn:
        gone, = conn.execute("SELECT id FROM flow_runs ORDER BY rowid LIMIT 1").fetchone()
    deleted = cli(labloom_home, "delete", gone)
    assert deleted.returncode == 0, deleted.stderr
    again = copy(labloom_home, source)  # it came back, whole
    assert again["runs_deleted_in_target"] == 1 and again["copied"] == {}
    assert again["runs_already_there"] == 2
    assert gone not in cli(labloom_home, "runs").stdout
    text = cli(labloom_home, "db", "copy", "--from", str(source)).stdout
    assert "1 run(s) deleted in the target: not copied again" in text
    back = copy(labloom_home, source, "--include-deleted")
    assert back["copied"]["flow_runs"] == 1 and back["runs_deleted_in_target"] == 0
    same_stores(source)
    # Copied back, it is the target's again: a later copy counts it as there.
    assert copy(labloom_home, source)["runs_already_there"] == 3


@pytest.mark.postgresql_only  # the note is a PostgreSQL store's user's
def test_db_checks_note_on_history_left_behind_can_be_pasted_into_a_shell(
    tmp_path: Path
) -> None:
    """A LABLOOM_HOME with a space: the commands of the note were printed with the path bare."""
    source = laptop(tmp_path, runs=1)
    home = tmp_path / "old home"
    home.mkdir()
    local = home / "labloom.db"
    with sqlite3.connect(source) as live, sqlite3.connect(local) as copied:
        live.backup(copied)
    assert cli(home, "db", "upgrade").returncode == 0
    done = cli(home, "db", "check")
    assert done.returncode == 0, done.stderr
    assert f"{local} holds 2 run(s)" in done.stdout, done.stdout
    pasted = done.stdout.split("Bring them here with `", 1)[1].split("`", 1)[0]
    assert shlex.split(pasted)[-1] == str(local)
    pasted = done.stdout.split("read them there with `", 1)[1].split("`", 1)[0]
    assert shlex.split(pasted)[2] == f"sqlite:///{local}"
