"""Overhead: N no-op mapped tasks through labloom vs ``client.map`` + ``gather``.

Same LocalCluster(n_workers=2, threads_per_worker=1), alternating, medians; prints the ratio.

    python benchmarks/dask_overhead.py [--tasks 5000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
os.environ.setdefault("LABLOOM_HOME", tempfile.mkdtemp(prefix="labloom-bench-"))

from distributed import Client, LocalCluster

from labloom import DaskExecutor, flow, task


def noop(x: int) -> int:
    return x


noop_task = task(noop, name="noop")


@flow(name="overhead")
def mapped(n: int) -> list[int]:
    return noop_task.map(range(n))


def raw(client: Client, n: int, rep: int) -> float:
    start = time.perf_counter()
    futures = client.map(noop, range(n), key=[f"raw-{rep}-{i}" for i in range(n)])
    client.gather(futures)
    elapsed = time.perf_counter() - start
    del futures
    return elapsed


def through_labloom(executor: DaskExecutor, n: int) -> float:
    start = time.perf_counter()
    run = mapped.run(n=n, executor=executor)
    run.result()
    elapsed = time.perf_counter() - start
    assert run.state.value == "Completed", run.state
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0")
    client = Client(cluster)
    executor = DaskExecutor(client=client)
    raw(client, 200, -1)  # warm both paths up
    through_labloom(executor, 200)
    raws, ours = [], []
    for rep in range(args.repeats):
        raws.append(raw(client, args.tasks, rep))
        ours.append(through_labloom(executor, args.tasks))
        print(f"  repeat {rep + 1}: client.map {raws[-1]:.2f}s  labloom {ours[-1]:.2f}s",
              flush=True)
    r, o = statistics.median(raws), statistics.median(ours)
    print(f"{args.tasks} no-op tasks, median of {args.repeats}: client.map+gather {r:.2f}s, "
          f"labloom {o:.2f}s, ratio {o / r:.2f} (target <= 1.3); Prefect column: not installed")
    client.close()
    cluster.close()


if __name__ == "__main__":
    main()
