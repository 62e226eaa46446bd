"""What a fresh process's first Dask map pays that its second does not: for each ``--src``
tree in turn (fresh processes, the order swapped every pair), two maps of ``--tasks`` no-op
children with no option on ``LocalCluster(n_workers=2, threads_per_worker=1)`` of processes,
each timed from its run's start: when the first and the last graph went to the scheduler
(the first map's first graph holds its probes, ``dask_chunking``), how many Dask tasks the map
made, the wall time, the process CPU per child and each kernel thread's CPU per child
(``/proc/self/task/*/schedstat``, ns; Linux only). Then, on the same cluster, what a Dask
expert writes (``client.map`` over lists of 100, ``dask_overhead.py``'s hand-chunked map), and
each map's ratio to it. Medians over the processes.

The flow is defined inside the child, so the Dask workers (spawned: they import the script,
not labloom) import labloom at their first task, as a notebook's workers do; in
``dask_overhead.py`` they import it as they start (its script imports labloom at the top).

    python benchmarks/dask_first_map.py --src /work/main/src src [--pairs 4] [--tasks 5000] [--steps]

Every process reads compiled bytecode, as an installed labloom does (``installed_bytecode.py``:
one unmeasured process per tree writes it first; the Dask workers inherit the setting). This
machine sets PYTHONDONTWRITEBYTECODE, so without it a fresh process compiled every module it
imported during the first run (the store's, the progress printer's: about 12 ms of the
kernel's CPU, session 34).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import statistics
import subprocess
import sys
import threading
import time

from installed_bytecode import bytecode, installed_env
from noop_dask_map import in_tree, in_turn


def thread_cpu() -> dict[str, float]:
    """Thread CPU seconds by thread name (digits dropped: a run's threads count together)."""
    names = {str(t.native_id): t.name for t in threading.enumerate()}
    out: dict[str, float] = collections.defaultdict(float)
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as stat:
                ns = int(stat.read().split()[0])
        except OSError:
            continue  # ended meanwhile
        out[re.sub(r"[-_ ]?[0-9a-f]*\d[0-9a-f]*$", "", names.get(tid, "other"))] += ns / 1e9
    return out


def child(tasks: int, steps: bool) -> None:
    import distributed

    import labloom
    from labloom.executors import dask_chunking, dask_submit

    sends: list[tuple[float, int]] = []
    send_graph = dask_submit.send_graph

    def timed_send(client: object, graph: dict, resources: object) -> None:
        sends.append((time.perf_counter(), len(graph)))
        send_graph(client, graph, resources)

    dask_submit.send_graph = timed_send
    # --steps: wall-clock times (time.time(), as the workers' starts) of the first map's way
    # through its probes: graphs reaching the scheduler, each probe's start on its worker (as
    # its end event tells the client), the probes' decision.
    scheduled: list[float] = []
    probe_starts: list[float] = []
    decided: list[float] = []
    if steps:
        probe_end = dask_chunking.Probes.end

        def timed_end(probes: dask_chunking.Probes, started: float, ended: float) -> bool:
            done = probe_end(probes, started, ended)
            probe_starts.append(started)
            if done and not decided:
                decided.append(time.time())
            return done

        dask_chunking.Probes.end = timed_end  # type: ignore[method-assign]

    @labloom.task
    def noop(x: int) -> int:
        return x

    @labloom.flow
    def wide(n: int) -> None:
        noop.map(range(n)).result()

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:  # connected before, as dask_overhead.py
        if steps:  # the scheduler runs in this process (LocalCluster), on the client's loop
            handlers = cluster.scheduler.stream_handlers
            update_graph = handlers["update-graph"]

            async def timed_update(**message: object) -> None:
                scheduled.append(time.time())
                await update_graph(**message)

            handlers["update-graph"] = timed_update
        executor = labloom.DaskExecutor(client=client)
        for index in range(2):
            for kept in (sends, scheduled, probe_starts, decided):
                kept.clear()
            threads, cpu, start = thread_cpu(), time.process_time(), time.perf_counter()
            began = time.time()
            wide.run(n=tasks, executor=executor).wait(300)
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            per_thread = {name: (seconds - threads.get(name, 0.0)) / tasks * 1e6
                          for name, seconds in thread_cpu().items()}
            print("MAP", index, (sends[0][0] - start) * 1e3, (sends[-1][0] - start) * 1e3,
                  sum(n for _, n in sends), wall * 1e3, cpu / tasks * 1e6,
                  repr({k: round(v, 2) for k, v in per_thread.items() if v >= 0.05}), flush=True)
            if steps:
                ms = [(t - began) * 1e3 for t in (*scheduled[:1], *sorted(probe_starts)[:3:2],
                                                  *decided)]
                print("STEPS", index, *(ms if len(ms) == 4 else [float("nan")] * 4), flush=True)
        executor.shutdown()
        # After labloom's maps, so that it finds the cluster warm (as in dask_overhead.py),
        # and once the store's writer is surely done with them.
        time.sleep(1.0)
        lists = [list(range(i, min(i + 100, tasks))) for i in range(0, tasks, 100)]
        start = time.perf_counter()
        assert sum(map(len, client.gather(client.map(run_list, lists)))) == tasks
        print("HAND", (time.perf_counter() - start) * 1e3, flush=True)


def run_list(xs: list[int]) -> list[int]:
    return list(xs)  # a no-op child per item, as dask_overhead.run_list


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", nargs="+", action="extend", required=True,
                        help="the src/ trees to compare (one --src or several)")
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--steps", action="store_true",
                        help="also when the first map's probes reach the scheduler, start on "
                             "the workers and decide")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        in_tree(args.child, lambda: child(args.tasks, args.steps))
        return
    trees = [os.path.abspath(src) for src in args.src]
    maps: dict[str, list[list[tuple]]] = {tree: [[], []] for tree in trees}
    hands: dict[str, list[float]] = {tree: [] for tree in trees}  # the hand-chunked map, ms
    steps: dict[str, list[list[float]]] = {tree: [] for tree in trees}  # the first map's

    def process(tree: str, pycache: str) -> str:
        return subprocess.run([sys.executable, __file__, "--src", tree, "--child", tree,
                               "--tasks", str(args.tasks), *(["--steps"] if args.steps else [])],
                              env=installed_env(pycache),
                              capture_output=True, text=True, check=True).stdout

    pycache = bytecode(trees, process)
    for pair, tree in in_turn(trees, args.pairs):
        out = process(tree, pycache.name)
        for line in out.splitlines():
            if line.startswith("MAP "):
                _, index, first, last, dask_tasks, wall, cpu, threads = line.split(" ", 7)
                maps[tree][int(index)].append((float(first), float(last), int(dask_tasks),
                                               float(wall), float(cpu), eval(threads)))
            elif line.startswith("STEPS 0 "):
                steps[tree].append([float(v) for v in line.split()[2:]])
            elif line.startswith("HAND "):
                hands[tree].append(float(line.split()[1]))
        print(f"  pair {pair + 1}, {tree}: " + "; ".join(
            f"map {i + 1} {m[-1][3]:.0f} ms, {m[-1][2]} Dask tasks, CPU {m[-1][4]:.1f} us"
            for i, m in
            enumerate(maps[tree])) + f"; hand-chunked {hands[tree][-1]:.0f} ms", flush=True)
    print(f"{args.tasks} no-op children, medians of {args.pairs} fresh processes per tree "
          "(times from the run's start):")
    for tree, (first, second) in maps.items():
        print(f"  {tree}: hand-chunked map {statistics.median(hands[tree]):.0f} ms")
        for label, got in (("first map ", first), ("second map", second)):
            med = [statistics.median(row[i] for row in got) for i in range(5)]
            ratio = statistics.median(row[3] / hand for row, hand in zip(got, hands[tree],
                                                                         strict=True))
            names = {name for row in got for name in row[5]}
            threads = sorted(((statistics.median(row[5].get(n, 0.0) for row in got), n)
                              for n in names), reverse=True)
            print(f"    {label}: first graph {med[0]:.0f} ms, last {med[1]:.0f} ms, "
                  f"{med[2]:.0f} Dask tasks, wall {med[3]:.0f} ms (/ hand-chunked "
                  f"{ratio:.2f}), CPU {med[4]:.1f} us per "
                  "child; by thread: " + ", ".join(f"{n} {v:.1f}" for v, n in threads
                                                   if v >= 0.2))
        if steps[tree]:
            at = [statistics.median(row[i] for row in steps[tree]) for i in range(4)]
            print(f"    first map's probes: first graph at the scheduler {at[0]:.0f} ms, "
                  f"first probe started on a worker {at[1]:.0f} ms, third {at[2]:.0f} ms, "
                  f"decided {at[3]:.0f} ms")


if __name__ == "__main__":
    main()
