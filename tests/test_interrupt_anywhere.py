"""A Ctrl-C landing anywhere in labloom's own code while a flow runs: the run ends Cancelled (or
Completed, when it came too late), the kernel and the store agree, the next run completes.

``interrupt_points.Landing`` interrupts the main thread at the n-th point where CPython takes a
signal, for every n (or a sample) of one short run. Found with it (session 51): a Ctrl-C in the
run's announcement or between it and its driver left the run Pending or Running for good; one
in ``_finalize`` left it finishing for ever; one in a map's expansion (children added, not yet
counted) hung the foreground run; one between a task's value and its state made the cancel raise
AttributeError; one in the print capture's install left every later print of the process
captured; one as the run's own thread pool closed held the process's exit for ever (now in
test_interrupt_pool_exit.py); one as a flow's own LocalExecutor took its lock left it taken, and
no later run of the flow ran a call; one as the run's inbox took its role left it taken, and the
run's retry never ran."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest

from interrupt_checks import (
    check_after,
    interrupted,
    one,
    points_of,
    quiet_progress,  # noqa: F401  (an autouse fixture)
    sweep_on,
)
from interrupt_points import Landing
from labloom import LocalExecutor, flow
from labloom.core.at_exit import end_interrupted
from run_helpers import runs_started


def _sweep(executor: str) -> Any:
    return sweep_on(executor, f"sweep_{executor}")


def _interrupted_at(number: int, go: Callable[[], Any], at: str | None = None
                    ) -> tuple[Landing, bool]:
    """``go()`` with a Ctrl-C at its ``number``-th point (of those at ``at``, if given);
    whether it raised KeyboardInterrupt."""
    landing = Landing(number, at=at)
    return landing, interrupted(landing, go)


def _check_after(number: int, landing: Landing, runs: list[Any], sweep: Any) -> None:
    check_after(f"Ctrl-C at point {number} ({landing.where})", runs, sweep)


# Where a run begins and ends (its observers, its announcement, its driver, its end) and the
# print capture around each call: every point there, one in ``_EVERY`` elsewhere.
_EDGES = ("core/engine.py", "core/at_exit.py", "core/gc_policy.py", "core/observers.py",
          "core/interrupts_held.py", "core/logs.py", "store/")
_EVERY = 4


def _chosen(points: list[str]) -> list[int]:
    return [number for number, where in enumerate(points, start=1)
            if number % _EVERY == 0 or where.startswith(_EDGES)]


@pytest.mark.parametrize("executor", ["local", "threads"])
def test_a_foreground_run_interrupted_anywhere_ends_cancelled(executor: str) -> None:
    """``flow.run()`` (a flow called in a cell): the body, and with the local executor every
    task call, run in the kernel's main thread, where the interrupt lands."""
    sweep = _sweep(executor)
    points = points_of(sweep.run)
    assert len(points) > 300, "the harness traced nearly nothing: it proves nothing"
    for number in _chosen(points):
        with runs_started() as runs:
            landing, raised = _interrupted_at(number, sweep.run)
        assert raised or landing.where is None, f"point {number}: the Ctrl-C was swallowed"
        _check_after(number, landing, runs, sweep)


def test_a_background_run_interrupted_while_waited_for_ends_cancelled() -> None:
    """As `%%flow` and `labloom run` drive it: ``flow.run(background=True)`` then ``wait()``;
    a Ctrl-C ends whatever began with ``end_interrupted``."""
    sweep = _sweep("threads")

    def go() -> None:
        sweep.run(background=True).wait()

    points = points_of(go)
    assert len(points) > 100, "the harness traced nearly nothing: it proves nothing"
    for number in range(1, len(points) + 1):  # few: the run goes on in its own thread
        with runs_started() as runs:
            landing, raised = _interrupted_at(number, go)
        if raised:
            for run in runs:
                end_interrupted(run)
        _check_after(number, landing, runs, sweep)


def test_the_harness_lands_where_told() -> None:
    """A landing past the run's last point changes nothing; one inside it interrupts."""
    sweep = _sweep("local")
    points = len(points_of(sweep.run))
    landing, raised = _interrupted_at(points + 1000, sweep.run)
    assert (landing.where, raised) == (None, False)
    with runs_started() as runs:
        landing, raised = _interrupted_at(points // 2, sweep.run)
    assert raised and landing.where is not None
    _check_after(points // 2, landing, runs, sweep)


def test_a_flows_own_local_executor_runs_calls_again_after_a_ctrl_c_anywhere_in_one() -> None:
    """``@flow(executor=LocalExecutor())``: one executor for all the flow's runs, whose calls
    run in the thread that waits. A Ctrl-C right after it took its one-call-at-a-time lock
    (before the ``try`` that gives it back) kept the lock for good: no later run of the flow
    ran a call, each waited for ever."""
    shared = LocalExecutor()

    @flow(name="sweep_shared", executor=shared)
    def sweep() -> list[int]:
        return one.map(range(3))

    places = sorted({where for where in points_of(sweep.run)
                     if where.startswith("executors/local.py") and where.endswith("run_pending")})
    assert len(places) >= 2, places
    for at in places:
        landing, _raised = _interrupted_at(1, sweep.run, at)
        assert landing.where == at
        after = sweep.run(background=True)
        assert after.wait(60).value == "Completed", f"Ctrl-C at {at}: the next run never ran"


def test_a_run_interrupted_anywhere_as_it_applies_reports_can_be_retried() -> None:
    """A run's reports (a call started, ended) are applied by one thread at a time, which takes
    the run's inbox role. A Ctrl-C right after the role was taken (before the ``try`` that gave
    it back) kept it for good: ``run.retry()`` of the interrupted run then waited for ever."""
    sweep = _sweep("local")
    places = sorted({where for where in points_of(sweep.run)
                     if where.startswith("core/inbox.py") and where.endswith(" drain")})
    assert len(places) > 3, places
    for at in places:
        with runs_started() as runs:
            _interrupted_at(1, sweep.run, at)
        [run] = runs
        if run.state.value == "Completed":
            continue  # it came after the last report: nothing to retry
        run.retry(background=True)
        assert run.wait(60).value == "Completed", f"Ctrl-C at {at}: its retry never ran"


def test_a_held_section_swaps_the_handlers_through_the_c_module_and_puts_them_back() -> None:
    # CPython: ``_signal``, without the ``signal`` module's enum conversions (20x slower, a
    # few held sections a run). The handler put back is the very one that was there, and a
    # Ctrl-C during the section is raised once it ends.
    import signal

    from labloom.core import signal_internals
    from labloom.core.interrupts_held import InterruptsHeld

    assert signal_internals.in_use() == (
        signal_internals.C_MODULE if sys.implementation.name == "cpython"
        else signal_internals.WRAPPED)
    before = signal.getsignal(signal.SIGINT)
    assert callable(before)  # conftest puts Python's default handler back: it is held
    with InterruptsHeld():
        assert signal.getsignal(signal.SIGINT) is not before
    assert signal.getsignal(signal.SIGINT) is before
    reached_the_end = False
    with pytest.raises(KeyboardInterrupt), InterruptsHeld():  # raised as the section ends
        signal.raise_signal(signal.SIGINT)
        reached_the_end = True
    assert reached_the_end and signal.getsignal(signal.SIGINT) is before
