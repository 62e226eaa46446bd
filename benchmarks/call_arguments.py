"""What taking a task call's arguments as they were at the call costs the flow body (session
43: lists, dicts, tuples and sets in them are copied at the call). A flow body calls a task
``-n`` times, with plain arguments (``add(i, 1)``) and with a small settings dict
(``add(i, {"a": 1, "b": [1, 2, 3]})``); printed: the flow body's CPU per call (its thread's
time, so the pool threads running the calls are not in it), best of ``--repeat`` runs, each
tree in fresh processes, trees alternating.

    python3 benchmarks/call_arguments.py --src /work/main/src src --processes 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def child(n: int, repeat: int, kind: str) -> None:
    import time

    from labloom import flow, task

    @task
    def add(x: int, settings: object) -> int:
        return x + (settings["a"] if isinstance(settings, dict) else settings)  # type: ignore

    spent: list[float] = []

    @flow
    def many(n: int) -> int:
        settings = {"a": 1, "b": [1, 2, 3]} if kind == "dict" else 1
        start = time.thread_time()
        futures = [add(i, settings) for i in range(n)]
        spent.append(time.thread_time() - start)
        return len(futures)

    for _ in range(repeat):
        assert many.run(n=n, executor="threads").result() == n
    print(json.dumps(min(spent) / n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=10_000, help="task calls per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per process")
    parser.add_argument("--processes", type=int, default=2, help="fresh processes per tree")
    parser.add_argument("--src", type=Path, nargs="+", default=[SRC])
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.n, args.repeat, args.child)
        return
    best: dict[tuple[str, str], float] = {}
    for _ in range(args.processes):
        for kind in ("plain", "dict"):
            for src in args.src:
                with tempfile.TemporaryDirectory() as home:
                    env = {**os.environ, "PYTHONPATH": str(src), "LABLOOM_HOME": home,
                           "LABLOOM_PROGRESS": "0"}
                    out = subprocess.run(
                        [sys.executable, __file__, "--child", kind, "-n", str(args.n),
                         "--repeat", str(args.repeat)],
                        env=env, capture_output=True, text=True, check=True).stdout
                key = (str(src), kind)
                best[key] = min(best.get(key, float("inf")), json.loads(out.splitlines()[-1]))
    for (src, kind), seconds in best.items():
        print(f"{src:<24} {kind:<6} {seconds * 1e6:6.1f} µs of flow-body CPU a call")


if __name__ == "__main__":
    main()
