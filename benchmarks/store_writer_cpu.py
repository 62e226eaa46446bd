"""The store writer's CPU per child of a no-op map on Dask, without the rest of the kernel: the
batches a run's recorder gets in a warm 20,000-child map (worker processes, recorded once with
the first tree), folded (``Rows``) and written into a fresh SQLite store by each tree, a
transaction per ``--per`` batches, ``--reps`` times; this thread's CPU per child for each
part. Trees side by side in fresh processes, the order swapped every pair. Steadier than the
kernel's CPU on a shared machine: nothing else of the kernel runs while it is timed.

    python benchmarks/store_writer_cpu.py --src /work/main/src src [--pairs 4]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from noop_dask_map import rounds_in_turn, warm_map


def recorded_batches(tasks: int) -> list[list[Any]]:
    """What the recorder of a warm map of ``tasks`` no-op children was handed."""
    from labloom.store import recorder

    got: list[list[Any]] = []
    handed = recorder.Recorder.__call__

    def keep(self: Any, batch: Any) -> None:
        got.append(list(batch))
        handed(self, batch)

    recorder.Recorder.__call__ = keep  # type: ignore[method-assign]
    with warm_map(tasks, warm_up=2000) as run:
        got.clear()
        run()
    recorder.Recorder.__call__ = handed  # type: ignore[method-assign]
    return got


def portable(batches: list[list[Any]]) -> list[list[tuple[str, dict[str, Any]]]]:
    """Each event as its class's name and its fields: a tree whose event classes differ in
    kind (a dataclass in one, a tuple in another) builds its own from them."""
    def fields(event: Any) -> dict[str, Any]:
        if hasattr(event, "_asdict"):
            return dict(event._asdict())
        return {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
    return [[(type(event).__name__, fields(event)) for event in batch] for batch in batches]


def measure(path: str, reps: int, per: int) -> None:
    from labloom.core import events
    from labloom.store.db import Database
    from labloom.store.rows import Rows

    with open(path, "rb") as file:
        batches = [[getattr(events, name)(**fields) for name, fields in batch]
                   for batch in pickle.load(file)]
    tasks = sum(type(e).__name__ == "TaskRunCreated" for batch in batches for e in batch)
    gc.collect()
    gc.freeze()  # what is loaded is not the writer's: not walked by each collection
    for _ in range(reps):
        folder = tempfile.TemporaryDirectory()
        conn = Database(f"sqlite:///{folder.name}/labloom.db").connect()
        rec = SimpleNamespace(run_id=batches[0][0].run_id, host="h", pid=1, user="u",
                              target=None, log_cap=1000, log_counts={}, log_dropped={},
                              noted_escapes=False, moves_known=True, stale=False)
        fold = write = 0.0
        for i in range(0, len(batches), per):
            began = time.thread_time()
            rows = Rows()
            for batch in batches[i:i + per]:
                if hasattr(rows, "add_all"):
                    rows.add_all(rec, batch)  # type: ignore[arg-type]
                else:  # a tree from before it
                    for event in batch:
                        rows.add(rec, event)  # type: ignore[arg-type]
            rows.finish()
            folded = time.thread_time()
            with conn.transaction():
                rows.write(conn)
            fold += folded - began
            write += time.thread_time() - folded
        conn.close()
        folder.cleanup()
        print(f"ROUND {fold / tasks * 1e6:.2f} {write / tasks * 1e6:.2f}", flush=True)


def recording_parser(reps: int) -> argparse.ArgumentParser:
    """The options of a benchmark replaying a recorded map's batches (this one,
    ``progress_cpu.py``)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", nargs="+", action="extend", required=True,
                        help="the src/ trees to compare (one --src or several)")
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--reps", type=int, default=reps)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--batches", help=argparse.SUPPRESS)
    return parser


def replayed_in_turn(script: str, args: argparse.Namespace, measure: Callable[[], None],
                     extra: list[str], shown: Callable[[float, float], str],
                     ) -> dict[str, list[tuple[float, float]]] | None:
    """In a ``--child`` process: ``measure`` (or, with ``--reps 0``, record the batches),
    None. Else: the batches recorded once with the first tree, then each tree's ``script``
    replaying them in turn (``rounds_in_turn``, ``extra`` its options): the rounds by tree."""
    if args.child:
        sys.path.insert(0, args.child)
        if args.reps:
            measure()
        else:
            with open(args.batches, "wb") as file:
                pickle.dump(portable(recorded_batches(args.tasks)), file)
        return None
    with tempfile.TemporaryDirectory() as folder:
        batches = os.path.join(folder, "batches.pickle")
        subprocess.run([sys.executable, script, "--src", args.src[0], "--child", args.src[0],
                        "--tasks", str(args.tasks), "--batches", batches, "--reps", "0"],
                       capture_output=True, check=True)
        return rounds_in_turn(script, args.src, args.pairs,
                              ["--batches", batches, "--reps", str(args.reps), *extra], shown)


def main() -> None:
    parser = recording_parser(reps=3)
    parser.add_argument("--per", type=int, default=2, help="batches per transaction")
    args = parser.parse_args()
    rounds = replayed_in_turn(__file__, args, lambda: measure(args.batches, args.reps, args.per),
                              ["--per", str(args.per)],
                              lambda a, b: f"fold {a:.2f} write {b:.2f} us")
    if rounds is not None:
        show_medians(f"the store writer's thread CPU per child, {args.tasks} no-op children on "
                     "Dask", rounds, "fold", "write")


def show_medians(title: str, rounds: dict[str, list[tuple[float, float]]], first: str,
                 second: str) -> None:
    print(f"{title} (medians of all rounds):")
    for src, got in rounds.items():
        print(f"  {src}: {first} {statistics.median(a for a, _ in got):.2f} us, "
              f"{second} {statistics.median(b for _, b in got):.2f} us")


if __name__ == "__main__":
    main()
