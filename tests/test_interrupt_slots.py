"""A Ctrl-C landing anywhere in a task run's end (``TaskGraph.set_final``, a block's
``set_states``, and what they call: its event, its count, ``on_final`` giving back its
concurrency slot) while its task holds the one slot of a limit: the run ends, the store agrees
and holds no slot, and the next run behind the same limit completes.

Found with it (session 53): a Ctrl-C there left the slot taken for good (``on_final`` skipped,
or the slot taken off for its give-back and never given back), so every later run behind the
limit waited for ever; and the task run counted open, so a run whose wait the Ctrl-C
interrupted (``run.wait()`` cancels it) never finished."""

from __future__ import annotations

import threading
from types import FrameType
from typing import Any

import pytest

import labloom
from cli_helpers import wait_for
from interrupt_checks import (
    THREADING,
    check_after,
    interrupted,
    quiet_progress,  # noqa: F401  (an autouse fixture)
)
from interrupt_points import Landing
from labloom import ThreadExecutor, flow, task
from labloom.core import logs
from labloom.store import concurrency_slots
from run_helpers import runs_started

# Where a task run's end runs (and what it calls): by qualified name, each in its module.
_ENDS = {"TaskGraph.set_final": "core/task_graph.py", "set_states": "core/state_blocks.py",
         "Launcher._give_back": "core/launching.py", "Launcher.work": "core/launching.py"}


@task(tags=["gate"])
def gated(x: int) -> int:
    return x + 1


@task(tags=["gate"])
def gated_total(xs: list[int]) -> int:
    return sum(xs)


def _in_an_end(frame: FrameType | None) -> bool:
    """Whether ``frame`` runs inside a task run's end: ``set_final``, a final block, or the
    give-back of ended task runs' slots (``Launcher.work`` once it took them off, before
    ``_give_back`` did it)."""
    while frame is not None:
        code = frame.f_code
        module = _ENDS.get(code.co_qualname)
        if module is not None and code.co_filename.endswith(module) and (
                code.co_name not in ("set_states", "work")
                or frame.f_locals.get("final") or frame.f_locals.get("releases")):
            return True
        frame = frame.f_back
    return False


class InAnEnd(Landing):
    """A ``Landing`` counting only the points inside a task run's end."""

    def _land(self, frame: FrameType) -> None:
        if _in_an_end(frame):
            super()._land(frame)


def _sweep(executor: Any, name: str) -> Any:
    @flow(name=name, executor=executor)
    def sweep() -> int:
        return gated_total(gated.map(range(3)))

    return sweep


@pytest.mark.parametrize(("executor", "least"), [("local", 100), ("default", 0)])
def test_a_ctrl_c_in_a_task_runs_end_leaves_no_slot_taken(executor: str, least: int) -> None:
    """``flow.run()``: on the local executor every task run ends in the main thread (where a
    Ctrl-C lands); on threads, those the main thread applies (when it does: ``least`` 0)."""
    labloom.limits.set("gate", 1)
    sweep = _sweep(None if executor == "default" else executor, f"gated_{executor}")
    after = _sweep(None, "gated_after")  # another flow behind the same limit
    sweep.run()  # the store made, modules imported
    found: list[str] = []
    interrupted(InAnEnd(0, found, also=THREADING), sweep.run)
    assert len(found) >= least, "the harness landed in the ends nearly nowhere: it proves nothing"
    for number in range(1, len(found) + 1):
        with runs_started() as runs:
            landing = InAnEnd(number, also=THREADING)
            raised = interrupted(landing, sweep.run)
        said = f"Ctrl-C at point {number} ({landing.where})"
        assert raised or landing.where is None, f"{said}: the Ctrl-C was swallowed"
        _check(said, runs, after)


def _check(said: str, runs: list[Any], after: Any) -> None:
    check_after(said, runs, after)  # the run ended, the store agrees, ``after`` completes
    wait_for(lambda: concurrency_slots.holders("gate") == 0, 60,
             f"{said}: the store to hold no slot of the limit")


_release = threading.Event()


@task(tags=["gate"])
def gated_slow(x: int) -> int:
    _release.wait(60)
    return x


@pytest.mark.parametrize("executor", ["default", "own threads"])
def test_a_ctrl_c_in_a_cancel_leaves_no_slot_taken(executor: str) -> None:
    """``run.cancel()`` in the main thread (a cell's) of a run on threads whose first task
    run holds the limit's slot and the others wait for it: the cancel ends each of them
    (``set_final``) there. A Ctrl-C landing in it left the rest of the run uncancelled."""
    labloom.limits.set("gate", 1)
    made = None if executor == "default" else ThreadExecutor(2)

    @flow(name=f"gated_slow_{executor.replace(' ', '_')}", executor=made)
    def slow() -> list[int]:
        return gated_slow.map(range(3))

    after = _sweep(None, "gated_after")

    def started() -> Any:
        _release.clear()
        run = slow.run(background=True)
        wait_for(lambda: any(tr.state.value == "Running" for tr in run.tasks), 60,
                 "the first task run to hold the slot")
        return run

    found: list[str] = []
    run = started()
    interrupted(InAnEnd(0, found, also=THREADING), run.cancel)
    _release.set()
    assert len(found) > 20, "the harness landed in the ends nearly nowhere: it proves nothing"
    run.wait(60)
    for number in range(1, len(found) + 1):
        run = started()
        with runs_started() as runs:
            landing = InAnEnd(number, also=THREADING)
            raised = interrupted(landing, run.cancel)
        _release.set()
        said = f"Ctrl-C at point {number} ({landing.where})"
        assert raised or landing.where is None, f"{said}: the Ctrl-C was swallowed"
        assert not runs
        # Cancelled, its call runs on until it returns, printing captured meanwhile.
        wait_for(lambda: logs._capture_depth == 0, 60, f"{said}: the call to return")
        _check(said, [run], after)
