"""A Ctrl-C landing in threading's own Python while a flow runs on the local executors (the
local one, whose calls run in the thread that waits, and the thread pool): the run ends
Cancelled (or Completed), recorded so, and the next run completes; as test_interrupt_dask.py
does on Dask. ``Condition.__enter__``, ``Event.set`` and ``Thread.start`` are Python there: a
Ctrl-C as one of them returns leaves a lock taken or a thread unstarted, where labloom's own
code has no point at all."""

from __future__ import annotations

from typing import Any

import pytest

from interrupt_checks import (
    THREADING,
    check_after,
    interrupted,
    points_of,
    quiet_progress,  # noqa: F401  (an autouse fixture)
    sweep_on,
)
from interrupt_points import Landing
from labloom import LocalExecutor, ThreadExecutor
from labloom.core.at_exit import end_interrupted
from run_helpers import runs_started


@pytest.mark.parametrize("background", [False, True], ids=["foreground", "waited"])
@pytest.mark.parametrize("executor", ["local", "threads", "own local", "own threads"])
def test_a_run_interrupted_anywhere_in_threading_ends_cancelled(executor: str,
                                                                background: bool) -> None:
    """Foreground: ``flow.run()``, a flow called in a cell. Waited: ``run(background=True)``
    then ``wait()``, as ``%%flow`` and ``labloom run`` drive it; a Ctrl-C there ends what
    began with ``end_interrupted``, as they do. "own": one executor object for all the flow's
    runs (``@flow(executor=ThreadExecutor(2))``), whose locks and threads outlive a run."""
    chosen_executor = {"own local": LocalExecutor, "own threads": lambda: ThreadExecutor(2)}
    made = chosen_executor[executor]() if executor in chosen_executor else executor
    sweep = sweep_on(made, f"sweep_{executor.replace(' ', '_')}")

    def go() -> Any:
        return sweep.run(background=True).wait() if background else sweep.run()

    points = points_of(go, THREADING)
    chosen = [number for number, where in enumerate(points, start=1)
              if where.startswith(THREADING)]
    assert len(chosen) > 40, "the harness landed in threading nearly nowhere: it proves nothing"
    for number in chosen:
        with runs_started() as runs:
            landing = Landing(number, also=THREADING)
            raised = interrupted(landing, go)
        said = f"Ctrl-C at point {number} ({landing.where})"
        assert raised or landing.where is None, f"{said}: the Ctrl-C was swallowed"
        if raised and background:
            for run in runs:
                end_interrupted(run)
        check_after(said, runs, sweep)
