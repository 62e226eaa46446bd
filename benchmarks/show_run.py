"""What the views of one run and of the run list read on a store of many runs (session 48):
``--runs`` runs of ``--children`` children each (one run made by labloom, its rows then copied
in SQL with new ids and earlier times: the same rows a store of that many runs holds, made in
a minute, not an hour), then ``labloom runs``, ``runs --json``, ``show RUN`` and ``show RUN
--json`` (with the task runs' state histories) of the newest run and of one in the middle,
``logs RUN``, and the REST reads ``GET runs`` and ``GET runs/{id}`` (``queries.list_runs``,
``run_detail``). One store for all trees (read only); per tree, ``fresh``: ``python -m labloom
...`` in a process of its own, then ``warm``: the best of 3 in one process after a first
read; trees alternating, best of ``--repeat``.

    python3 benchmarks/show_run.py --src /work/main/src src --runs 2000 --children 350
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
_TIMES = ("created", "started", "ended", "heartbeat", "time")
_TABLES = {"flow_runs": ("id",), "task_runs": ("id", "run_id"),
           "task_states": ("task_run_id", "run_id"), "logs": ("run_id", "task_run_id"),
           "run_nodes": ("run_id",)}


def build(runs: int, children: int) -> str:
    """Make the store in ``LABLOOM_HOME``; returns the newest run's id."""
    from labloom import flow, get_run_logger, task
    from labloom.store import open_store

    @task
    def kid(i: int) -> int:
        get_run_logger().info("kid %d", i)
        return i

    @flow(executor="local")
    def sweep(n: int, lr: float = 0.1) -> None:
        kid.map(range(n))

    run = sweep.run(n=children)
    with open_store() as store:
        path = store.path
    conn = sqlite3.connect(path)
    with conn:
        for table, keys in _TABLES.items():
            columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")
                       if not (table == "logs" and row[1] == "id")]
            chosen = [f"{c} || printf('%05d', k.k)" if c in keys else
                      f"{c} - k.k * 60.0" if c in _TIMES else c for c in columns]
            where = "id" if table == "flow_runs" else "run_id"
            conn.execute(
                f"WITH RECURSIVE k(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM k WHERE k < ?) "
                f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(chosen)} "
                f"FROM k CROSS JOIN {table} WHERE {table}.{where} = ? ORDER BY k.k",
                (runs - 1, run.id))
    conn.close()
    return run.id


def child(run_id: str, middle: str) -> None:
    from labloom.cli import main
    from labloom.server_extension.queries import StoreAccess, list_runs, run_detail
    from labloom.store import open_store

    figures: dict[str, float] = {}

    def best(label: str, call: object) -> None:
        call()  # type: ignore[operator]
        took = []
        for _ in range(3):
            start = time.perf_counter()
            call()  # type: ignore[operator]
            took.append(time.perf_counter() - start)
        figures[f"{label} warm s"] = min(took)

    with open(os.devnull, "w") as out, contextlib.redirect_stdout(out):
        for label, args in _cases(run_id, middle):
            best(label, lambda args=args: main(args))
    access = StoreAccess(workers=1)
    try:
        with open_store() as store:
            best("GET runs", lambda: list_runs(access, store, {}, 50))
            best("GET runs/{id}", lambda: run_detail(access, store, run_id, True))
    finally:
        access.close()
    print(json.dumps(figures))


def _cases(run_id: str, middle: str) -> list[tuple[str, list[str]]]:
    return [("runs", ["runs"]), ("runs --json", ["runs", "--json"]),
            ("show", ["show", run_id]), ("show --json", ["show", run_id, "--json"]),
            ("show (middle)", ["show", middle]), ("show --json (middle)", ["show", middle, "--json"]),
            ("logs", ["logs", run_id])]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", nargs="+", default=[str(SRC)])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--children", type=int, default=350)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--child", nargs=2, metavar=("RUN", "MIDDLE"))
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "LABLOOM_HOME": home, "LABLOOM_PROGRESS": "0"}
        env.pop("LABLOOM_DATABASE_URL", None)
        made = subprocess.run(
            [sys.executable, "-c", f"import sys; sys.path[:0] = [{str(Path(__file__).parent)!r}];"
             f"import show_run; print(show_run.build({args.runs}, {args.children}))"],
            env={**env, "PYTHONPATH": args.src[0]}, capture_output=True, text=True, check=True)
        run_id = made.stdout.strip().splitlines()[-1]
        middle = f"{run_id}{args.runs // 2:05d}"
        best: dict[str, dict[str, float]] = {}
        for _ in range(args.repeat):
            for src in args.src:
                tree = {**env, "PYTHONPATH": src}
                figures: dict[str, float] = {}
                for label, cli in _cases(run_id, middle):
                    start = time.perf_counter()
                    subprocess.run([sys.executable, "-m", "labloom", *cli], env=tree, check=True,
                                   stdout=subprocess.DEVNULL)
                    figures[f"{label} fresh s"] = time.perf_counter() - start
                out = subprocess.run([sys.executable, __file__, "--child", run_id, middle],
                                     env=tree, capture_output=True, text=True, check=True)
                figures.update(json.loads(out.stdout.strip().splitlines()[-1]))
                kept = best.setdefault(src, figures)
                for name, value in figures.items():
                    kept[name] = min(kept[name], value)
        for src, figures in best.items():
            print(src, json.dumps({k: round(v, 4) for k, v in figures.items()}))


if __name__ == "__main__":
    main()
