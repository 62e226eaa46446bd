"""Overhead: N no-op mapped tasks through labloom vs ``client.map`` + ``gather``.

Same LocalCluster(n_workers=2, threads_per_worker=1), alternating, medians; prints the ratio.

    python benchmarks/dask_overhead.py [--tasks 5000] [--repeats 5] [--batch-size 100]
        [--hand-chunk 100] [--no-warmup] [--no-raw] [--threads] [--src DIR]
        [--timeout S] [--prefect-python PATH] [--prefect-tasks N]

The labloom column is the map with no option set (chunked automatically, ``dask_chunking``).
``--batch-size B`` adds a column: the same map with ``noop.with_options(batch_size=B)`` (``1``:
one Dask task per child, the opt-out). ``--timeout S`` gives labloom's maps ``timeout=S``: a
task with a timeout, none firing (each call then waits on a thread of its own, and a chunk's
children may give their siblings back: ``dask_chunk_ends``). Each round also times what a Dask expert writes for
tiny tasks, ``client.map`` over lists of ``--hand-chunk`` items (0: skip), and prints
labloom's ratio to it. ``--no-warmup`` skips the 200-task warm-up, so round 1 is a first run
in a fresh process (and labloom's first map of the task: nothing measured yet); it runs the
command again in a child reading compiled bytecode, as after an install, after one unmeasured
run that writes it (``installed_bytecode.py``; ``dask_threads.py`` sets that up for its
processes itself).

Reference column: Prefect with its Dask task runner, where it is installed. Prefect is not a
dependency and must not go into this environment, so it runs from its own interpreter
(``--prefect-python``, default ``$LABLOOM_BENCH_PREFECT_PYTHON``; without either the column is
skipped): after the labloom rounds, ``prefect_overhead.py`` runs there in a subprocess with a
private ``PREFECT_HOME``, a loopback-only API server, no analytics, and its own LocalCluster of
the same shape (its workers must import Prefect), alternating raw ``client.map`` + ``gather``
with a Prefect flow on ``DaskTaskRunner``. Its ratio is to that cluster's raw baseline.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from installed_bytecode import rerun_as_installed


def _src() -> str:
    """``--src DIR``: the labloom source tree to measure (this checkout's by default), read
    before the import (the workers, started by spawn, take the same ``sys.path``)."""
    args = sys.argv[1:]
    for i, arg in enumerate(args):
        if arg == "--src" and i + 1 < len(args):
            return os.path.abspath(args[i + 1])
        if arg.startswith("--src="):
            return os.path.abspath(arg.split("=", 1)[1])
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


sys.path.insert(0, _src())
os.environ.setdefault("LABLOOM_HOME", tempfile.mkdtemp(prefix="labloom-bench-"))

from distributed import Client, LocalCluster

from labloom import DaskExecutor, flow, task
from labloom import __file__ as labloom_file


def noop(x: int) -> int:
    return x


noop_task = task(noop, name="noop")


@flow(name="overhead")
def mapped(n: int, batch_size: int = 0, timeout: float = 0.0) -> list[int]:
    chosen = noop_task.with_options(batch_size=batch_size) if batch_size else noop_task
    chosen = chosen.with_options(timeout=timeout) if timeout else chosen
    return chosen.map(range(n))


def raw(client: Client, n: int, rep: int) -> float:
    start = time.perf_counter()
    futures = client.map(noop, range(n), key=[f"raw-{rep}-{i}" for i in range(n)])
    client.gather(futures)
    elapsed = time.perf_counter() - start
    del futures
    return elapsed


def run_list(xs: list[int]) -> list[int]:
    return [noop(x) for x in xs]


def hand_chunked(client: Client, n: int, size: int, rep: int) -> float:
    """``client.map`` over lists of ``size`` items, results gathered and flattened."""
    start, cpu = time.perf_counter(), time.process_time()
    lists = [list(range(i, min(i + size, n))) for i in range(0, n, size)]
    futures = client.map(run_list, lists, key=[f"hand-{rep}-{i}" for i in range(len(lists))])
    values = [x for chunk in client.gather(futures) for x in chunk]
    elapsed = time.perf_counter() - start
    CPU["hand"].append(time.process_time() - cpu)
    assert len(values) == n
    del futures
    return elapsed


# The kernel process's CPU seconds of each labloom map and hand-chunked map (this process
# also holds the LocalCluster's scheduler, on both sides).
CPU: dict[str, list[float]] = {"labloom": [], "hand": []}


TIMEOUT = 0.0  # --timeout


def through_labloom(executor: DaskExecutor, n: int, batch_size: int = 0) -> float:
    start, cpu = time.perf_counter(), time.process_time()
    run = mapped.run(n=n, batch_size=batch_size, timeout=TIMEOUT, executor=executor)
    run.result()
    elapsed = time.perf_counter() - start
    if not batch_size:
        CPU["labloom"].append(time.process_time() - cpu)
    assert run.state.value == "Completed", run.state
    return elapsed


def prefect_env(home: str) -> dict[str, str]:
    """The companion's environment: nothing Prefect-related inherited, everything local."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "LABLOOM_")) and k != "PYTHONPATH"}
    env.update({
        "PREFECT_HOME": home,  # private profile and SQLite database
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",  # no per-task-run INFO lines on the console
        "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    })
    return env


def run_prefect(python: str, tasks: int, repeats: int, timeout: float) -> dict | str:
    """The companion's JSON result, or the reason there is none."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "prefect_overhead.py")
    with tempfile.TemporaryDirectory(prefix="labloom-bench-prefect-") as home:
        proc = subprocess.Popen(
            [python, script, "--tasks", str(tasks), "--repeats", str(repeats)],
            stdout=subprocess.PIPE, text=True, env=prefect_env(home), cwd=home,
            start_new_session=True,  # one process group: the companion, its server, workers
        )
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return f"timed out after {timeout:.0f}s"
    if proc.returncode != 0:
        return f"{python} exited with code {proc.returncode}"
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        return "no result line from prefect_overhead.py"
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=0)
    parser.add_argument("--hand-chunk", type=int, default=100)
    parser.add_argument("--no-warmup", action="store_true")
    parser.add_argument("--no-raw", action="store_true",
                        help="skip the raw client.map rounds (labloom against the hand-chunked "
                             "map only)")
    parser.add_argument("--threads", action="store_true",
                        help="the workers as threads of this process (processes=False): what "
                             "is left is the engine's share, not the wire's (dask_threads.py)")
    parser.add_argument("--src", default=None,
                        help="the labloom src/ to measure (default: this checkout's), e.g. "
                             "another worktree's, to compare in alternating fresh processes")
    parser.add_argument("--timeout", type=float, default=0.0,
                        help="labloom's maps with timeout=S (none fires): a task with a timeout")
    parser.add_argument("--prefect-python", default=os.environ.get("LABLOOM_BENCH_PREFECT_PYTHON"),
                        help="interpreter with prefect and prefect-dask installed "
                             "(default: $LABLOOM_BENCH_PREFECT_PYTHON; none: skip the column)")
    parser.add_argument("--prefect-tasks", type=int, default=None,
                        help="tasks per Prefect round (default: --tasks)")
    parser.add_argument("--prefect-timeout", type=float, default=900.0,
                        help="seconds before the Prefect companion is killed")
    args = parser.parse_args()
    global TIMEOUT
    TIMEOUT = args.timeout
    if args.no_warmup and (code := rerun_as_installed()) is not None:
        raise SystemExit(code)
    print(f"labloom from {os.path.dirname(os.path.dirname(labloom_file))}", flush=True)
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0",
                           processes=not args.threads)
    client = Client(cluster)
    executor = DaskExecutor(client=client)
    if not args.no_warmup:
        if not args.no_raw:
            raw(client, 200, -1)  # warm both paths up
        if args.hand_chunk:
            hand_chunked(client, 200, args.hand_chunk, -1)
        through_labloom(executor, 200)
        if args.batch_size:
            through_labloom(executor, 200, args.batch_size)
    raws, ours, chunked, hands = [], [], [], []
    CPU["labloom"].clear()
    CPU["hand"].clear()
    for rep in range(args.repeats):
        # --no-raw: no raw client.map of N tasks before labloom's map (under load, its
        # scheduler work spills into labloom's round); the ratio to the hand-chunked map only.
        raws.append(math.nan if args.no_raw else raw(client, args.tasks, rep))
        ours.append(through_labloom(executor, args.tasks))
        line = (f"  repeat {rep + 1}: client.map {raws[-1]:.2f}s  labloom {ours[-1]:.2f}s "
                f"(ratio {ours[-1] / raws[-1]:.2f})")
        if args.hand_chunk:
            hands.append(hand_chunked(client, args.tasks, args.hand_chunk, rep))
            line += (f"  client.map over lists of {args.hand_chunk} {hands[-1]:.2f}s "
                     f"(labloom / it {ours[-1] / hands[-1]:.2f}); process CPU per child: "
                     f"labloom {CPU['labloom'][-1] / args.tasks * 1e6:.0f} us, "
                     f"hand-chunked {CPU['hand'][-1] / args.tasks * 1e6:.0f} us")
        if args.batch_size:
            chunked.append(through_labloom(executor, args.tasks, args.batch_size))
            line += (f"  labloom batch_size={args.batch_size} {chunked[-1]:.2f}s "
                     f"(ratio {chunked[-1] / raws[-1]:.2f})")
        print(line, flush=True)
    client.close()
    cluster.close()
    r, o = statistics.median(raws), statistics.median(ours)
    n = args.tasks
    print(f"{n} no-op tasks, median of {args.repeats}: client.map+gather {r:.2f}s, "
          f"labloom (no option) {o:.2f}s, ratio {o / r:.2f} (target <= 0.5); "
          f"overhead {(o - r) / n * 1000:.2f} ms/task", flush=True)
    if hands:
        h = statistics.median(hands)
        print(f"{n} no-op tasks, client.map over lists of {args.hand_chunk}: {h:.2f}s; "
              f"labloom / it {o / h:.2f} (aim 1.2; median of the rounds' ratios "
              f"{statistics.median(x / y for x, y in zip(ours, hands, strict=True)):.2f}); "
              f"process CPU per child, median: labloom "
              f"{statistics.median(CPU['labloom']) / n * 1e6:.0f} us, hand-chunked "
              f"{statistics.median(CPU['hand']) / n * 1e6:.0f} us", flush=True)
    if chunked:
        c = statistics.median(chunked)
        print(f"{n} no-op tasks with batch_size={args.batch_size}: labloom {c:.2f}s, "
              f"ratio {c / r:.2f} to client.map+gather", flush=True)
    if not args.prefect_python:
        print("Prefect column: skipped (no --prefect-python and no "
              "LABLOOM_BENCH_PREFECT_PYTHON; Prefect is not a labloom dependency)")
        return
    pn = args.prefect_tasks or n
    print(f"Prefect column: running prefect_overhead.py with {args.prefect_python} "
          f"({pn} tasks, its own LocalCluster of the same shape)", flush=True)
    res = run_prefect(args.prefect_python, pn, args.repeats, args.prefect_timeout)
    if isinstance(res, str):
        print(f"Prefect column: not measured ({res})")
        return
    pr, pp = res["raw_median"], res["prefect_median"]
    v = res["versions"]
    print(f"{pn} no-op tasks, median of {args.repeats}: client.map+gather {pr:.2f}s, "
          f"Prefect {v['prefect']} + prefect-dask {v['prefect_dask']} {pp:.2f}s, "
          f"ratio {pp / pr:.2f}; overhead {(pp - pr) / pn * 1000:.2f} ms/task")
    print(f"ratio to client.map+gather: labloom {o / r:.2f} ({n} tasks) | "
          f"Prefect {pp / pr:.2f} ({pn} tasks)")


if __name__ == "__main__":
    main()
