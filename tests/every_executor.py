"""Fixtures for tests that run on every executor: ``any_executor`` is "local", "threads" or a
``DaskExecutor`` on ``dask_cluster``, one real ``LocalCluster`` with worker processes per test
module. Registered by conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[Any]:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=True,
                                  dashboard_address=":0") as cluster:
        yield cluster


@pytest.fixture(params=["local", "threads", "dask"])
def any_executor(request: pytest.FixtureRequest) -> Any:
    if request.param != "dask":
        return request.param
    from labloom import DaskExecutor

    return DaskExecutor(cluster=request.getfixturevalue("dask_cluster"))
