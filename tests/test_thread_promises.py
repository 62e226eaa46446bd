"""What the thread executor promises about ``resources=`` and timeouts (session 44)."""

from __future__ import annotations

import logging

import pytest

from cli_helpers import wait_for
from labloom import State, ThreadExecutor, flow, task
from labloom.core import process_log

pytestmark = pytest.mark.timeout(120)


@task(resources={"GPU": 1})
def on_gpu(i: int) -> int:
    return i


@flow
def gpu_sweep() -> list[int]:
    first = on_gpu.map(range(3))
    return on_gpu.map(first)  # type: ignore[return-value]


def test_resources_on_threads_are_said_once_to_be_ignored(caplog: pytest.LogCaptureFixture):
    """Before: nothing said; three calls asking the one GPU ran at once."""
    caplog.set_level(logging.WARNING, logger="labloom")
    run = gpu_sweep.run(executor=ThreadExecutor(4))
    assert run.result() == [0, 1, 2]
    assert process_log._sayer.wait_done(60)  # a guard: what was said before is out
    said = [r.getMessage() for r in caplog.records if "cannot honour" in r.getMessage()]
    assert len(said) == 1, said  # one task, six calls, two maps: said once
    assert "task 'on_gpu' asks for resources GPU=1," in said[0]
    assert "threads executor" in said[0] and "DaskExecutor" in said[0]
    in_logs = [line.text for line in run.logs() if "cannot honour" in line.text]
    assert len(in_logs) == 1


def test_resources_on_the_local_executor_are_not_said(caplog: pytest.LogCaptureFixture):
    """It runs one call at a time: any amount one call may take is honoured."""
    caplog.set_level(logging.WARNING, logger="labloom")
    assert gpu_sweep.run(executor="local").result() == [0, 1, 2]
    assert process_log._sayer.wait_done(60)  # a guard: what was said before is out
    assert not [r for r in caplog.records if "cannot honour" in r.getMessage()]


def test_the_retry_of_a_timed_out_call_waits_for_its_slot_until_the_call_returned(executor):
    """With a limit of 1, the retry ran beside the first attempt's call, still running."""
    import threading
    import time

    import labloom

    labloom.limits.set("seat", 1)
    release, first_returned, calls = threading.Event(), threading.Event(), []

    @task(timeout=0.3, retries=1, retry_delay=0, tags=["seat"])
    def licensed() -> bool:
        calls.append(1)
        if len(calls) == 1:
            release.wait(60)
            first_returned.set()
        return first_returned.is_set()

    @flow
    def once() -> bool:
        return licensed()  # type: ignore[return-value]

    run = once.run(executor=executor, background=True)
    wait_for(lambda: calls, 60, "the first attempt's call")  # a guard
    # Long enough for a retry that did not wait to have started (it starts 0.3 s in); a
    # retry that started before the release also returns False (checked below) however late.
    end = time.monotonic() + 3
    while len(calls) < 2 and time.monotonic() < end:
        time.sleep(0.02)
    started_before_release = len(calls)
    release.set()
    assert run.wait(timeout=60)
    assert started_before_release == 1
    assert run.result() is True
    (tr,) = run.tasks
    assert tr.attempts == 2


def test_a_cancelled_call_on_threads_keeps_its_slot_until_it_returned():
    """Cancelled while its call ran (a thread cannot be stopped), a task run gave its slot back
    at once, and with a limit of 1 the next run's call ran beside the one still running. (On
    the local executor the cancelled run itself waits for the call, in its own thread.)"""
    import threading
    import time

    import labloom

    labloom.limits.set("licence", 1)
    release, first_returned, saw = threading.Event(), threading.Event(), []

    @task(tags=["licence"])
    def holding() -> None:
        release.wait(60)
        first_returned.set()

    @task(tags=["licence"])
    def next_user() -> None:
        saw.append(first_returned.is_set())

    @flow
    def first() -> None:
        holding()

    @flow
    def second() -> None:
        next_user()

    run = first.run(executor="threads", background=True)
    end = time.monotonic() + 60
    while not any(tr.state is State.RUNNING for tr in run.tasks) and time.monotonic() < end:
        time.sleep(0.02)
    run.cancel()
    assert run.wait(timeout=60) and run.state is State.CANCELLED
    later = second.run(executor="threads", background=True)
    # Its task run is there, waiting for the slot (a guard: a loaded machine may take seconds
    # to start the run). A call that ran without the slot saw False, checked below.
    wait_for(lambda: later.state is State.RUNNING and later.tasks, 60, "the next run's task")
    assert saw == []
    release.set()
    assert later.wait(timeout=60)
    assert later.state is State.COMPLETED and saw == [True]


@pytest.mark.parametrize("ended", ["timed out", "cancelled"])
def test_a_rerun_while_the_old_call_runs_on_takes_its_slot_over(ended: str):
    """The old call's end gave back the slot under the task run's id, which the rerun stood
    in line for: its place was dropped with it, and the rerun would have waited for good."""
    import threading
    import time

    import labloom

    labloom.limits.set("gpu", 1)
    release, calls = threading.Event(), []

    @task(tags=["gpu"], timeout=0.3 if ended == "timed out" else None)
    def train() -> int:
        calls.append(1)
        if len(calls) == 1:
            release.wait(60)
        return len(calls)

    @flow
    def training() -> int:
        return train()  # type: ignore[return-value]

    @flow
    def after() -> int:
        return train()  # type: ignore[return-value]

    run = training.run(executor="threads", background=True)
    if ended == "cancelled":
        end = time.monotonic() + 60
        while not calls and time.monotonic() < end:
            time.sleep(0.02)
        run.cancel()
    run.wait(timeout=60)
    assert run.state in (State.FAILED, State.CANCELLED)
    run.retry(background=True)
    assert run.wait(timeout=30) is State.COMPLETED
    assert run.result() == 2
    release.set()
    # The old call's end gave nothing back twice: the next run gets the slot.
    assert after.run(executor="threads", background=True).wait(timeout=30) is State.COMPLETED


def test_cancelled_while_a_retry_waits_for_the_timed_out_call_the_slot_is_not_lost():
    """The slot was kept for a call's end that no report would say: held for good."""
    import threading
    import time

    import labloom

    labloom.limits.set("quota", 1)
    release, calls = threading.Event(), []

    @task(tags=["quota"], timeout=0.3, retries=1, retry_delay=0)
    def fetch() -> int:
        calls.append(1)
        release.wait(60)
        return 1

    @task(tags=["quota"])
    def later_use() -> int:
        return 2

    @flow
    def fetching() -> int:
        return fetch()  # type: ignore[return-value]

    @flow
    def using() -> int:
        return later_use()  # type: ignore[return-value]

    run = fetching.run(executor="threads", background=True)
    end = time.monotonic() + 60
    while not any(tr.state is State.RETRYING for tr in run.tasks) and time.monotonic() < end:
        time.sleep(0.02)
    run.cancel()
    assert run.wait(timeout=60) is State.CANCELLED
    release.set()
    assert using.run(executor="threads", background=True).wait(timeout=30) is State.COMPLETED
