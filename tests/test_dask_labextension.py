"""dask-labextension's side panel and labloom: a cluster started through dask-labextension's own
REST API on a real Jupyter server is listed by labloom's API, and once it is Dask's active
cluster (as the side panel sets it in a kernel), ``executor="dask"`` runs there and says so."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import dask.config
import pytest

from labloom import flow, task
from labloom.server_extension import dask_labextension_internals as labextension_internals

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {
        "ServerApp": {
            # dask-labextension's dashboard proxy has no auth decorator, so it refuses to load
            # in a server that forbids undecorated handlers: this server allows them.
            "jpserver_extensions": {"labloom": True, "dask_labextension": True},
        }
    }


@pytest.fixture(autouse=True)
def small_clusters() -> Iterator[None]:
    # dask-labextension starts its clusters in the server process: threads, one worker.
    factory = {"module": "dask.distributed", "class": "LocalCluster",
               "args": [], "kwargs": {"processes": False, "protocol": "tcp://", "n_workers": 1,
                                      "threads_per_worker": 2, "dashboard_address": ":0"}}
    with dask.config.set({"labextension.factory": factory}):
        yield


@task
def double(x: int) -> int:
    return 2 * x


@flow(executor="dask")
def doubled(n: int = 4) -> list[int]:
    return double.map(range(n))  # type: ignore[return-value]


async def test_a_dask_labextension_cluster_is_listed_and_used(jp_fetch: Any) -> None:
    created = json.loads((await jp_fetch("dask", "clusters", method="PUT", body=b"")).body)
    try:
        listed = json.loads((await jp_fetch("labloom", "api", "clusters")).body)
        assert listed["available"] is True
        [cluster] = listed["clusters"]
        assert cluster["id"] == created["id"] and cluster["name"] == created["name"]
        address = cluster["scheduler_address"]
        assert address == created["scheduler_address"]
        assert address.startswith("tcp://")

        # What the side panel runs in a kernel to make the cluster active.
        # (In a thread: the cluster lives on this event loop, which must keep turning.)
        with dask.config.set({"scheduler-address": address}):
            run = await asyncio.to_thread(doubled.run)
        assert await asyncio.to_thread(run.result) == [0, 2, 4, 6]
        assert run.metadata["address"] == address
        assert run.metadata["cluster"].startswith("active Dask cluster")
        shown = json.loads((await jp_fetch("labloom", "api", "runs", run.id)).body)
        assert shown["executor"] == f"dask({address})"
        assert shown["metadata"]["address"] == address
        assert shown["cluster"].startswith("active Dask cluster")
    finally:
        await jp_fetch("dask", "clusters", created["id"], method="DELETE")


def test_the_installed_dask_labextension_keeps_its_manager_where_labloom_looks() -> None:
    # A release that moves its manager fails here, by name (the Clusters list would be empty).
    assert labextension_internals.in_use() == labextension_internals.MODULE_GLOBAL


async def test_the_manager_is_found_in_either_place_and_absent_where_not_enabled() -> None:
    manager = object()

    async def initialised() -> object:
        return manager

    found = await labextension_internals.cluster_manager(
        {labextension_internals.SETTINGS_KEY: initialised()}, None
    )
    assert found is manager  # newer releases: the awaitable in the settings
    assert await labextension_internals.cluster_manager({}, None) is None  # not enabled here
