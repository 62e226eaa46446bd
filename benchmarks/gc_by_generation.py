"""What the cyclic garbage collector takes of a run, by generation and by thread: N no-op
task runs (``one.map(range(N))``) on ``ThreadExecutor(4)`` with the store on, each size in a
fresh interpreter (as ``task_runs_scale.py``), optionally pinned to one core. A callback in
``gc.callbacks`` times each collection in the CPU time of the thread that ran it; besides,
the process's user and system CPU, minor page faults and context switches per task run.

    python3 benchmarks/gc_by_generation.py --sizes 100000 1000000 --pin
    python3 benchmarks/gc_by_generation.py --sizes 100000 --src /work/main/src src --repeats 3
    python3 benchmarks/gc_by_generation.py --sizes 100000 --pin --repeats 3 --metrics both

``--metrics``: each child logs 3 metrics (``log_metrics(a=..., b=..., c=...)``, as
``experiments_overhead.py``), or ``both`` to run the two flows in turn (issue 19's ratio).

Session 32 asked with it whether the collector is what a million task runs add per task run
over 100,000 (issue 21 §2): see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import task_runs_scale
from task_runs_scale import SRC

# The same flow whose children each log 3 metrics (``experiments_overhead.py``'s).
LOGGING = r"""
from labloom import log_metrics

@task
def one(x):
    log_metrics(a=x, b=x * 0.5, c=float(x % 7))
    return x

@flow
def wide(n):
    one.map(range(n))
"""

BODY = r"""
import gc, json, resource, sys, threading, time

n = int(sys.argv[1])
by_generation, by_thread, started_at = {}, {}, {}

def timed(phase, info):  # runs in the thread whose allocation set the collection off
    me = threading.get_ident()
    if phase == "start":
        started_at[me] = time.thread_time()
        return
    took = time.thread_time() - started_at.pop(me, time.thread_time())
    count_and_time = by_generation.setdefault(str(info["generation"]), [0, 0.0])
    count_and_time[0] += 1
    count_and_time[1] += took
    name = threading.current_thread().name.rsplit("_", 1)[0]  # task threads as one group
    by_thread[name] = by_thread.get(name, 0.0) + took

gc.callbacks.insert(0, timed)  # before the run's own (core/gc_policy.py), timing it too
FIELDS = ("ru_utime", "ru_stime", "ru_minflt", "ru_nvcsw", "ru_nivcsw")
before = resource.getrusage(resource.RUSAGE_SELF)
started = time.perf_counter()
run = wide.run(n=n, executor=ThreadExecutor(4))
elapsed = time.perf_counter() - started
after = resource.getrusage(resource.RUSAGE_SELF)
assert run.state.value == "Completed", (run.state, run.message)
usage = {k: getattr(after, k) - getattr(before, k) for k in FIELDS}
print(json.dumps({"n": n, "seconds": elapsed, "usage": usage, "generations": by_generation,
                  "threads": by_thread}))
"""
CHILD = task_runs_scale.WIDE + BODY


def line(src: Path, r: dict[str, Any]) -> str:
    n, usage = r["n"], r["usage"]
    us = 1e6 / n
    generations = " ".join(f"gen{g} {count}x {seconds * us:.2f}"
                           for g, (count, seconds) in sorted(r["generations"].items()))
    threads = " ".join(f"{name.removeprefix('labloom-')} {seconds * us:.2f}"
                       for name, seconds in sorted(r["threads"].items()))
    return (f"{str(src)[-20:]:>20} {n:>9,}  wall {r['seconds'] * us:5.1f}  user "
            f"{usage['ru_utime'] * us:5.1f}  sys {usage['ru_stime'] * us:4.1f}  minflt "
            f"{usage['ru_minflt'] / n:.3f}  switches {usage['ru_nvcsw'] / n:.3f}/"
            f"{usage['ru_nivcsw'] / n:.3f}  | gc µs: {generations} | by thread: {threads}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=1, help="rounds over sizes and trees")
    parser.add_argument("--src", type=Path, nargs="+", default=[SRC],
                        help="labloom src/ trees, alternating run by run")
    parser.add_argument("--pin", action="store_true", help="each child on core 0 (taskset)")
    parser.add_argument("--metrics", choices=("no", "yes", "both"), default="no",
                        help="children log 3 metrics each (both: each flow in turn)")
    args = parser.parse_args()
    flows = {"no": [""], "yes": [LOGGING], "both": ["", LOGGING]}[args.metrics]
    pin = "import os; os.sched_setaffinity(0, {0})\n" if args.pin else ""
    # The child pins itself: task_runs_scale.measure runs ``python -c``.
    children = [pin + task_runs_scale.WIDE + logging + BODY for logging in flows]
    pycache = tempfile.TemporaryDirectory()
    for src in args.src:
        for child in children:
            task_runs_scale.measure(10, pycache.name, src, child)  # writes the bytecode
    print(time.strftime("%H:%M:%S"), "load", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print("µs per task run; gc: collections and their CPU per generation, then per thread")
    for repeat in range(args.repeats):
        for n in args.sizes:
            for src in args.src[::-1] if repeat % 2 else args.src:
                for child in children[::-1] if repeat % 2 else children:
                    logs = "metrics" if LOGGING in child else "none"
                    print(logs, line(src, task_runs_scale.measure(n, pycache.name, src, child)),
                          flush=True)
    print(time.strftime("%H:%M:%S"), "load", " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
