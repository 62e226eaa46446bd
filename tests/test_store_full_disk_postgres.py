"""A PostgreSQL server's disk filled by a run's own log lines, through the real CLI: the run's
states are kept (``store/pg_reserve.py``, ``store/room.py``), on a real small filesystem (a
tmpfs root mounts) holding either labloom's tables (a tablespace: the server says "could not
extend file", SQLSTATE 53100, and stays up) or the server's WAL (it stops, PANIC, and stays down
until room is made: a server away, waited out)."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import pg_server
from cli_helpers import cli_env, labloom, stop, wait_for
from system_programs import require_system
from test_store_full_disk import CHATTY as SQLITE_CHATTY

pytestmark = pytest.mark.postgresql_only

# The SQLite case's flow, its lines random: PostgreSQL compresses a repeated line to nothing.
CHATTY = textwrap.dedent(SQLITE_CHATTY).replace('"x" * 3000', "os.urandom(1500).hex()")
assert "urandom" in CHATTY


def mount_small_disk(where: Path, size: str) -> None:
    """A tmpfs of ``size`` at ``where``, the `postgres` user's; skip when it cannot be had."""
    if os.geteuid() != 0:
        pytest.skip("a small disk of its own is a tmpfs that only root can mount here")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (no CAP_SYS_ADMIN?): {made.stderr.strip()}")
    entry = pwd.getpwnam("postgres")
    os.chown(where, entry.pw_uid, entry.pw_gid)


def grow(disk: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(disk)], check=True)


@pytest.fixture
def tables_on_small_disk(postgres_server: Any) -> Iterator[tuple[str, Path]]:
    """A database of the session's server whose new tables go to a 12 MB tmpfs (its
    tablespace; the server's own files and WAL stay where they are): its URL, the disk."""
    disk = Path(tempfile.mkdtemp(prefix="labloom-pg-disk-"))
    os.chmod(disk, 0o755)
    mount_small_disk(disk, "12m")
    name = f"full_{os.getpid()}"
    try:
        postgres_server._admin(f"CREATE TABLESPACE {name} LOCATION '{disk}'")
        postgres_server._admin(f"CREATE DATABASE {name}")
        postgres_server._admin(f"ALTER DATABASE {name} SET default_tablespace = {name}")
        yield postgres_server.url(name), disk
    finally:
        postgres_server.drop_database(name)
        postgres_server._admin(f"DROP TABLESPACE IF EXISTS {name}")
        subprocess.run(["umount", "-l", str(disk)], check=True)
        disk.rmdir()


@pytest.fixture
def wal_on_small_disk() -> Iterator[tuple[pg_server.PostgresServer, Path]]:
    """A server of its own whose WAL is on a 12 MB tmpfs, in 1 MB segments that it may not
    recycle: its archive command fails (the classic cause of a full pg_wal). Stopped,
    unmounted afterwards."""
    require_system(pg_server.missing())
    base = Path(tempfile.mkdtemp(prefix="labloom-pg-wal-"))
    os.chmod(base, 0o755)
    disk = base / "wal"
    disk.mkdir()
    mount_small_disk(disk, "12m")
    server = None
    try:
        server = pg_server.PostgresServer(
            # Commits flushed, as a server's are by default: the tests' "fast" server loses
            # the last commits it acknowledged when it stops (synchronous_commit=off).
            fast=False, initdb=("--waldir", str(disk / "pg_wal"), "--wal-segsize=1"), base=base,
            options="-c archive_mode=on -c archive_command=false -c min_wal_size=2MB "
                    "-c max_wal_size=4MB")
        yield server, disk
    finally:
        if server is not None:
            server.close()  # the server's processes stopped (immediate), its files removed
        subprocess.run(["umount", "-l", str(disk)], check=True)
        subprocess.run(["rm", "-rf", str(base)], check=True)


