"""Executors' reports (started, ended) are applied under the run's lock by one thread at a
time, in order and in batches (``core/inbox.py``): the task threads of a busy run no longer
queue on the run's lock (issue 21 §2)."""

from __future__ import annotations

import threading
import time

import pytest

import labloom
from cli_helpers import wait_for
from labloom import State, ThreadExecutor, flow, log_metrics, task
from labloom.core import events as ev
from labloom.core import inbox as inbox_module
from labloom.core.inbox import BATCH, Inbox
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
        release.wait(120)
        order.append(name)

    applier = threading.Thread(target=inbox.put, args=(slow, "first"))
    applier.start()
    assert entered.wait(60)
    # Returns without applying it: the applier takes it. (Had it waited for the role, it
    # would return only once the applier gave up waiting, both reports applied.)
    inbox.put(order.append, "second")
    assert order == []
    release.set()
    applier.join(60)
    assert order == ["first", "second"]


def test_a_slow_after_never_holds_up_the_reports_of_other_threads() -> None:
    """``after`` is the launcher's ``work``, which waits while the store lags behind: the
    reports of other threads are applied meanwhile (the run's states stay current)."""
    entered, release = threading.Event(), threading.Event()

    def after() -> None:
        if not entered.is_set():
            entered.set()
            release.wait(120)

    lock = threading.RLock()
    inbox = Inbox(lock, threading.Condition(lock), after)
    applied: list[str] = []
    waiting = threading.Thread(target=inbox.put, args=(applied.append, "first"))
    waiting.start()
    assert entered.wait(60)
    inbox.put(applied.append, "second")
    assert applied == ["first", "second"]
    release.set()
    waiting.join(60)


def test_after_follows_a_batch_only_while_what_it_launches_from_is_not_empty() -> None:
    """``launch_from``: a batch that leaves the launcher nothing ready nor to give back skips
    ``after`` (it would return at once); one that readies something calls it, as before."""
    after: list[int] = []
    inbox, _ = _inbox(after)
    ready: list[str] = []
    releases: list[str] = []
    inbox.launch_from(ready, releases)
    inbox.put(len, ())  # an end that readies nothing
    assert after == []
    inbox.put(ready.append, "downstream")
    assert after == [1]
    ready.clear()
    inbox.put(releases.append, "a slot")
    assert after == [1, 1]
    releases.clear()
    inbox.put(len, ())
    assert after == [1, 1]


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
            gate.wait(120)  # a guard: the test opens it
        else:
            third.set()
        return x

    @flow
    def three() -> None:
        step.map(range(3))

    executor = ThreadExecutor(2)
    run = three.run(executor=executor, background=True)
    engine = run._engine
    # Both threads busy, and the third call handed to the executor (it waits in its queue).
    wait_for(lambda: sum(tr.state is State.RUNNING for tr in run.tasks) == 2
             and executor.room() == QUEUED - 1, 60, "both threads busy, the third call queued")
    with engine.lock:
        gate.set()
        # Held until it ran: a third call waiting for the lock would never run (a guard).
        ran = third.wait(60)
    assert ran, "the third call waited for the run's lock"
    run.wait(60)
    assert run.state is State.COMPLETED
    assert [tr.state for tr in run.tasks] == [State.COMPLETED] * 3


