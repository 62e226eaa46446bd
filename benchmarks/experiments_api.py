"""A 100,000-row run's pages of ``GET runs/{id}/experiments`` (issue 19's target: the first page
answers in under 200 ms from the server), on SQLite and PostgreSQL.

Fills a fresh store per backend with one real flow, ``trial.map(range(N))`` on
``ThreadExecutor(4)``, whose children each log 3 params and 3 metrics (ties and NaN among
them), then times the route:

- the handler's function (``server_extension.experiments.run_page``) in this process: the first
  call on a new ``StoreAccess`` (nothing cached), then warm calls (median); "partial: first"
  says the first answer was a first look from the run's first calls (docs/rest-api.md);
- a real Jupyter server with labloom's server extension (a subprocess): the first request of
  each kind to the fresh server, then warm rounds; "server" is tornado's own request time from
  the server's log (handler start to finish, the store read on the thread pool included).

Pages asked: unsorted, sorted by a metric (descending), by a param, the first page by map
index and in the views' own order (``index_order``: by task, then map index), a deep page,
deep pages sorted on task-run columns (state, duration, index) and filtered ones. The server is started
twice: first on the store as the run left it (the first server ever to see the run: it reads
the logged values whole and writes the run's snapshot, ``store/experiment_snapshot.py``), then
a fresh one once the snapshot is there (every later server); the handler's function last.

    python3 benchmarks/experiments_api.py                 # N = 100,000, both backends
    python3 benchmarks/experiments_api.py -n 20000 --backends sqlite --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from api_load import Server

from labloom import ThreadExecutor, flow, log_metrics, log_params, task

SERVER_TIME = re.compile(r"200 GET (\S+) .*? ([0-9.]+)ms")


@task
def trial(i: int) -> int:
    log_params(depth=i % 7, lr=(i % 5) / 10, seed=i % 3)
    log_metrics(auc=float("nan") if i % 97 == 0 else round((i * 7919 % 1000) / 1000, 2),
                loss=1 / (i + 1), accuracy=(i % 10) / 10)
    return i


@flow
def sweep(n: int) -> None:
    trial.map(range(n))


ASKS = {
    # The run tab's view's first question (a big run's rows as it shows them unsorted).
    "first page, index_order (the views')": "sort=index_order",
    "first page, unsorted": "",
    "first page, by auc desc": "sort=auc&desc=1",
    "first page, by depth (a param)": "sort=depth",
    "first page, by map_index": "sort=map_index",
    "page at offset 50,000, by auc desc": "sort=auc&desc=1&offset=50000",
    "offset 90,000, by state": "sort=state&offset=90000",
    "offset 70,000, by duration desc": "sort=duration&desc=1&offset=70000",
    "offset 99,900, by index desc": "sort=map_index&desc=1&offset=99900",
    "auc>0.9, by loss, offset 5,000": "sort=loss&filter=auc%3E0.9&offset=5000",
    "depth=3 seed=1, by auc, offset 1,000": "sort=auc&desc=1&filter=depth%3D3+seed%3D1"
                                             "&offset=1000",
}


def fill(n: int) -> str:
    started = time.perf_counter()
    run = sweep.run(n=n, executor=ThreadExecutor(4))
    assert run.state.value == "Completed", (run.state, run.message)
    print(f"  the flow of {n:,} children took {time.perf_counter() - started:.1f} s", flush=True)
    return run.id


def in_process(run_id: str, rounds: int) -> None:
    from labloom.core.experiment_filter import answer
    from labloom.server_extension.experiments import run_page
    from labloom.server_extension.queries import StoreAccess
    from labloom.store.db import database_url
    from labloom.store.experiments import run_experiments
    from labloom.store.reader import RunStore

    store = RunStore(url=database_url())
    access = StoreAccess()
    reference = run_experiments(store, run_id)  # every page checked against the full sort
    once = _one_time(store, run_id)
    print(f"  one time per store (a deep page by state before any snapshot: the whole read, "
          f"the page, and writing the snapshot): {once:.0f} ms", flush=True)
    try:
        print(f"  handler function{'':<22} {'first':>9} {'warm median':>12}")
        for label, query in ASKS.items():
            args = dict(parse_qsl(query))
            call = (access, store, run_id, args.get("sort"), bool(args.get("desc")), 100,
                    int(args.get("offset", 0)), args.get("filter", ""))
            times, partial = [], []
            for _ in range(rounds + 1):
                started = time.perf_counter()
                page = run_page(*call)
                times.append((time.perf_counter() - started) * 1000)
                assert page is not None and len(page["rows"]) == min(
                    100, max(0, page["total"] - page["offset"]))
                partial.append(bool(page.get("partial")))
            if not partial[-1]:  # the last answer against the full sort and filter
                want = answer(reference, call[3], call[4], 100, call[6], call[7])
                assert [r["task_run_id"] for r in page["rows"]] == [
                    r["task_run_id"] for r in want["rows"]], label
                assert page["total"] == want["total"], label
            print(f"  {label:<38} {times[0]:7.1f}ms {statistics.median(times[1:]):10.1f}ms"
                  f"{_partial(partial)}", flush=True)
    finally:
        access.close()
        store.close()


def through_server(tmp: Path, run_id: str, rounds: int, title: str, first: bool = False,
                   ) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "JUPYTER_CONFIG_DIR": str(tmp / "c"),
           "JUPYTER_DATA_DIR": str(tmp / "d"), "JUPYTER_RUNTIME_DIR": str(tmp / "r")}
    started = time.perf_counter()
    server = Server(tmp, env, log_level="DEBUG")
    try:
        print(f"  {title}{'':<{38 - len(title)}} {'first':>9} {'median':>9} {'server median':>14}")
        for label, query in ASKS.items():
            path = f"runs/{run_id}/experiments?limit=100&{query}".rstrip("&")
            answers = [server.get(path) for _ in range(rounds + 1)]
            client = [seconds * 1000 for seconds, _ in answers]
            partial = [bool(json.loads(body).get("partial")) for _, body in answers]
            server_ms = _server_times(tmp / "server.log", path)
            print(f"  {label:<38} {client[0]:7.1f}ms {statistics.median(client[1:]):7.1f}ms "
                  f"{statistics.median(server_ms[1:]) if len(server_ms) > 1 else float('nan'):12.1f}ms"
                  f"  (first: {server_ms[0] if server_ms else float('nan'):.1f}ms)"
                  f"{_partial(partial)}", flush=True)
        if first:
            _snapshot_made(run_id, started)  # before this server stops
    finally:
        server.stop()


def _one_time(store: Any, run_id: str) -> float:
    """The snapshot dropped, then a deep page sorted by state asked with a ``later`` that runs
    at once: what the first server ever pays, in ms."""
    from labloom.server_extension.experiment_rows import ExperimentRows

    with store.conn.transaction():
        for table in ("experiment_rows", "experiment_columns"):
            store.conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
    record = store.matching_runs(run_id)[0]
    started = time.perf_counter()
    ExperimentRows().page(store, record, "state", False, 100, record_rows(store, run_id) - 100,
                          later=lambda fn, *args: fn(store, *args))
    return (time.perf_counter() - started) * 1000


def record_rows(store: Any, run_id: str) -> int:
    return int(store.conn.execute(
        "SELECT count(*) FROM task_runs WHERE run_id = ?", (run_id,)).fetchone()[0])


def _snapshot_made(run_id: str, started: float) -> None:
    """Wait for the snapshot the first server wrote (on its pool) and say when it was there."""
    from labloom.store import experiment_snapshot
    from labloom.store.db import database_url
    from labloom.store.reader import RunStore

    deadline = time.monotonic() + 600
    with RunStore(url=database_url()) as store:
        while experiment_snapshot.read_meta(store, run_id) is None:
            if time.monotonic() > deadline:
                sys.exit("the server wrote no snapshot of the run within 10 minutes")
            time.sleep(0.2)
        sizes = [store.conn.execute(
            f"SELECT sum(length(data)) FROM {table} WHERE run_id = ?", (run_id,)).fetchone()[0]
            for table in ("experiment_values", "experiment_rows", "experiment_columns")]
        packed = store.conn.execute(  # msgpack (schema 15); JSON text in ``data`` before
            "SELECT coalesce(sum(length(packed)), 0) FROM experiment_values WHERE run_id = ?",
            (run_id,)).fetchone()[0]
    print(f"  the run's snapshot written by the first server; logged values "
          f"{(sizes[0] + packed) / 1e6:.1f} MB ({packed / 1e6:.1f} MB msgpack), snapshot rows "
          f"{sizes[1] / 1e6:.1f} MB + columns {sizes[2] / 1e6:.1f} MB of text", flush=True)


def _partial(flags: list[bool]) -> str:
    """Which answers were partial (a first look answered from the run's first calls while the
    server reads the whole run: docs/rest-api.md)."""
    which = [i for i, flag in enumerate(flags) if flag]
    return f"  partial: {'first' if which == [0] else which}" if which else ""


def _server_times(log_path: Path, path: str, wait: float = 5.0) -> list[float]:
    """Tornado's request times of the requests for ``path`` (the server logs a request just
    after answering it: wait for the last one)."""
    deadline = time.monotonic() + wait
    while True:
        found = [float(m.group(2)) for line in log_path.read_text().splitlines()
                 if (m := SERVER_TIME.search(line)) and m.group(1) == f"/labloom/api/{path}"]
        if len(found) > 1 or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=100_000, help="map children (default 100,000)")
    parser.add_argument("--rounds", type=int, default=10, help="warm rounds (default 10)")
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"],
                        choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="labloom-experiments-api-"))
    os.environ.update(LABLOOM_HOME=str(tmp / "home"), LABLOOM_PROGRESS="0")
    pg: Any = None
    try:
        for backend in args.backends:
            print(f"{backend}:", flush=True)
            if backend == "postgresql":
                import pg_server

                why = pg_server.missing()
                if why:
                    sys.exit(f"PostgreSQL: {why}")
                pg = pg_server.PostgresServer(fast=False)
                os.environ["LABLOOM_DATABASE_URL"] = pg.url(pg.new_database())
            run_id = fill(args.n)
            through_server(tmp, run_id, args.rounds, "Jupyter server, no snapshot yet", True)
            through_server(tmp, run_id, args.rounds, "fresh Jupyter server, snapshot")
            in_process(run_id, args.rounds)
    finally:
        if pg is not None:
            from labloom.store import db

            db.forget(os.environ["LABLOOM_DATABASE_URL"])
            pg.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
