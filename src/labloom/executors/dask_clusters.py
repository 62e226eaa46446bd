"""A Dask cluster made for one run and closed after it: ``DaskExecutor(cluster_class=...)``.

As Prefect's ``DaskExecutor(cluster_class, cluster_kwargs, adapt_kwargs)`` did: the class (or
its import path, such as ``dask_kubernetes.operator.KubeCluster``) is checked when the executor
is made, so a typo fails before any task runs; the cluster starts when a run starts, scales
between ``adapt_kwargs``' bounds while it runs, and closes when the last run using it ends,
whether it completed, failed or was cancelled. Before it closes, the values of the run's
finished task runs are brought into this process (``Kept``): a closed cluster keeps nothing,
and the caller may still ask for the flow's value.

While the cluster lives, ``PeakWorkers`` counts its workers on the client's event loop (no
thread of its own): from the cluster object's own copy of the scheduler's worker list, which
the scheduler streams to it, else by asking the scheduler; the run's record keeps the peak.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
import math
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from ..core.errors import ClusterConfigError
from .dask_keeping import RECOMPUTE_WAIT, keep_values, recompute_wait

log = logging.getLogger("labloom")

# Where the usual cluster classes come from, for the install hint.
PACKAGES = {"dask_kubernetes": "dask-kubernetes", "dask_gateway": "dask-gateway",
            "dask_jobqueue": "dask-jobqueue"}
# The bounds a run's record keeps (dask-jobqueue counts jobs, each of one or more workers).
BOUNDS = ("minimum", "maximum", "minimum_jobs", "maximum_jobs")
# How often the worker count is looked at: often enough to see an adaptive cluster's workers,
# which stay for several of Adaptive's intervals (1 s) before they are retired.
LOOK_SECONDS = 0.25


def _fail(message: str) -> ClusterConfigError:
    return ClusterConfigError(f"[labloom] DaskExecutor: {message}")


def import_cluster_class(spec: Any) -> tuple[type, str]:
    """The class ``spec`` names (a class, or ``"package.module.Class"``) and its path."""
    if isinstance(spec, str):
        path = spec.strip().replace(":", ".")
        module_name, _, attr = path.rpartition(".")
        if not module_name or not attr.isidentifier():
            raise _fail(f"cluster_class={spec!r} is not an import path; write it as "
                        "'package.module.Class', e.g. 'dask_jobqueue.SLURMCluster'")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            top = module_name.split(".")[0]
            hint = (f"pip install {PACKAGES[top]}" if top in PACKAGES
                    else f"install the package that provides {module_name} or fix the path")
            raise _fail(f"cluster_class={spec!r}: cannot import {module_name} ({exc}); "
                        f"{hint}") from None
        cls = getattr(module, attr, None)
        if cls is None:
            raise _fail(f"cluster_class={spec!r}: module {module_name} has no {attr!r}; check "
                        "the spelling (e.g. 'distributed.LocalCluster')")
    else:
        cls, path = spec, f"{getattr(spec, '__module__', '?')}.{getattr(spec, '__qualname__', spec)}"
    if not isinstance(cls, type):
        what = "a cluster object" if hasattr(cls, "scheduler_address") else repr(cls)
        raise _fail(f"cluster_class takes a class, got {what}; pass a cluster you started "
                    "yourself as DaskExecutor(cluster=...)")
    if not _is_cluster_class(cls):
        raise _fail(f"{path} is not a Dask cluster class: it needs close() and get_client(), "
                    "as distributed.LocalCluster, dask_kubernetes.operator.KubeCluster, "
                    "dask_gateway.GatewayCluster and dask_jobqueue.SLURMCluster have")
    return cls, path


def _is_cluster_class(cls: type) -> bool:
    from distributed.deploy.cluster import Cluster

    # dask-gateway's GatewayCluster is not a distributed Cluster, but has what is used here.
    return issubclass(cls, Cluster) or all(
        callable(getattr(cls, name, None)) for name in ("close", "get_client"))


def check_cluster_kwargs(cls: type, path: str, kwargs: Mapping[str, Any]) -> None:
    """Options the class's signature refuses (a typo, a missing argument), said now."""
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return  # nothing to check against: the constructor will say
    try:
        signature.bind(**kwargs)
    except TypeError as exc:
        names = [p for p in signature.parameters if p not in ("args", "kwargs")]
        raise _fail(f"cluster_kwargs for {path}: {exc}; its options are "
                    f"{', '.join(names) or 'none'}") from None


