"""A map over a task's result on Dask: its items are split on the cluster (``item-I-KEY``
futures, ``DaskExecutor.split``), values labloom holds no task run's handle for. Lost with
their worker (killed), Dask makes them again from the upstream's value, itself lost with the
same worker; here Dask's new run of the upstream fails (its second run raises). What the map's
children, the run and run.retry() say then: a clear error naming run.retry(), never a hang."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from labloom import DaskExecutor, State, flow, task, unmapped

pytest.importorskip("distributed")
pytestmark = pytest.mark.usefixtures("killed_workers_come_back")  # conftest.py

RAN_AGAIN = "the input it read is gone"


def _runs(path: Path) -> int:
    return int(path.read_text()) if path.exists() else 0


# What listing's third run (run.retry()'s) returns: as many items, fewer, more, or it fails.
THIRD = {"same": 3, "fewer": 2, "more": 4, "fails": 0}


@task
def listing(path: Path) -> list[int]:
    """Three items, each this worker's process id; its second run fails; its third does as
    the file ``third`` beside ``path`` says (``THIRD``)."""
    runs = _runs(path)
    path.write_text(str(runs + 1))
    third = path.with_name("third")
    if runs == 1 or (runs == 2 and third.exists() and third.read_text() == "fails"):
        raise RuntimeError(RAN_AGAIN)
    width = THIRD[third.read_text()] if runs == 2 and third.exists() else 3
    return [os.getpid()] * width


@task
def use(pid: int, folder: Path) -> int:
    """Waits (bounded) until the test opens the gate (a file): the children hold their items
    on the worker the test kills."""
    end = time.monotonic() + 120
    while not (folder / "open").exists():
        assert time.monotonic() < end, "the gate was never opened"
        time.sleep(0.05)
    return pid


def _kill(pid: int, path: Path) -> None:
    """Kill the worker holding the values; wait (bounded) for Dask's new run of ``listing``."""
    os.kill(pid, signal.SIGKILL)
    end = time.monotonic() + 120
    while _runs(path) < 2:
        assert time.monotonic() < end, "Dask never ran the lost task again"
        time.sleep(0.05)


def _split_made(cluster: Any) -> None:
    """Wait (bounded) until the map's items are in a worker's memory."""
    end = time.monotonic() + 120
    while not any(str(key).startswith("item-") and ts.state == "memory"
                  for key, ts in list(cluster.scheduler.tasks.items())):
        assert time.monotonic() < end, "the map's items were never made"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def cluster() -> Any:
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=1, threads_per_worker=4, processes=True,
                           dashboard_address=":0")
    yield cluster
    cluster.close()


def _retried(run: Any, path: Path, width: int = 3) -> None:
    """run.retry() ran listing again, and the map split its new value: ``width`` children,
    each given an item of it (the process id of the worker that made it)."""
    run.retry()
    assert run.state is State.COMPLETED, run.message
    assert _runs(path) == 3  # listing ran again
    pids = run.result()
    assert len(pids) == width and len(set(pids)) == 1 and isinstance(pids[0], int), pids
    states = {tr.name: (tr.state, tr.message) for tr in run.tasks}
    assert [name for name in states if name.startswith("use[")] == [
        f"use[{i}]" for i in range(max(width, 3))], states
    for i in range(width, 3):  # past the new end: history, as a map over a shorter list's
        assert states[f"use[{i}]"] == (State.CANCELLED, (
            f"left use: its input was split again into {width} item{'' if width == 1 else 's'} "
            "at run.retry()")), states
    notes = run.notes[-1:]
    assert notes == ["listing: ran again, as its value was lost after it completed: Dask's run "
                     f"of it to make it again failed (RuntimeError: {RAN_AGAIN})"], run.notes


@pytest.mark.parametrize("third", sorted(THIRD))
def test_items_lost_after_the_split_fail_the_children_clearly_and_a_retry_splits_again(
    tmp_path: Path, cluster: Any, third: str,
) -> None:
    """The children's failure named listing and run.retry() before. What is new: the retry
    sent the children again with the items of listing's lost value, and each failed at once
    with "RuntimeError: the input it read is gone"; now the map splits listing's new value
    (fewer items: the children past its end are history; more: new children), and a listing
    failing again fails the children as UpstreamFailed, never leaves them waiting."""
    path = tmp_path / "runs"
    path.with_name("third").write_text(third)

    @flow
    def split_then_lost(path: Path) -> Any:
        items = listing(path)
        pids = use.map(items, folder=unmapped(tmp_path))
        pid = items.result()[0]
        _split_made(cluster)
        _kill(pid, path)
        (tmp_path / "open").write_text("")
        return pids

    run = split_then_lost.run(path=path, executor=DaskExecutor(cluster=cluster))
    states = {tr.name: (tr.state, tr.message) for tr in run.tasks}
    assert run.state is State.FAILED, run.message
    assert states["listing"] == (State.COMPLETED, ""), states
    for i in range(3):
        assert states[f"use[{i}]"] == (State.FAILED, (
            f"WorkerDiedError: use[{i}] did not run: the value of listing, which it needs, was "
            "lost with its Dask worker after listing completed, and Dask's run of listing to "
            f"make it again failed (RuntimeError: {RAN_AGAIN}); run.retry() runs listing "
            "again")), states
    if third != "fails":
        _retried(run, path, THIRD[third])
        return
    run.retry()
    assert run.state is State.FAILED, run.message
    states = {tr.name: (tr.state, tr.message) for tr in run.tasks}
    assert states["listing"][0] is State.FAILED, states
    assert {states[f"use[{i}]"] for i in range(3)} == {
        (State.UPSTREAM_FAILED, "upstream 'listing' did not succeed")}, states


def test_a_value_lost_before_the_split_fails_the_map_clearly_and_a_retry_remakes_it(
    tmp_path: Path, cluster: Any,
) -> None:
    path = tmp_path / "runs"

    @flow
    def lost_then_split(path: Path) -> Any:
        items = listing(path)
        _kill(items.result()[0], path)
        (tmp_path / "open").write_text("")
        return use.map(items, folder=unmapped(tmp_path))

    run = lost_then_split.run(path=path, executor=DaskExecutor(cluster=cluster))
    assert run.state is State.FAILED, run.message
    states = {tr.name: (tr.state, tr.message) for tr in run.tasks}
    assert states["listing"] == (State.COMPLETED, ""), states
    # Before: "use.map(): cannot iterate the result of 'listing' (RuntimeError: ...); it must
    # return a list or another iterable", as if listing had returned no list.
    assert states["use"] == (State.FAILED, (
        "use.map() did not run: the value of listing, which it maps over, was lost with its "
        "Dask worker after listing completed, and Dask's run of listing to make it again "
        f"failed (RuntimeError: {RAN_AGAIN}); run.retry() runs listing again")), states
    noted = [line.text for line in run.logs("listing") if "[labloom]" in line.text]
    assert noted == [
        "[labloom] this task run's value was lost with its Dask worker after it completed; "
        f"Dask ran it again to make it, and that run failed (RuntimeError: {RAN_AGAIN}), so a "
        "map over it could not run. It stays Completed (its call returned); run.retry() runs "
        "it again"], noted
    _retried(run, path)
