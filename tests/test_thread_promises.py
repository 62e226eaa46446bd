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