def run_nightly(cwd: Path, url: str, lines: int, **extra: str) -> subprocess.Popen[str]:
    (cwd / "flows.py").write_text(CHATTY)
    return subprocess.Popen(
        [sys.executable, "-m", "labloom", "run", "flows.py:nightly", "--report",
         str(cwd / "report.json")],
        env=cli_env(cwd / "home", **{
            "LABLOOM_PROGRESS": "0", "LABLOOM_LOG_LINES": "100000",
            "LABLOOM_STORE_RESERVE": "8",  # "": not a number, so its default
            "LABLOOM_DATABASE_URL": url, "LINES": str(lines), **extra}),
        # The task's 15 MB of prints go nowhere: a pipe not read while the test waits for the
        # server would stop the run once full.
        cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def ended(run: subprocess.Popen[str], cwd: Path) -> tuple[int, str, dict[str, Any]]:
    try:
        _, err = run.communicate(timeout=300)
    finally:
        stop(run)
    return run.returncode, err, json.loads((cwd / "report.json").read_text())


def stored(cwd: Path, url: str, run_id: str) -> tuple[dict[str, Any], list[str]]:
    """What the store holds of run ``run_id``: ``show --json``, and its log lines."""
    shown = labloom(cwd, "show", run_id, "--json", LABLOOM_DATABASE_URL=url)
    assert shown.returncode == 0, shown.stderr
    logs = labloom(cwd, "logs", run_id, "--json", LABLOOM_DATABASE_URL=url)
    assert logs.returncode == 0, logs.stderr
    return json.loads(shown.stdout), [line["text"] for line in json.loads(logs.stdout)["lines"]]


def test_a_server_disk_filled_by_a_runs_lines_keeps_its_states(
        tmp_path: Path, tables_on_small_disk: tuple[str, Path]) -> None:
    # The server refused every write once the disk of labloom's tables was full ("could not
    # extend file"), the run's states as its lines: it ended "missing 2282 record(s)... still
    # waiting to be written", and the store showed it Running, its task runs Pending.
    url, disk = tables_on_small_disk
    code, err, said = ended(run_nightly(tmp_path, url, lines=5000), tmp_path)
    assert code == 3, err
    assert said["state"] == "Completed" and said["unrecorded"] > 0
    assert "No space left on device" in err and "the runs' states first" in err
    assert "log lines and logged values waiting for room: the disk of the store's PostgreSQL " \
        "server is full (the run's states were kept)" in err
    shown, logs = stored(tmp_path, url, said["run_id"])
    assert shown["state"] == "Completed"
    assert [t["state"] for t in shown["task_runs"]] == ["Completed"] * 22
    lines = [text for text in logs if text.startswith("line ")]
    assert [int(text.split()[1]) for text in lines] == list(range(len(lines)))  # none lost
    [note] = [text for text in logs if "were not stored" in text]
    assert note == (f"[labloom] {5000 - len(lines)} log line(s) and logged value(s) of this run "
                    "were not stored when it ended: the disk of the store's PostgreSQL server "
                    "was full (its states were kept, in room labloom reserves for them); have "
                    "the server's administrator free some space on it")
    assert said["unrecorded"] == 5000 - len(lines)
    assert note in shown["notes"]

    # Room is back (the disk grew): the next run is whole, and the reserve is made again.
    grow(disk, "64m")
    (tmp_path / "report.json").unlink()
    code, err, said = ended(run_nightly(tmp_path, url, lines=200), tmp_path)
    assert code == 0, err
    assert said["state"] == "Completed" and said["unrecorded"] == 0
    shown, logs = stored(tmp_path, url, said["run_id"])
    assert len([text for text in logs if text.startswith("line ")]) == 200
    import psycopg

    with psycopg.connect(url) as conn:
        size = conn.execute("SELECT pg_relation_size('labloom_reserve')").fetchone()[0]
    assert size >= 8 * 2**20


def crashed(server: pg_server.PostgresServer) -> bool:
    text = server.log.read_text(errors="replace")
    return "PANIC" in text and "database system is shut down" in text


def test_a_server_stopped_by_its_full_wal_is_waited_for_then_given_up(
        tmp_path: Path, wal_on_small_disk: tuple[pg_server.PostgresServer, Path]) -> None:
    # The server cannot write its WAL: it stops (PANIC), and its recovery, which must write
    # some, cannot either: it stays down. The run does not hang: its writer waits as for a
    # server away, LABLOOM_STORE_OUTAGE seconds, then says what was dropped; exit status 3.
    server, _ = wal_on_small_disk
    run = run_nightly(tmp_path, server.url(), lines=5000, LABLOOM_STORE_OUTAGE="5")
    code, err, said = ended(run, tmp_path)
    assert crashed(server), server.log.read_text()[-3000:]
    assert code == 3, err
    assert said["state"] == "Completed" and said["unrecorded"] > 0
    assert "cannot be written now" in err
    assert "could not be written for 5s (LABLOOM_STORE_OUTAGE)" in err
    # What to do is said whole: the driver's long message cut it ("check that the serv").
    assert "check that the server runs and that LABLOOM_DATABASE_URL (or --database-url) " \
        "names it; " in err
    assert f"is missing {said['unrecorded']} record(s) of run {said['run_id']}" in err


def test_a_server_stopped_by_its_full_wal_and_started_again_gets_the_whole_run(
        tmp_path: Path, wal_on_small_disk: tuple[pg_server.PostgresServer, Path]) -> None:
    # Its administrator makes room and starts it again while the run waits: nothing is lost.
    server, disk = wal_on_small_disk
    run = run_nightly(tmp_path, server.url(), lines=5000)
    try:
        wait_for(lambda: crashed(server), 120, "the server stopping for its full WAL disk: "
                 + server.log.read_text()[-2500:] + str(run.poll()))
        assert run.poll() is None  # waiting for the server, as for one away
        grow(disk, "256m")
        server.options = server.options.replace("archive_command=false", "archive_command=true")
        server.start()
        code, err, said = ended(run, tmp_path)
    finally:
        stop(run)
    assert code == 0, err
    assert said["state"] == "Completed" and said["unrecorded"] == 0
    assert "cannot be written now" in err and "is written again after" in err
    shown, logs = stored(tmp_path, server.url(), said["run_id"])
    assert shown["state"] == "Completed"
    assert [t["state"] for t in shown["task_runs"]] == ["Completed"] * 22
    assert [int(text.split()[1]) for text in logs if text.startswith("line ")] == \
        list(range(5000))
