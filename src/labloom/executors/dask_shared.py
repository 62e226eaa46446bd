"""The Dask clusters and clients a process shares between runs: the embedded LocalCluster
(one per set of options) and the clients opened for a scheduler address, made once, reused by
every later run, and closed at exit. A cluster per run (``dask_clusters.py``) is not here: it
belongs to its runs."""

from __future__ import annotations

import atexit
import threading
from typing import Any

# One embedded LocalCluster (and client) per process and set of cluster options, reused by
# every run: a notebook pays the start-up once.
_embedded: dict[str, tuple[Any, Any]] = {}
# Clients opened for a scheduler address, reused by later runs.
_connected: dict[str, Any] = {}
_shared_lock = threading.Lock()
# Per client (by id): durations measured for batch_size="auto" (data only: threads belong to
# executors).
_durations: dict[str, dict[str, tuple[int, float]]] = {}


def durations_of(client: Any) -> dict[str, tuple[int, float]]:
    """The durations measured so far on ``client``'s cluster (shared by its executors)."""
    with _shared_lock:
        return _durations.setdefault(client.id, {})


def shared_client(address: str | None, cluster_kwargs: dict[str, Any]) -> Any:
    """The client for ``address``, else for the embedded ``LocalCluster(**cluster_kwargs)``,
    made on first use."""
    from distributed import Client

    with _shared_lock:
        if address is not None:
            client = _connected.get(address)
            if client is None or client.status in ("closed", "closing"):
                client = Client(address, set_as_default=False)  # type: ignore[no-untyped-call]
                _connected[address] = client
                _close_at_exit()
            return client
        key = repr(sorted(cluster_kwargs.items()))
        if key not in _embedded:
            from distributed import LocalCluster

            refuse_inside_a_worker()
            cluster = LocalCluster(**cluster_kwargs)  # type: ignore[no-untyped-call]
            client = Client(cluster, set_as_default=False)  # type: ignore[no-untyped-call]
            from .dask_worker_signals import ignore_interrupts

            ignore_interrupts(client)  # the kernel's Interrupt must not kill its workers
            _embedded[key] = (cluster, client)
            _close_at_exit()
        return _embedded[key][1]


def refuse_inside_a_worker() -> None:
    """A flow called inside a task on a Dask worker (a nested flow) cannot start a cluster
    there: a worker's processes may not have children. Say so, not "Nanny failed to start"."""
    from distributed import get_worker

    try:
        get_worker()
    except ValueError:
        return
    raise RuntimeError(
        "[labloom] a flow called inside a task that runs on a Dask worker cannot start an "
        "embedded Dask cluster there; give that flow executor=\"threads\" (it runs in the "
        "worker) or the address of a scheduler: DaskExecutor(\"tcp://...\")"
    )


_exit_registered = False


def _close_at_exit() -> None:
    """Close shared clients and clusters at exit, before distributed's own exit handler.

    atexit runs handlers last-registered first, and distributed registers its handler (which
    closes every cluster, ours included) when it is imported. Registered after that, ours runs
    first: the clients let go of their results before the cluster closes, so the scheduler has
    nothing to call "lost". Called with ``_shared_lock`` held.
    """
    global _exit_registered
    if not _exit_registered:
        _exit_registered = True
        atexit.register(_close_shared)


def _close_shared() -> None:
    import logging

    # Closing the embedded cluster at exit drops results that finished runs still reference;
    # the scheduler's warnings about "lost" tasks say nothing useful then.
    logging.getLogger("distributed.scheduler").setLevel(logging.ERROR)
    with _shared_lock:
        _durations.clear()
        for client in _connected.values():
            # A client whose scheduler went away keeps trying to reconnect; closing it then
            # only prints the cancelled attempt's traceback.
            if client.status == "running":
                client.close()
        for cluster, client in _embedded.values():
            client.close()
            cluster.close()
        _connected.clear()
        _embedded.clear()