def test_a_report_that_can_wait_goes_with_the_next_one_or_within_the_nudge() -> None:
    """``add`` only appends (a logging call's values: the same task run's end follows at once
    and applies both); a timer applies it when no report follows. ``send_after``'s call runs
    once a batch that filled its list is applied, under the lock, and only then."""
    after: list[int] = []
    inbox, lock = _inbox(after)
    seen: list[str] = []
    settled: list[tuple[list[str], bool]] = []
    filled: list[str] = []
    sent = threading.Event()

    def send() -> None:
        settled.append((list(seen), lock._is_owned()))  # type: ignore[attr-defined]
        filled.clear()
        sent.set()

    inbox.send_after(filled, send)
    inbox.add(seen.append, "values")
    assert seen == [] and after == []
    inbox.put(seen.append, "end")
    assert seen == ["values", "end"] and after == [1]
    assert settled == []  # nothing filled: nothing sent

    def values() -> None:
        seen.append("more")
        filled.append("more")

    inbox.add(values)
    # No report follows: only the nudge can apply it (the wait is a guard, not a bound).
    assert sent.wait(120), "nothing applied what add left"
    # Values free no slot: the timer's batch launches nothing.
    assert settled == [(["values", "end", "more"], True)] and after == [1]
    # A task logging in a tight loop: applied a batch at a time, never all kept waiting.
    many: list[int] = []
    for i in range(3 * BATCH):
        inbox.add(many.append, i)
        assert len(inbox._items) < BATCH
    assert many == list(range(3 * BATCH - len(inbox._items)))


def test_what_a_send_left_waiting_goes_at_the_nudge_without_another_report() -> None:
    """``send`` may leave what a batch filled for later (the sink's calls go out together,
    session 35) if it asks for a nudge: the nudge then calls ``flush``, under the lock, with
    nothing else to apply; and not when nothing waits."""
    inbox, lock = _inbox()
    filled: list[str] = []
    flushed: list[tuple[list[str], bool]] = []

    def send() -> None:
        inbox.nudge()  # left waiting

    was_flushed = threading.Event()

    def flush() -> None:
        flushed.append((list(filled), lock._is_owned()))  # type: ignore[attr-defined]
        filled.clear()
        was_flushed.set()

    inbox.send_after(filled, send, flush)
    inbox.put(filled.append, "values")
    assert filled == ["values"] and flushed == []
    # No report follows: only the nudge can send it (the wait is a guard, not a bound).
    assert was_flushed.wait(120), "nothing sent what send left"
    assert flushed == [(["values"], True)]
    inbox._nudged()  # as the nudging thread does, with nothing waiting
    assert flushed == [(["values"], True)]


