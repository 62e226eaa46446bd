"""A Ctrl-C landing as labloom makes and starts a thread in the main thread: the thread runs, or
was never counted, never a thread object kept that never started.

``interrupt_points.Landing`` with ``also=("threading.py",)`` lands in ``Thread.__init__`` and
``Thread.start`` too, where a real signal can: at a function's start, after a call into C. A
``Thread.start`` interrupted before its thread began leaves the object, unstarted; code that
kept it (``self._thread = Thread(...)`` before ``.start()``) took it for a thread at work."""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable
from typing import Any

import pytest

from interrupt_points import Landing, thread_start
from labloom import ThreadExecutor, flow, task

THREADING = ("threading.py",)


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABLOOM_PROGRESS", "0")


@task
def one(x: int) -> int:
    return x + 1


def _land(landing: Landing, go: Callable[[], Any]) -> None:
    """``go()`` traced by ``landing`` in the main thread; the KeyboardInterrupt it raised taken."""
    before = sys.gettrace()
    gc.disable()  # no finalizer run meanwhile: the points stay where the pass found them
    sys.settrace(landing)
    try:
        go()
    except KeyboardInterrupt:
        pass
    finally:
        sys.settrace(before)
        gc.enable()


def _points(go: Callable[[], Any]) -> list[str]:
    points: list[str] = []
    _land(Landing(0, points, also=THREADING), go)
    return points


def _one_thread_flow() -> Any:
    @flow(name="sweep_one_thread", executor=ThreadExecutor(1))
    def sweep() -> list[int]:
        return one.map(range(3))

    return sweep


def test_a_ctrl_c_as_a_thread_executor_starts_its_thread_leaves_it_running_calls() -> None:
    """``@flow(executor=ThreadExecutor(1))``: one executor for all the flow's runs, its thread
    made by the first call (submitted here by the flow body, in the main thread). A Ctrl-C
    between its count and its start left a thread counted that never ran: no later run of the
    flow ran a call, each waited for ever."""
    _one_thread_flow().run()  # modules imported, the store made: the pass below is a run's own
    after, places = thread_start(_points(_one_thread_flow().run), "executors/thread_pool.py",
                                 "submit")
    assert any(at.endswith(" start") for at, _ in places), places
    for at, number in places:
        sweep = _one_thread_flow()
        landing = Landing(number, also=THREADING, at=at, after=after)
        _land(landing, sweep.run)
        assert landing.where == at
        state = sweep.run(background=True).wait(60).value
        assert state == "Completed", f"Ctrl-C at {at} ({number}): the next run ran no call"

