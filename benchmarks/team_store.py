"""The store's cost on SQLite and on PostgreSQL, side by side with no store: a flow of N task
runs on ThreadExecutor, each task sleeping ``--sleep`` seconds (0 for no-op tasks).

First one run per mode in a fresh process (imports, store creation, pool start-up included),
then warm rounds alternating the modes in this process. The PostgreSQL server is started here
from Debian's `postgresql` package (tests/pg_server.py) with its default durability settings
(fsync on), on a unix socket; the SQLite store is a file in a temporary LABLOOM_HOME.

    python3 benchmarks/team_store.py --tasks 10000 --sleep 0.01 --rounds 3
    python3 benchmarks/team_store.py --tasks 10000 --sleep 0 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from labloom import ThreadExecutor, flow, task

SLEEP = float(os.environ.get("BENCH_SLEEP", "0"))


@task
def work(x: int) -> int:
    if SLEEP:
        time.sleep(SLEEP)
    return x + 1


@flow
def wide(n: int) -> None:
    work.map(range(n))


def timed(n: int, workers: int) -> float:
    started = time.perf_counter()
    run = wide.run(n=n, executor=ThreadExecutor(workers))
    elapsed = time.perf_counter() - started
    assert run.state.value == "Completed", run.state
    return elapsed


def configure(mode: str, urls: dict[str, str]) -> None:
    os.environ["LABLOOM_STORE"] = "0" if mode == "no store" else "1"
    os.environ["LABLOOM_DATABASE_URL"] = urls.get(mode, "")
    if not os.environ["LABLOOM_DATABASE_URL"]:
        del os.environ["LABLOOM_DATABASE_URL"]


def fresh(mode: str, urls: dict[str, str], args: argparse.Namespace) -> float:
    """One run in a new interpreter: what a `labloom run` pays."""
    env = dict(os.environ, BENCH_SLEEP=str(args.sleep), PYTHONPATH=str(ROOT / "src"))
    env["LABLOOM_STORE"] = "0" if mode == "no store" else "1"
    env.pop("LABLOOM_DATABASE_URL", None)
    if mode in urls:
        env["LABLOOM_DATABASE_URL"] = urls[mode]
    code = (
        "import sys, time; t = time.perf_counter(); sys.path.insert(0, sys.argv[1]);"
        "import team_store as b; b.timed(int(sys.argv[2]), int(sys.argv[3]));"
        "print(time.perf_counter() - t)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "benchmarks"), str(args.tasks),
         str(args.workers)], env=env, capture_output=True, text=True, check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    global SLEEP
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--sleep", type=float, default=0.01)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    SLEEP = args.sleep
    os.environ["BENCH_SLEEP"] = str(args.sleep)
    os.environ.setdefault("LABLOOM_PROGRESS", "0")
    os.environ["LABLOOM_HOME"] = tempfile.mkdtemp(prefix="labloom-bench-")

    import pg_server

    why = pg_server.missing()
    if why:
        sys.exit(f"benchmark needs PostgreSQL: {why}")
    server = pg_server.PostgresServer(fast=False)
    try:
        urls = {"PostgreSQL": server.url(server.new_database())}
        modes = ["no store", "SQLite", "PostgreSQL"]
        print(f"{args.tasks} task runs of {args.sleep * 1000:g} ms on ThreadExecutor"
              f"({args.workers})")
        first = {mode: fresh(mode, urls, args) for mode in modes}
        print("fresh process: " + ", ".join(f"{m} {t:.2f}s" for m, t in first.items()))
        for mode in modes:  # warm up imports, threads, the store and the pool
            configure(mode, urls)
            timed(500, args.workers)
        times: dict[str, list[float]] = {mode: [] for mode in modes}
        for round_ in range(args.rounds):
            for mode in modes:
                configure(mode, urls)
                times[mode].append(timed(args.tasks, args.workers))
            print(f"round {round_ + 1}: "
                  + ", ".join(f"{m} {v[-1]:.2f}s" for m, v in times.items()))
        base = statistics.median(times["no store"])
        for mode in modes:
            median = statistics.median(times[mode])
            print(f"{mode:>11}: fresh {first[mode]:.2f}s (x{first[mode] / first['no store']:.2f})"
                  f"  warm median {median:.2f}s  ratio {median / base:.2f}")
    finally:
        from labloom.store import db

        for url in urls.values():
            db.forget(url)
        server.close()


if __name__ == "__main__":
    main()
