"""What pickling one unchunked Dask task of labloom's costs in the submitting process: the task
spec (``invoke`` and its ``TaskCall``) through distributed's own pickle, per task, for a
function defined in ``__main__`` (a notebook's) and one importable by name. Session 42 sends a
task's function pickled apart (``dask_shipping``); this compares that with the tree before.

    python benchmarks/dask_task_pickling.py --src /work/main/src --src src [--tasks 2000]

Each ``--src`` runs in a child process of its own, in turn, best of 5 rounds.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

CHILD = r"""
import json, sys, timeit
sys.path.insert(0, sys.argv[1])
from distributed.protocol import pickle
from labloom.core.attempt import TaskCall
from labloom.executors import dask_events as events
from labloom.executors.dask_internals import task_spec
try:
    from labloom.executors.dask_entries import shipped
except ImportError:  # before session 42: the call travels as it is
    shipped = lambda call: call

def add_three(x):
    return x + 3

add_three.__module__ = "__main__"
n = int(sys.argv[2])
for name, fn in (("__main__ function", add_three), ("importable function", json.dumps)):
    calls = [TaskCall(fn, f"f[{i}]", "r", f"r.{i}") for i in range(n)]
    best = min(timeit.repeat(lambda: [pickle.dumps(task_spec(f"k{i}", events.invoke,
               shipped(c), (i,), {})) for i, c in enumerate(calls)], number=1, repeat=5))
    print(f"{sys.argv[1]}: {name}: {best / n * 1e6:.1f} us a task")
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", action="append", required=True)
    parser.add_argument("--tasks", type=int, default=2000)
    args = parser.parse_args()
    for src in args.src:
        subprocess.run([sys.executable, "-c", CHILD, src, str(args.tasks)], check=True)


if __name__ == "__main__":
    main()
