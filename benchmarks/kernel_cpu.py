"""The kernel's CPU per child of warm 20,000-child no-op maps on Dask (workers as processes),
and the share of it spent launching (``Launcher._launch_all``, the executor's submit
included, this thread's CPU), trees side by side in fresh processes, the order swapped every
pair. Less sensitive to a busy machine than wall time or ratios of short maps.

    python benchmarks/kernel_cpu.py --src /work/main/src src [--pairs 2] [--tasks 20000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from noop_dask_map import rounds_in_turn, warm_map

ROUNDS = 3


def measure(tasks: int) -> None:
    """In this process (its tree first on ``sys.path``): a warm-up map, then ROUNDS timed."""
    from labloom.core import launching

    launch = [0.0]
    original = launching.Launcher._launch_all

    def timed(self: launching.Launcher, trs: list[object]) -> int:
        started = time.thread_time()
        try:
            return original(self, trs)  # type: ignore[arg-type]
        finally:
            launch[0] += time.thread_time() - started

    launching.Launcher._launch_all = timed  # type: ignore[method-assign]

    with warm_map(tasks) as run:
        for _ in range(ROUNDS):
            launch[0], cpu = 0.0, time.process_time()
            run()
            print(f"ROUND {(time.process_time() - cpu) / tasks * 1e6:.1f} "
                  f"{launch[0] / tasks * 1e6:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", nargs="+", action="extend", required=True,
                        help="the src/ trees to compare (one --src or several)")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, args.child)
        measure(args.tasks)
        return
    rounds = rounds_in_turn(__file__, args.src, args.pairs, ["--tasks", str(args.tasks)],
                            lambda a, b: f"{a:.1f} us ({b:.2f} launching)")
    print(f"{args.tasks} no-op children, warm, {ROUNDS} rounds per process (medians of all):")
    for src, got in rounds.items():
        print(f"  {src}: kernel CPU per child {statistics.median(a for a, _ in got):.1f} us, "
              f"launching {statistics.median(b for _, b in got):.2f} us")


if __name__ == "__main__":
    main()
