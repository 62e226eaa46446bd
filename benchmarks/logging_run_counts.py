"""What a run of issue 19's logging benchmark does besides instructions, counted: the
``experiments_overhead.py`` flow (``one.map(range(N))``, no-op children logging 3 metrics or
none, ``ThreadExecutor(4)``, the store on), each mode the first run of a fresh interpreter,
modes alternating, medians over ``--pairs``:

- the process during ``wide.run``: user and system CPU, minor faults, voluntary and
  involuntary context switches (``getrusage``), read and write syscalls (``/proc/self/io``);
- each thread's CPU ticks, faults and context switches (``/proc/self/task``, sampled every
  0.1 s; task threads summed);
- how the run batched: the store writer's transactions (``CommitSize.timed``) and the batches
  put to it (``Writer.put``), the ``ExperimentCalls`` events and their calls, the pacing's
  2 ms sleeps (``EventBus.pace``), the ``UPDATE task_runs`` rows (a state written in a later
  transaction than its task run's row) and the ``INSERT INTO task_runs`` statements.

``--child N MODE`` runs one measured run in this process and prints its counts as JSON; it
calls ``getrusage`` exactly twice, around the run, so callgrind can split the run from the
imports and the exit (``--dump-before=resource_getrusage``; the dumps at those two points hold
the main thread only, the other threads' counts are dumped at the exit). ``--dilate K``
stretches the run's timed constants (the writer's transaction time, the calls' send interval,
the nudge, the deliveries' flush) by K, so that a run slowed down by valgrind batches about as
a real one does:

    python3 benchmarks/logging_run_counts.py --pairs 4                  # N = 100,000
    python3 benchmarks/logging_run_counts.py --pairs 6 -n 20000 --src ../main/src
    PYTHONHASHSEED=0 LABLOOM_HOME=$(mktemp -d) LABLOOM_PROGRESS=0 PYTHONPATH=src \\
        valgrind --tool=callgrind --separate-threads=yes --dump-before=resource_getrusage \\
        python3 benchmarks/logging_run_counts.py --child 20000 metrics --dilate 300
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from installed_bytecode import bytecode, installed_env

SRC = Path(__file__).resolve().parents[1] / "src"
TOTALS = ("user", "sys", "minflt", "nvcsw", "nivcsw", "syscr", "syscw", "commits", "puts",
          "xcalls", "xcall_median", "pace_sleeps", "update_rows", "insert_statements")
# per thread: CPU ticks (user, system), minor faults, voluntary / involuntary switches
THREAD_FIELDS = ("utime", "stime", "minflt", "vcsw", "nvcsw")


def counting(counts: dict[str, Any]) -> None:
    """Wrap the writer's transaction, its puts, the calls' events and the pacing's sleeps."""
    import types

    from labloom.core import events as ev
    from labloom.store import commits, db, multirow, rows, writer

    timed, put, calls_init = commits.CommitSize.timed, writer.Writer.put, ev.ExperimentCalls.__init__
    written = multirow.many_rows

    def counted_timed(self: Any, events: int, seconds: float) -> None:
        counts["commits"] += 1
        timed(self, events, seconds)

    def counted_put(self: Any, rec: Any, batch: Any) -> int:
        counts["puts"] += 1
        return put(self, rec, batch)

    def counted_calls(self: Any, run_id: str, task_run_ids: Any, *rest: Any) -> None:
        counts["xcall_sizes"].append(len(task_run_ids))
        calls_init(self, run_id, task_run_ids, *rest)

    def many_rows(raw: Any, head: str, columns: int, values: Any, tail: str = "") -> None:
        if head.startswith("UPDATE task_runs"):  # a state written after its task run's row
            counts["update_rows"] += len(values)
        elif head.startswith("INSERT INTO task_runs"):
            counts["insert_statements"] += 1
        written(raw, head, columns, values, tail)

    def sleep(seconds: float) -> None:
        counts["pace_sleeps"] += seconds == 0.002
        time.sleep(seconds)

    commits.CommitSize.timed = counted_timed  # type: ignore[method-assign]
    writer.Writer.put = counted_put  # type: ignore[method-assign]
    ev.ExperimentCalls.__init__ = counted_calls  # type: ignore[method-assign]
    rows.multirow.many_rows = db.many_rows = many_rows  # type: ignore[assignment]
    ev.time = types.SimpleNamespace(**{**vars(time), "sleep": sleep})  # type: ignore[assignment]


def dilate(k: float) -> None:
    from labloom.core import delivery, inbox, sinks
    from labloom.store import commits, recorder

    commits.COMMIT_EVERY *= k
    sinks.SEND_EVERY *= k
    inbox.NUDGE *= k
    delivery.FLUSH_INTERVAL *= k
    recorder.Recorder.flush_interval *= k


