"""``dask_overhead.py``'s comparison, trees side by side: each ``--src`` tree in its own fresh
processes, the order swapped every pair, with the Dask workers as threads of the kernel's
process (``processes=False``, the default here: the wire costs little, so what is left is the
engine's share) or as processes (``--processes``, as ``dask_overhead.py`` alone).

    python benchmarks/dask_threads.py --src /work/main/src src [--pairs 3] [--processes]
        [--fresh] [--tasks 5000] [--repeats 3]

``--fresh``: each process times one map with no warm-up (``--no-warmup --repeats 1``); else
``--repeats`` warm rounds after a warm-up. Printed per tree: the median over its processes of
labloom's ratio to the hand-chunked ``client.map`` over lists of 100 (the median of its rounds,
warm) and of the process CPU per child, labloom's and the hand-chunked map's.

Every process reads compiled bytecode, as after an install (``installed_bytecode.py``: before
the measured ones, one unmeasured process per tree, the same command, writes it; the Dask
workers inherit the setting), so no fresh map compiles labloom's modules.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys

from installed_bytecode import bytecode, installed_env

OVERHEAD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dask_overhead.py")
SUMMARY = re.compile(r"client\.map over lists of \d+: ([\d.]+)s; labloom / it ([\d.]+) .*"
                     r"median of the rounds' ratios ([\d.]+)\); process CPU per child, median: "
                     r"labloom (\d+) us, hand-chunked (\d+) us")
LABLOOM = re.compile(r"labloom \(no option\) ([\d.]+)s")


def one(src: str, args: argparse.Namespace, pycache: str) -> dict[str, float]:
    """One fresh process of ``dask_overhead.py`` on ``src``, its bytecode under ``pycache``:
    its summary's figures."""
    command = [sys.executable, OVERHEAD, "--src", src, "--tasks", str(args.tasks), "--no-raw"]
    command += ["--no-warmup", "--repeats", "1"] if args.fresh else ["--repeats",
                                                                     str(args.repeats)]
    if not args.processes:
        command.append("--threads")
    out = subprocess.run(command, capture_output=True, text=True, check=True,
                         env=installed_env(pycache)).stdout
    found, seconds = SUMMARY.search(out), LABLOOM.search(out)
    if found is None or seconds is None:
        raise SystemExit(f"no summary from {src}:\n{out}")
    return {"labloom s": float(seconds.group(1)), "hand s": float(found.group(1)),
            "ratio": float(found.group(3)), "cpu": float(found.group(4)),
            "hand cpu": float(found.group(5))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", nargs="+", action="extend", required=True,
                        help="the src/ trees to compare (one --src or several)")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--processes", action="store_true")
    args = parser.parse_args()
    trees = [os.path.abspath(src) for src in args.src]
    runs: dict[str, list[dict[str, float]]] = {tree: [] for tree in trees}
    pycache = bytecode(trees, lambda tree, folder: one(tree, args, folder))
    for pair in range(args.pairs):
        for tree in trees if pair % 2 == 0 else trees[::-1]:
            runs[tree].append(one(tree, args, pycache.name))
            got = runs[tree][-1]
            print(f"  pair {pair + 1}, {tree}: labloom {got['labloom s']:.2f}s, hand-chunked "
                  f"{got['hand s']:.2f}s, labloom / it {got['ratio']:.2f}, CPU per child "
                  f"{got['cpu']:.0f} / {got['hand cpu']:.0f} us", flush=True)
    kind = "processes" if args.processes else "threads"
    when = "fresh" if args.fresh else f"warm, median of {args.repeats} rounds each"
    print(f"{args.tasks} no-op children, workers as {kind}, {when}, {args.pairs} processes "
          "per tree (medians):")
    for tree, figures in runs.items():
        median = {key: statistics.median(f[key] for f in figures) for key in figures[0]}
        print(f"  {tree}: labloom / hand-chunked {median['ratio']:.2f} (aim 1.2); labloom "
              f"{median['labloom s']:.2f}s; process CPU per child: labloom "
              f"{median['cpu']:.0f} us, hand-chunked {median['hand cpu']:.0f} us")


if __name__ == "__main__":
    main()
