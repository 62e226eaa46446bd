"""Executors' reports (started, ended) are applied under the run's lock by one thread at a
time, in order and in batches (``core/inbox.py``): the task threads of a busy run no longer
queue on the run's lock (issue 21 §2)."""

from __future__ import annotations

import threading
import time

from labloom import State, ThreadExecutor, flow, log_metrics, task
from labloom.core import events as ev
from labloom.core.inbox import BATCH, NUDGE, Inbox
from labloom.executors.local import QUEUED


def _inbox(after: list[int] | None = None) -> tuple[Inbox, threading.RLock]:
    lock = threading.RLock()
    calls = after if after is not None else []
    return Inbox(lock, threading.Condition(lock), lambda: calls.append(1)), lock


def test_reports_are_applied_in_order_under_the_lock_then_after_runs() -> None:
    after: list[int] = []
    inbox, lock = _inbox(after)
    seen: list[tuple[int, bool]] = []
    for i in range(3):
        inbox.put(lambda i: seen.append((i, lock._is_owned())), i)  # type: ignore[attr-defined]
    assert seen == [(0, True), (1, True), (2, True)]
    assert after == [1, 1, 1]  # applied at once, each in the reporting thread (nobody else)


def test_a_report_while_another_thread_applies_is_applied_by_that_thread() -> None:
    inbox, _ = _inbox()
    entered, release = threading.Event(), threading.Event()
    order: list[str] = []

    def slow(name: str) -> None:
        entered.set()
        release.wait(5)
        order.append(name)

    applier = threading.Thread(target=inbox.put, args=(slow, "first"))
    applier.start()
    assert entered.wait(5)
    # Returns without applying it: the applier takes it. (Had it waited for the role, it
    # would return only once the applier gave up waiting, both reports applied.)
    inbox.put(order.append, "second")
    assert order == []
    release.set()
    applier.join(5)
    assert order == ["first", "second"]


def test_a_slow_after_never_holds_up_the_reports_of_other_threads() -> None:
    """``after`` is the launcher's ``work``, which waits while the store lags behind: the
    reports of other threads are applied meanwhile (the run's states stay current)."""
    entered, release = threading.Event(), threading.Event()

    def after() -> None:
        if not entered.is_set():
            entered.set()
            release.wait(5)

    lock = threading.RLock()
    inbox = Inbox(lock, threading.Condition(lock), after)
    applied: list[str] = []
    waiting = threading.Thread(target=inbox.put, args=(applied.append, "first"))
    waiting.start()
    assert entered.wait(5)
    inbox.put(applied.append, "second")
    assert applied == ["first", "second"]
    release.set()
    waiting.join(5)


def test_no_report_is_left_behind_by_many_threads() -> None:
    inbox, _ = _inbox()
    applied: list[tuple[int, int]] = []

    def reporter(t: int) -> None:
        for i in range(2000):
            inbox.put(applied.append, (t, i))

    threads = [threading.Thread(target=reporter, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(applied) == 6 * 2000
    for t in range(6):  # each thread's reports in the order it made them
        assert [i for tt, i in applied if tt == t] == list(range(2000))


def test_a_task_thread_goes_on_while_another_waits_for_the_runs_lock() -> None:
    """Two task runs end while the run's lock is held elsewhere (the flow body, a view, a
    cancel): one task thread waits for the lock to apply both reports, the other starts the
    next call at once. Before, each thread waited for the lock itself, to report its end and
    again to report its next start: the next call ran only when the lock was free."""
    gate, third = threading.Event(), threading.Event()

    @task
    def step(x: int) -> int:
        if x < 2:
            gate.wait(10)
        else:
            third.set()
        return x

    @flow
    def three() -> None:
        step.map(range(3))

    executor = ThreadExecutor(2)
    run = three.run(executor=executor, background=True)
    engine = run._engine
    deadline = time.monotonic() + 10
    # Both threads busy, and the third call handed to the executor (it waits in its queue).
    while sum(tr.state is State.RUNNING for tr in run.tasks) < 2 or executor.room() != QUEUED - 1:
        assert time.monotonic() < deadline, ([tr.state for tr in run.tasks], executor.room())
        time.sleep(0.01)
    with engine.lock:
        gate.set()
        ran = third.wait(5)
    assert ran, "the third call waited for the run's lock"
    run.wait(10)
    assert run.state is State.COMPLETED
    assert [tr.state for tr in run.tasks] == [State.COMPLETED] * 3


def test_a_report_that_can_wait_goes_with_the_next_one_or_within_the_nudge() -> None:
    """``add`` only appends (a logging call's values: the same task run's end follows at once
    and applies both); a timer applies it when no report follows. ``settle`` runs once the
    batch is applied, under the lock."""
    after: list[int] = []
    inbox, lock = _inbox(after)
    seen: list[str] = []
    inbox.add(seen.append, "values")
    assert seen == [] and after == []
    inbox.put(seen.append, "end")
    assert seen == ["values", "end"] and after == [1]
    settled: list[tuple[list[str], bool]] = []

    def values() -> None:
        seen.append("more")
        inbox.settle(lambda: settled.append((list(seen), lock._is_owned())))  # type: ignore[attr-defined]

    inbox.add(values)
    started = time.monotonic()
    while not settled:
        assert time.monotonic() - started < NUDGE + 10, "nothing applied what add left"
        time.sleep(0.01)
    assert settled == [(["values", "end", "more"], True)] and after == [1, 1]
    # A task logging in a tight loop: applied a batch at a time, never all kept waiting.
    many: list[int] = []
    for i in range(3 * BATCH):
        inbox.add(many.append, i)
        assert len(inbox._items) < BATCH
    assert many == list(range(3 * BATCH - len(inbox._items)))


def test_a_logging_call_never_waits_for_the_runs_lock_and_shows_while_its_task_runs() -> None:
    """A ``log_metrics`` call in a task used to apply the run's inbox itself, taking the run's
    lock, waking its waiters and launching, as much work per map child as its end (issue 19);
    now it only appends its values, which the next report applies, or a timer within
    ``NUDGE`` seconds: a long task's curve still shows live."""
    go, logged, release = threading.Event(), threading.Event(), threading.Event()

    @task
    def long(x: int) -> int:
        go.wait(10)
        log_metrics(loss=0.5, step=0)
        logged.set()
        release.wait(10)
        return x

    @flow
    def one() -> None:
        long(1)

    run = one.run(executor=ThreadExecutor(2), background=True)
    seen: list[ev.Event] = []
    run.subscribe(seen.extend)
    deadline = time.monotonic() + 10
    while not [tr for tr in run.tasks if tr.state is State.RUNNING]:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with run._engine.lock:
        go.set()
        went_on = logged.wait(5)
    assert went_on, "log_metrics waited for the run's lock"
    try:
        while not [e for e in seen if isinstance(e, ev.ExperimentCalls)]:
            assert time.monotonic() < deadline + 5, "the values did not show while the task ran"
            time.sleep(0.02)
        rows = run.experiments()  # a DataFrame with pandas, else a list of dicts
        losses = [r["loss"] for r in rows] if isinstance(rows, list) else list(rows["loss"])
        assert not release.is_set() and losses == [0.5]
    finally:
        release.set()
    run.wait(10)
    calls = [call for e in seen if isinstance(e, ev.ExperimentCalls) for call in e.calls]
    assert [(kind, values, step) for _, kind, values, step, _ in calls] == [
        ("metric", {"loss": 0.5}, 0)]
