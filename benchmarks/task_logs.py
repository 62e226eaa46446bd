"""What ``labloom logs RUN --task NAME`` and ``run.logs(NAME)`` from the store cost on a wide
run (session 47): a map of ``-n`` children logging ``--lines`` lines each, then the lines of
one child (``noop[3]``), of one task's name (``noop``: every child) and of the whole run, read
as the CLI reads them (``labloom.cli.main``, output to /dev/null), in a warm process. Each
tree in a fresh process with its own SQLite store, trees alternating, best of ``--repeat``.

    python3 benchmarks/task_logs.py --src /work/main/src src -n 20000 --lines 5

Session 48: also ``labloom logs -f --task`` of the ended run (its lines, then its end), and
each read twice: ``fresh``, ``python -m labloom logs ...`` in a process of its own (as a
terminal runs it: interpreter, imports, connection), then ``warm`` in the child's process."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
CASES = (("--task noop[3]", ["--task", "noop[3]"]), ("--task noop", ["--task", "noop"]),
         ("whole run", []), ("-f --task noop[3]", ["-f", "--task", "noop[3]"]),
         ("-f --task noop", ["-f", "--task", "noop"]))


def make_run(n: int, lines: int) -> str:
    """The run read: a map of ``n`` children logging ``lines`` lines each; returns its id."""
    from labloom import ThreadExecutor, flow, get_run_logger, task

    @task
    def noop(i: int) -> int:
        for line in range(lines):
            get_run_logger().info("child %d line %d", i, line)
        return i

    @flow(executor=ThreadExecutor(4))
    def wide(n: int) -> None:
        noop.map(range(n))

    run = wide.run(n=n)
    assert run.state.value == "Completed", run.message
    return run.id


def child(n: int, lines: int) -> None:
    from labloom.cli import main

    run_id = make_run(n, lines)
    figures: dict[str, float] = {}
    for label, extra in CASES:
        # Fresh: `labloom logs` as a terminal runs it, its own interpreter and connection.
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "labloom", "logs", run_id, *extra],
                       stdout=subprocess.DEVNULL, check=True)
        figures[f"{label} fresh s"] = time.perf_counter() - start
        with open(os.devnull, "w") as out, contextlib.redirect_stdout(out):
            start = time.perf_counter()
            assert main(["logs", run_id, *extra]) == 0
            figures[f"{label} warm s"] = time.perf_counter() - start
    print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", nargs="+", default=[str(SRC)])
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("--lines", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args.n, args.lines)
        return
    from big_parameter import best_of_fresh_trees  # (this folder: the script's own)

    child_args = ["-n", str(args.n), "--lines", str(args.lines)]
    for src, figures in best_of_fresh_trees(__file__, child_args, args.src, args.repeat).items():
        print(src, json.dumps(figures))

if __name__ == "__main__":
    main()
