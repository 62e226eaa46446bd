"""Where a run's CPU goes, thread by thread: N no-op task runs (``one.map(range(N))``) on
``ThreadExecutor(4)`` with the store on, each size in a fresh interpreter (as
``task_runs_scale.py``). For each group of threads (the caller's, the four task threads, the
event delivery, the store writer) it prints the CPU time per task run and the context switches
per task run: voluntary ones are waits (a lock, a queue, a sleep), involuntary ones the OS
taking the core away. Linux only (it reads ``/proc/self/task``).

    python3 benchmarks/task_runs_threads.py --sizes 1000 20000

Issue 21 §2 found with it that the task threads of a run of 20,000 task runs spent two to five
times the CPU per task run of a run of 1,000, in 1.5 to 10 waits per task run on the run's
lock (``core/inbox.py`` since).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import task_runs_scale
from task_runs_scale import SRC

# A thread's CPU (ns), voluntary and involuntary switches and minor page faults (new memory
# touched), and their sum per group of threads (``thread_contention.py``, ``first_run_costs.py``).
READ = r"""
def read(tid):
    try:
        with open(f"/proc/self/task/{tid}/schedstat") as f:
            cpu_ns = int(f.read().split()[0])
        with open(f"/proc/self/task/{tid}/status") as f:
            text = f.read()
        with open(f"/proc/self/task/{tid}/stat") as f:  # minflt: the 8th field after the name
            minflt = int(f.read().rsplit(")", 1)[1].split()[7])
    except OSError:
        return None
    field = lambda name: int(text.split(name + ":")[1].split()[0])
    return [cpu_ns, field("\nvoluntary_ctxt_switches"), field("nonvoluntary_ctxt_switches"),
            minflt]

def read_all(into, skip=None):  # every thread's reading into ``into``, its name into ``names``
    for thread in threading.enumerate():
        names[thread.native_id] = thread.name
    for tid in map(int, os.listdir("/proc/self/task")):
        reading = read(tid) if tid != skip else None
        if reading:
            into[tid] = reading

def sampling(last, stop):  # a started thread: threads end with the run, keep their last reading
    def sample():
        me = threading.get_native_id()
        while True:
            read_all(last, skip=me)
            if stop.wait(0.01):
                return

    sampler = threading.Thread(target=sample, name="sampler", daemon=True)
    sampler.start()
    return sampler
"""
GROUP = r"""
groups = {}
for tid, reading in last.items():
    name = names.get(tid) or "?"
    group = next((p for p in ("labloom-task", "labloom-events", "labloom-store", "MainThread")
                  if name.startswith(p)), "other")
    before = base.get(tid) or [0, 0, 0, 0]
    total = groups.setdefault(group, [0, 0, 0, 0])
    for i in range(4):
        total[i] += reading[i] - before[i]
"""

CHILD = task_runs_scale.WIDE + r"""
import json, os, sys, threading, time
""" + READ + r"""
n = int(sys.argv[1])
names, last, stop = {}, {}, threading.Event()
base = {}
read_all(base)
sampler = sampling(last, stop)
started = time.perf_counter()
run = wide.run(n=n, executor=ThreadExecutor(4))
elapsed = time.perf_counter() - started
stop.set()
sampler.join()
assert run.state.value == "Completed", (run.state, run.message)
""" + GROUP + r"""
print(json.dumps({"n": n, "seconds": elapsed, "groups": groups}))
"""

def measure(n: int, pycache: str, src: Path = SRC) -> dict[str, object]:
    return task_runs_scale.measure(n, pycache, src, CHILD)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 20_000])
    parser.add_argument("--src", type=Path, default=SRC, help="the labloom src/ to measure")
    args = parser.parse_args()
    if not Path("/proc/self/task").is_dir():
        sys.exit("task_runs_threads.py reads /proc/self/task: Linux only")
    pycache = task_runs_scale.bytecode([args.src])
    print(f"{'task runs':>10} {'µs/run':>7}  per thread group: CPU µs per task run "
          "/ voluntary / involuntary switches per task run")
    for n in args.sizes:
        r = measure(n, pycache.name, args.src)
        seconds = float(r["seconds"])  # type: ignore[arg-type]
        groups: dict[str, list[int]] = r["groups"]  # type: ignore[assignment]
        cells = [f"{g.removeprefix('labloom-')} {c / n / 1000:.0f} / {v / n:.2f} / {i / n:.2f}"
                 for g, (c, v, i, _) in sorted(groups.items()) if g != "other"]
        print(f"{n:>10,} {seconds / n * 1e6:>7.0f}  " + "   ".join(cells), flush=True)


if __name__ == "__main__":
    main()
