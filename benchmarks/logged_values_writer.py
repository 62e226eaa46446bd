"""The store writer's instructions per logging call, without a run: what the writer's thread
does with a map's ``ExperimentCalls`` events (issue 19), counted under callgrind, where the
count is the same run after run (set PYTHONHASHSEED).

N children, each two state changes (running, completed) and, in mode ``metrics``, one
``log_metrics(a=int, b=float, c=float)`` call; the calls go out in events of ``--every`` calls
(``logging_call_instructions.py`` is the task threads' side). Since session 54 a 100,000-child
run on ThreadExecutor(4) sends about 120 events, median 768 calls (session 55 helper b), so
``--every 800`` is what a run does; the default 16 (the mean before, 1 the median) adds the
writer's cost per event, about 6.8k instructions, once per 16 calls. The writer's work on them: each
write (``--per-write`` children, about what a real run's write of 0.1 s holds) folds its events
(``Rows.add_all``), finishes them (``Rows.finish``) and writes them in one transaction
(``Rows.write``) into a fresh SQLite store. Mode ``none`` makes the same calls and events but
hands the writer none of them, and imports what the writer would (msgpack): the difference is
the writer's alone.

    PYTHONHASHSEED=0 PYTHONPATH=SRC valgrind --tool=callgrind --callgrind-out-file=OUT \\
        python3 benchmarks/logged_values_writer.py 50000 metrics --every 16 --run-gc

A call's cost is (metrics - none) / N from the two totals (``summary:`` in OUT). Without
valgrind it prints this thread's CPU per child, to look at in passing.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import types


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", type=int)
    parser.add_argument("mode", choices=["none", "metrics"])
    parser.add_argument("--every", type=int, default=16, help="calls per ExperimentCalls event")
    parser.add_argument("--per-write", type=int, default=1500, help="children per transaction")
    parser.add_argument("--keep", action="store_true", help="say where the store is; keep it")
    parser.add_argument("--run-gc", action="store_true",
                        help="the collector as a run sets it (gc_policy), not Python's default")
    args = parser.parse_args()

    home = tempfile.mkdtemp(prefix="labloom-lvw-")
    os.environ["LABLOOM_HOME"] = home
    import labloom.store.logged_calls  # noqa: F401  # what the first batch of calls imports
    from labloom.core import events as ev
    from labloom.core.states import State
    from labloom.store import open_store
    from labloom.store.rows import Rows

    if args.run_gc:
        from labloom.core import gc_policy

        gc_policy.run_started()
    run = "run1"
    rec = types.SimpleNamespace(run_id=run, moves_known=True, noted_escapes=False)
    store = open_store()
    conn = store.conn
    started = time.process_time()
    for first in range(0, args.n, args.per_write):
        children = range(first, min(first + args.per_write, args.n))
        batch: list[ev.Event] = []
        calls: list[tuple[object, ...]] = []
        made: list[ev.ExperimentCalls] = []  # in both modes, alive as long
        for i in children:
            tr = f"{run}.{i}"
            batch.append(ev.StateChanged(run, tr, State.RUNNING, 1.0 + i, "", 1, "", "t",
                                         State.PENDING, "n"))
            calls.append((tr, "metric", {"a": i, "b": i * 0.5, "c": float(i % 7)}, None,
                          1.5 + i))
            if len(calls) == args.every:
                # Columns as the engine's batch makes them (tuples, by ``zip``).
                made.append(ev.ExperimentCalls(run, *zip(*calls, strict=True)))
                calls = []
                if args.mode == "metrics":
                    batch.append(made[-1])
            batch.append(ev.StateChanged(run, tr, State.COMPLETED, 2.0 + i, "", 1, "", "",
                                         State.RUNNING, "n"))
        if calls:
            made.append(ev.ExperimentCalls(run, *zip(*calls, strict=True)))
            if args.mode == "metrics":
                batch.append(made[-1])
        rows = Rows()
        rows.add_all(rec, batch)  # type: ignore[arg-type]
        rows.finish()
        with conn.transaction():
            rows.write(conn)
    cpu = time.process_time() - started
    stored = conn.execute("SELECT count(*) FROM experiment_values").fetchone()[0]
    print(f"{args.mode}: {args.n} children, {stored} rows of values, "
          f"{cpu / args.n * 1e6:.2f} µs CPU a child" + (f", store {home}" if args.keep else ""))
    store.close()


if __name__ == "__main__":
    main()