def test_nudges_start_no_thread_each(monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``add`` left is applied within ``NUDGE`` seconds by one thread for the process,
    not a ``threading.Timer`` per nudge: starting one held the logging task thread until the
    new thread ran (20 ms on average among four busy task threads, issue 19)."""
    inboxes = [_inbox()[0], _inbox()[0]]
    inboxes[0].add(lambda: None)  # the process's nudging thread is running from here on
    started: list[threading.Thread] = []
    start = threading.Thread.start

    def counted(thread: threading.Thread) -> None:
        started.append(thread)
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", counted)
    applied: list[tuple[int, int]] = []
    for round_ in range(3):
        for i, inbox in enumerate(inboxes):
            inbox.add(applied.append, (round_, i))
        # No report follows: only the nudge applies them (the wait is a guard, not a bound).
        wait_for(lambda wanted=2 * (round_ + 1): len(applied) == wanted, 120,
                 "the nudge to apply what add left")
    assert sorted(applied) == [(r, i) for r in range(3) for i in range(2)]
    assert started == []


def test_values_past_a_batch_while_another_thread_applies_are_applied_by_that_thread() -> None:
    """Past a batch's worth, ``add`` leaves what waits to the thread applying when one does
    (a busy run's reports wait a batch behind most of the time): none is left behind."""
    inbox, _ = _inbox()
    entered, release = threading.Event(), threading.Event()

    def slow() -> None:
        entered.set()
        release.wait(120)  # a guard: the test releases it

    holder = threading.Thread(target=inbox.put, args=(slow,))
    holder.start()
    assert entered.wait(60)
    applied: list[int] = []
    for i in range(BATCH + 10):
        inbox.add(applied.append, i)
    assert applied == []  # this thread never waited for the role
    release.set()
    holder.join(60)
    assert applied == list(range(BATCH + 10)) and not inbox._items


def test_a_logging_call_never_waits_for_the_runs_lock_and_shows_while_its_task_runs() -> None:
    """A ``log_metrics`` call in a task used to apply the run's inbox itself, taking the run's
    lock, waking its waiters and launching, as much work per map child as its end (issue 19);
    now it only appends its values, which the next report applies, or a timer within
    ``NUDGE`` seconds: a long task's curve still shows live."""
    go, logged, release = threading.Event(), threading.Event(), threading.Event()

    @task
    def long(x: int) -> int:
        go.wait(120)  # guards: the test opens both
        log_metrics(loss=0.5, step=0)
        logged.set()
        release.wait(120)
        return x

    @flow
    def one() -> None:
        long(1)

    run = one.run(executor=ThreadExecutor(2), background=True)
    seen: list[ev.Event] = []
    run.subscribe(seen.extend)
    wait_for(lambda: [tr for tr in run.tasks if tr.state is State.RUNNING], 60, "long() to run")
    with run._engine.lock:
        go.set()
        # A call waiting for the lock would not log until the test let it go (a guard).
        went_on = logged.wait(60)
    assert went_on, "log_metrics waited for the run's lock"
    try:
        # The task is held until the values show: they came while it ran, not with its end.
        wait_for(lambda: [e for e in seen if isinstance(e, ev.ExperimentCalls)], 120,
                 "the values to show while the task ran")
        rows = run.experiments()  # a DataFrame with pandas, else a list of dicts
        losses = [r["loss"] for r in rows] if isinstance(rows, list) else list(rows["loss"])
        assert [tr.state for tr in run.tasks] == [State.RUNNING] and losses == [0.5]
    finally:
        release.set()
    run.wait(60)
    calls = [call for e in seen if isinstance(e, ev.ExperimentCalls) for call in e.calls]
    assert [(kind, values, step) for _, kind, values, step, _ in calls] == [
        ("metric", {"loss": 0.5}, 0)]


def test_after_follows_what_may_launch_never_starts_alone() -> None:
    after: list[int] = []
    inbox, _ = _inbox(after)
    applied: list[str] = []
    inbox.note(applied.append, "started")
    assert after == []  # nothing to launch after a start
    inbox.put(applied.append, "ended")
    inbox.put_all([(applied.append, ("ended too",))])
    assert after == [1, 1]
    assert applied == ["started", "ended", "ended too"]


def test_a_start_applied_with_an_end_still_launches() -> None:
    """A start applied by the thread of an end, and an end applied by the thread of a start
    (the role's holder applies every waiting report): ``after`` runs once for either."""
    entered, release = threading.Event(), threading.Event()
    after: list[int] = []
    inbox, _ = _inbox(after)

    def slow(name: str) -> None:
        entered.set()
        release.wait(120)

    for first, second in (("put", "note"), ("note", "put")):
        entered.clear(), release.clear()
        after.clear()
        holder = threading.Thread(target=getattr(inbox, first), args=(slow, first))
        holder.start()
        assert entered.wait(60)
        getattr(inbox, second)(lambda name: None, second)  # applied by the holder
        release.set()
        holder.join(60)
        assert after == [1], (first, second)


@pytest.mark.parametrize("logs", [False, True])
def test_a_start_leaves_the_launching_to_the_calls_end(logs: bool) -> None:
    """The thread reporting a call's start runs it next: it no longer launches first. Before,
    it launched the ready task runs the start made room for in the executor's queue (up to
    a pool's worth), and the first children of a wide map took 67-280 ms for microseconds of
    work. Here the pool's one thread is busy and its queue full when the flow body stops
    launching; in the first child, started from that queue, the room its start left is
    still there: nobody launched in between (the body waits on an event, not on the run).
    Likewise after the child logged metrics (``logs``): that report launches nothing either."""
    busy, body_done, seen = threading.Event(), threading.Event(), threading.Event()
    rooms: list[int] = []

    @task
    def hold() -> None:
        busy.wait(120)

    @task
    def child(i: int) -> int:
        if i == 0:
            if logs:
                labloom.log_metrics({"loss": 0.5})
            rooms.append(executor.room())
            seen.set()
        return i

    @flow
    def wide() -> None:
        hold.submit()
        child.map(range(QUEUED + 5))  # launched until the queue is full, the rest kept ready
        busy.set()
        body_done.wait(120)

    executor = ThreadExecutor(1)
    run = wide.run(executor=executor, background=True)
    try:
        assert seen.wait(60)
    finally:
        body_done.set()
    run.wait(30)
    assert run.state is State.COMPLETED
    assert rooms == [1], rooms  # 0: the start's thread launched one before running it


def test_an_end_is_launched_after_when_a_starting_thread_takes_the_role_meanwhile() -> None:
    """The thread of an end gives the role back with a start still waiting, and the start's
    thread takes the role before it does again: that thread applies only the start and skips
    ``after``, so the thread of the end runs it. The interleaving is made by handing the role
    over inside its release (it is too narrow to meet by chance)."""
    after: list[int] = []
    inbox, _ = _inbox(after)
    in_start, end_done = threading.Event(), threading.Event()
    ender: list[threading.Thread] = []

    class HandOver(inbox_module._Role):
        def give_back(self) -> None:
            super().give_back()
            if threading.current_thread() is ender[0] and not in_start.is_set():
                threading.Thread(target=inbox.drain).start()
                assert in_start.wait(60)  # the start's thread holds the role now

    def start(name: str) -> None:
        if name == "first":
            in_start.set()
            end_done.wait(120)

    def end(name: str) -> None:
        inbox._items.append((start, ("first",), False))  # reported meanwhile: it waits
        inbox._items.append((start, ("second",), False))

    inbox._role = HandOver()  # type: ignore[assignment]
    ender.append(threading.Thread(target=inbox.put, args=(end, "end")))
    ender[0].start()
    ender[0].join(60)
    assert after == [1]  # the end's thread launched; the start's thread never did
    end_done.set()


def test_wide_and_limited_maps_never_stall_when_only_reports_launch() -> None:
    """Only reports launch here (the flow body waits on an event, not on the run, so the
    run's own thread never launches): starts launch nothing, and every end, slot given back
    and retry still does. One map wider than the executor's queue, one two at a time on a
    tag (few children: the limiter asks the store for each waiting one at every poll), every
    seventh child of both failing its first attempt; all end, never more than two at once."""
    labloom.limits.set("inbox-db", 2)
    wide_n, limited_n = QUEUED + 200, 40
    lock = threading.Lock()
    running, peak, tried = [0], [0], set()
    stop = threading.Event()

    def once(i: object) -> None:
        with lock:
            first = i not in tried
            tried.add(i)
        if first:
            raise ValueError("first attempt")

    @task(retries=1)
    def child(i: int) -> int:
        if i % 7 == 0:
            once(i)
        return i

    @task(tags=["inbox-db"], retries=1)
    def limited(i: int) -> int:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            if i % 7 == 0:
                once(("limited", i))
            return i
        finally:
            with lock:
                running[0] -= 1

    @flow
    def both() -> None:
        child.map(range(wide_n))
        limited.map(range(limited_n))
        stop.wait(120)

    run = both.run(executor=ThreadExecutor(4), background=True)
    try:
        deadline = time.monotonic() + 60
        while (done := sum(tr.state is State.COMPLETED for tr in run.tasks)) < wide_n + limited_n:
            assert time.monotonic() < deadline, f"stalled at {done} task runs done"
            time.sleep(0.05)
    finally:
        stop.set()
    run.wait(30)
    assert run.state is State.COMPLETED
    assert peak[0] <= 2
    assert {tr.attempts for tr in run.tasks if tr.map_index is not None
            and tr.map_index % 7 == 0} == {2}
