"""The terminal progress's CPU per child of a no-op map on Dask (the delivery's work for the
observer every script run has, ``dag/console_progress.py``): the batches a run's subscriber
gets in a warm 20,000-child map (recorded once with the first tree, ``store_writer_cpu``),
fed to a plain-lines ``ConsoleProgress`` by each tree, ``--reps`` times; this thread's CPU per
child, and that of making the events themselves (each tree's own event classes). Trees side
by side in fresh processes, the order swapped every pair.

    python benchmarks/progress_cpu.py --src /work/main/src src [--pairs 4]
"""

from __future__ import annotations

import gc
import io
import pickle
import time

from store_writer_cpu import recording_parser, replayed_in_turn, show_medians


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
    args = recording_parser(reps=5).parse_args()
    rounds = replayed_in_turn(__file__, args, lambda: measure(args.batches, args.reps), [],
                              lambda a, b: f"progress {a:.2f} events {b:.2f} us")
    if rounds is not None:
        show_medians(f"the terminal progress's thread CPU per child, {args.tasks} no-op children "
                     "on Dask, and the events' making", rounds, "progress", "events made")


if __name__ == "__main__":
    main()
