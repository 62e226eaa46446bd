"""What logging metrics costs (issue 19's target: within 1.10x): ``one.map(range(N))`` whose
no-op children each log 3 metrics (``log_metrics(a=..., b=..., c=...)``), against the same flow
logging none, on ``ThreadExecutor(4)`` with the store on (SQLite), in one run of this script:

- fresh: each mode the first run of its own new interpreter (imports, first writer, first
  store file), in ``--fresh-pairs`` pairs of interpreters run one after the other (the order
  swapped every pair, so a drift of the machine's speed falls on both modes); the median of
  the pairs' ratios is the fresh figure (a single pair spread from 0.84 to 1.36 on a quiet
  machine whose speed moved by 2x between processes);
- warm: one interpreter runs a warm-up of each mode, then the modes alternate ``--rounds``
  times; medians.

Time is ``wide.run`` until the run is recorded (the writer's final commit included).

Every interpreter reads compiled bytecode, as after an install (``installed_bytecode.py``: a
first unmeasured interpreter per tree writes it), so no fresh run compiles labloom's modules.

With ``--src`` given more than once (source trees, say main's and a branch's), each fresh pair
runs every tree's pair in turn, the trees' order rotated every pair, and the warm runs follow
for each tree: before and after in one sitting, the machine's drift falling on both.

    python3 benchmarks/experiments_overhead.py                  # N = 100,000
    python3 benchmarks/experiments_overhead.py -n 20000 --rounds 3
    python3 benchmarks/experiments_overhead.py --src ../main/src --src src --fresh-pairs 4
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from installed_bytecode import bytecode, installed_env

CHILD = r"""
import json, resource, sys, time
from labloom import ThreadExecutor, flow, log_metrics, task

@task
def none(x):
    return x

@task
def three(x):
    log_metrics(a=x, b=x * 0.5, c=float(x % 7))
    return x

@flow
def wide(n, mode):
    (three if mode == "metrics" else none).map(range(n))

n = int(sys.argv[1])
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

for mode in sys.argv[2:]:
    started, cpu_before = time.perf_counter(), cpu()
    run = wide.run(n=n, mode=mode, executor=ThreadExecutor(4))
    elapsed = time.perf_counter() - started
    assert run.state.value == "Completed", (run.state, run.message)
    print(json.dumps({"mode": mode, "seconds": elapsed, "cpu": cpu() - cpu_before}), flush=True)
"""


SRC = Path(__file__).resolve().parents[1] / "src"


def child(n: int, *modes: str, src: Path, pycache: str) -> list[dict[str, float | str]]:
    with tempfile.TemporaryDirectory() as home:
        env = dict(installed_env(pycache), LABLOOM_HOME=home, LABLOOM_PROGRESS="0",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(src),
                                                            os.environ.get("PYTHONPATH")])))
        out = subprocess.run([sys.executable, "-c", CHILD, str(n), *modes], env=env, check=True,
                             capture_output=True, text=True)
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=100_000, help="map children (default 100,000)")
    parser.add_argument("--rounds", type=int, default=3, help="warm rounds (default 3)")
    parser.add_argument("--fresh-pairs", type=int, default=3,
                        help="pairs of fresh interpreters (default 3)")
    parser.add_argument("--src", type=Path, action="append",
                        help="a source tree to measure (repeat to compare; default: this "
                        "checkout's src)")
    args = parser.parse_args()
    trees = [tree.resolve() for tree in args.src or [SRC]]
    modes = ("none", "metrics")
    pycache = bytecode(trees, lambda tree, folder: child(100, *modes, src=tree, pycache=folder))
    fresh_runs: dict[Path, list[dict[str, float | str]]] = {tree: [] for tree in trees}
    pair_ratios: dict[Path, list[tuple[float, float]]] = {tree: [] for tree in trees}
    for pair in range(args.fresh_pairs):
        order = modes if pair % 2 == 0 else modes[::-1]
        for tree in trees[pair % len(trees):] + trees[:pair % len(trees)]:
            runs = {mode: child(args.n, mode, src=tree, pycache=pycache.name)[0] for mode in order}
            fresh_runs[tree] += runs.values()
            pair_ratios[tree].append((
                float(runs["metrics"]["seconds"]) / float(runs["none"]["seconds"]),
                float(runs["metrics"]["cpu"]) / float(runs["none"]["cpu"])))
    warm_runs = {tree: child(args.n, *modes, *(list(modes) * args.rounds), src=tree,
                             pycache=pycache.name)[2:] for tree in trees}
    for tree in trees:
        if len(trees) > 1:
            print(f"--- {tree}")
        report(args.n, modes, fresh_runs[tree], pair_ratios[tree], warm_runs[tree])


def report(n: int, modes: tuple[str, str], fresh_runs: list[dict[str, float | str]],
           pair_ratios: list[tuple[float, float]], warm_runs: list[dict[str, float | str]],
           ) -> None:
    print(f"{n:,} children; metrics: 3 per child in one log_metrics call; wall time "
          "(CPU time of the process, all threads)")
    print(f"{'':>6} {'none':>16} {'3 metrics':>16} {'ratio':>12}")
    for label, runs in (("fresh", fresh_runs), ("warm", warm_runs)):
        wall = {m: statistics.median(float(r["seconds"]) for r in runs if r["mode"] == m)
                for m in modes}
        cpu = {m: statistics.median(float(r["cpu"]) for r in runs if r["mode"] == m)
               for m in modes}
        print(f"{label:>6} " + " ".join(f"{wall[m]:>7.2f}s ({cpu[m]:>5.2f}s)" for m in modes)
              + f" {wall['metrics'] / wall['none']:>5.2f} ({cpu['metrics'] / cpu['none']:.2f})")
    print("fresh pairs (wall ratio, CPU ratio):",
          " ".join(f"{wall:.2f} ({cpu:.2f})" for wall, cpu in pair_ratios),
          f"median {statistics.median(w for w, _ in pair_ratios):.2f}"
          f" ({statistics.median(c for _, c in pair_ratios):.2f})")
    print("warm runs:", " ".join(f"{r['mode']}={float(r['seconds']):.2f}s" for r in warm_runs))

if __name__ == "__main__":
    main()
