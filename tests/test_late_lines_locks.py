"""labloom's own lines about a task run (``ExecutorSink.warn``: logging calls that came late,
session 38) and where they go (session 39).

Also to the process's log, through ``logging``: never while the thread holds the run's lock.
A task logging with ``logging`` holds a handler's lock (labloom's capture handler on the root
logger, or a handler the user made while tasks ran) and then takes the run's lock to keep its
line; a thread saying labloom's line under the run's lock and then waiting for that handler's
lock was the other half of a deadlock: the run never ended.

To every view, one opening while the line is said included (the replay sends the waiting
calls, and so says the line, as it is made)."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

import pytest

from labloom import ThreadExecutor, flow, log_metrics, task
from labloom.core import inbox, sinks
from labloom.core.threading_internals import held_here


def _wait_for(done: Any, what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"{what} never came"
        time.sleep(0.01)


# The line a task's record makes in its logs, through each handler that may hold it.
THROUGH = {
    "labloom's capture handler": "chatty.user: a line of the task's own",
    # Made while tasks ran, on sys.stderr: labloom's proxy, which keeps a task's lines.
    "a StreamHandler the task made": "a line of the task's own",
}


@pytest.mark.parametrize("handler", list(THROUGH))
def test_a_late_calls_line_said_while_a_task_logs_does_not_hang_the_run(
    monkeypatch: pytest.MonkeyPatch, handler: str,
) -> None:
    """A cancelled call's thread logs a metric during the rerun (late: said in its logs, by
    whichever thread applies it, holding the run's lock) while another task of the rerun
    logs with ``logging``. Both are held at the point where each holds its first lock (a
    rendezvous: only the order of events is forced, no lock is taken by the test), then go
    on: the rerun ends, and the late line is said once."""
    held_line = THROUGH[handler]
    made: list[logging.Handler] = []
    running, saying, logging_line = threading.Event(), threading.Event(), threading.Event()
    calls: list[int] = []
    chats: list[int] = []

    @task
    def train() -> None:
        calls.append(1)
        if len(calls) == 1:
            running.set()
            # Cancelled and rerun meanwhile, this thread runs on, until the rerun's chatty
            # task is in its handler: then its call is late, said under the run's lock.
            logging_line.wait(20)
            log_metrics(auc=0.1)
            return
        _wait_for(lambda: len(chats) == 2, "the chatty task's rerun")

    @task
    def chatty() -> None:
        chats.append(1)
        if len(chats) == 1:
            raise ValueError("rerun me")
        if handler != "labloom's capture handler":  # as logging.basicConfig() in a library
            made.append(logging.StreamHandler(sys.stderr))
            logging.getLogger().addHandler(made[0])
        logging.getLogger("chatty.user").warning("a line of the task's own")

    say_late = sinks.ExecutorSink._say_late
    task_log = sinks.ExecutorSink.task_log

    def say_late_held(self: Any, late: Any) -> None:  # the run's lock is held here
        saying.set()
        logging_line.wait(60)  # the rendezvous: both come (checked below)
        say_late(self, late)

    def task_log_held(self: Any, run_id: str, task_run_id: str, level: int, when: float,
                      text: str) -> None:
        if text == held_line:  # in that handler's emit, which holds its lock
            logging_line.set()
            saying.wait(60)
        task_log(self, run_id, task_run_id, level, when, text)

    @flow
    def retrained() -> None:
        train()
        chatty()

    executor = ThreadExecutor(max_workers=4)  # the old call keeps its thread
    try:
        run = retrained.run(executor=executor, background=True)
        assert running.wait(20)
        _wait_for(lambda: any(tr.state.value == "Failed" for tr in run.tasks), "chatty's end")
        run.cancel()
        run.wait()
        assert run.state.value == "Cancelled"
        monkeypatch.setattr(sinks.ExecutorSink, "_say_late", say_late_held)
        monkeypatch.setattr(sinks.ExecutorSink, "task_log", task_log_held)
        run.retry(background=True)
        assert run.wait(timeout=120).value == "Completed"  # a guard
        assert saying.is_set() and logging_line.is_set()  # both were held as meant
        assert held_line in [line.text for line in run.logs("chatty")]
        assert sum("came after" in line.text for line in run.logs("train")) == 1
    finally:
        logging_line.set()
        executor.shutdown()
        for made_handler in made:
            logging.getLogger().removeHandler(made_handler)


def test_held_here_tells_the_thread_holding_a_run_s_lock_from_the_others() -> None:
    # ``warn``'s test of whether to say its line now (``threading_internals.held_here``):
    # a private name of ``threading``, checked here on this Python.
    lock = threading.RLock()
    assert not held_here(lock)
    seen: list[bool] = []
    with lock, lock:
        assert held_here(lock)
        other = threading.Thread(target=lambda: seen.append(held_here(lock)))
        other.start()
        other.join()
    assert seen == [False] and not held_here(lock)


def test_a_view_subscribing_while_a_late_call_waits_is_replayed_the_line_saying_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A view opening on a running run is replayed the run so far (``RunEngine.events``),
    whose calls still waiting go out first, dropping the late ones with a line in their
    task run's logs. That line, said while the replay was made, was neither in the replay
    (the log lines were read before) nor sent to the view (subscribed after): the view never
    showed it, the store (subscribed from the start) did."""
    monkeypatch.setattr(sinks, "SEND_EVERY", 3600.0)  # calls wait once a batch of them went out
    monkeypatch.setattr(inbox, "NUDGE", 5.0)  # and the nudge that sends them is seconds away
    running, go, logged, release = (threading.Event() for _ in range(4))
    calls: list[int] = []
    others: list[int] = []

    @task
    def train() -> None:
        calls.append(1)
        if len(calls) == 1:
            running.set()
            go.wait(20)  # cancelled and rerun meanwhile: this thread runs on
            log_metrics(auc=0.1)  # late, and left waiting with its batch
            return
        log_metrics(auc=0.9)
        logged.set()
        assert release.wait(20)  # the rerun goes on while the view subscribes

    @task
    def other() -> None:
        others.append(1)
        if len(others) == 1:
            raise ValueError("rerun me")
        assert logged.wait(20)  # its end's batch sends train's auc: the quiet window starts

    @flow
    def retrained() -> None:
        train()
        other()

    executor = ThreadExecutor(max_workers=4)  # the old call keeps its thread
    try:
        run = retrained.run(executor=executor, background=True)
        assert running.wait(20)
        _wait_for(lambda: any(tr.state.value == "Failed" for tr in run.tasks), "other's end")
        run.cancel()
        run.wait()
        launcher = run._engine.launcher
        stale_end, outcome = threading.Event(), launcher.outcome

        def watched(tr: Any, attempt: int, rerun: int, *rest: Any) -> None:
            outcome(tr, attempt, rerun, *rest)
            if rerun == 0:
                stale_end.set()  # the late call, put before it, is applied: it waits

        launcher.outcome = watched
        run.retry(background=True)
        _wait_for(lambda: [tr.state.value for tr in run.tasks if tr.name == "other"]
                  == ["Completed"], "other's rerun")
        go.set()
        assert stale_end.wait(20)
        seen: list[Any] = []
        run.subscribe(seen.extend, replay=True)
        release.set()
        assert run.wait(timeout=30).value == "Completed"
        [said] = [line.text for line in run.logs("train") if "came after" in line.text]
        _wait_for(lambda: any(getattr(e, "text", "") == said for e in seen),
                  "the late call's line in the view", seconds=10)
    finally:
        go.set()
        release.set()
        executor.shutdown()


def test_a_line_said_later_reaches_stderr_when_the_process_exits_at_once() -> None:
    # The CLI exits as its run ends: a line queued for the saying thread (a daemon) was lost
    # when the process ended first (logging's own exit waits only for a line being said). A
    # slow handler makes the exit come first on any machine.
    script = """
import logging, sys, time
class Slow(logging.StreamHandler):
    def emit(self, record):
        time.sleep(0.3)
        super().emit(record)
logging.getLogger("labloom").addHandler(Slow(sys.stderr))
from labloom.core.process_log import warn_later
for n in range(3):
    warn_later("[labloom] %s", f"line {n} said late")
"""
    import subprocess

    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert [f"[labloom] line {n} said late" in out.stderr for n in range(3)] == [True] * 3
