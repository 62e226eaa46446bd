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

Pages asked: unsorted, sorted by a metric (descending), by a param, and a deep page.

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
    "first page, unsorted": "",
    "first page, by auc desc": "sort=auc&desc=1",
    "first page, by depth (a param)": "sort=depth",
    "page at offset 50,000, by auc desc": "sort=auc&desc=1&offset=50000",
}


def fill(n: int) -> str:
    started = time.perf_counter()
    run = sweep.run(n=n, executor=ThreadExecutor(4))
    assert run.state.value == "Completed", (run.state, run.message)
    print(f"  the flow of {n:,} children took {time.perf_counter() - started:.1f} s", flush=True)
    return run.id


def in_process(run_id: str, rounds: int) -> None:
    from labloom.server_extension.experiments import run_page
    from labloom.server_extension.queries import StoreAccess
    from labloom.store.db import database_url
    from labloom.store.reader import RunStore

    store = RunStore(url=database_url())
    access = StoreAccess()
    try:
        print(f"  handler function{'':<22} {'first':>9} {'warm median':>12}")
        for label, query in ASKS.items():
            args = dict(p.split("=") for p in query.split("&") if p)
            call = (access, store, run_id, args.get("sort"), bool(args.get("desc")), 100,
                    int(args.get("offset", 0)))
            times, partial = [], []
            for _ in range(rounds + 1):
                started = time.perf_counter()
                page = run_page(*call)
                times.append((time.perf_counter() - started) * 1000)
                assert page is not None and len(page["rows"]) == 100
                partial.append(bool(page.get("partial")))
            print(f"  {label:<38} {times[0]:7.1f}ms {statistics.median(times[1:]):10.1f}ms"
                  f"{_partial(partial)}", flush=True)
    finally:
        access.close()
        store.close()


def through_server(tmp: Path, run_id: str, rounds: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "JUPYTER_CONFIG_DIR": str(tmp / "c"),
           "JUPYTER_DATA_DIR": str(tmp / "d"), "JUPYTER_RUNTIME_DIR": str(tmp / "r")}
    server = Server(tmp, env, log_level="DEBUG")
    try:
        print(f"  Jupyter server{'':<24} {'first':>9} {'median':>9} {'server median':>14}")
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
    finally:
        server.stop()


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
            in_process(run_id, args.rounds)
            through_server(tmp, run_id, args.rounds)
    finally:
        if pg is not None:
            from labloom.store import db

            db.forget(os.environ["LABLOOM_DATABASE_URL"])
            pg.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
