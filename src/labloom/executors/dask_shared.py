"""The Dask clusters and clients a process shares between runs: the embedded LocalCluster
(one per set of options) and the clients opened for a scheduler address, made once, reused by
every later run, and closed at exit. A cluster per run (``dask_clusters.py``) is not here: it
belongs to its runs."""

from __future__ import annotations

import atexit
import threading
import time
from typing import Any

# One embedded LocalCluster (and client) per process and set of cluster options, reused by
# every run: a notebook pays the start-up once.
_embedded: dict[str, tuple[Any, Any]] = {}
# Their idle workers' exit grace, read as each started (``dask_cluster_close``), by key.
_graces: dict[str, float] = {}
# Clients opened for a scheduler address, reused by later runs.
_connected: dict[str, Any] = {}
# Clients opened for a cluster object the user gave (``DaskExecutor(cluster=...)``), by its
# id: an executor made per run (``f.run(executor=DaskExecutor(cluster=c))`` in a loop) left
# a client of its own connected to the scheduler, never closed.
_of_clusters: dict[int, tuple[Any, Any]] = {}
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
                refuse_an_address_nothing_answers(address)
                try:
                    client = Client(address, set_as_default=False)  # type: ignore[no-untyped-call]
                except OSError as exc:
                    raise unreachable(address, exc) from None
                _connected[address] = client
                _close_at_exit()
            return client
        key = repr(sorted(cluster_kwargs.items()))
        if key not in _embedded:
            from distributed import LocalCluster

            from .dask_cluster_close import idle_exit_grace
            from .dask_dashboard import with_dashboard
            from .dask_stopping import own_cluster
            from .dask_worker_heartbeat import own_worker_plugins
            from .dask_worker_signals import start_deaf_to_interrupts

            refuse_inside_a_worker()
            grace = idle_exit_grace()  # a bad one raises now, not at exit
            options = with_dashboard(cluster_kwargs)  # 8787 if free, with no warning if not
            cluster = start_deaf_to_interrupts(
                lambda: LocalCluster(**options),  # type: ignore[no-untyped-call]
                lambda started: started.close())
            own_cluster(cluster)
            client = Client(cluster, set_as_default=False)  # type: ignore[no-untyped-call]
            own_worker_plugins(client)  # the kernel's Interrupt must not kill its workers
            _embedded[key], _graces[key] = (cluster, client), grace
            _close_at_exit()
        return _embedded[key][1]


def unreachable(address: str, why: object) -> ConnectionError:
    """What a user sees for a scheduler address that does not answer (a typo, a scheduler not
    started or gone): the reason and where the address came from, not three chained
    tracebacks of Dask's connection code."""
    return ConnectionError(
        f"[labloom] cannot reach {address} (a Dask scheduler): {why}; check the address "
        "(DaskExecutor(address), --address, Labloom.address / LABLOOM_ADDRESS) and that the "
        "scheduler is running (dask scheduler)"
    )


def cluster_client(cluster: Any) -> Any:
    """The client for a cluster object the caller started (theirs to close), made on first
    use and shared by every executor given that cluster."""
    from distributed import Client

    with _shared_lock:
        for key, (_kept, client) in list(_of_clusters.items()):
            if client.status in ("closed", "closing"):
                del _of_clusters[key]  # its cluster closed (or it did): let both go
        kept_client = _of_clusters.get(id(cluster))
        if kept_client is None or kept_client[0] is not cluster:
            client = Client(cluster, set_as_default=False)  # type: ignore[no-untyped-call]
            _of_clusters[id(cluster)] = (cluster, client)
            _close_at_exit()
        return _of_clusters[id(cluster)][1]


def refuse_closed(cluster: Any, client_given: bool) -> None:
    """A cluster or client the caller gave, closed since (``cluster.close()`` or
    ``client.close()`` in another cell): said plainly (it was an AttributeError from deep
    inside labloom as the next run started)."""
    if cluster is None and client_given:
        raise ConnectionError(
            "[labloom] the Dask client given to DaskExecutor(client=...) is closed "
            "(client.close(), or its cluster was closed); pass an open one")
    status = getattr(cluster, "status", None)
    if getattr(status, "name", status) in ("closing", "closed"):
        raise ConnectionError(
            "[labloom] the Dask cluster given to DaskExecutor(cluster=...) is closed "
            "(cluster.close()); start a new one and pass it")


REFUSED_FOR = 3.0  # seconds a scheduler address may refuse connections before that is an error


def refuse_an_address_nothing_answers(address: str) -> None:
    """A mistyped scheduler address (a wrong port, a host that does not exist) fails now, saying
    so. distributed retries a refused connection until its connect timeout: 30 s, then a long
    traceback of its own internals, and the run was not even recorded. A host that does not
    answer at all (a firewall) is left to distributed's timeout."""
    import socket

    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        scheme, location = parse_address(address)
        host, port = parse_host_port(location)
    except ValueError:
        return  # not host:port (inproc://...): distributed says what is wrong with it
    if scheme not in ("tcp", "tls"):
        return
    deadline = time.monotonic() + REFUSED_FOR
    while True:
        try:
            socket.create_connection((host, port), timeout=5).close()
            return
        except ConnectionRefusedError:
            # A scheduler that is starting (restarted for a nightly run, say) binds its port
            # within moments: refused for REFUSED_FOR seconds, nothing is coming.
            if time.monotonic() < deadline:
                time.sleep(0.25)
                continue
            reason = "the connection was refused: no scheduler listens on that port"
        except socket.gaierror:
            reason = f"the host {host!r} is not known"
        except OSError:
            return  # slow or filtered: distributed's own timeout decides
        raise unreachable(address, reason) from None


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

    In a Jupyter kernel that comes too late: its shutdown request terminates the kernel's child
    processes (the embedded cluster's workers) before the exit handlers run, while its nannies
    and scheduler still live and the clients still hold finished runs' results. The nannies
    started new workers and the scheduler ran those tasks again there (a task that writes a
    file wrote it again, in 2 of 3 shutdowns; session 56). So the same close also runs as the
    kernel is asked to shut down, before it stops its children (``hooks.before_shutdown``).
    """
    global _exit_registered
    if not _exit_registered:
        _exit_registered = True
        atexit.register(_close_shared)
        from ..core.hooks import hooks

        hooks.before_shutdown(_close_shared)


def _close_shared() -> None:
    import logging

    # Closing the embedded cluster at exit drops results that finished runs still reference;
    # the scheduler's warnings about "lost" tasks say nothing useful then.
    logging.getLogger("distributed.scheduler").setLevel(logging.ERROR)
    with _shared_lock:
        _durations.clear()
        for client in [*_connected.values(), *(client for _, client in _of_clusters.values())]:
            # A client whose scheduler went away keeps trying to reconnect; closing it then
            # only prints the cancelled attempt's traceback.
            if client.status == "running":
                client.close()
        from .dask_cluster_close import close_embedded

        for key, (cluster, client) in _embedded.items():
            # its workers given time to end: see there
            close_embedded(cluster, client, idle_grace=_graces.get(key))
        _connected.clear()
        _of_clusters.clear()
        _embedded.clear()
        _graces.clear()
