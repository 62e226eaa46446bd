"""How far one flow scales: N no-op task runs (``one.map(range(N))``) on threads, with the
store on, each size in a fresh interpreter. Prints the time, the time per task run (and its
ratio to the first size's), the same in CPU time of the whole process, the peak resident
memory (``ru_maxrss``) of that interpreter and that peak above the imports per task run.

    python3 benchmarks/task_runs_scale.py                      # 1k, 10k, 100k, 1M
    python3 benchmarks/task_runs_scale.py --sizes 1000 100000
    python3 benchmarks/task_runs_scale.py --sizes 1000 10000 100000 --repeats 5   # medians
    python3 benchmarks/task_runs_scale.py --src /other/src src --repeats 3   # trees alternating
    python3 benchmarks/task_runs_scale.py --cases existing      # only the usual case

Each child gets its own temporary LABLOOM_HOME; progress output is off. Three cases, each
printed in its own table (``--cases`` picks; the first two by default):

- "existing store" (what users have: a store is made once): before the measured child, another
  process runs a flow of one task run in the same LABLOOM_HOME, so the store file, its schema
  and WAL are there; the measured run still pays its process's first run (the store's modules
  imported, a connection opened and its schema version read, the writer's and delivery's
  threads started).
- "new store": the measured run also makes the store (the file, WAL mode, every migration),
  once per LABLOOM_HOME; until session 32 the only case measured, so older figures are these.
- "second run": an existing store, and the measured run is its process's second, after one of
  the same size (unmeasured): none of the first run's costs. "existing" minus "second" is what
  a process's first run pays once.

Compiled bytecode is kept (``installed_bytecode.py``: a temporary folder shared by the
children, a first small child per tree writing it), as after an install: with
``PYTHONDONTWRITEBYTECODE`` set, every fresh process compiled the store's modules inside its
run, about 15 ms that counted at 1,000 task runs only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from installed_bytecode import bytecode as kept_bytecode
from installed_bytecode import installed_env

# The flow every child program measures (``task_runs_threads.py`` too).
WIDE = r"""
from labloom import ThreadExecutor, flow, task

@task
def one(x):
    return x

@flow
def wide(n):
    one.map(range(n))
"""

CHILD = WIDE + r"""
import json, resource, sys, time

n = int(sys.argv[1])
if sys.argv[2:] == ["second"]:  # the measured run is the process's second
    wide.run(n=n, executor=ThreadExecutor(4))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started, cpu = time.perf_counter(), time.process_time()
