"""What a cache key costs on large inputs: labloom's content hash (``dask.base.tokenize``,
deterministic) beside pickling the same value (what saving a cached result costs anyway), and
a flow whose cached task takes a 100 MB array from an uncached task, computed and then hit.

    python benchmarks/cache_keys.py [--rounds R]

A cached task hashes an input only when the input comes from an uncached task (a cached
upstream's key stands in for its value) or is given in the flow body; ``cache_key=`` replaces
the hashing with the user's own policy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import cloudpickle
import numpy as np

os.environ.setdefault("LABLOOM_HOME", tempfile.mkdtemp(prefix="labloom-bench-"))
os.environ.setdefault("LABLOOM_PROGRESS", "0")

from labloom import flow, task
from labloom.core.cache_keys import content_token

MB = 1_000_000


def inputs() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    return {
        "numpy float64, 100 MB": rng.random(100 * MB // 8),
        "bytes, 100 MB": rng.bytes(100 * MB),
        "list of 1M floats": [float(x) for x in rng.random(MB)],
        "dict of 100k str -> int": {f"key{i}": i for i in range(100_000)},
    }


def median_seconds(fn: Callable[[], Any], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


@task
def array(n: int) -> Any:
    return np.random.default_rng(n).random(100 * MB // 8)


@task(cache=True)
def mean(values: Any) -> float:
    return float(values.mean())


@task
def mean_uncached(values: Any) -> float:
    return float(values.mean())


@flow(executor="threads")
def cached_mean() -> float:
    return mean(array(1))  # type: ignore[return-value]


@flow(executor="threads")
def uncached_mean() -> float:
    return mean_uncached(array(1))  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    print(f"{'input':28} {'content hash':>13} {'cloudpickle':>12}")
    for name, value in inputs().items():
        hashed = median_seconds(lambda value=value: content_token(value), rounds)
        pickled = median_seconds(lambda value=value: cloudpickle.dumps(value), rounds)
        print(f"{name:28} {hashed:12.3f}s {pickled:11.3f}s")
    print()
    print("flow: a cached task of a 100 MB array from an uncached task (threads)")
    cached_mean()  # the first run computes and saves; the rounds below hit
    for label, fn in (("uncached", uncached_mean), ("cached, a hit", cached_mean)):
        print(f"  {label:14} {median_seconds(fn, rounds):.3f}s")


if __name__ == "__main__":
    main()
