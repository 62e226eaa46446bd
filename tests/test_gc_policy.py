"""The cyclic collector's settings while flow runs go (``core/gc_policy.py``): applied while a
run goes, and given back when the last one ends, whatever the run's end. Real flows, real
collections; no timing."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from labloom import LocalExecutor, ThreadExecutor, flow, task
from labloom.core import gc_policy
from labloom.core.executor import Executor


@pytest.fixture(autouse=True)
def no_run_going() -> Iterator[tuple[int, int, int]]:
    # A background run of an earlier test may still be finishing.
    deadline = time.monotonic() + 30
    while gc_policy.runs_going() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gc_policy.runs_going() == 0
    before = gc.get_threshold()
    yield before
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0 or not _ours_installed()


def _ours_installed() -> bool:
    return any(getattr(cb, "__module__", "") == gc_policy.__name__ for cb in gc.callbacks)


seen: dict[str, Any] = {}


@task
def look(x: int) -> int:
    seen["threshold"] = gc.get_threshold()
    seen["installed"] = _ours_installed()
    gc.collect()  # a full collection: what survived it is frozen while the run goes
    seen["frozen"] = gc.get_freeze_count()
    return x


@task
def boom(x: int) -> int:
    seen["threshold"] = gc.get_threshold()
    raise ValueError("task failed on purpose")


@flow
def looking(n: int) -> None:
    look.map(range(n))


@flow
def failing() -> None:
    boom(1)


@flow
def body_fails() -> None:
    seen["threshold"] = gc.get_threshold()
    raise RuntimeError("the body failed on purpose")


def test_applied_while_a_run_goes_and_restored_after(no_run_going: tuple[int, int, int]) -> None:
    seen.clear()
    run = looking.run(n=3, executor=ThreadExecutor(2))
    assert run.state.value == "Completed"
    assert seen["threshold"][0] >= gc_policy.RUN_THRESHOLD
    assert seen["threshold"][1:] == no_run_going[1:]
    assert seen["installed"]
    assert seen["frozen"] > 0  # survivors of the task's full collection
    assert gc.get_threshold() == no_run_going
    assert gc.get_freeze_count() == 0  # unfrozen when the run ended
    assert not _ours_installed()


@pytest.mark.parametrize("which", ["task", "body"])
def test_restored_when_the_run_fails(which: str, no_run_going: tuple[int, int, int]) -> None:
    seen.clear()
    if which == "task":
        run = failing.run(executor=LocalExecutor())
        assert run.state.value == "Failed"
    else:
        with pytest.raises(RuntimeError, match="on purpose"):
            body_fails()
    assert seen["threshold"][0] >= gc_policy.RUN_THRESHOLD
    assert gc.get_threshold() == no_run_going
    assert gc.get_freeze_count() == 0
    assert not _ours_installed()


class _WontStart(LocalExecutor):
    def start(self) -> None:
        raise OSError("no cluster here")


def test_restored_when_the_executor_cannot_start(no_run_going: tuple[int, int, int]) -> None:
    executor: Executor = _WontStart()
    with pytest.raises(OSError, match="no cluster"):
        looking.run(n=1, executor=executor)
    assert gc.get_threshold() == no_run_going
    assert gc_policy.runs_going() == 0


gate = threading.Event()


@task
def held(x: int) -> int:
    gate.wait(30)
    return x


@flow
def waiting() -> None:
    held(1)


def test_kept_until_the_last_of_two_runs_ends(no_run_going: tuple[int, int, int]) -> None:
    gate.clear()
    slow = waiting.run(executor=ThreadExecutor(1), background=True)
    try:
        quick = looking.run(n=1, executor=LocalExecutor())
        assert quick.state.value == "Completed"
        assert gc_policy.runs_going() == 1
        assert gc.get_threshold()[0] >= gc_policy.RUN_THRESHOLD  # the slow run still goes
    finally:
        gate.set()
    assert slow.wait(30).value == "Completed"
    assert gc.get_threshold() == no_run_going


class _Cycle:
    def __init__(self) -> None:
        self.me = self


kept: list[Any] = []


@task
def make_garbage_later(x: int) -> int:
    kept.append(_Cycle())
    gc.collect()  # the cycle is alive: frozen
    seen["ref"] = weakref.ref(kept.pop())  # now garbage, but frozen
    return x


@flow
def garbage() -> None:
    make_garbage_later(1)


def test_a_cycle_that_died_while_frozen_is_collected_once_the_run_ends() -> None:
    seen.clear()
    garbage.run(executor=LocalExecutor())
    gc.collect()
    assert seen["ref"]() is None


def test_a_process_that_froze_objects_itself_is_left_alone() -> None:
    gc.collect()
    ref = weakref.ref(_Cycle())  # garbage, but frozen below: the process's to collect
    gc.freeze()
    try:
        seen.clear()
        looking.run(n=1, executor=LocalExecutor())
        assert not seen["installed"]  # no freezing of ours on top of the process's
        gc.collect()
        assert ref() is not None  # and nothing of it unfrozen
    finally:
        gc.unfreeze()
    gc.collect()
    assert ref() is None


@task
def change_threshold(x: int) -> int:
    gc.set_threshold(1234, 11, 12)
    return x


@flow
def changing() -> None:
    change_threshold(1)


def test_thresholds_the_user_set_during_a_run_are_kept(
        no_run_going: tuple[int, int, int]) -> None:
    try:
        changing.run(executor=LocalExecutor())
        assert gc.get_threshold() == (1234, 11, 12)
    finally:
        gc.set_threshold(*no_run_going)
