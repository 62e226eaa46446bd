"""What the thread executor promises about ``resources=`` and timeouts (session 44)."""

from __future__ import annotations

import logging

import pytest

from labloom import ThreadExecutor, flow, task
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
    process_log._sayer.wait_done(10)
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
    process_log._sayer.wait_done(10)
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
    # Long enough for a retry that did not wait to have started (it starts 0.3 s in).
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
