"""What the kernel benchmarks on Dask share (``kernel_cpu.py``, ``kernel_threads.py``,
``store_writer_cpu.py``): a warm map of no-op children on two worker processes, and the trees
taken in turn, the order swapped every pair (also the command line of ``dispatcher_cpu.py`` and
``submitter_passes.py``)."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


@contextmanager
def warm_map(tasks: int, warm_up: int | None = None) -> Iterator[Callable[[], None]]:
    """A function running the flow of ``tasks`` no-op children once, on a
    ``LocalCluster(n_workers=2, threads_per_worker=1)`` of processes, after a first map of
    ``warm_up`` (default ``tasks``). Imports labloom when called: after the caller put its
    tree first on ``sys.path``. The run store in a folder of its own (removed at the end)
    unless LABLOOM_HOME is set: never the user's."""
    with tempfile.TemporaryDirectory(prefix="labloom-bench-") as home:
        os.environ.setdefault("LABLOOM_HOME", home)
        with _warm_map(tasks, warm_up) as run:
            yield run


@contextmanager
def _warm_map(tasks: int, warm_up: int | None) -> Iterator[Callable[[], None]]:
    import distributed

    import labloom
    from labloom import flow, task

    @task
    def noop(x: int) -> int:
        return x

    @flow
    def wide(n: int) -> None:
        noop.map(range(n)).result()

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster:
        executor = labloom.DaskExecutor(cluster=cluster)
        wide.run(n=warm_up or tasks, executor=executor).wait(300)
        yield lambda: wide.run(n=tasks, executor=executor).wait(300)
        executor.shutdown()


def in_turn(trees: Sequence[T], pairs: int) -> Iterator[tuple[int, T]]:
    """(pair, tree) for each tree of each pair, the order swapped every pair."""
    for pair in range(pairs):
        for tree in trees if pair % 2 == 0 else list(reversed(trees)):
            yield pair, tree


def rounds_in_turn(script: str, trees: Sequence[str], pairs: int, extra: list[str],
                   shown: Callable[[float, float], str]) -> dict[str, list[tuple[float, float]]]:
    """Each tree's process (``script --src TREE --child TREE *extra``) in turn: the two
    figures of each ``ROUND a b`` line it prints, by tree, each pair's shown as it ends."""
    rounds: dict[str, list[tuple[float, float]]] = {tree: [] for tree in trees}
    for pair, tree in in_turn(trees, pairs):
        out = subprocess.run([sys.executable, script, "--src", tree, "--child", tree, *extra],
                             capture_output=True, text=True, check=True).stdout
        got = [(float(a), float(b)) for line in out.splitlines()
               if line.startswith("ROUND ") for a, b in [line.split()[1:3]]]
        rounds[tree] += got
        print(f"  pair {pair + 1}, {tree}: " + ", ".join(shown(a, b) for a, b in got),
              flush=True)
    return rounds


def in_tree(src: str, measure: Callable[[], None]) -> None:
    """``measure()`` with the labloom of ``src`` first on the path and a run store of its own
    (removed at the end) unless LABLOOM_HOME is set: a benchmark's child process."""
    sys.path.insert(0, os.path.abspath(src))
    with tempfile.TemporaryDirectory(prefix="labloom-bench-") as home:
        os.environ.setdefault("LABLOOM_HOME", home)
        measure()


def compare_per_child(doc: str, script: str, measure: Callable[[int, int], None],
                      figures: tuple[str, str]) -> None:
    """The command line of a benchmark whose process for one tree (``measure(tasks, rounds)``)
    prints a ``ROUND a b`` line (µs per child) per round: the ``--src`` trees in turn, then
    each figure's median per tree."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--src", nargs="+", action="extend", required=True,
                        help="the src/ trees to compare (one --src or several)")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        in_tree(args.child, lambda: measure(args.tasks, args.rounds))
        return
    rounds = rounds_in_turn(script, args.src, args.pairs,
                            ["--rounds", str(args.rounds), "--tasks", str(args.tasks)],
                            lambda a, b: f"{a:.2f}/{b:.2f}")
    for tree, got in rounds.items():
        for part, name in enumerate(figures):
            values = [r[part] for r in got]
            print(f"{tree}: {name}: median {statistics.median(values):.2f} us per child "
                  f"({len(got)} rounds; range {min(values):.2f}-{max(values):.2f})")
