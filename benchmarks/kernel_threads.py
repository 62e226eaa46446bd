"""The kernel's threads on Dask, one by one: each thread's CPU and voluntary and involuntary
context switches per child of warm 20,000-child no-op maps (worker processes), read from
/proc/self/task. ``--pin``: the kernel process alone pinned to one core once its cluster is up
(the workers stay free), each tree run both ways, to see whether its threads' moving across
cores costs it.

    python benchmarks/kernel_threads.py --src /work/main/src src [--pairs 2] [--pin]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import subprocess
import sys
import threading
import time

from noop_dask_map import in_turn, warm_map

ROUNDS = 3


def per_thread() -> dict[str, tuple[str, float, int, int]]:
    """Thread id -> (name, CPU seconds, voluntary, involuntary switches)."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as stat_file:
                stat = stat_file.read()
            with open(f"/proc/self/task/{tid}/status") as status_file:
                status = status_file.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        voluntary = int(status.split("voluntary_ctxt_switches:")[1].split()[0])
        involuntary = int(status.split("nonvoluntary_ctxt_switches:")[1].split()[0])
        out[tid] = (stat[stat.index("(") + 1:stat.rindex(")")], cpu, voluntary, involuntary)
    return out


def pin_to_one_core() -> None:
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(tid), {0})


def measure(tasks: int, pin: bool) -> None:
    names: dict[str, str] = {}
    with warm_map(tasks) as run:
        for _ in range(ROUNDS):
            if pin:
                pin_to_one_core()  # threads started since too
            before, cpu, wall = per_thread(), time.process_time(), time.perf_counter()
            run()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            after = per_thread()
            names.update({str(t.native_id): t.name for t in threading.enumerate()})
            by_name: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0, 0])
            for tid, (name, seconds, voluntary, involuntary) in after.items():
                was = before.get(tid, (name, 0.0, 0, 0))
                key = "".join(c for c in names.get(tid, name)[:18] if not c.isdigit()).rstrip("-_ ")
                sums = by_name[key]
                sums[0] += seconds - was[1]
                sums[1] += voluntary - was[2]
                sums[2] += involuntary - was[3]
            parts = [f"{name} {s / tasks * 1e6:.1f} us {v / tasks:.3f}/{n / tasks:.3f}"
                     for name, (s, v, n) in sorted(by_name.items(), key=lambda kv: -kv[1][0])
                     if s > 0]
            print(f"ROUND wall {wall / tasks * 1e6:.0f} us, CPU {cpu / tasks * 1e6:.1f} us per "
                  f"child | " + " | ".join(parts), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", nargs="+", action="extend", required=True,
                        help="the src/ trees to compare (one --src or several)")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--pin", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, args.child)
        measure(args.tasks, args.pin)
        return
    print("per thread: CPU per child, voluntary/involuntary switches per child")
    variants = [(src, False) for src in args.src]
    variants += [(src, True) for src in args.src] if args.pin else []
    for pair, (src, pin) in in_turn(variants, args.pairs):
        command = [sys.executable, __file__, "--src", src, "--child", src, "--tasks",
                   str(args.tasks), *(["--pin"] if pin else [])]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("ROUND "):
                print(f"  pair {pair + 1}, {src}{' pinned' if pin else ''}: {line[6:]}",
                      flush=True)

if __name__ == "__main__":
    main()
