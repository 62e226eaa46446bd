"""Each Dask internal labloom touches (``executors/dask_internals.py``), against the installed
release, and its fallback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

distributed = pytest.importorskip("distributed")

from labloom.executors import dask_internals  # noqa: E402


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                       dashboard_address=":0")
    client = distributed.Client(cluster, set_as_default=False)
    yield client
    client.close()
    cluster.close()


def add(x: int, y: int, extra: dict[str, int]) -> int:
    return x + y + sum(extra.values())


@pytest.mark.parametrize("build", ["task_spec", "tuple"])
def test_a_task_with_futures_in_its_arguments_runs(client: Any, build: str) -> None:
    upstream = client.submit(lambda: 40, key="up")
    other = client.submit(lambda: 1, key="other")
    if build == "task_spec":
        spec = dask_internals.task_spec("sum-1", add, upstream, 1, {"a": other})
    else:
        spec = dask_internals._tuple_task(add, upstream, 1, {"a": other})
    [future] = client.get({f"sum-{build}": spec}, [f"sum-{build}"], sync=False)
    assert future.result(timeout=30) == 42


def test_the_installed_dask_has_task_specs() -> None:
    # The fast path is the one in use on the release labloom is tested with.
    from dask._task_spec import Task

    assert isinstance(dask_internals.task_spec("k", add, 1, 2, {}), Task)


def test_adaptive_is_seen_on_the_installed_release() -> None:
    cluster = distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=":0")
    try:
        assert not dask_internals.is_adaptive(cluster)
        cluster.adapt(minimum=0, maximum=1)
        assert dask_internals.is_adaptive(cluster)
    finally:
        cluster.close()


@pytest.mark.parametrize("path", ["ordered", "client.get"])
def test_a_graph_sent_runs_with_or_without_its_order(client: Any, path: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    if path == "client.get":  # what a Dask release without _graph_to_futures's arguments gets
        monkeypatch.setattr(dask_internals, "_can_send_in_order", lambda: False)
    upstream = client.submit(lambda: 40, key=f"up-{path}")
    graph = {f"{path}-{i}": dask_internals.task_spec(f"{path}-{i}", add, upstream, i, {})
             for i in range(3)}
    futures = [distributed.Future(key, client) for key in graph]  # held before sending, as
    dask_internals.send_graph(client, graph, None)  # labloom does: else nobody wants them
    assert client.gather(futures) == [40, 41, 42]


def test_the_installed_distributed_takes_the_order_of_a_graph() -> None:
    assert dask_internals._can_send_in_order()


def test_why_a_future_was_cancelled_is_read_on_the_installed_release(client: Any) -> None:
    import time

    ours = client.submit(time.sleep, 1, key="cancelled-by-us")
    lost = client.submit(time.sleep, 1, key="cancelled-as-lost")
    ours.cancel()
    # What the client does to every future when its scheduler connection breaks.
    lost.cancel(reason=dask_internals.SCHEDULER_LOST)
    assert ours.status == "cancelled" and lost.status == "cancelled"
    assert dask_internals.cancel_reason(ours) is None
    assert dask_internals.cancel_reason(lost) == dask_internals.SCHEDULER_LOST


def test_the_error_an_erred_future_holds_is_read_without_its_client(client: Any) -> None:
    def fail() -> None:
        raise ValueError("held")

    erred = client.submit(fail, key="erred-held")
    erred.exception(timeout=60)  # its end, waited for
    assert erred.status == "error"
    error = dask_internals.held_error(erred)
    assert isinstance(error, ValueError) and str(error) == "held"
    assert dask_internals.held_error(client.submit(lambda: 1, key="fine-held")) is None


def _plus_one(x: int) -> int:
    return x + 1


def test_a_value_lost_with_its_worker_is_noted_and_dask_makes_it_again() -> None:
    """Its worker closed (as a killed one is removed): the scheduler tells the client, which
    still handles it as before (the future made again), and labloom is called."""
    import time

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster, set_as_default=False) as client:
        noted: list[Any] = []
        assert dask_internals.on_lost_data(client, noted.append)
        second = cluster.workers[1].address  # the one scale(1) closes
        future = client.submit(_plus_one, 1, key="lost-then-made", workers=[second],
                               allow_other_workers=True)
        assert future.result(timeout=60) == 2
        cluster.scale(1)
        end = time.monotonic() + 60
        while not noted:
            assert time.monotonic() < end, "the client was never told the value was lost"
            time.sleep(0.05)
        assert future.result(timeout=60) == 2  # made again on the other worker
        assert noted == ["lost-then-made"]


def test_lost_values_are_not_noted_where_the_client_cannot_tell() -> None:
    assert not dask_internals.on_lost_data(object(), lambda key: None)


class _Counter:
    def __init__(self) -> None:
        self.count = 0

    def one(self, key: Any) -> None:
        self.count += key == "no-such-key"


def test_a_client_is_wrapped_once_however_many_listen(client: Any) -> None:
    """An executor per run on one client (a kernel's) wrapped the handler again each time:
    each lost value would call down a chain as long as the runs made."""
    import gc

    first, second = _Counter(), _Counter()
    for counter in (first, second, first):
        assert dask_internals.on_lost_data(client, counter.one)
    handler = client._stream_handlers["lost-data"]
    assert handler.own == client._handle_lost_data  # the client's own, wrapped once
    handler(key="no-such-key")  # what the scheduler sends (a key this client does not want)
    assert (first.count, second.count) == (1, 1)  # each once
    del second
    gc.collect()
    assert dask_internals.on_lost_data(client, first.one)
    assert len(handler.listeners) == 1  # the collected one's place given up


def test_each_internal_takes_its_fast_path_on_the_installed_release() -> None:
    # A release that moves one of these fails here, by name, before any run slows or breaks.
    assert dask_internals.in_use() == {
        "task_spec": "dask._task_spec.Task",
        "send_graph": "Client._graph_to_futures",
        "watch": "distributed.client.done_callback",
        "semaphore": "Semaphore(scheduler_rpc=)",
        "future": "Future(key, client)",
        "on_lost_data": "Client._stream_handlers['lost-data']",
    }


@pytest.mark.parametrize("path", ["scheduler_rpc", "public"])
def test_a_semaphore_on_the_executors_client_gives_and_takes_leases(client: Any,
                                                                     path: str) -> None:
    make = dask_internals.semaphore if path == "scheduler_rpc" else (
        dask_internals._public_semaphore)
    semaphore = make(client, f"labloom-test-{path}", 1)
    assert client.sync(semaphore.acquire, timeout=60)
    assert not client.sync(semaphore.acquire, timeout=0.1)  # the one lease is taken
    client.sync(semaphore.release)
    assert client.sync(semaphore.acquire, timeout=60)
    client.sync(semaphore.release)
