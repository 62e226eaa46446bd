"""A chunk child that hangs (on a real LocalCluster, one for the module): its timeout costs only
that child. The children of a chunk run in turn on one worker thread; one that runs on holds its
siblings after it no longer than ``dask_chunking.GIVE_BACK_AFTER`` (or its timeout, if shorter):
they go out again one per Dask task, and ``batch_size="auto"`` chunks that task no more."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")

import labloom  # noqa: E402
from dask_chunks import measured_as_tiny, sent_alone  # noqa: E402
from labloom import DaskExecutor, State, flow, task  # noqa: E402
from labloom.core.attempt import TaskCall, waiting_behind  # noqa: E402
from labloom.core.errors import TaskTimeoutError  # noqa: E402


def test_a_call_with_calls_behind_it_says_when_it_ran_past_their_patience_then_keeps_its_own():
    # No cluster: what a chunk's thread sees. The call is told past the patience (here, what
    # releases it), and still ends as itself: its value, or its own timeout.
    release, told = threading.Event(), []

    def hold_no_longer() -> None:
        told.append(release.is_set())
        release.set()

    waits = TaskCall(lambda: release.wait(60) and "done", "waits", "r", "r.1", timeout=60)
    with waiting_behind(0.01, hold_no_longer):
        assert waits() == "done"
    assert told == [False]
    quick = TaskCall(lambda: "quick", "quick", "r", "r.2", timeout=60)
    with waiting_behind(30, hold_no_longer):
        assert quick() == "quick"  # returned within the patience: nothing said
    # Held until the test is done with it (not a wait a few seconds long, which a loaded
    # machine may see end before the timeout): only the timeout can end each call here.
    over = threading.Event()
    hangs = TaskCall(lambda: over.wait(600), "hangs", "r", "r.3", timeout=0.05)
    try:
        with waiting_behind(30, hold_no_longer), pytest.raises(TaskTimeoutError):
            hangs()  # its timeout came first: said as it timed out
        assert told == [False, True]
        with pytest.raises(TaskTimeoutError):
            hangs()  # nothing waits behind it any more: nothing said
        assert told == [False, True]
    finally:
        over.set()  # the given-up calls' threads go


def test_a_short_answer_from_a_chunk_that_gave_children_back_fails_only_those_not_run() -> None:
    # The news that the chunk gave its last children back was not taken (their run had
    # ended): the answer saying which child failed is shorter than the chunk. Those it covers
    # end as it says; the others never ran, and say so (unpadded, the strict zip failed in the
    # dispatcher thread and no child of the chunk ended).
    from labloom.core.executor import Outcome
    from labloom.executors.dask_events import Dispatcher
    from labloom.executors.dask_outcomes import report_failures

    class Answer:
        status, key = "finished", "status-t-chunk"

        def result(self) -> list[tuple[bool, BaseException | None, str]]:
            return [(True, None, ""), (False, TaskTimeoutError("timed out"), "timed out")]

    dispatcher = Dispatcher()
    calls = [TaskCall(fn=print, task_name=f"t[{i}]", run_id="r", task_run_id=f"r.{i}")
             for i in range(4)]
    for i in range(2):
        dispatcher.times[(f"r.{i}", 1, 0)] = (1.0, 2.0, i == 0)
    outcomes: dict[int, Outcome] = {}
    chunk = [(call, lambda outcome, i=i: outcomes.__setitem__(i, outcome))
             for i, call in enumerate(calls)]
    report_failures(Answer(), Answer(), chunk, dispatcher)  # type: ignore[arg-type]
    assert [outcomes[i].ok for i in range(4)] == [True, False, False, False]
    assert outcomes[1].traceback == "timed out"
    assert all("the call did not run" in outcomes[i].traceback for i in (2, 3))


@pytest.fixture(scope="module")
def cluster():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=True,
                                       dashboard_address=":0")
    yield cluster
    cluster.close()


@pytest.fixture
def executor(cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("LABLOOM_HOME", str(tmp_path / "home"))
    return DaskExecutor(cluster=cluster)


def _wait_for(path: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)


@task(batch_size=8, timeout=600)
def hangs_in_its_chunk(i: int, gate: str) -> int:
    print(f"child {i}")
    labloom.log_metrics(m=i)
    if i == 2:
        Path(f"{gate}.waiting").touch()
        _wait_for(gate, 120)  # its timeout is far off: the test opens the gate
    return i


@flow
def one_chunk_one_hanging(gate: str) -> list[int]:
    return hangs_in_its_chunk.map(range(8), gate=labloom.unmapped(gate))  # type: ignore[return-value]


def test_a_hanging_child_does_not_hold_its_siblings_until_its_timeout(executor, tmp_path):
    # One chunk of eight; child 2 waits on a gate far inside its timeout. Before, children 3-7
    # waited behind it (for its 600 s, with no gate). Now every sibling completes while child 2
    # still runs; those after it went out again one per Dask task.
    gate = tmp_path / "gate"
    run = one_chunk_one_hanging.run(gate=str(gate), executor=executor, background=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            states = {tr.map_index: tr.state for tr in run.tasks}
            if len(states) == 8 and all(states[i] is State.COMPLETED for i in states if i != 2):
                break
            assert time.monotonic() < deadline, f"the siblings to complete: {states}"
            time.sleep(0.02)
        assert states[2] is State.RUNNING and Path(f"{gate}.waiting").exists()
    finally:
        gate.touch()
    assert run.wait(60) is State.COMPLETED
    assert run.result() == list(range(8))
    assert sent_alone(executor, run, "hangs_in_its_chunk") == {3, 4, 5, 6, 7}
    children = sorted(run.tasks, key=lambda tr: tr.map_index or 0)
    assert all(tr.attempts == 1 for tr in children)
    for i in range(8):  # each child's lines and values on its own task run
        assert [line.text for line in run.logs(f"hangs_in_its_chunk[{i}]")] == [f"child {i}"]
    rows = labloom.experiments(run=run.id)
    rows = rows.to_dict("records") if hasattr(rows, "to_dict") else rows
    assert sorted((row["map_index"], row["m"]) for row in rows) == [(i, i) for i in range(8)]


@task(batch_size=8, timeout=600)
def hangs_after_a_failure(i: int, gate: str) -> int:
    print(f"child {i}")
    if i == 0:
        raise ValueError("child 0 fails")
    if i == 2:
        _wait_for(gate, 120)
    return i


@flow
def a_failure_then_a_hang(gate: str) -> list[int]:
    return hangs_after_a_failure.map(range(8), gate=labloom.unmapped(gate))  # type: ignore[return-value]


def test_with_a_failure_before_the_hanging_child_those_after_it_still_go(executor, tmp_path):
    # Which child before it failed, and why, only the chunk's end says: those before it end
    # with the chunk (child 0 Failed with its own error, child 1 Completed), those after it
    # go out alone and complete while child 2 still runs.
    gate = tmp_path / "gate"
    run = a_failure_then_a_hang.run(gate=str(gate), executor=executor, background=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            states = {tr.map_index: tr.state for tr in run.tasks}
            if len(states) == 8 and all(states[i] is State.COMPLETED for i in range(3, 8)):
                break
            assert time.monotonic() < deadline, f"the siblings after child 2 to complete: {states}"
            time.sleep(0.02)
        assert states[2] is State.RUNNING
    finally:
        gate.touch()
    assert run.wait(60) is State.FAILED
    children = sorted(run.tasks, key=lambda tr: tr.map_index or 0)
    assert [tr.state for tr in children] == [State.FAILED] + [State.COMPLETED] * 7
    assert "ValueError: child 0 fails" in children[0].message
    assert [executor.result(tr.handle) for tr in children[1:]] == list(range(1, 8))
    assert sent_alone(executor, run, "hangs_after_a_failure") == {3, 4, 5, 6, 7}


def test_a_cancel_while_the_child_hangs_keeps_the_values_of_its_siblings_that_completed(
        executor, tmp_path):
    # Those before it were reported Completed while their values are still in the chunk's
    # result: the cancel (of the hanging child) must not make Dask drop that result.
    gate = tmp_path / "gate"
    run = one_chunk_one_hanging.run(gate=str(gate), executor=executor, background=True)
    try:
        deadline = time.monotonic() + 60
        while sum(tr.state is State.COMPLETED for tr in run.tasks) < 7:
            assert time.monotonic() < deadline, "the siblings to complete"
            time.sleep(0.02)
        run.cancel()
        assert run.wait(30) is State.CANCELLED
    finally:
        gate.touch()
    children = sorted(run.tasks, key=lambda tr: tr.map_index or 0)
    assert [tr.state for tr in children] == [State.COMPLETED] * 2 + [State.CANCELLED] + [
        State.COMPLETED] * 5
    assert [executor.result(tr.handle) for tr in children if tr.map_index != 2] == [
        0, 1, 3, 4, 5, 6, 7]


def test_a_child_timing_out_in_an_automatic_chunk_retries_alone_and_the_task_is_chunked_no_more(
        executor, tmp_path):
    gate = str(tmp_path / "after")  # opened after the run: child 5's first attempt times out

    @task(retries=1, retry_delay=0, timeout=1)
    def quick(x: int, trouble: bool, marker: str) -> int:
        print(f"child {x}")
        if trouble and x == 5 and not os.path.exists(marker):
            Path(marker).touch()
            _wait_for(gate, 60)  # past its timeout (opened once the run is over)
        return x * 10

    @flow
    def f(n: int, trouble: bool, marker: str) -> list[int]:
        return quick.map(range(n), trouble=labloom.unmapped(trouble),  # type: ignore[return-value]
                         marker=labloom.unmapped(marker))

    marker = str(tmp_path / "timed-out-once")
    # Measured as tiny by the test, not by a first run: under load that run's durations read
    # slow (a paused child), "auto" sent this map one child per Dask task and child 5 had no
    # chunk to time out in. Now the map is chunked whatever the machine does: its own
    # durations cannot move the mean past the 12.5 ms that stops chunking (dask_chunks.py).
    measured_as_tiny(executor, "quick")
    try:
        run = f.run(n=40, trouble=True, marker=marker, executor=executor)  # chunked
    finally:
        Path(gate).touch()  # the given-up attempt's thread goes
    assert run.state is State.COMPLETED and run.result() == [x * 10 for x in range(40)]
    children = {tr.map_index: tr for tr in run.tasks}
    assert {i for i, tr in children.items() if tr.attempts != 1} == {5}
    retrying = [h.message for h in children[5].history if h.state is State.RETRYING]
    assert len(retrying) == 1 and TaskTimeoutError.__name__ in retrying[0]
    said = [line.text for line in run.logs("quick[5]")]  # each attempt's, and why it retried
    assert len(said) == 3 and said[0] == said[2] == "child 5"
    assert said[1].startswith("[labloom] attempt 1 of 2 failed; retrying in 0s\n")
    assert all([line.text for line in run.logs(f"quick[{i}]")] == [f"child {i}"]
               for i in children if i != 5)
    alone = sent_alone(executor, run, "quick")
    assert 5 not in alone and 6 in alone  # its chunk's next child went out alone
    # "auto" learnt that the task may hang: its next map is one child per Dask task.
    later = f.run(n=40, trouble=False, marker=marker, executor=executor)
    assert later.result() == [x * 10 for x in range(40)]
    assert sent_alone(executor, later, "quick") == set(range(40))
