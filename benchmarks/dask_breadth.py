"""Breadth: N tasks sleeping 0.5 s on a cluster with 100 worker threads, vs the ideal time.

    python benchmarks/dask_breadth.py [--tasks 350] [--repeats 3]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
os.environ.setdefault("LABLOOM_HOME", tempfile.mkdtemp(prefix="labloom-bench-"))

from distributed import Client, LocalCluster

from labloom import DaskExecutor, flow, task

SLEEP = 0.5


def nap(i: int) -> int:
    time.sleep(SLEEP)
    return i


nap_task = task(nap, name="nap")


@flow(name="breadth")
def breadth(n: int) -> list[int]:
    return nap_task.map(range(n))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=350)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    # 4 processes x 25 threads = 100 worker threads (sleeping tasks need no cores).
    cluster = LocalCluster(n_workers=4, threads_per_worker=25, dashboard_address=":0")
    client = Client(cluster)
    executor = DaskExecutor(client=client)
    ideal = math.ceil(args.tasks / 100) * SLEEP
    breadth.run(n=100, executor=executor).result()  # warm up
    raws, ours = [], []
    for rep in range(args.repeats):
        start = time.perf_counter()
        keys = [f"raw-{rep}-{i}" for i in range(args.tasks)]
        client.gather(client.map(nap, range(args.tasks), key=keys))
        raws.append(time.perf_counter() - start)
        start = time.perf_counter()
        breadth.run(n=args.tasks, executor=executor).result()
        ours.append(time.perf_counter() - start)
        print(f"  repeat {rep + 1}: client.map {raws[-1]:.2f}s  labloom {ours[-1]:.2f}s",
              flush=True)
    r, o = statistics.median(raws), statistics.median(ours)
    print(f"{args.tasks} x {SLEEP}s on 100 threads, ideal {ideal:.2f}s: client.map {r:.2f}s "
          f"({r / ideal:.2f}x ideal), labloom {o:.2f}s ({o / ideal:.2f}x ideal, target <= 1.15), "
          f"labloom/client.map {o / r:.2f}")
    client.close()
    cluster.close()


if __name__ == "__main__":
    main()
