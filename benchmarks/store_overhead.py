"""The run store's cost: a 10,000-task flow on ThreadExecutor with the store attached and
without, alternating, in one process. Prints each round and the median ratio.

    LABLOOM_HOME=$(mktemp -d) python benchmarks/store_overhead.py [--tasks N] [--rounds R]

"store (default)" records metadata and logs and persists only cache=True results;
"store, results=all" also persists every result (LABLOOM_RESULTS=all), for `labloom retry`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from labloom import ThreadExecutor, flow, task


@task
def one(x: int) -> int:
    return x + 1


@flow
def wide(n: int) -> None:
    one.map(range(n))


def timed(n: int, store: str, results: str) -> float:
    os.environ["LABLOOM_STORE"] = store
    os.environ["LABLOOM_RESULTS"] = results
    started = time.perf_counter()
    run = wide.run(n=n, executor=ThreadExecutor(8))
    elapsed = time.perf_counter() - started
    assert run.state.value == "Completed", run.state
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("LABLOOM_PROGRESS", "0")
    modes = {
        "no store": ("0", "cached"),
        "store (default)": ("1", "cached"),
        "store, results=all": ("1", "all"),
    }
    timed(500, "1", "all")  # warm up imports, threads and the store file
    times: dict[str, list[float]] = {name: [] for name in modes}
    for round_ in range(args.rounds):
        for name, (store, results) in modes.items():
            times[name].append(timed(args.tasks, store, results))
        print(f"round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()))
    base = statistics.median(times["no store"])
    for name in modes:
        median = statistics.median(times[name])
        print(f"{name:>20}: median {median:.2f}s  ratio {median / base:.2f}")


if __name__ == "__main__":
    main()
