"""A completed task run's value lost with its Dask worker (killed after the task returned), on a
real LocalCluster with worker processes: Dask runs the task again to make it, and here that run
fails (the task counts its runs in a file; its second raises, as a task whose input is gone
would). What the run's record and its readers say then."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from labloom import (
    DaskExecutor,
    FlowRun,
    SchedulerLostError,
    State,
    WorkerDiedError,
    flow,
    task,
    unmapped,
)

pytest.importorskip("distributed")
pytestmark = pytest.mark.usefixtures("killed_workers_come_back")  # conftest.py

RAN_AGAIN = "the input it read is gone"


def _runs(path: Path) -> int:
    return int(path.read_text()) if path.exists() else 0


@task
def where(path: Path) -> int:
    """This worker's process id; its second run fails."""
    runs = _runs(path)
    path.write_text(str(runs + 1))
    if runs == 1:
        raise RuntimeError(RAN_AGAIN)
    return os.getpid()


def _kill_holder(pid: int, path: Path) -> None:
    """Kill the worker holding ``where``'s value; wait (bounded) for Dask to run it again."""
    os.kill(pid, signal.SIGKILL)
    end = time.monotonic() + 120
    while _runs(path) < 2:
        assert time.monotonic() < end, "Dask never ran the lost task again"
        time.sleep(0.05)


@flow
def lost_at_the_end(path: Path) -> Any:
    held = where(path)
    _kill_holder(held.result(), path)
    return held


def _per_run() -> DaskExecutor:
    return DaskExecutor(cluster_class="distributed.LocalCluster", cluster_kwargs={
        "n_workers": 1, "threads_per_worker": 1, "processes": True, "dashboard_address": ":0"})


def test_a_value_lost_as_the_runs_own_cluster_closes_is_a_clear_error_and_a_retry_remakes_it(
    tmp_path: Path,
) -> None:
    """Before: the value was left as the closed client's future, and run.result() started a
    new cluster only to raise Dask's "Cannot gather Futures created by another client"."""
    executor = _per_run()
    path = tmp_path / "runs"
    run = lost_at_the_end.run(path=path, executor=executor)
    assert run.state is State.COMPLETED, run.message
    with pytest.raises(WorkerDiedError) as raised:
        run.result()
    said = str(raised.value)
    assert said.startswith("[labloom] the value of task run 'where' (Dask key where-"), said
    assert (f"is gone: it was lost with its Dask worker (killed, out of memory, or retired) "
            f"after the task run completed, and Dask ran the task again to make it, and that "
            f"run failed (RuntimeError: {RAN_AGAIN}), before the run's own cluster closed (a "
            f"closed cluster keeps nothing). run.retry() runs it again") in said, said
    assert executor._per_run is not None and executor._per_run.cluster is None  # none started
    assert run.notes == [_lost_note("where")], run.notes
    run.retry()
    assert run.state is State.COMPLETED, run.message
    assert isinstance(run.result(), int) and _runs(path) == 3
    assert run.notes == [_lost_note("where"), _rerun_note("where")], run.notes


@task
def plus_one(x: int) -> int:
    return x + 1


@flow
def lost_midway(path: Path) -> Any:
    held = where(path)
    _kill_holder(held.result(), path)
    return plus_one(held)


@pytest.fixture(scope="module")
def cluster() -> Any:
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                           dashboard_address=":0")
    yield cluster
    cluster.close()


def _says_the_value_was_lost(run: Any, upstream: str, downstream: str) -> None:
    """The run Failed: ``downstream`` for ``upstream``'s value, lost and not made again; the
    upstream Completed, its logs saying it."""
    assert run.state is State.FAILED, run.message
    states = {tr.name: (tr.state, tr.message) for tr in run.tasks}
    assert states[upstream] == (State.COMPLETED, ""), states
    assert states[downstream] == (State.FAILED, (
        f"WorkerDiedError: {downstream} did not run: the value of {upstream}, which it needs, "
        f"was lost with its Dask worker after {upstream} completed, and Dask's run of "
        f"{upstream} to make it again failed (RuntimeError: {RAN_AGAIN}); run.retry() runs "
        f"{upstream} again")), states
    noted = [line.text for line in run.logs(upstream) if "[labloom]" in line.text]
    assert noted == [
        "[labloom] this task run's value was lost with its Dask worker after it completed; "
        f"Dask ran it again to make it, and that run failed (RuntimeError: {RAN_AGAIN}), so "
        f"{downstream} could not run. It stays Completed (its call returned); run.retry() "
        "runs it again"], noted
    assert run.notes == [_lost_note(upstream)], run.notes


