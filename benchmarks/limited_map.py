"""A map behind a concurrency limit: N task runs tagged with a limit of L slots, on threads,
with the store on, each run in a fresh interpreter. Every child asks the store for a slot,
waits in its line and gives the slot back, so this measures the limiter and the launcher's
slot handling rather than the calls (``task_runs_scale.py`` measures an unlimited map).

    python3 benchmarks/limited_map.py                          # 2,000 behind 4, 5 runs
    python3 benchmarks/limited_map.py --n 500 2000 --limit 4 --repeats 8 --src /base/src src

With two trees, runs alternate (order swapped each round) and the second's time over the
first's is shown pair by pair (``task_runs_scale.pairs``).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

from task_runs_scale import SRC, bytecode, measure, pairs

CHILD = r"""
import json, resource, sys, time
import labloom
from labloom import ThreadExecutor, flow, task

@task(tags=["bench-limit"])
def one(x):
    return x

@flow
def limited(n):
    one.map(range(n))

n, slots = int(sys.argv[1]), int(sys.argv[2])
labloom.limits.set("bench-limit", slots)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started, cpu = time.perf_counter(), time.process_time()
run = limited.run(n=n, executor=ThreadExecutor(4))
elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
assert run.state.value == "Completed", (run.state, run.message)
assert len(run.tasks) == n
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"n": n, "seconds": elapsed, "cpu": cpu, "peak_mb": peak / 1024,
                  "import_mb": base / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, nargs="+", default=[2_000], help="task runs in the map")
    parser.add_argument("--limit", type=int, default=4, help="slots of the map's tag")
    parser.add_argument("--repeats", type=int, default=5, help="fresh processes per tree and size")
    parser.add_argument("--src", type=Path, nargs="+", default=[SRC],
                        help="labloom src/ trees, alternating run by run")
    args = parser.parse_args()
    child = CHILD.replace("int(sys.argv[2])", str(args.limit))
    pycache = bytecode(args.src, child)
    runs: dict[tuple[Path, int], list[dict[str, Any]]] = {
        (src, n): [] for src in args.src for n in args.n}
    for repeat in range(args.repeats):
        for n in args.n:
            for src in args.src[::-1] if repeat % 2 else args.src:
                runs[src, n].append(measure(n, pycache.name, src, child))
    print(f"{'tree':<40} {'task runs':>9} {'wall s':>8} {'ms/run':>7} {'CPU s':>7} {'range (wall)':>14}")
    for src in args.src:
        for n in args.n:
            of = runs[src, n]
            wall = sorted(r["seconds"] for r in of)
            cpu = sorted(r["cpu"] for r in of)
            mid, cpu_mid = statistics.median(wall), statistics.median(cpu)
            print(f"{str(src)[-40:]:<40} {n:>9,} {mid:>8.2f} {mid / n * 1e3:>7.2f} "
                  f"{cpu_mid:>7.2f} {wall[0]:>6.2f}-{wall[-1]:.2f}", flush=True)
    if len(args.src) == 2:
        for n in args.n:
            pairs(f"{n:,} behind {args.limit}", *(runs[src, n] for src in args.src))


if __name__ == "__main__":
    main()
