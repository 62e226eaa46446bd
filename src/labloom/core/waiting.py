"""How a thread waits on a run: for its end (``FlowRun.wait``), for a task run's value (the
flow body's ``future.result()``), for its last task run (the run's own thread).

A waiting thread drives the local executor, whose calls run in the thread that waits, and
sleeps on a condition of the run between looks: ``changed`` (each batch of reports) for a
value, ``all_final`` for the last task run, so that the run's own wait is not woken by every
report. It also looks every ``LOOK_EVERY`` seconds, for what no condition announces.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .interrupts_held import HELD_WAIT, InterruptsHeld

if TYPE_CHECKING:
    from .engine import RunEngine
    from .states import State

LOOK_EVERY = 0.1  # seconds between a waiting thread's looks when nothing woke it


def wait_for_end(engine: RunEngine, timeout: float | None) -> State:
    """Until the run is finished and recorded (or ``timeout``): its state."""
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while not engine.finished.is_set():
            remaining = HELD_WAIT if deadline is None else \
                min(HELD_WAIT, deadline - time.monotonic())
            if remaining <= 0:
                break
            if engine.executor.run_pending():
                continue
            with InterruptsHeld():  # see below: HELD_WAIT later at most, never jammed
                engine.finished.wait(remaining)
    except KeyboardInterrupt:
        engine.cancel("interrupted")
        raise
    return engine.state


def wait_until(engine: RunEngine, predicate: Callable[[], bool], timeout: float | None,
               woken_by: threading.Condition) -> bool:
    """Until ``predicate()`` holds (read under the run's lock), launching what is ready and
    running the local executor's calls meanwhile; TimeoutError after ``timeout``."""
    deadline = None if timeout is None else time.monotonic() + timeout
    if engine.tracing:
        engine.executor.result(None)  # says why a traced body cannot wait
    while True:
        engine.launcher.work()
        with engine.lock:
            if predicate():
                return True
        if engine.executor.run_pending():
            continue
        with engine.lock:
            if predicate():
                return True
            remaining = LOOK_EVERY if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"still waiting after {timeout}s (flow run {engine.id})")
            # Held (interrupts_held.py), so a Ctrl-C ends the wait LOOK_EVERY later at most: one
            # landing in ``Condition.wait`` between its lock let go and its ``try`` left the lock
            # let go (CPython's), and leaving ``with engine.lock`` raised RuntimeError in place
            # of KeyboardInterrupt: the run was never cancelled, Running for good.
            with InterruptsHeld():
                woken_by.wait(min(remaining, LOOK_EVERY))
