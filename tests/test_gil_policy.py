"""The GIL's switch interval while flow runs go (``core/gil_policy.py``): at most
``RUN_INTERVAL`` while a run goes, given back when the last one ends, whatever the run's end;
a process's own shorter interval, or one it set during a run, is kept. Real flows; no timing."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from labloom import LocalExecutor, ThreadExecutor, flow, task
from labloom.core import gil_policy


@pytest.fixture(autouse=True)
def no_run_going() -> Iterator[float]:
    # A background run of an earlier test may still be finishing.
    deadline = time.monotonic() + 30
    while gil_policy.runs_going() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gil_policy.runs_going() == 0
    before = sys.getswitchinterval()
    yield before
    sys.setswitchinterval(before)


seen: dict[str, Any] = {}


@task
def look(x: int) -> int:
    seen["interval"] = sys.getswitchinterval()
    return x


@task
def boom(x: int) -> int:
    seen["interval"] = sys.getswitchinterval()
    raise ValueError("task failed on purpose")


@task
def set_own(x: int) -> int:
    sys.setswitchinterval(0.002)
    return x


@flow
def looking(n: int) -> None:
    look.map(range(n))


@flow
def failing() -> None:
    boom(1)


@flow
def setting() -> None:
    set_own(1)


def test_shorter_while_a_run_goes_and_restored_after(no_run_going: float) -> None:
    # before: the run's task threads took turns with the store writer every 5 ms
    assert no_run_going > gil_policy.RUN_INTERVAL
    seen.clear()
    run = looking.run(n=3, executor=ThreadExecutor(2))
    assert run.state.value == "Completed"
    assert seen["interval"] == pytest.approx(gil_policy.RUN_INTERVAL)
    assert sys.getswitchinterval() == no_run_going


def test_restored_when_the_run_fails(no_run_going: float) -> None:
    seen.clear()
    run = failing.run(executor=LocalExecutor())
    assert run.state.value == "Failed"
    assert seen["interval"] == pytest.approx(gil_policy.RUN_INTERVAL)
    assert sys.getswitchinterval() == no_run_going


def test_a_shorter_interval_of_the_process_is_kept() -> None:
    sys.setswitchinterval(gil_policy.RUN_INTERVAL / 2)
    mine = sys.getswitchinterval()
    seen.clear()
    looking.run(n=1, executor=LocalExecutor())
    assert seen["interval"] == mine
    assert sys.getswitchinterval() == mine


def test_an_interval_set_during_a_run_is_kept() -> None:
    run = setting.run(executor=LocalExecutor())
    assert run.state.value == "Completed"
    assert sys.getswitchinterval() == pytest.approx(0.002)


gate = threading.Event()


@task
def held(x: int) -> int:
    gate.wait(30)
    return x


@flow
def waiting() -> None:
    held(1)


def test_kept_until_the_last_of_two_runs_ends(no_run_going: float) -> None:
    gate.clear()
    slow = waiting.run(executor=ThreadExecutor(1), background=True)
    try:
        quick = looking.run(n=1, executor=LocalExecutor())
        assert quick.state.value == "Completed"
        assert gil_policy.runs_going() == 1
        assert sys.getswitchinterval() == pytest.approx(gil_policy.RUN_INTERVAL)
    finally:
        gate.set()
    assert slow.wait(30).value == "Completed"
    deadline = time.monotonic() + 30
    while gil_policy.runs_going() and time.monotonic() < deadline:
        time.sleep(0.01)  # the background run's thread untracks it after its end is told
    assert sys.getswitchinterval() == no_run_going
