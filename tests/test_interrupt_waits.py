"""A Ctrl-C landing anywhere in a wait on a run, threading's own Python included: the wait raises
KeyboardInterrupt (never another error) and every later wait on the run still answers.

``run.wait_finished`` waited on a ``threading.Event``, whose ``wait`` takes its lock in Python
(``Condition.__enter__``): a Ctrl-C as that returned kept the lock for good, so every later
``wait_finished`` (``labloom run``'s end, the exit hook, a cell's) and the run's own
``finished.set()`` waited for ever; one in ``Condition.wait`` between the lock let go and its
``try`` raised RuntimeError (cannot release un-acquired lock) in place of KeyboardInterrupt."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from interrupt_checks import THREADING, answered, interrupted, points_of, quiet_progress  # noqa: F401
from interrupt_points import Landing
from labloom import flow, task

_gate = threading.Event()


@task
def held() -> int:
    _gate.wait(120)
    return 1


def _land_everywhere_in(wait: Callable[[], Any], then: Callable[[], Any], expected: Any) -> None:
    points = points_of(wait, THREADING)
    assert any(where.startswith("threading.py") for where in points), points
    for number in range(1, len(points) + 1):
        landing = Landing(number, also=THREADING)
        raised = interrupted(landing, wait)
        said = f"Ctrl-C at point {number} ({landing.where})"
        assert raised or landing.where is None, f"{said}: the Ctrl-C was swallowed"
        assert answered(then) == [expected], f"{said}: the next wait never answered"


def test_a_ctrl_c_anywhere_in_wait_finished_leaves_the_run_waitable() -> None:
    @flow(name="waited", executor="threads")
    def waited() -> int:
        return held()

    _gate.clear()
    run = waited.run(background=True)
    try:
        # Still running: the wait sleeps on the event's condition and gives up.
        _land_everywhere_in(lambda: run.wait_finished(0.01), lambda: run.wait_finished(0), False)
    finally:
        _gate.set()
    assert answered(lambda: run.wait_finished(60)) == [True], "the run's end was never set"
    assert run.state.value == "Completed"
    # Finished: the wait only looks.
    _land_everywhere_in(lambda: run.wait_finished(0.01), lambda: run.wait_finished(0), True)
