"""What a logging call costs the task threads, in instructions (issue 19): one thread, no
executor, so the count is the same run after run (set PYTHONHASHSEED).

Each of N steps reports a task run's end through the run's real inbox (``Inbox.put``, as a map
child's end does), after ``log_metrics(a=, b=, c=)`` in mode ``metrics``: the real
``record`` (``log_metrics``' own frame from session 55 on) -> the task context's ``add_call``
(session 34 on; ``ExecutorSink.task_values`` before) -> the run's list of waiting calls
(session 54 on; ``Inbox.add`` before), then the send of the calls under the run's lock and
its event (``ExperimentCalls``; emitted to nobody, so the store's writer is not counted). ``--every K``
reports an end every K steps: the calls of K children in one batch (a 100,000-child run on
ThreadExecutor(4) makes about 16 a batch on average, 1 the median). ``--run-gc`` sets the
collector's thresholds as a run does (``gc_policy``): Python's default (a young collection
every 700 objects) charges each object made per call several times over.

    PYTHONHASHSEED=0 PYTHONPATH=SRC valgrind --tool=callgrind --callgrind-out-file=OUT \\
        python3 benchmarks/logging_call_instructions.py 50000 metrics --every 16 --run-gc

A call's cost is (metrics - none) / N from the two totals (``summary:`` in OUT).
"""

from __future__ import annotations

import argparse
import threading
import types

from labloom.core import experiment_values, gc_policy, logs, sinks
from labloom.core.inbox import Inbox

try:
    from labloom.core import sink_registry
except ImportError:  # trees before session 35 kept the registry in sinks.py
    from labloom.core import sinks as sink_registry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", type=int)
    parser.add_argument("mode", choices=["none", "metrics"])
    parser.add_argument("--every", type=int, default=1, help="steps per reported end")
    parser.add_argument("--run-gc", action="store_true",
                        help="the collector as a run sets it (gc_policy), not Python's default")
    args = parser.parse_args()

    sent: list[int] = []  # calls per event: counted, not read back (as cheap on every tree)
    lock = threading.RLock()
    inbox = Inbox(lock, threading.Condition(lock), after=lambda: None)
    inbox._nudge = True  # no nudger thread: this thread applies everything
    # Its executor runs each attempt once in this process, as ThreadExecutor (session 54 on).
    engine = types.SimpleNamespace(id="run", launcher=types.SimpleNamespace(inbox=inbox),
                                   ended=None, executor=types.SimpleNamespace(
                                       runs_each_attempt_once_here=True),
                                   emit=lambda event: sent.append(len(event.task_run_ids)))
    sink = sinks.ExecutorSink(engine)
    sink_registry.register_local_run("run", sink)
    ctx = logs.TaskContext("run", "tr", "t", False, lambda *line: None)
    # As a task call binds it (``attempt.TaskCall``), on trees that have it (session 34 on):
    # the run's list of calls waiting itself from session 54 on (``waiting_calls.py``).
    waiting = getattr(sink, "waiting", None)
    if waiting is not None:
        ctx.add_call, ctx.waiting = waiting.calls.append, waiting
    elif hasattr(ctx, "add_call"):
        ctx.add_call = getattr(sink, "add_call", None)
    logs._CURRENT.set(ctx)

    def ended() -> None:
        pass

    if args.run_gc:
        gc_policy.run_started()  # the collector's thresholds as while a run goes
    for x in range(args.n):
        a, b, c = x, x * 0.5, float(x % 7)
        if args.mode == "metrics":
            experiment_values.log_metrics(a=a, b=b, c=c)
        if x % args.every == args.every - 1:
            inbox.put(ended)
    if hasattr(sink, "flush"):  # calls left waiting to go out together (session 35 on)
        with lock:
            sink.flush()
    assert sum(sent) == (args.n if args.mode == "metrics" else 0)


if __name__ == "__main__":
    main()
