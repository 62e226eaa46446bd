"""A task run's result lost with its Dask worker before the engine read that it finished.

Dask marks a finished future "lost" when the worker holding its value dies, and computes the
value again for the client that holds the future. The engine reads a future's status on its
event-delivery thread, a moment after Dask said it finished: a worker killed in that moment
left the status "lost", which the engine read as a failure, asked Dask for the error (waiting
for the value to be computed again, then getting None) and broke on it, so the task run stayed
Running and the run never ended (tests/test_chaos.py's worker killed mid-map, under load).
That stuck run, cancelled at the test's end after its cluster closed, showed a second fault:
cancelling a run whose Dask client had closed raised.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from cli_helpers import wait_for
from labloom import DaskExecutor, State, flow, task, unmapped

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.usefixtures("killed_workers_come_back")  # conftest.py


def held_at_its_gate(gate: str) -> int:
    """Each start (of any task run) notes its process and waits for its own gate (``gate.1``,
    ``gate.2``...): the test decides when the first runs return and when Dask's second may."""
    with open(gate + ".starts", "a") as out:
        out.write(f"{os.getpid()}\n")
    starts = len(Path(gate + ".starts").read_text().splitlines())
    deadline = time.monotonic() + 120
    while not os.path.exists(f"{gate}.{starts}") and time.monotonic() < deadline:
        time.sleep(0.01)
    return 7


@task
def kept_on_its_worker(gate: str) -> int:
    return held_at_its_gate(gate)


@task(batch_size=2)
def kept_in_a_chunk(i: int, gate: str) -> int:
    return held_at_its_gate(gate) + i


@flow
def one_value(gate: str) -> int:
    return kept_on_its_worker(gate)  # type: ignore[return-value]


@flow
def one_chunk(gate: str) -> list[int]:
    return kept_in_a_chunk.map(range(2), unmapped(gate))  # type: ignore[return-value]


# (the flow, its task runs, their values): one Dask task each, or both in one chunk
CASES = {"alone": (one_value, 1, 7), "in a chunk": (one_chunk, 2, [7, 8])}


@pytest.mark.parametrize("case", list(CASES))
def test_a_result_lost_before_the_engine_read_its_end_still_completes(
        case: str, tmp_path: Path) -> None:
    flow_fn, n, value = CASES[case]
    gate = str(tmp_path / "gate")
    starts = Path(gate + ".starts")

    def open_gates(first: int) -> None:
        for i in range(first, first + n):
            Path(f"{gate}.{i}").touch()

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        executor = DaskExecutor(client=client)
        run = flow_fn.run(gate=gate, executor=executor, background=True)
        wait_for(lambda: starts.exists() and starts.read_text(), 60, "the task to start")
        # The engine's event delivery held: the task's end, once Dask says it, waits here.
        held = threading.Event()
        executor.dispatcher.put(held.wait, 120)
        open_gates(1)
        key = wait_for(lambda: next((k for k, on in client.who_has().items() if on), None),
                       60, "the value on its worker")
        future = distributed.Future(key, client)  # the engine's future's state, shared
        wait_for(lambda: future.status == "finished", 60, "the client to hear it finished")
        os.kill(int(starts.read_text().split()[0]), signal.SIGKILL)
        wait_for(lambda: future.status == "lost", 60, "the client to hear the value was lost")
        held.set()  # the engine reads the task's end now, while Dask's second run waits
        wait_for(lambda: len(run.tasks) == n and all(
            tr.state is State.COMPLETED for tr in run.tasks), 60,
            "the task runs, which returned, to show Completed")
        open_gates(n + 1)
        assert run.wait(120) is State.COMPLETED
        assert run.result() == value
    assert len(starts.read_text().split()) == 2 * n  # the value was computed again, by Dask
    for tr in run.tasks:
        assert tr.attempts == 1 and [h.state for h in tr.history].count(State.COMPLETED) == 1


def test_a_run_cancelled_once_its_client_closed_is_cancelled(tmp_path: Path) -> None:
    # run.cancel() raised distributed's ClosedClientError ("Can't send cancel-keys message")
    # when the run's client had closed (its cluster closed in another cell) before the run
    # heard of it: the teardown error of test_chaos's stuck run. The engine's event delivery
    # is held so that the run has not heard when it is cancelled.
    gate = str(tmp_path / "gate")
    starts = Path(gate + ".starts")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster:
        client = distributed.Client(cluster)
        executor = DaskExecutor(client=client)
        run = one_value.run(gate=gate, executor=executor, background=True)
        wait_for(lambda: starts.exists() and starts.read_text(), 60, "the task to start")
        held = threading.Event()
        executor.dispatcher.put(held.wait, 120)
        client.close()
        try:
            run.cancel("the cluster is gone")
        finally:
            held.set()
            Path(gate + ".1").touch()
        assert run.wait(60) is State.CANCELLED
    assert run.tasks[0].state is State.CANCELLED