def check_adapt_kwargs(cls: type, path: str, adapt: Mapping[str, Any]) -> None:
    method = getattr(cls, "adapt", None)
    if not callable(method):
        raise _fail(f"{path} cannot scale adaptively (it has no adapt()); drop adapt_kwargs and "
                    "size the cluster with cluster_kwargs")
    low, high = adapt.get("minimum", 0), adapt.get("maximum", math.inf)
    for name, value in (("minimum", low), ("maximum", high)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise _fail(f"adapt_kwargs {name} must be a number of workers >= 0, got {value!r}")
    if low > high:
        raise _fail(f"adapt_kwargs minimum ({low}) is above maximum ({high}); swap them")
    names = _adapt_options(cls)
    if names is None:
        return  # options go on to a server this process cannot ask
    unknown = sorted(set(adapt) - names)
    if unknown:
        raise _fail(f"adapt_kwargs: {', '.join(map(repr, unknown))} is not an option of "
                    f"{path}.adapt(); its options are {', '.join(sorted(names - {'Adaptive'}))}")


def _adapt_options(cls: type) -> set[str] | None:
    """What ``cls.adapt()`` takes: the named options of each ``adapt`` up the classes while
    they hand ``**kwargs`` on (SLURMCluster's to SpecCluster's to distributed's, which gives
    them to ``Adaptive``); None when they end somewhere this process cannot look."""
    from distributed.deploy.adaptive import Adaptive
    from distributed.deploy.cluster import Cluster

    names: set[str] = set()
    for klass in cls.__mro__:
        method = klass.__dict__.get("adapt")
        if method is None:
            continue
        try:
            parameters = inspect.signature(method).parameters.values()
        except (TypeError, ValueError):
            return None
        names |= {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD,
                                                         p.KEYWORD_ONLY)} - {"self"}
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            return names
    if not issubclass(cls, Cluster):
        return None
    return names | set(inspect.signature(Adaptive).parameters) - {"cluster", "kwargs"}


def check_options(
    cluster_class: Any, cluster_kwargs: Any, adapt_kwargs: Any, given: list[str],
    local_kwargs: Mapping[str, Any],
) -> RunCluster | None:
    """The cluster a run of ``DaskExecutor(...)`` makes, or None when it makes none; every
    mistake is a ``ClusterConfigError`` that names the fix."""
    if cluster_class is None:
        extra = [name for name, value in (("cluster_kwargs", cluster_kwargs),
                 ("adapt_kwargs", adapt_kwargs)) if value is not None]
        if extra:
            raise _fail(f"{' and '.join(extra)} configure a cluster per run and need "
                        "cluster_class (e.g. cluster_class='distributed.LocalCluster'); for the "
                        "shared embedded LocalCluster pass its options as keywords instead: "
                        "DaskExecutor(n_workers=4)")
        return None
    if given:
        raise _fail(f"cluster_class starts a cluster per run, {given[0]} names one that "
                    f"exists; drop one of them")
    if local_kwargs:
        raise _fail(f"with cluster_class, put the cluster's options "
                    f"({', '.join(sorted(local_kwargs))}) in cluster_kwargs={{...}}")
    for name, value in (("cluster_kwargs", cluster_kwargs), ("adapt_kwargs", adapt_kwargs)):
        if value is not None and not (isinstance(value, Mapping)
                                      and all(isinstance(k, str) for k in value)):
            raise _fail(f"{name} takes a dict of keyword arguments, got {value!r}")
    cls, path = import_cluster_class(cluster_class)
    check_cluster_kwargs(cls, path, cluster_kwargs or {})
    if adapt_kwargs is not None:
        check_adapt_kwargs(cls, path, adapt_kwargs)
    return RunCluster(cls, path, dict(cluster_kwargs or {}),
                      None if adapt_kwargs is None else dict(adapt_kwargs))


