"""What every run pays however small (issue 21 §2): a warm process runs ``one.map(range(N))``
on ``ThreadExecutor(4)`` with the store on, ``--runs`` times, pausing ``--pause`` seconds after
each (0.1: past the store writer's ``GATHER``, so each run is written as a user's next run is,
not gathered into the last one's transaction). Prints the median CPU per run of the whole
process and of its main thread (the caller's share), each run's CPU counted with its pause
(the writer's commit and the threads' ends fall there). Each tree in its own fresh processes,
trees alternating; an existing store (made by a first process) in a temporary LABLOOM_HOME.

    taskset -c 0 python3 benchmarks/small_runs.py --src /work/main/src src --processes 4
    python3 benchmarks/small_runs.py -n 1000 --runs 20          # the fixed share of a run of 1,000

In instructions (no threads' timing in them), a process's runs of 1 task run, 1 against 31:

    PYTHONHASHSEED=0 PYTHONPATH=SRC valgrind --tool=callgrind --callgrind-out-file=OUT \\
        python3 benchmarks/small_runs.py --child 31 -n 1 --pause 0.1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[1] / "src"


def child(runs: int, n: int, pause: float) -> None:
    from task_runs_scale import WIDE  # the flow every scale benchmark measures

    flow: dict[str, Any] = {}
    exec(WIDE, flow)
    wide, executor = flow["wide"], flow["ThreadExecutor"]
    process, caller = [], []
    for _ in range(runs):
        cpu, mine = time.process_time(), time.thread_time()
        run = wide.run(n=n, executor=executor(4))
        time.sleep(pause)
        process.append(time.process_time() - cpu)
        caller.append(time.thread_time() - mine)
        assert run.state.value == "Completed", (run.state, run.message)
    print(json.dumps({"process": statistics.median(process), "caller": statistics.median(caller)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=1, help="task runs per run")
    parser.add_argument("--runs", type=int, default=100, help="runs per process")
    parser.add_argument("--pause", type=float, default=0.1, help="seconds after each run")
    parser.add_argument("--processes", type=int, default=3, help="fresh processes per tree")
    parser.add_argument("--src", type=Path, nargs="+", default=[SRC],
                        help="labloom src/ trees, alternating process by process")
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.n, args.pause)
        return
    results: dict[Path, list[dict[str, float]]] = {src: [] for src in args.src}
    with tempfile.TemporaryDirectory() as home:
        for i in range(args.processes):
            for src in args.src[::-1] if i % 2 else args.src:
                env = dict(os.environ, LABLOOM_HOME=home, LABLOOM_PROGRESS="0",
                           PYTHONPATH=os.pathsep.join(filter(None, [
                               str(src), os.environ.get("PYTHONPATH")])))
                command = [sys.executable, __file__, "-n", str(args.n), "--pause",
                           str(args.pause), "--child"]
                if i == 0 and src == args.src[0]:  # the store made, as users have it
                    subprocess.run([*command, "1"], env=env, check=True, capture_output=True)
                out = subprocess.run([*command, str(args.runs)], env=env, check=True,
                                     capture_output=True, text=True)
                results[src].append(json.loads(out.stdout.strip().splitlines()[-1]))
    for src, runs in results.items():
        process = [r["process"] * 1e3 for r in runs]
        caller = [r["caller"] * 1e3 for r in runs]
        print(f"{src}: {args.n:,} task run(s) a run, ms of CPU per run (median of "
              f"{args.runs} runs; each of {len(runs)} processes): process "
              f"{statistics.median(process):.3f} ({' '.join(f'{p:.3f}' for p in process)}), "
              f"main thread {statistics.median(caller):.3f}", flush=True)


if __name__ == "__main__":
    main()
