"""Where the dashboard of a LocalCluster labloom starts (the embedded one, or one per run of
``cluster_class="distributed.LocalCluster"``) listens, when its options do not say
(``dashboard_address``).

distributed's default is port 8787. When another process holds it (a second kernel's cluster,
a dask-labextension cluster, a server on that port), distributed hosts the dashboard elsewhere
and warns on the user's cell or terminal: "Port 8787 is already in use. Perhaps you already have
a cluster running? Hosting the HTTP server on port N instead", about a choice the user did not
make and need not act on. labloom asks for 8787 when it is free, else for any free port (the
system picks it: no warning), and the run's record keeps the dashboard's actual link
(``client.dashboard_link``: the cell's and Lab's "Dask dashboard" links). A port given in the
options stands, and so does distributed's warning: the user asked for that port.

``LABLOOM_DASHBOARD_PORT`` names another port to prefer (0: any free port).
"""

from __future__ import annotations

import socket
from typing import Any

from ..core.env_numbers import env_number
from ..core.errors import ClusterConfigError

PORT = 8787  # distributed's own default: what a user finds in Dask's docs


def preferred_port() -> int:
    """``LABLOOM_DASHBOARD_PORT``, else 8787; one that is no port raises (read as the cluster
    starts, before anything runs on it)."""
    return int(env_number("LABLOOM_DASHBOARD_PORT", PORT, "a port number from 0 to 65535",
                          lambda port: 0 <= port <= 65535, ClusterConfigError,
                          "the Dask dashboard's port; 0: any free one", whole=True))


def is_free(port: int) -> bool:
    """Whether a server could listen on ``port`` now, on every interface (a holder on any of
    them refuses the dashboard's: it listens on the scheduler's host). With SO_REUSEADDR, as
    the dashboard's server binds: a port closed a moment ago (TIME_WAIT) is free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("", port))
        except OSError:
            return False
    return True


def with_dashboard(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``LocalCluster(**kwargs)``'s options with a dashboard address that is free now (unless
    they name one, or none: ``dashboard_address=None`` turns it off)."""
    if "dashboard_address" in kwargs:
        return kwargs
    port = preferred_port()
    return {**kwargs, "dashboard_address": f":{port if port and is_free(port) else 0}"}
