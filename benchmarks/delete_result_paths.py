"""What deleting a run's result files costs in a big store: which of its paths a run left still
names (``store/unreferenced_results.still_named``; no index holds result paths, so each query
scans ``task_runs``), by paths per query, and a whole ``delete_runs`` of one run.

    python benchmarks/delete_result_paths.py [--others 300000] [--victim 20000]

A fresh SQLite store in a temporary LABLOOM_HOME: ``--others`` task runs of other runs naming
result files, and one ended run of ``--victim`` task runs naming files of their own (none
exist on disk: the figures are the store's side).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--others", type=int, default=300_000)
    parser.add_argument("--victim", type=int, default=20_000)
    args = parser.parse_args()
    os.environ["LABLOOM_HOME"] = tempfile.mkdtemp(prefix="labloom-delete-bench-")
    os.environ["LABLOOM_PROGRESS"] = "0"
    from labloom.store import open_store
    from labloom.store import unreferenced_results as unreferenced
    from labloom.store.db import get_database
    from labloom.store.pruning import delete_runs

    conn = get_database().connect()
    now = time.time()
    with conn.transaction():
        conn.execute("INSERT INTO flow_runs (id, flow_name, state, created, ended) VALUES "
                     "('victim', 'wide', 'Completed', ?, ?)", (now, now))
        conn.executemany(
            "INSERT INTO task_runs (id, run_id, task_name, state, result_path) "
            "VALUES (?, ?, 'one', 'Completed', ?)",
            [(f"x{i}", f"r{i // 1000}", f"/res/{i:08x}.pkl") for i in range(args.others)]
            + [(f"v{i}", "victim", f"/res/v{i:08x}.pkl") for i in range(args.victim)],
        )
    paths = [f"/res/v{i:08x}.pkl" for i in range(args.victim)]
    print(f"python {sys.version.split()[0]}, {args.others} other task runs, "
          f"{args.victim} of the run deleted")
    for chunk in (500, unreferenced._CHUNK):
        unreferenced._CHUNK = chunk
        start = time.perf_counter()
        unreferenced.still_named(conn, paths, {"victim"})
        print(f"still_named, {chunk} paths a query: {time.perf_counter() - start:.2f} s")
    with open_store() as store:
        run = store.get_run("victim")
        assert run is not None
        start = time.perf_counter()
        pruned = delete_runs(store, [run])
        print(f"delete_runs of the run: {time.perf_counter() - start:.2f} s "
              f"({pruned.task_runs} task runs)")
    conn.close()


if __name__ == "__main__":
    main()
