"""`labloom db upgrade|check`, `--database-url`, `runs --user/--host`, and the password of a
database URL never shown: through the real entry point in fresh processes, on both backends."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from labloom.store.db import get_database, redact
from labloom.store.schema import SCHEMA_VERSION, ensure_schema, version_of
from store_helpers import cli, cli_json, run_script

FLOW = """
from labloom import flow, task

@task
def one():
    return 1

@flow
def tiny():
    return one()

if __name__ == "__main__":
    tiny()
"""


def test_check_reports_version_and_skew(labloom_home: Path, store_backend: str) -> None:
    fresh = cli_json(labloom_home, "db", "check", status=1)  # nothing created yet
    assert fresh["schema_version"] == 0 and "labloom db upgrade" in fresh["problems"][0]
    assert cli(labloom_home, "db", "upgrade").returncode == 0
    report = cli_json(labloom_home, "db", "check")
    assert report["connected"] and report["ok"], report
    assert report["backend"] == store_backend
    assert report["schema_version"] == report["labloom_schema_version"] == SCHEMA_VERSION
    if store_backend == "postgresql":  # same machine: the server's clock is ours
        # The server read it between the query's start and its answer: the skew, taken from
        # their midpoint, is at most half the round trip (a loaded machine's may be seconds),
        # give or take the 1 ms each is rounded to.
        round_trip = report["clock_round_trip_seconds"]
        assert round_trip >= 0 and abs(report["clock_skew_seconds"]) <= round_trip / 2 + 0.002
    else:
        assert report["clock_skew_seconds"] is report["clock_round_trip_seconds"] is None
    text = cli(labloom_home, "db", "check")
    assert text.returncode == 0 and "schema version" in text.stdout


def test_check_says_what_room_is_kept_for_the_runs_states(
    labloom_home: Path, store_backend: str, tmp_path: Path,
) -> None:
    # The reserve (store/room.py) is made at a run's first write, of LABLOOM_STORE_RESERVE MB.
    assert cli(labloom_home, "db", "upgrade").returncode == 0
    before = cli_json(labloom_home, "db", "check")
    assert before["reserve_bytes"] == 0 and before["reserve_note"] is None, before
    assert "should the disk fill: none yet (made at a run's first write)" in cli(
        labloom_home, "db", "check").stdout
    (tmp_path / "flows.py").write_text(FLOW)
    ran = cli(labloom_home, "run", f"{tmp_path / 'flows.py'}:tiny", LABLOOM_STORE_RESERVE="1")
    assert ran.returncode == 0, ran.stderr
    after = cli_json(labloom_home, "db", "check")
    assert after["ok"] and after["reserve_note"] is None, after
    assert 2**20 <= after["reserve_bytes"] < 2**20 + 2**14, after  # to a page, on PostgreSQL
    assert after["reserve_at"] == ("table labloom_reserve" if store_backend == "postgresql"
                                   else f"{labloom_home / 'labloom.db'}-reserve"), after
    assert f"should the disk fill: 1.0 MB ({after['reserve_at']})" in cli(
        labloom_home, "db", "check").stdout
    off = cli(labloom_home, "db", "check", "--json", LABLOOM_STORE_RESERVE="0")
    assert json.loads(off.stdout)["reserve_note"] == "LABLOOM_STORE_RESERVE is 0", off.stdout


@contextlib.contextmanager
def answer_to_the_clock_held(url: str, seconds: float) -> Iterator[str]:
    """A unix-socket relay in front of the server of ``url`` that holds the answer to a query
    reading the server's clock for ``seconds`` (a link slow one way, a server paused as it
    answers); yields the URL through it. Held on the query's own connection: another one the
    command opens meanwhile (a pool's) would take the hold, and the answer go unheld."""
    server_dir = parse_qs(urlsplit(url).query)["host"][0]
    relay_dir = tempfile.mkdtemp(prefix="lr")  # short: a unix socket's path is
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(os.path.join(relay_dir, ".s.PGSQL.5432"))
    listener.listen()

    def pump(source: socket.socket, sink: socket.socket, asks: bool,
             held: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                if asks and b"clock_timestamp" in chunk:
                    held.set()  # before the query goes: its answer comes after
                elif not asks and held.is_set():
                    held.clear()
                    time.sleep(seconds)
                sink.sendall(chunk)
        for side in (source, sink):
            with contextlib.suppress(OSError):
                side.shutdown(socket.SHUT_RDWR)

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = listener.accept()
                upstream = socket.socket(socket.AF_UNIX)
                upstream.connect(os.path.join(server_dir, ".s.PGSQL.5432"))
                held = threading.Event()
                for args in ((client, upstream, True, held), (upstream, client, False, held)):
                    threading.Thread(target=pump, args=args, daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield url.replace(f"host={server_dir}", f"host={relay_dir}")
    finally:
        listener.close()
        shutil.rmtree(relay_dir, ignore_errors=True)


@pytest.mark.postgresql_only  # SQLite has no server clock to read
def test_a_slow_answer_is_no_clock_skew(labloom_home: Path) -> None:
    """The skew is read from the midpoint of the query's round trip: an answer held 5 s on its
    way back reads as this clock 2.5 s ahead, though the server's is ours. `db check` called
    that a problem to fix with NTP (and failed); it is one only when the skew is past the
    warning by more than half the round trip it was read in."""
    assert cli(labloom_home, "db", "upgrade").returncode == 0
    with answer_to_the_clock_held(os.environ["LABLOOM_DATABASE_URL"], 5.0) as slow:
        report = cli_json(labloom_home, "--database-url", slow, "db", "check")
    assert report["ok"] and report["problems"] == [], report
    skew, round_trip = report["clock_skew_seconds"], report["clock_round_trip_seconds"]
    assert round_trip >= 5.0 and skew >= 2.0  # the held answer made it look past the warning
    assert abs(skew) <= round_trip / 2 + 0.002


def test_upgrade_brings_an_old_store_up_and_says_so(labloom_home: Path) -> None:
    conn = get_database().connect(migrate=False)
    ensure_schema(conn, target=2)
    conn.close()
    stale = cli(labloom_home, "db", "check")
    assert stale.returncode == 1 and "run `labloom db upgrade`" in stale.stdout
    done = cli(labloom_home, "db", "upgrade")
    assert done.returncode == 0, done.stderr
    assert f"from version 2 to {SCHEMA_VERSION}" in done.stdout
    conn = get_database().connect(migrate=False)
    assert version_of(conn) == SCHEMA_VERSION
    conn.close()
    again = cli(labloom_home, "db", "upgrade")
    assert "already current" in again.stdout


def test_no_automatic_upgrade_when_forbidden(labloom_home: Path) -> None:
    conn = get_database().connect(migrate=False)
    ensure_schema(conn, target=3)
    conn.close()
    done = cli(labloom_home, "runs", LABLOOM_AUTO_MIGRATE="0")
    assert done.returncode != 0
    assert "LABLOOM_AUTO_MIGRATE=0" in done.stderr and "labloom db upgrade" in done.stderr


def test_database_url_flag_picks_the_store(labloom_home: Path, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.db"
    done = cli(labloom_home, "--database-url", f"sqlite:///{other}", "db", "upgrade")
    assert done.returncode == 0, done.stderr
    assert other.exists() and str(other) in done.stdout
    bad = cli(labloom_home, "--database-url", "mysql://u:hunter2@db/x", "runs")
    assert bad.returncode == 2
    assert "postgresql://user@host/dbname" in bad.stderr
    assert "hunter2" not in bad.stderr and "u:***@db" in bad.stderr


@pytest.mark.postgresql_only  # on SQLite the history is the store in force
def test_check_on_a_new_team_store_names_the_sqlite_history_left_behind(
    labloom_home: Path, store_backend: str, tmp_path: Path
) -> None:
    # Moving to the team's PostgreSQL, a user's runs seemed gone: nothing said they were still
    # in LABLOOM_HOME/labloom.db, nor how to read them.
    script = tmp_path / "tiny.py"
    script.write_text(FLOW)
    local = labloom_home / "labloom.db"
    assert run_script(labloom_home, script, LABLOOM_DATABASE_URL="").returncode == 0
    assert local.exists()
    assert cli(labloom_home, "db", "upgrade").returncode == 0
    report = cli_json(labloom_home, "db", "check")
    assert report["ok"] and report["left_behind"] == {"store": str(local), "runs": 1}, report
    text = cli(labloom_home, "db", "check").stdout
    assert f"{local} holds 1 run(s)" in text
    assert f"labloom --database-url sqlite:///{local} runs" in text, text
    assert cli_json(labloom_home, "runs") == []  # the move copied nothing, as it says
    # Brought along, nothing is left behind: the note went on naming the copied runs.
    assert f"`labloom db copy --from {local}`" in text
    assert cli(labloom_home, "db", "copy", "--from", str(local)).returncode == 0
    assert len(cli_json(labloom_home, "runs")) == 1
    report = cli_json(labloom_home, "db", "check")
    assert report["ok"] and report["left_behind"] is None, report


def test_runs_filter_by_user_and_host(labloom_home: Path, tmp_path: Path) -> None:
    script = tmp_path / "tiny.py"
    script.write_text(FLOW)
    for user, host in (("ada", "lab-1"), ("ada", "lab-2"), ("bob", "lab-1")):
        done = run_script(labloom_home, script, JUPYTERHUB_USER=user, LABLOOM_HOST=host)
        assert done.returncode == 0, done.stderr
    mine = cli_json(labloom_home, "runs", "--user", "ada")
    assert sorted(r["host"] for r in mine) == ["lab-1", "lab-2"]
    assert {r["user"] for r in mine} == {"ada"}
    on_one = cli_json(labloom_home, "runs", "--host", "lab-1")
    assert sorted(r["user"] for r in on_one) == ["ada", "bob"]
    assert cli_json(labloom_home, "runs", "--user", "bob", "--host", "lab-2") == []
    table = cli(labloom_home, "runs").stdout
    assert "USER" in table and "bob" in table and "lab-2" in table


def test_redact_hides_only_the_password() -> None:
    assert redact("postgresql://ada:s3cr%40t@db.example:5432/lab?sslmode=require") == (
        "postgresql://ada:***@db.example:5432/lab?sslmode=require"
    )
    assert redact("postgresql://ada@db/lab") == "postgresql://ada@db/lab"
    assert redact("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"


def test_an_unreachable_server_is_one_line_without_the_password(labloom_home: Path) -> None:
    url = "postgresql://ada:hunter2@/lab?host=/nonexistent-socket-dir"
    done = cli(labloom_home, "--database-url", url, "db", "check",
               LABLOOM_DB_CONNECT_TIMEOUT="1")
    assert done.returncode == 2, done.stderr
    assert "cannot reach the store postgresql://ada:***@/lab" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_the_notebook_setting_names_the_store_but_holds_no_password(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from traitlets import TraitError

    from labloom.notebook.settings import Labloom

    for name in ("LABLOOM_DATABASE_URL", "LABLOOM_ADMINS"):
        monkeypatch.setenv(name, "")  # recorded, so what apply_home() writes is undone
        monkeypatch.delenv(name)
    settings = Labloom()
    with pytest.raises(TraitError, match=r"must not hold a password.*pgpass"):
        settings.database_url = "postgresql://ada:hunter2@db/lab"
    assert settings.database_url == ""
    settings.database_url = f"sqlite:///{tmp_path / 'team.db'}"
    settings.admins = ["ada", "bob"]
    settings.apply_home()
    assert get_database().path == tmp_path / "team.db"
    assert os.environ["LABLOOM_ADMINS"] == "ada,bob"


def test_a_database_the_server_lacks_is_named_with_the_fix(
    labloom_home: Path, postgres_server: Any
) -> None:
    # A team's first `labloom db upgrade` before anyone made the database: it said "check that
    # the server runs", which it did.
    url = postgres_server.url("labloom_not_created")
    for args in (("db", "upgrade"), ("runs",)):
        done = cli(labloom_home, *args, LABLOOM_DATABASE_URL=url)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert "has no database 'labloom_not_created'" in done.stderr, done.stderr
        assert "createdb labloom_not_created" in done.stderr, done.stderr
        assert "check that the server runs" not in done.stderr
