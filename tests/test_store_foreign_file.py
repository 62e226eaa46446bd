"""Another program's SQLite database named as the store (`--database-url sqlite:////data/
patients.db`, `db copy --from`/`--to` a data set's file): refused in one line, the file left as
it was. Before, labloom wrote its seventeen tables into it (a user_version of 0), or read the
program's user_version as a schema version: "migrated" from 5 it was half a store and `runs`
a traceback ("no such table: flow_runs"); at 99 it said "written by a newer labloom"."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from cli_helpers import labloom, write

FLOW = """
    from labloom import flow, task

    @task
    def admit(patient: int) -> int:
        return patient

    @flow
    def f() -> list[int]:
        return admit.map([1, 2])
"""


def foreign_file(path: Path, user_version: int = 0) -> Path:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE patients (id INTEGER, name TEXT)")
        conn.execute("INSERT INTO patients VALUES (1, 'ada')")
        conn.execute(f"PRAGMA user_version = {user_version}")
        conn.commit()
    return path


def contents(path: Path) -> tuple[list[str], int]:
    with closing(sqlite3.connect(path)) as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return tables, conn.execute("PRAGMA user_version").fetchone()[0]


REFUSED = "is not a labloom store but another program's SQLite database (its tables patients)"


@pytest.mark.parametrize("user_version", [0, 5, 99])
@pytest.mark.parametrize("command", [["runs"], ["db", "upgrade"], ["db", "check"],
                                     ["schedule", "list"]], ids=" ".join)
def test_a_foreign_file_is_refused_and_left_as_it_was(
    tmp_path: Path, command: list[str], user_version: int
) -> None:
    data = foreign_file(tmp_path / "patients.db", user_version)
    out = labloom(tmp_path / "home", "--database-url", f"sqlite:///{data}", *command,
                  cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert REFUSED in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1, out.stderr
    assert contents(data) == (["patients"], user_version)


def test_labloom_run_runs_the_flow_unrecorded_and_leaves_the_file(tmp_path: Path) -> None:
    data = foreign_file(tmp_path / "patients.db")
    write(tmp_path / "job.py", FLOW)
    out = labloom(tmp_path / "home", "--database-url", f"sqlite:///{data}", "run",
                  "job.py:f", cwd=tmp_path, LABLOOM_PROGRESS="0")
    assert out.returncode == 0, out.stderr
    assert REFUSED in out.stderr and "is not being recorded" in out.stderr, out.stderr
    assert contents(data) == (["patients"], 0)


def test_db_copy_refuses_a_foreign_file_at_either_end(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write(tmp_path / "job.py", FLOW)
    assert labloom(home, "run", "job.py:f", cwd=tmp_path, LABLOOM_PROGRESS="0").returncode == 0
    source = foreign_file(tmp_path / "source.db")
    out = labloom(home, "db", "copy", "--from", str(source), cwd=tmp_path)
    assert out.returncode == 2 and "the store to copy from" in out.stderr, out.stderr
    assert REFUSED in out.stderr and "Give --from the labloom.db" in out.stderr, out.stderr
    target = foreign_file(tmp_path / "target.db")
    out = labloom(home, "db", "copy", "--from", str(home / "labloom.db"), "--to",
                  f"sqlite:///{target}", cwd=tmp_path)
    assert out.returncode == 2 and REFUSED in out.stderr, out.stderr
    assert contents(source) == contents(target) == (["patients"], 0)


def test_an_empty_file_still_becomes_a_store(tmp_path: Path) -> None:
    empty = tmp_path / "new.db"
    empty.touch()
    out = labloom(tmp_path / "home", "--database-url", f"sqlite:///{empty}", "runs",
                  cwd=tmp_path)
    assert out.returncode == 0 and "no runs recorded" in out.stdout, out.stderr
    tables, version = contents(empty)
    assert "flow_runs" in tables and version > 0
