"""A Ctrl-C landing anywhere in a task run's end on Dask while its task holds the one slot of a
limit (``Chained``: the store's slot, then the cluster's semaphore lease): the run ends, the
store holds no slot, the scheduler no lease, and the next run behind the same limit completes.
As tests/test_interrupt_slots.py does for the local executor and threads (session 53), on a
real LocalCluster (one worker process) that the executor connects to.

On Dask a task run's end is applied by the executor's delivery thread: a foreground
``flow.run()`` landed in no end here (0 points). A user's ``run.cancel()`` in the main thread
ends each task run there, and the slot of the one whose call runs on goes back once that call
returns (``late_slots``)."""

from __future__ import annotations

import time
from pathlib import Path
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
from labloom import DaskExecutor, flow, task
from labloom.core import logs
from labloom.executors.dask_semaphores import semaphore_name
from labloom.store import concurrency_slots
from run_helpers import runs_started
from test_interrupt_slots import InAnEnd, gated, gated_total


@pytest.fixture(scope="module")
def executor(one_worker_cluster: Any) -> Any:
    """On a cluster this process did not start: its limits are ``Chained`` (the store's slot,
    then the cluster's semaphore lease)."""
    made = DaskExecutor(cluster=one_worker_cluster)
    yield made
    made.shutdown()


def _leases(dask_scheduler: Any, name: str) -> int:
    extension = dask_scheduler.extensions["semaphores"]
    return len(extension.leases.get(name, {}))


def _check(said: str, runs: list[Any], after: Any, executor: DaskExecutor) -> None:
    check_after(said, runs, after)  # the run ended, the store agrees, ``after`` completes
    wait_for(lambda: concurrency_slots.holders("gate") == 0, 60,
             f"{said}: the store to hold no slot of the limit")
    name = semaphore_name("gate", 1)
    wait_for(lambda: executor.client.run_on_scheduler(_leases, name=name) == 0, 60,
             f"{said}: the scheduler to hold no lease of the limit's semaphore")


def _sweep(executor: Any, name: str) -> Any:
    @flow(name=name, executor=executor)
    def sweep() -> int:
        return gated_total(gated.map(range(3)))

    return sweep


# The limiters' code and what it calls: where a slot is asked for, granted and given back.
_LIMITERS = ("store/concurrency_limiter.py", "store/concurrency_slots.py",
             "executors/dask_semaphores.py", "core/late_slots.py")
# Every point in these, one in ``_EVERY`` elsewhere (the store's connection code, mostly).
_EDGES = ("store/concurrency_limiter.py", "executors/dask_semaphores.py", "core/late_slots.py",
          *THREADING)
_EVERY = 4


class InALimiter(Landing):
    """A ``Landing`` counting only the points inside a limiter's code (and what it calls)."""

    def _land(self, frame: FrameType) -> None:
        outer: FrameType | None = frame
        while outer is not None:
            if outer.f_code.co_filename.endswith(_LIMITERS):
                super()._land(frame)
                return
            outer = outer.f_back


def test_a_ctrl_c_in_a_dask_runs_limiter_leaves_no_slot_taken(executor: DaskExecutor) -> None:
    """``flow.run()``: the main thread asks for the slots as the body launches the task runs
    (``Chained``: the store's line first), and gives them back at the run's end."""
    labloom.limits.set("gate", 1)
    sweep = _sweep(executor, "gated_dask")
    after = _sweep(executor, "gated_dask_after")  # another flow behind the same limit
    sweep.run()  # the store made, modules imported, the semaphore made
    found: list[str] = []
    interrupted(InALimiter(0, found, also=THREADING), sweep.run)
    assert len(found) > 100, "the harness landed in the limiters nearly nowhere"
    for number, where in enumerate(found, start=1):
        if number % _EVERY and not where.startswith(_EDGES):
            continue
        with runs_started() as runs:
            landing = InALimiter(number, also=THREADING)
            raised = interrupted(landing, sweep.run)
        said = f"Ctrl-C at point {number} ({landing.where})"
        assert raised or landing.where is None, f"{said}: the Ctrl-C was swallowed"
        _check(said, runs, after, executor)


def _wait_for_file(path: str) -> None:
    """On a worker thread: a file, not an event (the task is pickled to the cluster)."""
    deadline = time.monotonic() + 60
    while not Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.01)


@task(tags=["gate"])
def gated_slow(x: int, gate: str) -> int:
    _wait_for_file(gate)
    return x


@flow(name="gated_slow_dask")
def slow(gate: str) -> list[int]:
    return gated_slow.map(range(3), gate=labloom.unmapped(gate))  # type: ignore[return-value]


def test_a_ctrl_c_in_a_dask_cancel_leaves_no_slot_taken(executor: DaskExecutor,
                                                         tmp_path: Path) -> None:
    """``run.cancel()`` in the main thread of a Dask run whose first task run holds the
    limit's slot (its call waits on the cluster) and the others wait for it."""
    labloom.limits.set("gate", 1)
    after = _sweep(executor, "gated_dask_after")
    gates = iter(range(10**6))

    def started() -> tuple[Any, Path]:
        gate = tmp_path / f"gate{next(gates)}"
        run = slow.run(gate=str(gate), executor=executor, background=True)
        wait_for(lambda: any(tr.state.value == "Running" for tr in run.tasks), 60,
                 "the first task run to hold the slot")
        return run, gate

    found: list[str] = []
    run, gate = started()
    interrupted(InAnEnd(0, found, also=THREADING), run.cancel)
    gate.touch()
    assert len(found) > 20, "the harness landed in the ends nearly nowhere: it proves nothing"
    run.wait(60)
    for number in range(1, len(found) + 1):
        run, gate = started()
        with runs_started() as runs:
            landing = InAnEnd(number, also=THREADING)
            raised = interrupted(landing, run.cancel)
        gate.touch()
        said = f"Ctrl-C at point {number} ({landing.where})"
        assert raised or landing.where is None, f"{said}: the Ctrl-C was swallowed"
        assert not runs
        # Cancelled, its call runs on until it returns, printing captured meanwhile.
        wait_for(lambda: logs._capture_depth == 0, 60, f"{said}: the call to return")
        _check(said, [run], after, executor)


def _acquired(dask_scheduler: Any, name: str) -> tuple[int, int]:
    """How many leases of semaphore ``name`` were ever granted, and how many are held."""
    extension = dask_scheduler.extensions["semaphores"]
    return extension.metrics["acquire_total"][name], len(extension.leases.get(name, {}))


def test_a_lease_asked_for_a_holder_given_back_meanwhile_goes_back(
        executor: DaskExecutor) -> None:
    """What ``Launcher._ask_slot`` does after a Ctrl-C in the ask: the holder given back while
    its lease is still asked for. The lease, granted later, went to nobody, held for good (its
    client lives): ``_acquire`` now gives it back. Made sure here by a first holder keeping
    the one lease until the second is given back."""
    labloom.limits.set("gate", 1)
    limiter = executor.limiter().second  # ``Chained``: the cluster's semaphores
    tags, name = frozenset({"gate"}), semaphore_name("gate", 1)
    first: list[bool] = []
    assert not limiter.acquire(tags, "first", lambda: first.append(True))
    wait_for(lambda: first, 60, "the first holder's lease")
    before = executor.client.run_on_scheduler(_acquired, name=name)[0]
    assert not limiter.acquire(tags, "second", lambda: None)  # it waits for the lease
    limiter.release(tags, "second")
    limiter.release(tags, "first")
    wait_for(lambda: executor.client.run_on_scheduler(_acquired, name=name) == (before + 1, 0),
             60, "the second lease granted and given back")
