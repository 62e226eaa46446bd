"""A Ctrl-C landing anywhere while the main thread applies a task run's start report or a
logging call's values (``Inbox.drain``): the run ends, and what it recorded is recorded once,
in the kernel and in the store: each task run's history has one Running per attempt, live and
stored alike, and each logging call shows once in ``run.events()`` and in the stored calls.

A report a Ctrl-C cut short stays in the inbox and is applied again at the next drain
(session 53: lost, a call's end left its slot taken for good). When that drain comes after
the run's cancel (at its end, ``Launcher.given_back``), a start is stale then and a value is
dropped as after the run's end; but a start cut short once its state was Running, before its
event went out, left a Running in the kernel's history that the store never had. When
another thread's report, or the nudge, drains first (a run on threads: the main thread
applies a report only by timing), a start applied again whole was taken for a Dask worker's
run of the same attempt anew: a second Running in its history, a "ran again" line and its
values reset; a value was logged twice (session 54). ``drained_first`` makes that order
sure: the cancel drains the inbox before it cancels.

A logging call comes through the inbox from a Dask worker; one of the run's own process
(local, threads) is appended by the task call itself to the run's calls waiting, a
``list.append`` in C that no Ctrl-C cuts in two (``waiting_calls.py``). The local executor
here is made to take the inbox's way (``_values_through_the_inbox``), which Dask's take."""

from __future__ import annotations

import builtins
import itertools
from types import FrameType, MethodType
from typing import Any

import pytest

from interrupt_checks import (
    check_after,
    interrupted,
    quiet_progress,  # noqa: F401  (an autouse fixture)
)
from interrupt_points import Landing
from labloom import flow, log_metrics, task
from labloom.core import events as ev
from labloom.core.engine import RunEngine
from labloom.core.inbox import Inbox
from labloom.core.sinks import ExecutorSink
from labloom.executors.local import LocalExecutor
from labloom.store import experiments as store_experiments
from labloom.store import open_store
from run_helpers import runs_started

_C_CALL = type(builtins.len)  # a logging call's apply: the sink's ``list.append``, in C


@task
def logged(x: int) -> int:
    log_metrics({"m": x})
    return x


@task
def logged_total(xs: list[int]) -> int:
    log_metrics({"m": sum(xs)})
    return sum(xs)


def _applying(frame: FrameType | None) -> bool:
    """Whether ``frame`` applies a start report (``ExecutorSink._started`` and below) or is
    an inbox's drain right after it applied a logging call (its apply a C call: the Ctrl-C
    lands in the drain, as the call returns)."""
    innermost = True
    while frame is not None:
        code = frame.f_code
        if code is ExecutorSink._started.__code__:
            return True
        if innermost and code is Inbox.drain.__code__:
            return type(frame.f_locals.get("apply")) is _C_CALL
        innermost = False
        frame = frame.f_back
    return False


class InApplying(Landing):
    """A ``Landing`` counting only the points inside applying a start or a logging call."""

    def _land(self, frame: FrameType) -> None:
        if _applying(frame):
            super()._land(frame)


@pytest.fixture(autouse=True)
def _values_through_the_inbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LocalExecutor, "runs_each_attempt_once_here", False)


@pytest.fixture(params=["drained at the end", "drained first"])
def drained_first(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The next drain after the Ctrl-C at the run's end, or before its cancel (what a task
    thread's report or the nudge does when it comes first, which no run here can be made to
    do on cue)."""
    if request.param == "drained first":
        cancel = RunEngine.cancel

        def drained_then_cancelled(engine: RunEngine, reason: str) -> None:
            engine.launcher.inbox.drain()
            cancel(engine, reason)

        monkeypatch.setattr(RunEngine, "cancel", drained_then_cancelled)


def _sweep(executor: Any, name: str) -> Any:
    @flow(name=name, executor=executor)
    def sweep() -> int:
        return logged_total(logged.map(range(3)))

    return sweep


def _no_state_twice(said: str, name: str, states: list[str]) -> None:
    doubled = [a for a, b in itertools.pairwise(states) if a == b]
    assert not doubled, f"{said}: {name}'s history has a state twice in a row: {states}"


def _recorded_once(said: str, run: Any) -> None:
    """Each task run's history, live and stored, with no state twice in a row (a start
    applied twice: Running, Running) and each task run's logging call once, live and stored
    (a Completed one's there: its call returned before its end was applied)."""
    stored_states: dict[str, list[str]] = {}
    with open_store() as store:
        for record in store.task_runs(run.id, history=True):
            stored_states[record.id] = [entry["state"] for entry in record.history]
        stored, _cursor, _more = store_experiments.read_logged(store, run.id)
    live = [event.task_run_id for event in run.events() if isinstance(event, ev.ExperimentValues)]
    kept = [task_run_id for task_run_id, *_ in stored]
    for tr in run.tasks:
        states = [entry.state.value for entry in tr.history]
        _no_state_twice(said, tr.name, states)
        stored_of = stored_states.get(tr.id)
        assert stored_of == states, f"{said}: {tr.name} is {states}, stored {stored_of}"
        least = 1 if tr.state.value == "Completed" else 0
        assert least <= live.count(tr.id) <= 1, f"{said}: {tr.name} logged {live.count(tr.id)}x"
        assert least <= kept.count(tr.id) <= 1, \
            f"{said}: {tr.name} stored {kept.count(tr.id)} calls"


@pytest.mark.usefixtures("drained_first")
def test_a_ctrl_c_applying_a_start_or_a_value_records_it_once() -> None:
    """``flow.run()`` on the local executor: every report is applied in the main thread,
    where a Ctrl-C lands."""
    sweep = _sweep("local", "logged_local")
    after = _sweep(None, "logged_after")
    sweep.run()  # the store made, modules imported
    found: list[str] = []
    interrupted(InApplying(0, found), sweep.run)
    assert len(found) >= 40, "the harness landed nearly nowhere: it proves nothing"
    for number in range(1, len(found) + 1):
        with runs_started() as runs:
            landing = InApplying(number)
            raised = interrupted(landing, sweep.run)
        said = f"Ctrl-C at point {number} ({landing.where})"
        assert raised or landing.where is None, f"{said}: the Ctrl-C was swallowed"
        check_after(said, runs, after)  # the run ended, the store agrees, ``after`` completes
        for run in runs:
            _recorded_once(said, run)


def test_the_harness_sees_a_values_apply_as_a_c_call() -> None:
    """``_applying`` knows a logging call's apply by its type: the sink's ``list.append``."""
    assert type([].append) is _C_CALL and not isinstance([].append, MethodType)
