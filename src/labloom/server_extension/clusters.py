"""``clusters``: the Dask clusters that dask-labextension manages in this same server.

dask-labextension keeps one ``DaskClusterManager`` per server (where: see
``dask_labextension_internals.py``). We ask it, so the run view can say which cluster a run
used. Without dask-labextension the list is empty and ``available`` says why.
"""

from __future__ import annotations

import inspect
from typing import Any

import tornado
from jupyter_server.auth.decorator import authorized

from .base import LabloomHandler
from .dask_labextension_internals import cluster_manager


class ClustersHandler(LabloomHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        manager = await cluster_manager(self.settings, self.serverapp)
        if manager is None:
            self.reply({"available": False, "clusters": [],
                        "note": "dask-labextension is not enabled in this server"})
            return
        models = manager.list_clusters()
        if inspect.isawaitable(models):
            models = await models
        self.reply({"available": True, "clusters": [_cluster(m) for m in models]})


def _cluster(model: dict[str, Any]) -> dict[str, Any]:
    # dask-labextension's cluster model, minus nothing secret: id, name, scheduler address,
    # dashboard link, workers, cores, memory.
    keys = ("id", "name", "scheduler_address", "dashboard_link", "workers", "cores", "memory")
    return {key: model.get(key) for key in keys}