def _lost_note(upstream: str) -> str:
    return (f"{upstream}: its value was lost with its Dask worker after it completed, and "
            f"Dask's run of it to make it again failed (RuntimeError: {RAN_AGAIN}); "
            "run.retry() runs it again")


def _rerun_note(upstream: str) -> str:
    return (f"{upstream}: ran again, as its value was lost after it completed: Dask's run of it "
            f"to make it again failed (RuntimeError: {RAN_AGAIN})")


def test_a_downstream_of_a_value_whose_new_run_failed_says_so_and_a_retry_remakes_it(
    tmp_path: Path, cluster: Any,
) -> None:
    """Before: plus_one Failed with where's RuntimeError as if raised in its own code, where
    Completed with nothing said, and run.retry() sent plus_one again with the erred value (it
    failed again at once: where was not counted lost)."""
    path = tmp_path / "runs"
    run = lost_midway.run(path=path, executor=DaskExecutor(cluster=cluster))
    _says_the_value_was_lost(run, "where", "plus_one")
    (plus_one_run,) = [tr for tr in run.tasks if tr.name == "plus_one"]
    assert plus_one_run.attempts == 1  # not retried: its input is gone for every try
    run.retry()
    assert run.state is State.COMPLETED, run.message
    assert _runs(path) == 3  # where ran again
    assert isinstance(run.result(), int)
    # Before, run.notes said nothing of where (what a retry reran although it completed).
    assert run.notes == [_lost_note("where"), _rerun_note("where")], run.notes


def test_a_value_whose_new_run_failed_with_nothing_waiting_is_said_at_the_runs_end(
    tmp_path: Path, cluster: Any,
) -> None:
    """On a shared cluster (a client the user passes), the flow's last value is lost and
    Dask's new run of it fails with no task run waiting for it. Before: the run ended with
    nothing said in where's logs nor in run.notes (only a read of the value said it)."""
    from distributed import Client

    path = tmp_path / "runs"
    with Client(cluster, set_as_default=False) as client:
        run = lost_at_the_end.run(path=path, executor=DaskExecutor(client=client))
        assert run.state is State.COMPLETED, run.message
        noted = [line.text for line in run.logs("where") if "[labloom]" in line.text]
        assert noted == [
            "[labloom] this task run's value was lost with its Dask worker after it "
            f"completed; Dask ran it again to make it, and that run failed (RuntimeError: "
            f"{RAN_AGAIN}), so reading it raises WorkerDiedError. It stays Completed (its call "
            "returned); run.retry() runs it again"], noted
        assert run.notes == [_lost_note("where")], run.notes
        with pytest.raises(WorkerDiedError, match=r"that run failed \(RuntimeError: "):
            run.result()
        run.retry()
        assert run.state is State.COMPLETED, run.message
        assert isinstance(run.result(), int) and _runs(path) == 3
        assert run.notes == [_lost_note("where"), _rerun_note("where")], run.notes


@task
def seven() -> int:
    return 7


@flow
def returns_seven() -> Any:
    return seven()


def test_a_ctrl_c_while_a_run_keeps_its_values_still_closes_its_cluster(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Ctrl-C landing as the run's values are brought over (a wait for a value Dask makes
    again, say): before, the run's own cluster was left open, and reading the value started a
    second one to fail with "Cannot gather Futures created by another client"."""
    from labloom.executors.dask_clusters import RunCluster

    def interrupted(self: RunCluster, run_id: str, waited: frozenset[Any] = frozenset()) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(RunCluster, "keep_values", interrupted)
    executor = _per_run()
    run = FlowRun(returns_seven, {}, executor, origin="script", owns_executor=False)
    with pytest.raises(KeyboardInterrupt):
        run.start()
    assert run.state is State.COMPLETED, run.message
    assert executor._per_run is not None and executor._per_run.cluster is None  # closed
    with pytest.raises(SchedulerLostError, match=r"^\[labloom\] the value of task run 'seven' "
                       r"\(Dask key seven-.*\) is gone: its Dask client closed before the value "
                       r"was brought into this process .* run.retry\(\) runs it again$"):
        run.result()
    assert executor._per_run.cluster is None  # none started to fail


@task(batch_size=3)
def child(i: int, folder: Path) -> int:
    """Three children, one Dask task (a chunk): child 1's second run fails."""
    runs = _runs(folder / f"child{i}")
    (folder / f"child{i}").write_text(str(runs + 1))
    if i == 1 and runs == 1:
        raise RuntimeError(RAN_AGAIN)
    return os.getpid()


@task
def count(pids: list[Any]) -> int:
    assert all(isinstance(pid, int) for pid in pids), pids  # never a chunk's failure marker
    return len(pids)


