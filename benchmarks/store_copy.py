"""`labloom db copy`'s pace: a SQLite store made by real runs (``--runs`` runs of ``--tasks``
task runs, each task printing ``--lines`` lines) copied into a fresh SQLite file and into a
fresh PostgreSQL database (tests/pg_server.py, Debian's `postgresql`, fsync on), side by side
with the plainest copy SQLite allows: ``ATTACH`` and one ``INSERT ... SELECT`` per table (no
per-run transactions, no checks; what a DBA would write by hand for two files).

    python3 benchmarks/store_copy.py --runs 20 --tasks 2000 --lines 5 | tail -4

(The tasks' prints are echoed while the source store is made: hence the tail.)
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from labloom import ThreadExecutor, flow, task

LINES = int(os.environ.get("BENCH_LINES", "5"))


@task
def chatty(i: int) -> int:
    for line in range(LINES):
        print(f"task {i} line {line}: " + "x" * 60)
    return i


@flow
def sweep(n: int) -> None:
    chatty.map(range(n))


TABLES = ("flows", "flow_runs", "task_runs", "task_states", "run_nodes", "logs",
          "experiment_values")


def plain_copy(source: Path, target: Path) -> float:
    from labloom.store.db import Database
    from labloom.store.schema import ensure_schema

    with Database(f"sqlite:///{target}").connect(migrate=False) as conn:
        ensure_schema(conn)
    started = time.perf_counter()
    with sqlite3.connect(target, isolation_level=None) as conn:
        conn.execute("ATTACH DATABASE ? AS src", (str(source),))
        conn.execute("BEGIN")
        for table in TABLES:
            columns = [row[1] for row in conn.execute(f"PRAGMA src.table_info({table})")
                       if not (row[1] == "id" and table in ("logs", "experiment_values"))]
            names = ", ".join(columns)
            conn.execute(f"INSERT INTO main.{table} ({names}) SELECT {names} FROM src.{table}")
        conn.execute("COMMIT")
    return time.perf_counter() - started


def labloom_copy(source: Path, target_url: str) -> tuple[float, dict[str, int]]:
    from labloom.store import copying
    from labloom.store.db import Database

    source_db, target_db = Database(f"sqlite:///{source}"), Database(target_url)
    started = time.perf_counter()
    src = copying.open_source(source_db)
    dst, _ = copying.open_target(target_db)
    report = copying.copy_store(src, dst, copying.CopyReport("source", "target"))
    elapsed = time.perf_counter() - started
    src.close()
    dst.close()
    source_db.close()
    target_db.close()
    return elapsed, dict(report.rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--lines", type=int, default=5)
    args = parser.parse_args()
    global LINES
    LINES = args.lines
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        os.environ.update(LABLOOM_HOME=str(home), LABLOOM_PROGRESS="0")
        os.environ.pop("LABLOOM_DATABASE_URL", None)
        for _ in range(args.runs):
            sweep.run(n=args.tasks, executor=ThreadExecutor(4))
        from labloom.store import db

        db.forget(db.database_url())
        source = home / "labloom.db"
        plain = plain_copy(source, Path(tmp) / "plain.db")
        into_file, rows = labloom_copy(source, f"sqlite:///{Path(tmp) / 'copy.db'}")
        total = sum(rows.values())
        print(f"source: {args.runs} runs, {rows.get('task_runs', 0)} task runs, "
              f"{rows.get('logs', 0)} log lines, {total} rows in all "
              f"({source.stat().st_size / 2**20:.0f} MB)")
        print(f"SQLite -> SQLite, ATTACH + INSERT ... SELECT: {plain:.2f} s "
              f"({total / plain:,.0f} rows/s)")
        print(f"SQLite -> SQLite, labloom db copy:           {into_file:.2f} s "
              f"({total / into_file:,.0f} rows/s; {into_file / plain:.1f}x the plain copy)")
        import pg_server

        if pg_server.missing() is None:
            server = pg_server.PostgresServer()
            try:
                into_pg, _ = labloom_copy(source, server.url(server.new_database()))
            finally:
                server.close()
            print(f"SQLite -> PostgreSQL, labloom db copy:       {into_pg:.2f} s "
                  f"({total / into_pg:,.0f} rows/s)")


if __name__ == "__main__":
    main()
