"""A task call of the run's own process puts its logging calls straight in the run's list of
calls waiting (``core/waiting_calls.py``), not through the run's inbox: none lost nor sent
twice while the engine takes them from the list's front, none of a failed attempt kept, and a
tight loop of calls has them sent a batch at a time, asking once per batch."""

from __future__ import annotations

import contextlib
import sys
import threading

import pytest

from cli_helpers import wait_for
from labloom import ThreadExecutor, flow, log_metric, log_metrics, task
from labloom.core import experiment_values
from labloom.core.errors import ExperimentValueError
from labloom.core.inbox import Inbox
from labloom.core.sinks import SEND_AT
from labloom.core.waiting_calls import WaitingCalls


def _rows(run: object) -> list[dict[str, object]]:
    rows = run.experiments()  # type: ignore[attr-defined]
    return rows if isinstance(rows, list) else rows.to_dict("records")


def test_calls_appended_while_the_engine_sends_are_all_kept_once() -> None:
    """Four threads log in tight loops while this thread reads ``run.experiments()`` over and
    over (each read sends what waits, under the run's lock, as the batches' ends do): every
    call is kept once, in its thread's order."""
    per_task, tasks = 3 * SEND_AT, 4
    reads: list[int] = []

    @task
    def curve(x: int) -> int:
        for i in range(per_task):
            log_metric("loss", float(i), step=i)
        return x

    @flow
    def fit() -> None:
        curve.map(range(tasks))

    # Threads switched every microsecond, not every 5 ms: many more interleavings of the
    # appends and the sends in one run. (A send that cleared the list rather than cut what it
    # copied passed this test too: CPython switches threads at no point between the two.)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        run = fit.run(executor=ThreadExecutor(tasks), background=True)
        while not run.state.is_final:  # a guard below ends a run that never does
            reads.append(len(_rows(run)))
            assert len(reads) < 1_000_000, "the run never ended"
    finally:
        sys.setswitchinterval(interval)
    run.wait(120)
    assert run.state.value == "Completed", run.message
    calls = run._engine.sink.logged
    # Each task's steps once each, in the order logged (the rows keep a task run's last).
    by_task: dict[str, list[int]] = {}
    for task_run_id, kind, values, step, _ in calls:
        assert kind == "metric" and values == {"loss": float(step)}
        by_task.setdefault(task_run_id, []).append(step)
    assert sorted(by_task.values()) == [list(range(per_task))] * tasks
    assert [row["loss"] for row in _rows(run)] == [float(per_task - 1)] * tasks
    assert reads, "the flow body never read the values while the tasks logged"


def test_a_tight_loop_past_the_limit_asks_once_per_batch_while_another_thread_applies() -> None:
    """Past ``limit`` calls waiting, a logging call has them sent (an empty report through the
    inbox); while another thread holds the inbox's role and is slow to end its batch, the next
    calls ask again only ``most`` calls later, not each (a first version put a report per call
    past it: a quarter of a 100,000-child run's calls did)."""
    lock = threading.RLock()
    inbox = Inbox(lock, threading.Condition(lock), lambda: None)
    applying, release = threading.Event(), threading.Event()

    def slow() -> None:
        applying.set()
        release.wait(120)  # a guard: the test releases it

    holder = threading.Thread(target=inbox.put, args=(slow,))
    holder.start()
    try:
        assert applying.wait(60), "the other thread never applied its report"
        waiting = WaitingCalls(inbox, 10)
        waiting.asked = True  # no nudge: this test is about the limit
        for i in range(100):
            waiting.calls.append((i,))  # as ``experiment_values.record`` does
            if len(waiting.calls) >= waiting.limit:
                waiting.wake()
        # A report at 10, 20, ..., 100 waiting: ten, where a report per call made 91.
        assert len(inbox._items) == 1 + 10  # the slow report stays until applied
    finally:
        release.set()
        holder.join(60)
    wait_for(lambda: not inbox._items, 60, "the holder to apply the reports")
    waiting.sent()  # what the sink's flush does once they went out
    assert waiting.limit == 10 and not waiting.asked


def test_the_common_keyword_call_runs_one_frame_and_logs_as_record_does(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``log_metrics(a=, b=)`` of names seen before and plain numbers, in a task run of this
    process, is checked and appended in ``log_metrics``' own frame (no ``record`` frame: a
    metric per map child is issue 19's hot path), and logs the same calls as ``record``: a
    first call of new names, a NumPy-like value, a bad value (raising, nothing of it kept) take
    ``record``'s way."""
    # The names seen so far start empty: a worker process whose earlier tests logged
    # MAX_SEEN names keeps no more, and its second call would take ``record``'s way (by design).
    monkeypatch.setattr(experiment_values, "_seen_names", set())
    frames: list[list[str]] = []

    def python_frames(call: object) -> list[str]:
        seen: list[str] = []

        def profile(frame: object, event: str, _arg: object) -> None:
            if event == "call":
                seen.append(frame.f_code.co_name)  # type: ignore[attr-defined]

        sys.setprofile(profile)
        try:
            call()  # type: ignore[operator]
        finally:
            sys.setprofile(None)
        return seen

    class Scalar:  # what ``check_value`` turns into a plain number (a NumPy scalar's shape)
        dtype, shape = "float64", ()

        def item(self) -> float:
            return 2.5

    @task
    def fit(x: int) -> int:
        frames.append(python_frames(lambda: log_metrics(fresh_name_a=x, fresh_name_b=0.5)))
        frames.append(python_frames(lambda: log_metrics(fresh_name_a=x + 1, fresh_name_b=True)))
        log_metrics(fresh_name_c=Scalar())
        with contextlib.suppress(ExperimentValueError):  # nothing of it kept
            log_metrics(fresh_name_a=7, fresh_name_d=object())
        return x

    @flow
    def one() -> None:
        fit(1)

    run = one.run(executor=ThreadExecutor(1))
    assert run.state.value == "Completed", run.message
    assert "record" in frames[0]  # new names: checked one by one
    assert frames[1] == ["<lambda>", "log_metrics"]  # one frame, nothing else of Python's
    calls = [(kind, values, step) for _, kind, values, step, _ in run._engine.sink.logged]
    assert calls == [("metric", {"fresh_name_a": 1, "fresh_name_b": 0.5}, None),
                     ("metric", {"fresh_name_a": 2, "fresh_name_b": True}, None),
                     ("metric", {"fresh_name_c": 2.5}, None)]
    assert _rows(run)[0]["fresh_name_c"] == 2.5
