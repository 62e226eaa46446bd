"""A cancelled call's late start and end count only for the (rerun, attempt) that launched it
(session 37): ``run.cancel()`` leaves a running call running, ``run.retry()`` launches its task
run again from attempt 1, and the old call, ending meanwhile, was taken as the rerun's: the
task run showed Completed with a duration of microseconds, the flow ended without waiting for
the rerun's call, and on Dask a late start set the rerun's start back."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from labloom import flow, task
from labloom.core import sink_registry
from labloom.core.attempt import TaskCall
from labloom.executors.dask_events import Dispatcher
from labloom.executors.dask_messages import Columns


def _wait_for(done: Any, what: str, seconds: float = 30) -> None:
    """Polls a condition another process makes true (a file): no event crosses processes."""
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"{what} never came"
        time.sleep(0.01)


def _on_stale_end(run: Any) -> threading.Event:
    """Set once the run's engine applied an end report of the first run's attempt 1 (the
    cancelled call's): wraps ``Launcher.outcome``, which ``call_reports.Done`` reads from its
    launcher at each report."""
    launcher = run._engine.launcher
    applied, outcome = threading.Event(), launcher.outcome

    def watched(tr: Any, attempt: int, *rest: Any) -> None:
        outcome(tr, attempt, *rest)
        if attempt == 1 and (len(rest) < 2 or rest[0] == 0):
            applied.set()

    launcher.outcome = watched
    return applied


class _TwoCalls:
    """A task's calls: the first (the run's, cancelled while it runs) and the second (the
    rerun's) each run until the test lets it go; ``old_end`` makes the first one's outcome."""

    def __init__(self, old_end: Callable[[], str]) -> None:
        self.old_end = old_end
        self.old_running, self.rerun_running = threading.Event(), threading.Event()
        self.release_old, self.release_rerun = threading.Event(), threading.Event()
        self.times: list[float] = []  # when each call began

    def __call__(self) -> str:
        self.times.append(time.time())
        if len(self.times) == 1:
            self.old_running.set()
            assert self.release_old.wait(30)  # cancelled and rerun meanwhile: it runs on
            return self.old_end()
        self.rerun_running.set()
        assert self.release_rerun.wait(30)
        return "new"


def _lone_task_flow(calls: _TwoCalls) -> Any:
    """A flow of one task run making ``calls``, returning its result."""

    @task
    def train() -> str:
        return calls()

    @flow
    def retrained() -> str:
        return train()

    return retrained


def _rerun_while_the_old_call_runs(retrained: Any, calls: _TwoCalls) -> Any:
    """The run on threads, cancelled while its first call runs, then retried: returned once
    the rerun's call runs, the old one still running."""
    run = retrained.run(executor="threads", background=True)
    assert calls.old_running.wait(30)
    run.cancel()
    run.wait()
    assert run.state.value == "Cancelled"
    run.retry(background=True)
    assert calls.rerun_running.wait(30)
    return run


def test_a_cancelled_threads_call_ending_during_the_rerun_leaves_the_rerun_running() -> None:
    """The old call ends while the rerun's call runs: the task run stays Running and the run
    waits; then the rerun's own end completes it, with its own result, start and end."""
    calls = _TwoCalls(lambda: "old")
    seen: list[str] = []

    @task
    def train() -> str:
        return calls()

    @task
    def report(model: str) -> str:
        seen.append(model)
        return model

    @flow
    def retrained() -> str:
        return report(train())

    run = _rerun_while_the_old_call_runs(retrained, calls)
    stale_end = _on_stale_end(run)
    calls.release_old.set()
    assert stale_end.wait(30)  # the old call's end is in, and dropped
    tr = next(t for t in run.tasks if t.name == "train")
    assert tr.state.value == "Running" and run.state.value == "Running"
    assert not run._engine.finished.is_set() and seen == []
    released_at = time.time()
    calls.release_rerun.set()
    run.wait()
    assert run.state.value == "Completed" and tr.state.value == "Completed"
    assert run.result() == "new" and seen == ["new"]
    # The rerun's own start and end: after the old call's, and after its call was let go.
    rerun_began = calls.times[1]
    assert tr.started is not None and tr.ended is not None
    assert calls.times[0] < tr.started <= rerun_began and tr.ended >= released_at
    assert tr.duration is not None and tr.duration >= released_at - rerun_began


def test_a_cancelled_threads_call_failing_during_the_rerun_does_not_fail_it() -> None:
    """The old call raises after the relaunch: its failure is not the rerun's."""

    def fail() -> str:
        raise ValueError("the old call's failure")

    calls = _TwoCalls(fail)
    run = _rerun_while_the_old_call_runs(_lone_task_flow(calls), calls)
    stale_end = _on_stale_end(run)
    calls.release_old.set()
    assert stale_end.wait(30)
    [tr] = run.tasks
    assert tr.state.value == "Running" and tr.error is None
    calls.release_rerun.set()
    run.wait()
    assert run.state.value == "Completed" and run.result() == "new"


def test_a_stale_start_report_after_the_relaunch_changes_nothing() -> None:
    """A start of the first run's attempt 1 arriving while the rerun's attempt 1 runs (a Dask
    worker's message on its own time): it set the rerun's start back to the old call's."""
    calls = _TwoCalls(lambda: "old")
    run = _rerun_while_the_old_call_runs(_lone_task_flow(calls), calls)
    [tr] = run.tasks
    rerun_start = tr.started
    assert rerun_start is not None and rerun_start > calls.times[0]
    sink = run._engine.sink
    sink.task_started(run.id, tr.id, calls.times[0], 1, "the old thread", 0)
    # The old call's key, from a stored result (on Dask a worker's message, late as well).
    sink.task_keyed(run.id, tr.id, 1, "an old key", None, "cached result", 0)
    # Applied in order with the run's reports: the old call's end after it is dropped too.
    stale_end = _on_stale_end(run)
    calls.release_old.set()
    assert stale_end.wait(30)
    assert tr.started == rerun_start and tr.worker != "the old thread"
    assert tr.cache_key != "an old key"
    calls.release_rerun.set()
    run.wait()
    assert run.state.value == "Completed" and run.result() == "new"
    assert tr.started == rerun_start and tr.state.value == "Completed"  # not Cached


def test_dask_times_of_a_rerun_are_its_own_whatever_the_order_of_the_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker's ends, keyed by task run and attempt alone: the cancelled call's end
    arriving after the rerun's took its place, and the rerun's duration was the old call's."""
    dispatcher = Dispatcher()
    # Ends are kept while their run's engine is here (after, nobody waits for them).
    monkeypatch.setitem(sink_registry._local_sinks, "r1", object())
    rerun = TaskCall(print, "train", "r1", "r1.1", attempt=1, rerun=1)
    dispatcher._route("r1", [["e", "r1.1", 1, 50.0, 60.0, True, 1],
                             ["e", "r1.1", 1, 10.0, 61.0, True, 0]])  # the old call's, late
    assert dispatcher.ended(rerun) == (50.0, 60.0)
    # A chunk's children: their ends packed, each with its rerun.
    children = [TaskCall(print, f"train[{i}]", "r1", f"r1.{i}", attempt=1, rerun=1)
                for i in range(3)]
    new, old = Columns(), Columns()
    for i in range(3):
        new.ended(f"r1.{i}", 1, 50.0 + i, 60.0 + i, True, 1)
        old.ended(f"r1.{i}", 1, 10.0, 61.0, True, 0)
    dispatcher._route("r1", new.around([]) + old.around([]))
    assert dispatcher.ended_all(children) == [(50.0 + i, 60.0 + i) for i in range(3)]


def test_dask_a_cancelled_call_ending_during_the_rerun_leaves_the_rerun_its_own(
    dask_cluster: Any, tmp_path: Path
) -> None:
    """On a real LocalCluster: the cancelled call runs on in its worker and ends while the
    rerun's call runs (its end message arrives), and a late start of it comes too; the rerun's
    task run stays Running, then completes with its own result, start and end. The times of
    the cancelled call's end, which nobody pops, go with the run's end: kept until the
    executor closed, they grew the dispatcher's for as long as a kernel cancelled runs."""
    from distributed import Client

    from labloom import DaskExecutor
    from labloom.executors.dask_events import topic

    old_running, release_old = tmp_path / "old-running", tmp_path / "release-old"
    rerun_running, release_rerun = tmp_path / "rerun-running", tmp_path / "release-rerun"

    @task
    def train() -> str:
        if not old_running.exists():
            old_running.write_text(str(time.time()))
            _wait_for(release_old.exists, "release of the old call")
            return "old"
        rerun_running.write_text(str(time.time()))
        _wait_for(release_rerun.exists, "release of the rerun")
        return "new"

    @flow
    def retrained() -> str:
        return train()

    executor = DaskExecutor(cluster=dask_cluster)
    run = retrained.run(executor=executor, background=True)
    _wait_for(old_running.exists, "the old call")
    [tr] = run.tasks
    _wait_for(lambda: tr.started is not None, "the old call's start")
    old_start = tr.started
    cancelled_at = time.time()
    run.cancel()
    run.wait()
    assert run.state.value == "Cancelled"
    dispatcher = run._engine.executor.dispatcher
    route, old_end = dispatcher._route, threading.Event()

    def watched(run_id: str, batch: list[list[Any]]) -> None:
        route(run_id, batch)
        if any(m[0] == "e" and m[1] == tr.id and (len(m) < 7 or m[6] == 0) for m in batch):
            old_end.set()

    dispatcher._route = watched
    run.retry(background=True)
    _wait_for(rerun_running.exists, "the rerun's call")
    _wait_for(lambda: tr.state.value == "Running", "the rerun's start")
    rerun_start = tr.started
    assert rerun_start is not None and old_start is not None and rerun_start > cancelled_at
    release_old.touch()
    assert old_end.wait(30)  # the old call's end is in
    with Client(dask_cluster, set_as_default=False) as client:
        client.log_event(topic(run.id), [
            ["s", tr.id, old_start, 1, "old lane", 0],  # a late start of the old call
            ["l", tr.id, logging.INFO, time.time(), "after the late start"],
        ])
        _wait_for(lambda: any("after the late" in r.text for r in run.logs("train")),
                  "the late start")
    assert tr.state.value == "Running" and run.state.value == "Running"
    assert tr.started == rerun_start
    released_at = time.time()
    release_rerun.touch()
    run.wait()
    assert run.state.value == "Completed" and run.result() == "new"
    assert tr.started == rerun_start and tr.ended is not None and tr.ended >= released_at
    assert tr.duration is not None
    assert tr.duration >= released_at - float(rerun_running.read_text())
    _delivered(dispatcher)  # what the run's end queued there (``Dispatcher.forget``)
    assert not _times_of(run.id, dispatcher)
    # An end of the run that still comes (the scheduler forwards the topic's events until
    # it takes the unsubscription) is kept no more: its run's engine is gone.
    dispatcher._route(run.id, [["e", tr.id, 1, old_start, time.time(), True, 1]])
    assert not _times_of(run.id, dispatcher)


def _delivered(dispatcher: Dispatcher) -> None:
    """Returns once the dispatcher delivered what was queued before."""
    through = threading.Event()
    dispatcher.put(through.set)
    assert through.wait(30)


def _times_of(run_id: str, dispatcher: Dispatcher) -> list[tuple[str, int, int]]:
    return [key for key in dispatcher.times if key[0].startswith(f"{run_id}.")]
