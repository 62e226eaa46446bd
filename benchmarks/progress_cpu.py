"""The terminal progress's CPU per child of a no-op map on Dask (the delivery's work for the
observer every script run has, ``dag/console_progress.py``): the batches a run's subscriber
gets in a warm 20,000-child map (recorded once with the first tree, ``store_writer_cpu``),
fed to a plain-lines ``ConsoleProgress`` by each tree, ``--reps`` times; this thread's CPU per
child, and that of making the events themselves (each tree's own event classes). Trees side
by side in fresh processes, the order swapped every pair.

    python benchmarks/progress_cpu.py --src /work/main/src src [--pairs 4]
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time

from noop_dask_map import rounds_in_turn
from store_writer_cpu import portable, recorded_batches


def measure(path: str, reps: int) -> None:
    from labloom.core import events
    from labloom.dag.console_progress import ConsoleProgress

    with open(path, "rb") as file:
        recorded = pickle.load(file)
    tasks = sum(name == "TaskRunCreated" for batch in recorded for name, _ in batch)
    gc.collect()
    gc.freeze()
    for _ in range(reps):
        began = time.thread_time()
        batches = [[getattr(events, name)(**fields) for name, fields in batch]
                   for batch in recorded]
        made = time.thread_time() - began
        progress = ConsoleProgress(io.StringIO(), live=False)
        began = time.thread_time()
        for batch in batches:
            progress(batch)
        fed = time.thread_time() - began
        print(f"ROUND {fed / tasks * 1e6:.2f} {made / tasks * 1e6:.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", nargs="+", required=True, help="the src/ trees to compare")
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--batches", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, args.child)
        if args.reps:
            measure(args.batches, args.reps)
        else:
            with open(args.batches, "wb") as file:
                pickle.dump(portable(recorded_batches(args.tasks)), file)
        return
    with tempfile.TemporaryDirectory() as folder:
        batches = os.path.join(folder, "batches.pickle")
        subprocess.run([sys.executable, __file__, "--src", args.src[0], "--child", args.src[0],
                        "--tasks", str(args.tasks), "--batches", batches, "--reps", "0"],
                       capture_output=True, check=True)
        rounds = rounds_in_turn(__file__, args.src, args.pairs,
                                ["--batches", batches, "--reps", str(args.reps)],
                                lambda a, b: f"progress {a:.2f} events {b:.2f} us")
    print(f"the terminal progress's thread CPU per child, {args.tasks} no-op children on Dask, "
          f"and the events' making (medians of all rounds):")
    for src, got in rounds.items():
        print(f"  {src}: progress {statistics.median(a for a, _ in got):.2f} us, "
              f"events made {statistics.median(b for _, b in got):.2f} us")


if __name__ == "__main__":
    main()
