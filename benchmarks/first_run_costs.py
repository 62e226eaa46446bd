"""What a process's first run pays that its second does not: a fresh interpreter with an
existing store (made by another process first, as users have it) imports the store's modules
(timed alone, the caller's CPU), then runs ``one.map(range(N))`` twice on ``ThreadExecutor(4)``.
For each run: the process's CPU, each thread group's CPU (as ``task_runs_threads.py``), the
caller's CPU inside ``labloom.store.attach``, and the minor page faults (new memory touched:
a first run grows the heap, a second reuses what the first freed), the process's and each
thread group's (which thread touches the new memory). Medians over the repeats,
trees alternating. Linux only (``/proc/self/task``).

    taskset -c 0 python3 benchmarks/first_run_costs.py --src /work/main/src src --repeats 8
    taskset -c 0 python3 benchmarks/first_run_costs.py --pause 0.2   # the second run as a user's

A second run right after the first is cheaper than a user's next run: the store writer lets
what comes gather until ``GATHER`` (0.05 s) after its last transaction began, so such a run
of 1,000 often goes in one transaction (task runs inserted with their final state), where a
first run, or one after a pause, is written along with the run in two, the second updating
task runs the first inserted (session 33: some 2.7 ms of CPU). ``--pause 0.2`` measures the
second run as a user's next run is.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import task_runs_scale
from task_runs_scale import SRC
from task_runs_threads import GROUP, READ

CHILD = task_runs_scale.WIDE + r"""
import json, os, resource, sys, threading, time
""" + READ + r"""
n = int(sys.argv[1])
names = {}
started = time.thread_time()
import labloom.store, labloom.store.cancel, labloom.store.schema, labloom.store.writer
imports = time.thread_time() - started
attach, attach_cpu = labloom.store.attach, [0.0]

def timed_attach(run):
    started = time.thread_time()
    try:
        attach(run)
    finally:
        attach_cpu[0] += time.thread_time() - started

labloom.store.attach = timed_attach

def one_run():
    global base, last
    base, last, stop = {}, {}, threading.Event()
    read_all(base)
    sampler = sampling(last, stop)
    attach_cpu[0] = 0.0
    faults, cpu = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.process_time()
    run = wide.run(n=n, executor=ThreadExecutor(4))
    cpu = time.process_time() - cpu
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    stop.set()
    sampler.join()
    assert run.state.value == "Completed", (run.state, run.message)
""" + GROUP.replace("\n", "\n    ") + r"""
    return {"cpu": cpu, "attach": attach_cpu[0], "faults": faults,
            **{group: total[0] / 1e9 for group, total in groups.items()},
            **{group + " faults": total[3] for group, total in groups.items()}}

first = one_run()
time.sleep(float(sys.argv[2]))
print(json.dumps({"imports": imports, "runs": [first, one_run()]}))
"""

GROUPS = ("MainThread", "labloom-task", "labloom-store", "labloom-events")
FAULTS = (*GROUPS, "other")  # "other": the cancel watcher, the sampler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=1000, help="task runs per run")
    parser.add_argument("--repeats", type=int, default=8, help="fresh processes per tree")
    parser.add_argument("--src", type=Path, nargs="+", default=[SRC],
                        help="labloom src/ trees, alternating process by process")
    parser.add_argument("--pause", type=float, default=0.0,
                        help="seconds between the two runs (0.2: past the store writer's "
                             "GATHER, as a user's next run; see the docstring)")
    args = parser.parse_args()
    pycache = task_runs_scale.bytecode(args.src)
    results: dict[Path, list[dict]] = {src: [] for src in args.src}
    for repeat in range(args.repeats):
        for src in args.src[::-1] if repeat % 2 else args.src:
            results[src].append(task_runs_scale.measure(args.n, pycache.name, src, CHILD,
                                                        case="existing", args=[str(args.pause)]))
    for src, runs in results.items():
        imports = statistics.median(r["imports"] for r in runs) * 1e3
        print(f"{src}: importing the store's modules {imports:.1f} ms of the caller's CPU, "
              f"then {args.n:,} task runs twice (medians of {len(runs)}, ms of CPU):")
        print(f"{'run':>7} {'process':>8} {'attach':>7} " + " ".join(
            f"{g.removeprefix('labloom-'):>10}" for g in GROUPS) + f" {'faults':>7}")
        for i, label in enumerate(("first", "second")):
            med = {key: statistics.median(r["runs"][i].get(key, 0.0) for r in runs)
                   for key in ("cpu", "attach", "faults", *GROUPS)}
            print(f"{label:>7} {med['cpu'] * 1e3:>8.1f} {med['attach'] * 1e3:>7.1f} " + " ".join(
                f"{med[g] * 1e3:>10.1f}" for g in GROUPS) + f" {med['faults']:>7.0f}", flush=True)
        # Which threads touch the new memory: a task thread's last faults (after the sampler's
        # last reading, at most 10 ms before its end) go unseen, and medians do not add up.
        print(f"{'faults':>7} " + " ".join(f"{g.removeprefix('labloom-'):>10}" for g in FAULTS))
        for i, label in enumerate(("first", "second")):
            faults = [statistics.median(r["runs"][i].get(g + " faults", 0) for r in runs)
                      for g in FAULTS]
            print(f"{label:>7} " + " ".join(f"{f:>10.0f}" for f in faults), flush=True)


if __name__ == "__main__":
    main()
