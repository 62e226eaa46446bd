"""A nightly run whose Dask cluster is restarting when it starts: under ``@flow(retries=N)``
its executor that cannot reach the scheduler is a failed attempt like any other. The run
exists (recorded, its message saying why and when it tries again) and its next attempt
connects again; before, it raised at once, before any retry could apply."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from cli_helpers import wait_for
from lab_helpers import free_port
from labloom import DaskExecutor, State, flow, task
from labloom.store import open_store


@task
def add_one(x: int) -> int:
    return x + 1


def test_a_scheduler_down_at_start_then_up_is_reached_at_the_next_attempt() -> None:
    from distributed import LocalCluster

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"

    @flow(retries=2, retry_delay=1)
    def nightly() -> int:
        return add_one(1)

    executor = DaskExecutor(address=address)
    run = nightly.run(executor=executor, background=True)
    cluster: Any = None
    try:
        wait_for(lambda: "attempt 1 of 3 failed: the executor could not start" in run.message,
                 60, "the first attempt to fail to reach the scheduler")
        assert run.state is State.RUNNING

        def stored_waiting() -> Any:
            with open_store() as store:
                stored = store.get_run(run.id)
            return stored if stored is not None and "attempt 2 starts" in stored.message else None

        stored = wait_for(stored_waiting, 30, "the store to have the run waiting")
        assert stored.state == "Running" and f"cannot reach {address}" in stored.message
        cluster = LocalCluster(scheduler_port=port, n_workers=1, threads_per_worker=1,
                               processes=False, dashboard_address=":0")
        assert run.wait(timeout=120) is State.COMPLETED, run.message
        assert run.result() == 2 and run.attempt >= 2
        assert run.message.startswith(f"completed at attempt {run.attempt} of 3")
    finally:
        run.cancel()
        run.wait(timeout=30)
        if cluster is not None:
            executor.client.close()  # the process's client for the address, then its cluster
            cluster.close()


def test_a_scheduler_that_stays_down_fails_the_run_after_its_last_attempt() -> None:
    address = f"tcp://127.0.0.1:{free_port()}"

    @flow(retries=1, retry_delay=0.1)
    def nightly() -> int:
        return add_one(1)

    with pytest.raises(ConnectionError, match=f"cannot reach {address}"):
        nightly.run(executor=DaskExecutor(address=address))  # raises, as without retries
    with open_store() as store:
        [stored] = store.list_runs(flow="nightly", limit=1)
    assert stored.state == "Failed"
    assert stored.message.endswith("(attempt 2 of 2: every attempt failed)"), stored.message


def test_a_run_waiting_to_reach_its_scheduler_is_cancelled_at_once() -> None:
    address = f"tcp://127.0.0.1:{free_port()}"

    @flow(retries=2, retry_delay=60)
    def nightly() -> int:
        return add_one(1)

    run = nightly.run(executor=DaskExecutor(address=address), background=True)
    wait_for(lambda: "attempt 2 starts in 60s" in run.message, 60, "the wait")
    done = threading.Event()
    threading.Thread(target=lambda: (run.wait(), done.set()), daemon=True).start()
    run.cancel()
    assert done.wait(20) and run.state is State.CANCELLED
    assert run.message.startswith("cancelled by user before attempt 2 of 3")


def flaky_backend_cluster() -> type:
    """A cluster class whose backend is down at its first start (as a Kubernetes API that
    restarts), up at the next."""
    from distributed import LocalCluster

    class FlakyBackendCluster(LocalCluster):  # type: ignore[misc]
        starts = 0

        def __init__(self, **options: Any) -> None:
            FlakyBackendCluster.starts += 1
            if FlakyBackendCluster.starts == 1:
                raise ConnectionRefusedError("connection refused by https://k8s.lab.internal")
            super().__init__(**options)

    return FlakyBackendCluster


def test_a_cluster_whose_backend_is_down_at_start_is_started_at_the_next_attempt() -> None:
    @flow(retries=1, retry_delay=0.1)
    def nightly() -> int:
        return add_one(1)

    executor = DaskExecutor(cluster_class=flaky_backend_cluster(), cluster_kwargs={
        "n_workers": 1, "processes": False, "dashboard_address": ":0"})
    run = nightly.run(executor=executor)
    assert run.state is State.COMPLETED and run.result() == 2, run.message
    assert "attempt 1 failed: the executor could not start" in run.message
    assert "connection refused by https://k8s.lab.internal" in run.message


def test_options_a_cluster_refuses_fail_the_run_at_once_despite_retries() -> None:
    @flow(retries=2, retry_delay=60)
    def nightly() -> int:
        return add_one(1)

    from labloom import ClusterConfigError

    executor = DaskExecutor(cluster_class="distributed.LocalCluster",
                            cluster_kwargs={"n_workers": 1, "processes": False,
                                            "dashboard_address": ":0", "no_such_option": 1})
    with pytest.raises(ClusterConfigError, match="refused its options"):
        nightly.run(executor=executor)  # not after 2 minutes of retries


def test_an_interrupt_while_the_executor_starts_again_cancels_the_run() -> None:
    from labloom import LocalExecutor
    from labloom.core.observers import add_run_observer

    class DownThenInterrupted(LocalExecutor):
        starts = 0

        def start(self) -> None:
            DownThenInterrupted.starts += 1
            if DownThenInterrupted.starts == 1:
                raise ConnectionRefusedError("the scheduler is restarting")
            raise KeyboardInterrupt  # Ctrl-C while it connects again

    @flow(retries=2, retry_delay=0)
    def nightly() -> int:
        return add_one(1)

    runs: list[Any] = []
    remove = add_run_observer(runs.append)
    try:
        with pytest.raises(KeyboardInterrupt):
            nightly.run(executor=DownThenInterrupted())
    finally:
        remove()
    assert runs[0].state is State.CANCELLED, runs[0].message  # not Failed "could not start"
    assert runs[0].message.startswith("interrupted")