run = wide.run(n=n, executor=ThreadExecutor(4))
elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
assert run.state.value == "Completed", (run.state, run.message)
assert len(run.tasks) == n
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"n": n, "seconds": elapsed, "cpu": cpu, "peak_mb": peak / 1024, "import_mb": base / 1024}))
"""


SRC = Path(__file__).resolve().parents[1] / "src"


CASES = {"existing": "existing store", "new": "new store", "second": "second run"}


def measure(n: int, pycache: str, src: Path = SRC, child: str = CHILD,
            prefix: Sequence[str] = (), case: str = "new",
            args: Sequence[str] = ()) -> dict[str, Any]:
    """``child`` run with ``n`` (then ``args``) in a fresh interpreter on ``src`` (under
    ``prefix``, a command such as ``taskset -c 0``); its last line's JSON. ``case``: one of
    ``CASES`` (the docstring above); for "existing" and "second" another process made the
    store first."""
    with tempfile.TemporaryDirectory() as home:
        env = dict(installed_env(pycache), LABLOOM_HOME=home, LABLOOM_PROGRESS="0",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")])))
        if case != "new":
            subprocess.run([sys.executable, "-c", CHILD, "1"], env=env, check=True,
                           capture_output=True)
        out = subprocess.run([*prefix, sys.executable, "-c", child, str(n), *args,
                              *(["second"] if case == "second" else [])], env=env, check=True,
                             capture_output=True, text=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def bytecode(srcs: Sequence[Path], child: str = CHILD) -> tempfile.TemporaryDirectory[str]:
    """The children's bytecode folder (keep it while measuring), written by a first small child
    per tree, as after an install (``installed_bytecode.py``)."""
    return kept_bytecode(srcs, lambda src, pycache: measure(10, pycache, src, child))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=1,
                        help="fresh processes per size, the sizes taken in turn (medians shown)")
    parser.add_argument("--src", type=Path, nargs="+", default=[SRC],
                        help="labloom src/ trees to measure, alternating run by run (a baseline "
                             "beside a change: the machine's load falls on both alike)")
    parser.add_argument("--cases", choices=CASES, nargs="+", default=["existing", "new"],
                        help="an existing store (made by another process first), a new one "
                             "made by the measured run, a process's second run (the docstring)")
    args = parser.parse_args()
    # Issue 21's targets: a million task runs at most 400 MB peak, and the time per task run
    # flat within 15% from the smallest size to the largest ("vs first").
    # CPU time (all the process's threads) beside: on a shared machine wall time is mostly the
    # others' load, CPU time much less so.
    pycache = bytecode(args.src)
    # Round-robin over the sizes (and trees, their order swapped each round), so that a drift
    # of the machine's speed (single fresh runs of one size spread by +-20% on a quiet VM)
    # falls on every size alike; medians per size.
    runs: dict[tuple[str, Path, int], list[dict[str, float]]] = {
        (case, src, n): [] for case in args.cases for src in args.src for n in args.sizes}
    for repeat in range(args.repeats):
        for n in args.sizes:
            for case in args.cases:
                for src in args.src[::-1] if repeat % 2 else args.src:
                    runs[case, src, n].append(measure(n, pycache.name, src, case=case))
    for case in args.cases:
        for src in args.src:
            print(CASES[case] + (f", {src}" if len(args.src) > 1 else ""))
            table(args.sizes, [runs[case, src, n] for n in args.sizes])
        if len(args.src) == 2:
            for n in args.sizes:
                pairs(f"{CASES[case]}, {n:,} task runs",
                      *(runs[case, src, n] for src in args.src))


def pairs(what: str, base: list[dict[str, float]], other: list[dict[str, float]]) -> None:
    """The second tree's time over the first's, pair by pair (each pair ran back to back, so
    the machine's drift falls on both): the median and the range, wall and CPU."""
    for key, name in (("seconds", "wall"), ("cpu", "CPU")):
        ratios = sorted(b[key] / a[key] for a, b in zip(base, other, strict=True))
        print(f"{what}, {name}: second/first {statistics.median(ratios):.3f} "
              f"(pairs {' '.join(f'{r:.2f}' for r in ratios)})", flush=True)


def table(sizes: list[int], runs: list[list[dict[str, float]]]) -> None:
    print(f"{'task runs':>10} {'time':>9} {'µs/run':>8} {'vs first':>9} {'CPU µs/run':>11} "
          f"{'vs first':>9} {'peak RSS':>9} {'B/run':>6}")
    first: float | None = None
    first_cpu: float | None = None
    for n, of_n in zip(sizes, runs, strict=True):
        r = {key: statistics.median(run[key] for run in of_n) for key in of_n[0]}
        per_run = r["seconds"] / n * 1e6
        cpu_per_run = r["cpu"] / n * 1e6
        first, first_cpu = first or per_run, first_cpu or cpu_per_run
        above_import = (r["peak_mb"] - r["import_mb"]) * 2**20 / n
        print(f"{n:>10,} {r['seconds']:>8.2f}s {per_run:>8.0f} {per_run / first:>8.2f}x "
              f"{cpu_per_run:>11.0f} {cpu_per_run / first_cpu:>8.2f}x "
              f"{r['peak_mb']:>7.0f}MB {above_import:>6.0f}", flush=True)


if __name__ == "__main__":
    main()
