"""What a batch of reports costs, in instructions (issue 21 §2): one thread applies K reports
through a real run's inbox (its lock, its bus with one subscriber, its launcher's ``after``),
each report one event, as a task run's start or end is. Set PYTHONHASHSEED and keep compiled
bytecode (PYTHONPYCACHEPREFIX, a first run outside valgrind), so the count is the same run
after run.

- ``separate``: K reports, each its own batch (``Inbox.put``, nobody else applying);
- ``together``: the same K appended first, then applied in batches of ``inbox.BATCH``;
- ``put-pairs``: K task runs' end and the same thread's next start, each its own batch (an
  end owed to the next start, one batch of both, was tried in session 37 and dropped: see
  benchmarks/README.md, "Session 37 (helper b)").

    PYTHONHASHSEED=0 PYTHONPATH=SRC valgrind --tool=callgrind --callgrind-out-file=OUT \\
        python3 benchmarks/report_batch_instructions.py 20000 separate

A batch's cost is (separate - together) / K, from the totals (``summary:`` in OUT).
"""

from __future__ import annotations

import argparse
import os
import threading
import time

os.environ.setdefault("LABLOOM_STORE", "0")
os.environ.setdefault("LABLOOM_PROGRESS", "0")

from labloom import ThreadExecutor, flow, task
from labloom.core import events as ev
from labloom.core.states import State

gate = threading.Event()


@task
def hold() -> None:
    gate.wait(600)


@flow
def held() -> None:
    hold()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("k", type=int)
    parser.add_argument("mode", choices=["separate", "together", "put-pairs"])
    args = parser.parse_args()
    run = held.run(executor=ThreadExecutor(1), background=True)  # a run alive, its inbox real
    while not run.tasks or run.tasks[0].state is not State.RUNNING:
        time.sleep(0.01)
    engine = run._engine
    engine.bus.subscribe(lambda events: None)  # as the store's recorder: one queue to fill
    inbox = engine.launcher.inbox
    event = ev.StateChanged(engine.id, "x", State.RUNNING, 0.0)
    emit = engine.emit

    def apply(_: int) -> None:
        emit(event)

    if args.mode == "separate":
        for i in range(args.k):
            inbox.put(apply, i)
    elif args.mode == "together":
        for i in range(args.k):
            inbox._items.append((apply, (i,), True))
        inbox.drain()
    else:
        for i in range(args.k):
            inbox.put(apply, i)
            inbox.note(apply, i)
    gate.set()
    run.wait(10)


if __name__ == "__main__":
    main()
