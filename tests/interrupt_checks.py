"""Running a flow with a Ctrl-C landed (``interrupt_points.Landing``), and what must hold after:
shared by the tests that interrupt runs anywhere, on each executor."""

from __future__ import annotations

import contextlib
import gc
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cli_helpers import wait_for
from interrupt_points import Landing
from labloom import flow, task
from labloom.core import at_exit, context, gc_policy, logs
from labloom.store import open_store
from labloom.store.db import get_database

ENDED = ("Cancelled", "Completed")
THREADING = ("threading.py",)  # ``Landing(also=...)``: land in threading's own Python too


@pytest.fixture(autouse=True)
def quiet_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hundreds of runs: no terminal lines (import it into the test module: it is autouse)."""
    monkeypatch.setenv("LABLOOM_PROGRESS", "0")


@task
def one(x: int) -> int:
    """The interrupted runs' mapped task."""
    return x + 1


@task
def total(xs: list[int]) -> int:
    return sum(xs)


def sweep_on(executor: Any, name: str) -> Any:
    """The interrupted runs' flow: a map, and a task over its results."""
    @flow(name=name, executor=executor)
    def sweep() -> int:
        return total(one.map(range(3)))

    return sweep


def interrupted(landing: Landing, go: Callable[[], Any]) -> bool:
    """``go()`` traced by ``landing`` in the main thread; whether it raised KeyboardInterrupt."""
    before = sys.gettrace()
    # No cyclic collection meanwhile: a finalizer it ran (a run let go of) would take the
    # Ctrl-C, which Python then only prints, and the points would move from one pass to another.
    gc.disable()
    sys.settrace(landing)
    try:
        go()
    except KeyboardInterrupt:
        return True
    finally:
        sys.settrace(before)
        gc.enable()
    return False


def answered(call: Callable[[], Any]) -> list[Any]:
    """``call()``'s value in a thread of its own, or nothing when it has not answered in 60 s
    (a jammed lock: the test fails instead of hanging)."""
    got: list[Any] = []
    thread = threading.Thread(target=lambda: got.append(call()), daemon=True)
    thread.start()
    thread.join(60)
    return got


def points_of(go: Callable[[], Any], also: tuple[str, ...] = ()) -> list[str]:
    """Where each point of ``go()`` is, in order."""
    go()  # the store made, modules imported: the count that follows is the runs' own
    found: list[str] = []
    interrupted(Landing(0, found, also=also), go)
    return found


def store_agrees(said: str, run: Any) -> None:
    """The store comes to hold the run's end. Soon, not at once: a Ctrl-C during the run's
    end gives up its wait for the last commit (interrupts_held.pending), the writer writing on."""
    def row_state() -> str | None:
        with open_store() as store:
            row = store.get_run(run.id, counts=False, parameters=False)
        return None if row is None else row.state

    wait_for(lambda: row_state() == run.state.value, 60,
             f"{said}: the store to say {run.state.value} (it says {row_state()})")


def check_after(said: str, runs: list[Any], sweep: Any) -> None:
    """Each run (none when the Ctrl-C came before one began) ended, and the kernel and the
    store agree; nothing of it is left in the process; ``sweep``'s next run completes."""
    for run in runs:
        assert run.wait_finished(60), f"{said}: run {run.id} never finished ({run.state})"
        assert run.state.value in ENDED, f"{said}: run ended {run.state}"
        store_agrees(said, run)
    assert not at_exit._unfinished, f"{said}: still to be ended at exit"
    assert gc_policy.runs_going() == 0, f"{said}: the collector still counts a run going"
    # (A Ctrl-C as the last call's capture ends may leave its proxies in, writing through to
    # the streams: the next call's capture takes them out. Not so a count left up.)
    assert logs._capture_depth == 0, f"{said}: the print capture is held for good"
    # Left active, it was every later run's caller: cancelled between attempts as its
    # caller's run was, a task called as a plain function sent to it (CI, session 51).
    assert context.ACTIVE.get() is None, f"{said}: its run is still the thread's active run"
    # In the background, waited for with a guard: a run that cannot go on fails, not hangs.
    state = sweep.run(background=True).wait(60).value
    assert state == "Completed", f"{said}: the next run did not complete ({state})"


@contextlib.contextmanager
def store_locked(guard: float = 120) -> Iterator[list[bool]]:
    """The store locked by another connection's write (``BEGIN IMMEDIATE``: nothing commits,
    as during another process's long write) until the block ends, or ``guard`` seconds passed
    (a failing test ends). Yields ``[whether it is still locked]``."""
    blocker = get_database().connect()
    blocker.execute("BEGIN IMMEDIATE")
    locked = [True]

    def unlock() -> None:
        if locked[0]:
            locked[0] = False
            blocker.execute("COMMIT")

    timer = threading.Timer(guard, unlock)
    timer.start()
    try:
        yield locked
    finally:
        timer.cancel()
        unlock()
        blocker.close()