def thread_counts(into: dict[int, list[Any]]) -> None:
    """Each thread's counts so far, by native id (a thread gone keeps its last reading)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                stat = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/self/task/{tid}/status") as f:
                status = dict(line.split(":", 1) for line in f if "ctxt" in line)
        except OSError:
            continue
        name = names.get(int(tid)) or into.get(int(tid), ["nudger"])[0]
        into[int(tid)] = [name, int(stat[11]), int(stat[12]), int(stat[7]),
                          int(status["voluntary_ctxt_switches"]),
                          int(status["nonvoluntary_ctxt_switches"])]


def io_calls() -> dict[str, int]:
    with open("/proc/self/io") as f:
        return {k: int(v) for k, v in (line.split(":") for line in f)}


def run_child(n: int, mode: str, k: float | None, sample: bool) -> dict[str, Any]:
    import resource

    from labloom import ThreadExecutor, flow, log_metrics, task

    counts: dict[str, Any] = {"commits": 0, "puts": 0, "xcall_sizes": [], "pace_sleeps": 0,
                              "update_rows": 0, "insert_statements": 0}
    counting(counts)
    if k:
        dilate(k)

    @task
    def none(x: int) -> int:
        return x

    @task
    def three(x: int) -> int:
        log_metrics(a=x, b=x * 0.5, c=float(x % 7))
        return x

    @flow
    def wide(n: int, mode: str) -> None:
        (three if mode == "metrics" else none).map(range(n))

    before: dict[int, list[Any]] = {}
    after: dict[int, list[Any]] = {}
    stop = threading.Event()
    def sampler() -> None:  # threads that end within the run keep their last reading
        while not stop.wait(0.1):
            thread_counts(after)

    if sample:
        thread_counts(before)
        threading.Thread(target=sampler, name="sampler", daemon=True).start()
    io0 = io_calls()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    run = wide.run(n=n, mode=mode, executor=ThreadExecutor(4))
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    io1 = io_calls()
    assert run.state.value == "Completed", (run.state, run.message)
    stop.set()
    sizes = sorted(counts.pop("xcall_sizes"))
    out = dict(counts, mode=mode, user=r1.ru_utime - r0.ru_utime, sys=r1.ru_stime - r0.ru_stime,
               minflt=r1.ru_minflt - r0.ru_minflt, nvcsw=r1.ru_nvcsw - r0.ru_nvcsw,
               nivcsw=r1.ru_nivcsw - r0.ru_nivcsw, syscr=io1["syscr"] - io0["syscr"],
               syscw=io1["syscw"] - io0["syscw"], xcalls=len(sizes),
               xcall_median=sizes[len(sizes) // 2] if sizes else 0, threads={})
    if sample:
        thread_counts(after)
        for tid, (name, *now) in after.items():
            was = before.get(tid, [name, 0, 0, 0, 0, 0])[1:]
            name = "task threads" if name.startswith("labloom-task") else name
            name = "event delivery" if name.startswith("labloom-events") else name
            total = out["threads"].setdefault(name, [0] * len(THREAD_FIELDS))
            for i, (a, b) in enumerate(zip(now, was, strict=True)):
                total[i] += a - b
    return out


def child(n: int, mode: str, src: Path, pycache: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as home:
        env = dict(installed_env(pycache), LABLOOM_HOME=home, LABLOOM_PROGRESS="0",
                   PYTHONPATH=str(src))
        out = subprocess.run([sys.executable, __file__, "--child", str(n), mode, "--sample"],
                             env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.splitlines()[-1])


def report(runs: list[dict[str, Any]]) -> None:
    modes = ("none", "metrics")
    med = {m: {k: statistics.median(r[k] for r in runs if r["mode"] == m) for k in TOTALS}
           for m in modes}
    print(f"{'':>14} {'none':>10} {'metrics':>10} {'extra':>10}")
    for key in TOTALS:
        a, b = med["none"][key], med["metrics"][key]
        print(f"{key:>14} {a:>10.3g} {b:>10.3g} {b - a:>+10.3g}")
    print("threads (medians):", " ".join(THREAD_FIELDS))
    for name in sorted({t for r in runs for t in r["threads"]}):
        cells = []
        for m in modes:
            per = [r["threads"][name] for r in runs if r["mode"] == m and name in r["threads"]]
            cells.append(" ".join(f"{statistics.median(p[i] for p in per):g}"
                                  for i in range(len(THREAD_FIELDS))) if per else "-")
        print(f"{name[:22]:>22}  none: {cells[0]:<24} metrics: {cells[1]}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=100_000, help="map children (default 100,000)")
    parser.add_argument("--pairs", type=int, default=4, help="fresh pairs (default 4)")
    parser.add_argument("--src", type=Path, default=SRC, help="the source tree to measure")
    parser.add_argument("--child", nargs=2, metavar=("N", "MODE"),
                        help="one measured run here (for valgrind), its counts as JSON")
    parser.add_argument("--dilate", type=float, help="the run's timed constants times K")
    parser.add_argument("--sample", action="store_true", help="with --child: count threads")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(int(args.child[0]), args.child[1], args.dilate, args.sample)))
        return
    src = args.src.resolve()
    pycache = bytecode([src], lambda tree, folder: child(100, "metrics", tree, folder))
    runs = []
    for pair in range(args.pairs):
        for mode in ("none", "metrics") if pair % 2 == 0 else ("metrics", "none"):
            runs.append(child(args.n, mode, src, pycache.name))
    report(runs)


if __name__ == "__main__":
    main()
