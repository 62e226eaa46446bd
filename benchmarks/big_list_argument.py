"""What one task call with a big argument costs the flow body (session 44): a list of
``-n`` ints, a list of ``-n`` floats, and a NumPy array of ``-n`` floats, each passed to a
task once in a flow on the local executor. Printed per tree: the flow body's CPU for the call
(its thread's time: the call's arguments taken as at the call and searched for futures), best
of ``--repeat`` runs, each tree in a fresh process, trees alternating.

    python3 benchmarks/big_list_argument.py --src /work/main/src src -n 10000000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def child(n: int, repeat: int) -> None:
    import time

    import numpy

    from labloom import flow, task

    @task
    def size(values: object) -> int:
        return len(values)  # type: ignore[arg-type]

    spent: dict[str, float] = {}

    @flow
    def one_call(kind: str) -> int:
        values = {"int list": lambda: list(range(n)),
                  "float list": lambda: [float(i) for i in range(n)],
                  "ndarray": lambda: numpy.arange(n, dtype=float)}[kind]()
        start = time.thread_time()
        future = size(values)
        took = time.thread_time() - start
        spent[kind] = min(spent.get(kind, took), took)
        return future  # type: ignore[return-value]

    for _ in range(repeat):
        for kind in ("int list", "float list", "ndarray"):
            one_call(kind)
    print(json.dumps(spent))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", nargs="+", default=[str(SRC)])
    parser.add_argument("-n", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args.n, args.repeat)
        return
    for src in args.src:
        env = dict(os.environ, PYTHONPATH=src, LABLOOM_PROGRESS="0")
        out = subprocess.run([sys.executable, __file__, "--child", "-n", str(args.n),
                              "--repeat", str(args.repeat)], env=env, check=True,
                             capture_output=True, text=True).stdout
        spent = json.loads(out.strip().splitlines()[-1])
        print(src, "  ".join(f"{kind}: {s * 1000:.0f} ms" for kind, s in spent.items()))


if __name__ == "__main__":
    main()
