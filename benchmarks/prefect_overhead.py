"""Prefect reference column for ``dask_overhead.py``; run with an interpreter that has Prefect.

Runs in its own environment (Prefect + prefect-dask), never imports labloom. Starts its own
``LocalCluster(n_workers=2, threads_per_worker=1)`` (the workers must import Prefect), and
alternates raw ``client.map`` + ``gather`` with a Prefect flow on
``DaskTaskRunner(address=cluster.scheduler_address)`` that maps the same no-op over N items
(``task.map(...)``, then ``.result()``). Progress goes to stderr; the last stdout line is JSON
with both medians. ``dask_overhead.py --prefect-python PATH`` runs it with a private
``PREFECT_HOME``; to run it by hand, set ``PREFECT_HOME`` to a temporary directory first.

    /path/to/prefect-venv/bin/python benchmarks/prefect_overhead.py [--tasks 5000] [--repeats 5]

What is timed: the flow call, from entering it to having all N results back (flow run and
task run creation and state reporting to the API, the task runner's connection to the
scheduler, submission, execution, results). Not timed: starting the local API server (a
loopback-only subprocess started before the cluster, so the workers report to the same one)
and a warm-up flow run plus a warm-up raw map of 200 tasks before the measured rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import time


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def noop(x: int) -> int:
    return x


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    # The API URL must be in the environment before Prefect loads its settings and before the
    # workers start, so that this process and both workers use the one loopback server.
    port = free_port()
    os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")

    import distributed
    import prefect
    import prefect_dask
    from distributed import Client, LocalCluster
    from prefect import flow, task
    from prefect.server.api.server import SubprocessASGIServer
    from prefect_dask import DaskTaskRunner

    server = SubprocessASGIServer(port=port)
    server.start()
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0")
    client = Client(cluster)

    noop_task = task(noop, name="noop")

    @flow(name="overhead", task_runner=DaskTaskRunner(address=cluster.scheduler_address))
    def mapped(n: int) -> list[int]:
        return noop_task.map(range(n)).result()

    def raw(n: int, rep: int) -> float:
        start = time.perf_counter()
        futures = client.map(noop, range(n), key=[f"raw-{rep}-{i}" for i in range(n)])
        client.gather(futures)
        elapsed = time.perf_counter() - start
        del futures
        return elapsed

    def through_prefect(n: int) -> float:
        start = time.perf_counter()
        results = mapped(n)
        elapsed = time.perf_counter() - start
        assert results == list(range(n)), "Prefect flow returned wrong results"
        return elapsed

    try:
        raw(200, -1)  # warm both paths up (this flow run also warms up the API server)
        through_prefect(200)
        raws, prefects = [], []
        for rep in range(args.repeats):
            raws.append(raw(args.tasks, rep))
            prefects.append(through_prefect(args.tasks))
            log(f"  repeat {rep + 1}: client.map {raws[-1]:.2f}s  Prefect {prefects[-1]:.2f}s")
    finally:
        client.close()
        cluster.close()
        server.stop()
    print(json.dumps({
        "tasks": args.tasks,
        "repeats": args.repeats,
        "raw_median": statistics.median(raws),
        "prefect_median": statistics.median(prefects),
        "raw": raws,
        "prefect": prefects,
        "versions": {
            "prefect": prefect.__version__,
            "prefect_dask": prefect_dask.__version__,
            "distributed": distributed.__version__,
            "python": sys.version.split()[0],
        },
    }), flush=True)


if __name__ == "__main__":
    main()
