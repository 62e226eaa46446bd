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
