"""``clusters``: the Dask clusters that dask-labextension manages in this same server.

dask-labextension keeps one ``DaskClusterManager`` in the tornado settings; we ask it, so the
Flows panel can say which cluster a run used. Without dask-labextension the list is empty and
``available`` says why.
"""

from __future__ import annotations

from typing import Any

import tornado
from jupyter_server.auth.decorator import authorized

from .base import LabloomHandler

MANAGER_KEY = "dask_cluster_manager"  # where dask-labextension puts its manager


class ClustersHandler(LabloomHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        pending = self.settings.get(MANAGER_KEY)
        if pending is None:
            self.reply({"available": False, "clusters": [],
                        "note": "dask-labextension is not enabled in this server"})
            return
        manager = await pending  # the manager is awaitable; it initialises once
        models: list[dict[str, Any]] = await manager.list_clusters()
        self.reply({"available": True, "clusters": [_cluster(m) for m in models]})


def _cluster(model: dict[str, Any]) -> dict[str, Any]:
    # dask-labextension's cluster model, minus nothing secret: id, name, scheduler address,
    # dashboard link, workers, cores, memory.
    keys = ("id", "name", "scheduler_address", "dashboard_link", "workers", "cores", "memory")
    return {key: model.get(key) for key in keys}
