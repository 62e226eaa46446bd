"""A Ctrl-C landing anywhere in ``run.retry()``, threading's own Python included: the run ends
(Cancelled, Completed, or still Failed when it came before the restart), the kernel and the
store agree, nothing of it is left going, and a retry after it completes.

Found with it (session 53): the restart cleared the run's ``finished`` (``Event.clear`` takes
its lock in Python) and started its subscribers' delivery threads and its own thread unheld: a
Ctrl-C there left the event's lock taken for good, a run Running that no thread drove, or a
RuntimeError (a lock let go in ``Thread.start``'s wait) in place of KeyboardInterrupt."""

from __future__ import annotations

from typing import Any

import pytest

from interrupt_checks import (
    THREADING,
    answered,
    interrupted,
    quiet_progress,  # noqa: F401  (an autouse fixture)
    store_agrees,
)
from interrupt_points import Landing
from labloom import FlowRun, flow, task
from labloom.core import at_exit, gc_policy
from labloom.core.at_exit import end_interrupted

_failing = [True]


@task
def flaky(x: int) -> int:
    if _failing[0]:
        raise ValueError("fails until told not to")
    return x + 1


@flow(name="retried", executor="threads")
def retried() -> list[int]:
    return flaky.map(range(2))


def _failed_run() -> FlowRun:
    _failing[0] = True
    run = retried.run(background=True)
    assert run.wait(60).value == "Failed"
    _failing[0] = False
    return run


def _check_after(said: str, run: FlowRun) -> None:
    assert answered(lambda: run.wait_finished(60)) == [True], \
        f"{said}: the run never finished ({run.state})"
    assert run.state.value in ("Cancelled", "Completed", "Failed"), f"{said}: {run.state}"
    store_agrees(said, run)
    assert not at_exit._unfinished, f"{said}: still to be ended at exit"
    assert gc_policy.runs_going() == 0, f"{said}: the collector still counts a run going"
    if run.state.value != "Completed":
        run.retry(background=True)
        assert run.wait(60).value == "Completed", f"{said}: the next retry did not complete"


@pytest.mark.parametrize("background", [False, True], ids=["foreground", "waited"])
def test_a_retry_interrupted_anywhere_ends_and_can_be_retried(background: bool) -> None:
    def go(run: FlowRun) -> Any:
        return run.retry(background=True).wait() if background else run.retry()

    found: list[str] = []
    interrupted(Landing(0, found, also=THREADING), lambda: go(_failed_run()))
    found.clear()
    run = _failed_run()
    interrupted(Landing(0, found, also=THREADING), lambda: go(run))
    assert len(found) > 100, "the harness traced nearly nothing: it proves nothing"
    assert any(where.startswith(THREADING) for where in found), found
    for number in range(1, len(found) + 1):
        run = _failed_run()
        landing = Landing(number, also=THREADING)
        raised = interrupted(landing, lambda: go(run))  # noqa: B023 (called here)
        said = f"Ctrl-C at point {number} ({landing.where})"
        assert raised or landing.where is None, f"{said}: the Ctrl-C was swallowed"
        if raised and background:
            end_interrupted(run)
        _check_after(said, run)