class RunCluster:
    """The cluster of ``DaskExecutor(cluster_class=...)``: started for the runs that use it,
    closed when the last of them ends."""

    def __init__(self, cls: type, path: str, kwargs: dict[str, Any],
                 adapt: dict[str, Any] | None) -> None:
        self.cls, self.path, self.kwargs, self.adapt = cls, path, kwargs, adapt
        self.cluster: Any = None
        self.client: Any = None
        self.runs = 0  # runs started and not ended, under the executor's lock
        self.handles: dict[str, list[Any]] = {}  # per run: what to keep before closing
        # A run ended with calls not finished (cancelled, interrupted): they may still run.
        self.calls_left = False
        self.peak = PeakWorkers()
        self.lock = threading.Lock()
        # The items of values split for maps (``DaskExecutor.split``): futures of the cluster
        # that the maps' children hold as their arguments, which a retry of the run sends
        # again once the cluster closed (read from their value, kept: ``kept_items``). Weak:
        # they go with their runs.
        self.items: weakref.WeakKeyDictionary[Any, tuple[Any, int]] = \
            weakref.WeakKeyDictionary()
        self.closed_once = False
        self.recompute_wait = RECOMPUTE_WAIT
        self.exit_grace: float | None = None  # a LocalCluster's (``dask_cluster_close``)

    def start(self) -> Any:
        """Start the cluster (and adaptive scaling) and connect; returns the client."""
        from distributed import Client
        from distributed.deploy.cluster import Cluster

        from .dask_worker_signals import start_deaf_to_interrupts

        self.recompute_wait = recompute_wait()  # read now: a bad one raises before any run
        options = self.kwargs
        if _local_class(self.cls):  # its dashboard on 8787 if free, with no warning if not
            from .dask_cluster_close import idle_exit_grace
            from .dask_dashboard import with_dashboard

            options = with_dashboard(options)
            self.exit_grace = idle_exit_grace()  # read now, for its close: raises before a run
        try:  # a LocalCluster's workers deaf to the terminal's Ctrl-C, as the embedded one's
            cluster = start_deaf_to_interrupts(lambda: self.cls(**options), _close)
        except TypeError as exc:  # an option the class's workers or scheduler refuse
            raise _fail(f"{self.path}(**cluster_kwargs) refused its options: {exc}; fix "
                        "cluster_kwargs") from exc
        except Exception as exc:  # the backend said no: credentials, quota, an address
            raise _fail(f"{self.path}(**cluster_kwargs) could not start a cluster: "
                        f"{type(exc).__name__}: {exc}; check cluster_kwargs and that its "
                        "backend (Kubernetes, the gateway, the batch queue) is reachable"
                        ) from exc
        try:
            if self.adapt is not None:
                cluster.adapt(**self.adapt)
            if isinstance(cluster, Cluster):
                client = Client(cluster, set_as_default=False)  # type: ignore[no-untyped-call]
            else:
                client = cluster.get_client(set_as_default=False)
        except BaseException:
            _close(cluster)
            raise
        if _local(cluster):
            from .dask_stopping import own_cluster
            from .dask_worker_heartbeat import own_worker_plugins

            own_cluster(cluster)

            # Its workers are this process's children, in its process group: a terminal's
            # Ctrl-C (a kernel's Interrupt) is meant for the run, which it cancels. They died
            # of it, each with a KeyboardInterrupt traceback, as the cluster closed.
            own_worker_plugins(client)
        self.cluster, self.client = cluster, client
        self.peak = PeakWorkers(cluster, client)
        return client

    def track_all(self, run_id: str, handles: list[Any]) -> None:
        with self.lock:
            self.handles.setdefault(run_id, []).extend(handles)

    def split_items(self, handle: Any, items: list[Any]) -> None:
        with self.lock:
            for index, item in enumerate(items):
                self.items[item] = (handle, index)

    def kept_items(self, args: tuple[Any, ...], kwargs: dict[str, Any], client: Any,
                   read: Callable[[Any], Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """``args`` and ``kwargs`` (a map child's, sent again by a retry) with each item of a
        split made on a cluster closed since replaced by its value, from the split value kept
        as it closed (``read``: the executor's read of a handle; a value gone raises, failing
        that call alone). Sent as they were, Dask took them for cancelled: the retried child
        failed with "CancelledError: NAME was cancelled"."""
        from distributed import Future

        def fresh(value: Any) -> Any:
            if isinstance(value, Future) and value.client is not client:
                with self.lock:
                    split = self.items.get(value)
                if split is not None:
                    from .dask_events import item_at

                    return item_at(read(split[0]), split[1])
            return value

        return tuple(map(fresh, args)), {key: fresh(v) for key, v in kwargs.items()}

    def keep_values(self, run_id: str, waited: frozenset[Any] = frozenset()) -> None:
        """The run's finished values, into its handles (one round trip), before closing;
        those lost and waited for at the run's end (``waited``, their keys), not again."""
        with self.lock:
            handles = self.handles.pop(run_id, [])
        self.calls_left = self.calls_left or any(
            getattr(h.future, "status", None) in ("pending", "cancelled") for h in handles)
        if handles and self.client is not None:
            from .dask_stopping import stopping

            # The process is stopping: no worker will come back to make a lost value again.
            keep_values(self.client, f"run {run_id} on a {self.path}", handles,
                        0.0 if stopping() else self.recompute_wait, waited)

    def close(self) -> None:
        """Stop counting, close the client and the cluster (nothing is left running)."""
        cluster, client = self.cluster, self.client
        self.cluster = self.client = None
        calls_left, self.calls_left = self.calls_left, False
        with self.lock:
            self.handles.clear()
        if cluster is None:
            return
        self.closed_once = True
        self.peak.stop()
        if _local(cluster):  # its workers first, a killed one said once (as the embedded one)
            from .dask_cluster_close import close_embedded

            try:
                close_embedded(cluster, client, f"the run's {self.cls.__name__}",
                               cancelled_calls=calls_left, idle_grace=self.exit_grace)
            except Exception as exc:  # already closing
                log.warning("[labloom] closing the run's cluster failed: %s", exc)
            return
        try:
            client.close()
        finally:
            _close(cluster)

    def metadata(self) -> dict[str, Any]:
        facts: dict[str, Any] = {"cluster": f"{self.cls.__name__} per run",
                                 "cluster_class": self.path, "peak_workers": self.peak.look()}
        if self.adapt is not None:
            facts["adapt"] = {k: v for k, v in self.adapt.items() if k in BOUNDS}
        return facts


def _local(cluster: Any) -> bool:
    """Whether ``cluster`` is a ``distributed.LocalCluster``: its workers on this machine."""
    from distributed import LocalCluster

    return isinstance(cluster, LocalCluster)


def _local_class(cls: type) -> bool:
    from distributed import LocalCluster

    return issubclass(cls, LocalCluster)


def _close(cluster: Any) -> None:
    try:
        cluster.close()
    except Exception as exc:  # already closing, or its backend went away
        log.warning("[labloom] closing the run's cluster failed: %s", exc)


class PeakWorkers:
    """The most workers the cluster had at once while it ran (looked at every LOOK_SECONDS on
    the client's event loop)."""

    def __init__(self, cluster: Any = None, client: Any = None) -> None:
        self.cluster, self.client = cluster, client
        self.peak = 0
        self._callback: Any = None
        if client is not None:
            client.loop.add_callback(self._start)

    def _start(self) -> None:
        from tornado.ioloop import PeriodicCallback

        if self.client is None:
            return  # stopped before it started
        self._callback = PeriodicCallback(self._tick, LOOK_SECONDS * 1000)
        self._callback.start()

    async def _tick(self) -> None:
        count = self._local_count()
        if count is None and self.client is not None:
            try:
                count = (await self.client.scheduler.identity(n_workers=0))["n_workers"]
            except Exception:
                return  # the scheduler is going away; the last count stands
        if count is not None:
            self.peak = max(self.peak, count)

    def _local_count(self) -> int | None:
        info = getattr(self.cluster, "scheduler_info", None)
        workers = info.get("workers") if isinstance(info, dict) else None
        return len(workers) if isinstance(workers, dict) else None

    def look(self) -> int:
        """The peak so far, counting the workers there are now."""
        self.peak = max(self.peak, self._local_count() or 0)
        return self.peak

    def stop(self) -> None:
        self.look()
        client, self.client = self.client, None
        callback = self._callback
        if client is not None and callback is not None:
            with contextlib.suppress(RuntimeError):  # a closed loop: its callback is gone
                client.loop.add_callback(callback.stop)
