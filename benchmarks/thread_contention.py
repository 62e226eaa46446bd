"""Do a run's threads fight across the cores? N no-op task runs (``one.map(range(N))``) on
``ThreadExecutor(4)`` with the store on, each in a fresh interpreter, once free (every core)
and once pinned to one core (``taskset -c 0``), trees side by side in one invocation. Prints
per run the wall and CPU time per task run and, per group of threads (the task threads, the
event delivery, the store writer, the caller's), the CPU µs / voluntary / involuntary context
switches per task run; then the medians, and free over pinned per tree.

    python3 benchmarks/thread_contention.py --src /work/main/src src --n 100000 --repeats 3

Pinning is a measurement here, never a fix: a run pinned to one core cannot have a thread
woken on the other core while the one holding the GIL runs on, so free over pinned is what
the threads' fighting costs. A second core kept busy by another process hides the effect
(it acts like pinning): give the load (printed) with every figure. Linux only.

Session 32 found with it that the task threads waited on the capture of prints' global lock
(``core/logs.py``), taken twice per call: 2 to 3 voluntary switches per task run when both
cores were free, 0.05 pinned.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path
from typing import Any

import task_runs_scale
from task_runs_scale import SRC
from task_runs_threads import GROUP, READ

CHILD = task_runs_scale.WIDE + r"""
import json, os, sys, threading, time
""" + READ + r"""
n = int(sys.argv[1])
names, base, last, stop = {}, {}, {}, threading.Event()

def sample():  # a thread that ends with the run (event delivery) keeps its last reading
    me = threading.get_native_id()
    while not stop.wait(0.1):  # seldom: each reading is file reads that let go of the GIL
        read_all(last, skip=me)

read_all(base)
sampler = threading.Thread(target=sample, name="sampler", daemon=True)
sampler.start()
started, cpu = time.perf_counter(), time.process_time()
run = wide.run(n=n, executor=ThreadExecutor(4))
elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
stop.set()
sampler.join()
read_all(last, skip=sampler.native_id)
assert run.state.value == "Completed", (run.state, run.message)
""" + GROUP + r"""
print(json.dumps({"n": n, "seconds": elapsed, "cpu": cpu, "groups": groups}))
"""

MODES = {"free": (), "pinned": ("taskset", "-c", "0")}


def line(r: dict[str, Any]) -> str:
    n = r["n"]
    cells = [f"{g.removeprefix('labloom-')} {c / n / 1000:.0f}/{v / n:.2f}/{i / n:.2f}"
             for g, (c, v, i, _) in sorted(r["groups"].items()) if g != "other"]
    return (f"wall {r['seconds'] / n * 1e6:5.0f} CPU {r['cpu'] / n * 1e6:5.0f} | "
            + "  ".join(cells))


def load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000, help="task runs per run")
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds; each runs every tree free and pinned, order alternating")
    parser.add_argument("--src", type=Path, nargs="+", default=[SRC],
                        help="labloom src/ trees to compare, side by side")
    args = parser.parse_args()
    if not Path("/proc/self/task").is_dir():
        sys.exit("thread_contention.py reads /proc/self/task: Linux only")
    pycache = task_runs_scale.bytecode(args.src)
    print(f"{args.n:,} task runs on ThreadExecutor(4), store on; per run: µs per task run, "
          "then per thread group CPU µs / voluntary / involuntary switches per task run")
    runs: dict[tuple[str, Path], list[dict[str, Any]]] = {
        (mode, src): [] for mode in MODES for src in args.src}
    for repeat in range(args.repeats):
        print(f"round {repeat + 1} ({load()})", flush=True)
        order = [(mode, src) for mode in MODES for src in args.src]
        for mode, src in order[::-1] if repeat % 2 else order:
            r = task_runs_scale.measure(args.n, pycache.name, src, CHILD, prefix=MODES[mode])
            runs[mode, src].append(r)
            print(f"  {mode:6} {src}: {line(r)}", flush=True)
    print(f"medians ({load()})")
    for src in args.src:
        for mode in MODES:
            of = runs[mode, src]
            wall, cpu = (statistics.median(r[key] / r["n"] * 1e6 for r in of)
                         for key in ("seconds", "cpu"))
            task = statistics.median(r["groups"].get("labloom-task", [0])[0] / r["n"] / 1000
                                     for r in of)
            switches = statistics.median(r["groups"].get("labloom-task", [0, 0])[1] / r["n"]
                                         for r in of)
            print(f"  {mode:6} {src}: wall {wall:.0f} CPU {cpu:.0f} µs per task run; task "
                  f"threads {task:.0f} µs, {switches:.2f} voluntary switches per task run")
        ratios = [f / p for f, p in zip((r["cpu"] for r in runs["free", src]),
                                        (r["cpu"] for r in runs["pinned", src]), strict=True)]
        print(f"  free/pinned CPU {src}: median {statistics.median(ratios):.2f} "
              f"(rounds {' '.join(f'{x:.2f}' for x in ratios)})", flush=True)


if __name__ == "__main__":
    main()
