"""A Ctrl-C landing anywhere in labloom's own code while a flow runs on Dask (the embedded
LocalCluster, in this process: ``processes=False``): the run ends Cancelled (or Completed),
recorded so, nothing of it left waiting or running on the cluster, and the next run completes.

Found with it (session 52): a Ctrl-C between the run's event topic noted and its subscription
made the run's end raise ValueError ("No event handler known for topic") in place of the
KeyboardInterrupt, skipping the rest of the executor's end of the run; one in the
``threading.Event.set`` that wakes the submitting thread (its lock taken in Python) kept the
event's lock for good: no later run on the executor sent a task, each waited for ever."""

from __future__ import annotations

from typing import Any

from cli_helpers import wait_for
from interrupt_checks import (
    THREADING,
    check_after,
    interrupted,
    points_of,
    quiet_progress,  # noqa: F401  (an autouse fixture)
    sweep_on,
)
from interrupt_points import Landing
from labloom import DaskExecutor
from run_helpers import runs_started

CLUSTER = {"processes": False, "n_workers": 1, "threads_per_worker": 2, "dashboard_address": ":0"}
# What a task of a cancelled run must not be left in on the scheduler.
_PENDING = ("released", "waiting", "queued", "no-worker", "processing")


def _states(dask_scheduler: Any) -> dict[str, str]:
    return {str(key): ts.state for key, ts in dask_scheduler.tasks.items()}


def _left_on(executor: DaskExecutor, run_id: str) -> dict[str, str]:
    """The run's tasks the scheduler still holds to run (its keys carry the run's id)."""
    return {key: state for key, state in executor.client.run_on_scheduler(_states).items()
            if run_id in key and state in _PENDING}


# Where a run begins, is handed to Dask and ends, and threading's own Python (an Event's
# set takes its lock there): every point, one in ``_EVERY`` elsewhere.
_EDGES = ("executors/dask", "core/engine.py", "core/at_exit.py", "core/interrupts_held.py",
          "core/handing_over.py", "store/", *THREADING)
_EVERY = 8


def test_a_dask_run_interrupted_anywhere_ends_cancelled_with_nothing_left_on_the_cluster() -> None:
    executor = DaskExecutor(**CLUSTER)

    sweep = sweep_on(executor, "sweep_dask")
    found = points_of(sweep.run, THREADING)
    assert len(found) > 300, "the harness traced nearly nothing: it proves nothing"
    assert any(where.startswith("executors/dask") for where in found), found
    for number, where in enumerate(found, start=1):
        if number % _EVERY and not where.startswith(_EDGES):
            continue
        with runs_started() as runs:
            landing = Landing(number, also=THREADING)
            raised = interrupted(landing, sweep.run)
        said = f"Ctrl-C at point {number} ({landing.where})"
        assert raised or landing.where is None, f"{said}: the Ctrl-C was swallowed"
        for run in runs:
            assert run.wait_finished(60), f"{said}: run {run.id} never finished ({run.state})"
            wait_for(lambda: not _left_on(executor, run.id), 60,  # noqa: B023 (waited here)
                     f"{said}: the run's tasks to leave the cluster")
        check_after(said, runs, sweep)