@flow
def chunk_lost_midway(folder: Path) -> Any:
    pids = child.map(range(3), folder=unmapped(folder))
    _kill_holder(pids.result()[0], folder / "child1")
    return count(pids)


def test_a_chunk_made_again_with_a_child_failing_fails_its_downstream_not_feeds_it(
    tmp_path: Path, cluster: Any,
) -> None:
    """Before: Dask made the chunk again, child 1 failed in it, and the chunk's marker of that
    failure was given to count as child 1's value (a task that did not check it ran on)."""
    run = chunk_lost_midway.run(folder=tmp_path, executor=DaskExecutor(cluster=cluster))
    _says_the_value_was_lost(run, "child[1]", "count")
    run.retry()
    assert run.state is State.COMPLETED, run.message
    assert run.result() == 3 and _runs(tmp_path / "child1") == 3


@task(batch_size=3, timeout=120)
def held_back(i: int, folder: Path) -> int:
    """Three children, one Dask task that gives its last children back once one holds them
    past ``GIVE_BACK_AFTER`` (1 s): child 1 in the first run, child 0 in Dask's second."""
    runs = _runs(folder / f"child{i}")
    (folder / f"child{i}").write_text(str(runs + 1))
    if (i, runs) in ((1, 0), (0, 1)):
        time.sleep(3)
    return os.getpid()


@flow
def chunk_given_back_then_lost(folder: Path) -> Any:
    pids = held_back.map(range(3), folder=unmapped(folder))
    _kill_holder(pids.result()[0], folder / "child0")
    return count(pids)


def test_a_chunk_made_again_giving_back_earlier_says_its_child_did_not_run(
    tmp_path: Path, cluster: Any,
) -> None:
    """The chunk gave child 2 back (child 1 held it) and kept children 0 and 1; Dask's new run
    of it gave back after child 0, so child 1's value is not in it. Before: count failed with
    'IndexError: list index out of range' (reading child 1's place in the chunk)."""
    run = chunk_given_back_then_lost.run(folder=tmp_path, executor=DaskExecutor(cluster=cluster))
    assert run.state is State.FAILED, run.message
    states = {tr.name: (tr.state, tr.message) for tr in run.tasks}
    assert states["held_back[1]"] == (State.COMPLETED, ""), states
    assert states["count"] == (State.FAILED, (
        "WorkerDiedError: count did not run: the value of held_back[1], which it needs, was "
        "lost with its Dask worker after held_back[1] completed, and Dask's run of "
        "held_back[1] to make it again failed (RuntimeError: the call did not run: a sibling "
        "before it in its Dask chunk held it, and the chunk gave it back); run.retry() runs "
        "held_back[1] again")), states
    assert _runs(tmp_path / "child1") == 1  # the new run did not run it
    run.retry()
    assert run.state is State.COMPLETED, run.message
    assert run.result() == 3


@flow
def chunk_lost_at_the_end(folder: Path) -> Any:
    pids = child.map(range(3), folder=unmapped(folder))
    _kill_holder(pids.result()[0], folder / "child1")
    return pids


@pytest.mark.parametrize("per_run", [False, True], ids=["shared", "per run"])
def test_a_chunk_child_whose_new_run_failed_with_nothing_waiting_is_said_and_rerun(
    tmp_path: Path, cluster: Any, per_run: bool,
) -> None:
    """A map child's value (its chunk's) lost, Dask's new run of the chunk failing for that
    child, and no task run waiting for it. Before: nothing said, and run.retry() did not run
    it again (its chunk finished, so it did not count as lost): reading it still raised."""
    executor = _per_run() if per_run else DaskExecutor(cluster=cluster)
    run = chunk_lost_at_the_end.run(folder=tmp_path, executor=executor)
    assert run.state is State.COMPLETED, run.message
    noted = [line.text for line in run.logs("child[1]") if "[labloom]" in line.text]
    assert noted == [
        "[labloom] this task run's value was lost with its Dask worker after it completed; "
        f"Dask ran it again to make it, and that run failed (RuntimeError: {RAN_AGAIN}), so "
        "reading it raises WorkerDiedError. It stays Completed (its call returned); "
        "run.retry() runs it again"], noted
    assert run.notes == [_lost_note("child[1]")], run.notes
    run.retry()
    assert run.state is State.COMPLETED, run.message
    assert run.notes == [_lost_note("child[1]"), _rerun_note("child[1]")], run.notes
    assert _runs(tmp_path / "child1") == 3
    assert [isinstance(pid, int) for pid in run.result()] == [True] * 3
