"""Where dask-labextension keeps its cluster manager: its internals labloom reads, in one
place. dask-labextension has no public way to reach its ``DaskClusterManager``; it keeps one
per server, in one of two places. ``in_use()`` names the one the installed release takes;
``tests/test_dask_labextension.py`` checks it and that the list is empty without it.

- ``SETTINGS_KEY``: newer releases put an awaitable manager in the tornado settings under
  ``"dask_cluster_manager"`` (it initialises once).
- ``MODULE_GLOBAL``: 7.x keeps the manager in ``dask_labextension.manager.manager``, a module
  global made when the extension was loaded into this server's process.
"""

from __future__ import annotations

import sys
from typing import Any

SETTINGS_KEY = "dask_cluster_manager"  # where newer dask-labextension releases put it
MODULE_GLOBAL = "dask_labextension.manager.manager"
NOT_INSTALLED = "not installed"


def in_use() -> str:
    """Where the installed dask-labextension keeps its manager."""
    try:
        import dask_labextension.manager as module
    except ImportError:
        return NOT_INSTALLED
    return MODULE_GLOBAL if hasattr(module, "manager") else SETTINGS_KEY


async def cluster_manager(settings: dict[str, Any], server_app: Any) -> Any:
    """dask-labextension's manager in this server, or None where it is not enabled here."""
    pending = settings.get(SETTINGS_KEY)
    if pending is not None:
        return await pending  # awaitable: it initialises once
    if not _enabled_in(server_app):
        return None
    module = sys.modules.get("dask_labextension.manager")  # imported when it was loaded
    return getattr(module, "manager", None)


def _enabled_in(server_app: Any) -> bool:
    # The module may sit in sys.modules because another server in this process loaded it:
    # only this server's own extension list says whether it manages clusters here.
    if server_app is None:
        return False
    package = server_app.extension_manager.extensions.get("dask_labextension")
    return bool(package is not None and package.enabled)
