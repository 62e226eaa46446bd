"""A Ctrl-C landing as labloom makes and starts a thread in the main thread: the thread runs, or
was never counted, never a thread object kept that never started.

``interrupt_points.Landing`` with ``also=("threading.py",)`` lands in ``Thread.__init__`` and
``Thread.start`` too, where a real signal can: at a function's start, after a call into C. A
``Thread.start`` interrupted before its thread began leaves the object, unstarted; code that
kept it (``self._thread = Thread(...)`` before ``.start()``) took it for a thread at work."""

from __future__ import annotations

from typing import Any

import pytest

from interrupt_checks import (
    THREADING,
    interrupted,
    one,
    points_of,
    quiet_progress,  # noqa: F401  (an autouse fixture)
)
from interrupt_points import Landing, thread_start
from labloom import FlowRun, ThreadExecutor, flow
from labloom.store import open_store
from labloom.store.db import get_database
from labloom.store.recorder import Recorder
from labloom.store.writer_registry import writer_for, writers


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
    after, places = thread_start(points_of(lambda: _one_thread_flow().run(), THREADING),
                                 "executors/thread_pool.py", "submit")
    landed: list[str] = []
    for at, number in places:
        sweep = _one_thread_flow()
        landing = Landing(number, also=THREADING, at=at, after=after)
        interrupted(landing, sweep.run)
        if landing.where is None:
            continue  # a wait in Thread.start that this time had nothing to wait for
        landed.append(at)
        state = sweep.run(background=True).wait(60).value
        assert state == "Completed", f"Ctrl-C at {at} ({number}): the next run ran no call"
    assert any(at.endswith(" start") for at in landed), (landed, places)


def test_a_ctrl_c_as_the_store_writer_starts_its_thread_leaves_it_writing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The store's writer starts its thread with the first batch after it went idle (a writer
    with nothing open ends its thread within seconds): a kernel's next run. A Ctrl-C between
    the thread kept and its start left a thread object never started, which the writer took
    for running: nothing more was written, a run's end waited its 30 s for the last commit in
    vain, and letting go of the store raised RuntimeError (a thread not started is not
    joined). A put in the main thread is driven here as a run's end delivers its last events
    (``bus.close``, which also holds the Ctrl-C) or a late subscriber its replay."""
    @flow(name="recorded_late", executor="local")
    def sweep() -> list[int]:
        return one.map(range(3))

    def unrecorded() -> FlowRun:
        with monkeypatch.context() as off:
            off.setenv("LABLOOM_STORE", "0")
            return sweep.run()

    landed_writer: list[Any] = []

    def record(run: FlowRun) -> None:
        """A writer of its own, with no thread yet, given the whole run in one put."""
        for writer in writers():
            writer.retire("the test: a fresh writer, its thread not started")
        landed_writer[:] = [writer_for(get_database())]
        Recorder(run, landed_writer[0])(run.events())

    sweep.run()  # the store made
    after, places = thread_start(points_of(lambda: record(unrecorded()), THREADING),
                                 "store/recorder.py", "__init__")
    landed: list[str] = []
    for at, number in places:
        run, later = unrecorded(), unrecorded()
        landing = Landing(number, also=THREADING, at=at, after=after)
        interrupted(landing, lambda: record(run))  # noqa: B023 (called before the loop goes on)
        if landing.where is None:
            continue  # a wait in Thread.start that this time had nothing to wait for
        landed.append(at)
        [writer] = landed_writer
        said = f"Ctrl-C at {at} ({number})"
        Recorder(later, writer)(later.events())  # what the writer does next: write a run
        with open_store() as store:
            row = store.get_run(later.id, counts=False, parameters=False)
        assert row is not None and row.state == "Completed", f"{said}: the next run unwritten"
        assert writer.retire("the test", timeout=60), f"{said}: the writer's thread never ended"
    assert any(at.endswith(" start") for at in landed), (landed, places)
    assert any(at.startswith("store/writer.py") for at in landed), (landed, places)
