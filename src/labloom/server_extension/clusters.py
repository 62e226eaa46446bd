"""``clusters``: the Dask clusters that dask-labextension manages in this same server.

dask-labextension keeps one ``DaskClusterManager`` per server: in the tornado settings (newer
releases) or as its module's ``manager`` (7.x, loaded into this server's process). We ask it, so
the run view can say which cluster a run used. Without dask-labextension the list is empty and
``available`` says why.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

import tornado
from jupyter_server.auth.decorator import authorized

from .base import LabloomHandler

MANAGER_KEY = "dask_cluster_manager"  # where dask-labextension puts its manager


class ClustersHandler(LabloomHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        manager = await self._manager()
        if manager is None:
            self.reply({"available": False, "clusters": [],
                        "note": "dask-labextension is not enabled in this server"})
            return
        models = manager.list_clusters()
        if inspect.isawaitable(models):
            models = await models
        self.reply({"available": True, "clusters": [_cluster(m) for m in models]})

    async def _manager(self) -> Any:
        pending = self.settings.get(MANAGER_KEY)
        if pending is not None:
            return await pending  # awaitable: it initialises once
        if not self._enabled_here():
            return None
        module = sys.modules.get("dask_labextension.manager")  # imported when it was loaded
        return getattr(module, "manager", None)

    def _enabled_here(self) -> bool:
        # The module may sit in sys.modules because another server in this process loaded it:
        # only this server's own extension list says whether it manages clusters here.
        app = self.serverapp
        package = app.extension_manager.extensions.get("dask_labextension") if app else None
        return bool(package is not None and package.enabled)


def _cluster(model: dict[str, Any]) -> dict[str, Any]:
    # dask-labextension's cluster model, minus nothing secret: id, name, scheduler address,
    # dashboard link, workers, cores, memory.
    keys = ("id", "name", "scheduler_address", "dashboard_link", "workers", "cores", "memory")
    return {key: model.get(key) for key in keys}
