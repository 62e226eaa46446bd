"""Whether SQLite's cost per task run grows with the tables (issue 21 §2): the rows the store
writer writes for N no-op task runs (a ``task_runs`` INSERT and UPDATE, three ``task_states``
rows; ids as the engine makes them, ``<run>.<index>``) straight into a fresh store with the
store's schema and connection settings, in transactions of 3,300 task runs (about the writer's
10,000 events), one thread. Prints the writer thread's CPU per task run over each stretch of
the table's growth (``time.thread_time``: the OS's own page cache reads and the WAL's
checkpoints are in it; the engine is not).

    python3 benchmarks/sqlite_rows_scale.py --n 1000000
    python3 benchmarks/sqlite_rows_scale.py --n 1000000 --cache-mb 64 --without-state-index
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from labloom.store.db import get_database

RUN = "6d1750096644"
BATCH = 3_300
MARKS = (1_000, 10_000, 100_000, 1_000_000, 10_000_000)


def rows_of(ids: list[str]) -> list[tuple[object, ...]]:
    return [(i, RUN, state, 1.0, "", attempt, "n0", before) for i in ids
            for state, attempt, before in (("Pending", 0, None), ("Running", 1, "Pending"),
                                           ("Completed", 1, "Running"))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--cache-mb", type=int, default=0, help="PRAGMA cache_size (0: SQLite's)")
    parser.add_argument("--without-state-index", action="store_true",
                        help="drop task_states_by_task_run (read by a task run's history)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        os.environ["LABLOOM_HOME"] = folder
        store = get_database().connect()  # the store's schema and connection settings
        conn = store.raw
        if args.cache_mb:
            conn.execute(f"PRAGMA cache_size=-{args.cache_mb * 1024}")
        if args.without_state_index:
            conn.execute("DROP INDEX task_states_by_task_run")
        print("page_size", conn.execute("PRAGMA page_size").fetchone()[0],
              "cache_size", conn.execute("PRAGMA cache_size").fetchone()[0])
        last_n, last_t = 0, time.thread_time()
        for start in range(0, args.n, BATCH):
            ids = [f"{RUN}.{i}" for i in range(start, min(args.n, start + BATCH))]
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO task_runs (id, run_id, node_id, task_name, map_index, state, "
                "created) VALUES (?, ?, 'n0', 'one', 0, 'Pending', 1.0)", [(i, RUN) for i in ids])
            conn.executemany("UPDATE task_runs SET state = 'Completed', started = 1.0, "
                             "ended = 2.0, attempts = 1 WHERE id = ?", [(i,) for i in ids])
            conn.executemany(
                "INSERT INTO task_states (task_run_id, run_id, state, time, message, attempt, "
                "node_id, before_state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows_of(ids))
            conn.execute("COMMIT")
            done = start + len(ids)
            if done == args.n or any(last_n < mark <= done for mark in MARKS):
                now = time.thread_time()
                print(f"{last_n:>10,} to {done:>10,}: {(now - last_t) / (done - last_n) * 1e6:5.1f}"
                      " µs CPU per task run", flush=True)
                last_n, last_t = done, now
        store.close()


if __name__ == "__main__":
    main()
