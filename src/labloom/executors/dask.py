"""Task runs on a Dask cluster through ``distributed.Client``.

The engine keeps Dask futures, never data: an upstream future goes straight into
``client.submit``, so results move worker to worker, and a map over a future learns its width
and items on the cluster. Only this module (with its helpers) imports ``distributed``.

>>> @flow(executor=DaskExecutor("tcp://10.0.0.5:8786"))
... def sweep(grid): ...
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from typing import Any

from ..core.attempt import TaskCall
from ..core.errors import ResourceUnavailableError
from ..core.executor import DoneCallback, Executor, Outcome, Submission
from ..core.interrupts_held import InterruptsHeld
from . import dask_events as events
from .dask_arguments import ship_arguments
from .dask_clusters import check_options
from .dask_entries import Handle, Member, single, task_name_of
from .dask_internals import is_adaptive
from .dask_loading import Gone, Kept, ValueReader
from .dask_lost import LostValues, remade_failed
from .dask_outcomes import child_value, scheduler_lost, sendable_error
from .dask_resources import ResourceOffers
from .dask_shared import cluster_client, durations_of, refuse_closed, shared_client
from .dask_submit import Submitter
from .dask_worker_watch import WorkersGone, say_if_no_workers


def active_scheduler_address() -> str | None:
    """The scheduler that Dask's config names (``scheduler-address``): what dask-labextension
    sets in a kernel when the user makes one of its clusters the active one."""
    import dask.config

    address = dask.config.get("scheduler-address", None)
    return str(address) if address else None


class DaskExecutor(Executor):
    """Runs task runs on a Dask cluster.

    With nothing given, uses the cluster Dask's config names as active (``scheduler-address``,
    which dask-labextension sets when a cluster of its side panel is made the active one), else
    starts (once per process, lazily) an embedded ``distributed.LocalCluster(**cluster_kwargs)``;
    ``address`` connects to a running scheduler; ``cluster`` (any distributed cluster object) or
    ``client`` is used as is. ``cluster_class`` (a class or its import path) starts a cluster
    for each run, ``cluster_class(**cluster_kwargs)``, scaling between ``adapt_kwargs``' bounds
    (``cluster.adapt(**adapt_kwargs)``), and closes it when the run ends (see
    ``dask_clusters.py``). The run's metadata says which (``address``, ``cluster``, and for a
    cluster per run ``cluster_class`` and ``peak_workers``).

    >>> DaskExecutor()                              # embedded LocalCluster
    >>> DaskExecutor("tcp://10.0.0.5:8786")         # a running scheduler
    >>> DaskExecutor(n_workers=4, threads_per_worker=1)
    >>> DaskExecutor(cluster_class="dask_jobqueue.SLURMCluster",
    ...              cluster_kwargs={"cores": 8, "memory": "32GB"},
    ...              adapt_kwargs={"minimum": 1, "maximum": 20})
    """

    name = "dask"

    def __init__(
        self,
        address: str | None = None,
        cluster: Any = None,
        client: Any = None,
        cluster_class: Any = None,
        cluster_kwargs: dict[str, Any] | None = None,
        adapt_kwargs: dict[str, Any] | None = None,
        **local_cluster_kwargs: Any,
    ) -> None:
        given = [name for name, value in (("address", address), ("cluster", cluster),
                 ("client", client)) if value is not None]
        if len(given) > 1:
            raise ValueError(
                f"DaskExecutor takes one of address, cluster or client, got {' and '.join(given)}"
            )
        # Checked now, so that a mistake shows before any task runs.
        self._per_run = check_options(cluster_class, cluster_kwargs, adapt_kwargs, given,
                                      local_cluster_kwargs)
        if local_cluster_kwargs and given:
            raise ValueError(
                "DaskExecutor: cluster options such as "
                f"{', '.join(sorted(local_cluster_kwargs))} only apply to the embedded "
                f"LocalCluster; drop them or drop {given[0]}"
            )
        # Where the cluster came from, for the run's record ("the run says which").
        self.source = "given" if given else "embedded LocalCluster"
        if not given and not local_cluster_kwargs and self._per_run is None:
            active = active_scheduler_address()
            if active:
                # dask-labextension made a cluster the kernel's active one: use it, not our own.
                address, given = active, ["address"]
                self.source = "active Dask cluster (dask config scheduler-address)"
        self.address = address
        self.cluster = cluster
        self.cluster_kwargs = local_cluster_kwargs  # the embedded LocalCluster's options
        self._shared_cluster = bool(given)  # a cluster other machines may use too
        self._client: Any = client
        self._dispatcher: events.Dispatcher | None = None
        self._topics: set[str] = set()
        self._lock = threading.Lock()
        self._offers = ResourceOffers()
        self._submitter = Submitter(self)
        self._cluster_limiter: Any = None
        self._facts: tuple[Any, dict[str, Any]] | None = None
        self.profile: str | None = None  # ``cluster:NAME``'s, recorded: a retry starts it again
        self._workers_gone: WorkersGone | None = None
        self._reader = ValueReader(lambda: self.client)
        self._lost = LostValues()

    # --- connection ------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` (connecting or starting the cluster on first use)."""
        self._ready()
        return self._client

    def start(self) -> None:
        """A run starts: connect (for a cluster per run, start it) and count the run."""
        self._lost.read_wait()
        self._ready()
        if self._per_run is not None:
            with self._lock:
                self._per_run.runs += 1

    def _ready(self) -> None:
        with self._lock:
            if self._client is not None and self._client.status in ("closing", "closed"):
                # Closed since the last run: a new one where this executor makes its own.
                refuse_closed(self.cluster, self.source == "given" and self.address is None)
                self._client = None
            if self._client is None:
                self._client = self._connect()
            self._lost.count_on(self._client)
            if self._dispatcher is None:
                self._dispatcher = events.Dispatcher(durations_of(self._client))
                self._dispatcher.given_back = self._submitter.chunk_ends.given_back

    def _connect(self) -> Any:
        if self.cluster is not None:
            return cluster_client(self.cluster)
        if self._per_run is not None:
            return self._per_run.start()
        return shared_client(self.address, self.cluster_kwargs)

    def run_ended(self, run_id: str) -> None:
        # The client and cluster outlive the run (later runs reuse them); its topic does not,
        # so a kernel running hundreds of flows on one executor keeps no stale subscriptions.
        name = events.topic(run_id)
        if name in self._topics:
            self._topics.discard(name)
            if self._client is not None and self._client.status == "running":
                self._client.unsubscribe_topic(name)
        self._submitter.forget(run_id)
        if self._dispatcher is not None:
            self._dispatcher.put(self._dispatcher.forget, run_id)
        if self._per_run is not None:
            try:  # (it may wait for values Dask makes again: a Ctrl-C must not keep it open)
                self._per_run.keep_values(run_id, self._lost.waited_out)
            finally:
                with self._lock:
                    self._per_run.runs = max(0, self._per_run.runs - 1)
                    last = self._per_run.runs == 0
                if last:
                    self._close_run_cluster()

    def _close_run_cluster(self) -> None:
        """The last run on the cluster per run ended: close it (a later run starts another)."""
        assert self._per_run is not None
        with self._lock:
            self._client = None
            self._offers.forget()
            self._topics.clear()
        self._per_run.close()

    def shutdown(self) -> None:
        """Stop this executor's threads (the submitter and the event delivery). The client and
        cluster stay: the caller's when given, else shared with later runs and closed at exit."""
        for name in list(self._topics):
            self.run_ended(name.removeprefix(events.TOPIC_PREFIX))
        self._submitter.stop()
        if self._dispatcher is not None:
            self._dispatcher.stop()
        if self._per_run is not None and self._client is not None:
            self._close_run_cluster()

    def metadata(self) -> dict[str, Any]:
        client = self._client
        if client is None:
            return {}
        # Asked as a run starts and as it ends: the link may cost a round trip, so once.
        if self._facts is None or self._facts[0] is not client:
            link = getattr(client, "dashboard_link", None)
            facts: dict[str, Any] = {"dashboard": link} if link else {}
            facts.update(address=client.scheduler.address, cluster=self.source)
            self._facts = (client, facts)
        facts = dict(self._facts[1])
        if self._per_run is not None and self._per_run.cluster is not None:
            facts.update(self._per_run.metadata())
        if self.profile:
            facts["profile"] = self.profile
        return facts

    def describe(self) -> str:
        scheduler = getattr(self._client, "scheduler", None)  # None once the client closed
        return "dask" if scheduler is None else f"dask({scheduler.address})"

    def limiter(self, connect: bool = True) -> Any:
        """Limits are kept by the store, for every process and host on it; on a cluster this
        process did not start, also by the cluster, which machines with other stores share."""
        from ..store.concurrency_limiter import Chained, process_limiter
        from .dask_semaphores import DaskLimiter

        if not self._shared_cluster:
            return process_limiter()
        if connect:  # else at its first limit: a flow that retries exists first, and retries
            self._ready()
        with self._lock:
            if self._cluster_limiter is None:
                self._cluster_limiter = DaskLimiter(lambda: self.client,
                                                    lambda fn: self.dispatcher.put(fn))
        return Chained(process_limiter(), self._cluster_limiter)

    # --- the Executor interface -----------------------------------------------------------------

    def submit(
        self,
        call: TaskCall,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        on_done: DoneCallback,
        resources: dict[str, float] | None = None,
    ) -> Any:
        handles: list[Any] = []
        self.submit_all([(call, args, kwargs, on_done)], resources, handles)
        return handles[0]

    def submit_all(self, calls: Sequence[Submission], resources: dict[str, float] | None,
                   handles: list[Any]) -> None:
        """A block of calls (a map's children, launched 256 at a time): the client's state,
        the run's topic, its handles' list and a task's chunk size read once per block, and
        the chunk members queued under one hold of the submitter's lock."""
        client = self._client
        if client is None or self._dispatcher is None:  # the first call, or a closed cluster
            client = self.client
        members: list[Member] = []
        run_id, first = None, 0  # the run of handles[first:]
        sizes: dict[tuple[str, int | str | None], int | None] = {}  # by task and batch_size
        shipped: dict[int, Any] = {}  # arguments pickled apart (``dask_arguments``), by id
        per_run = self._per_run if self._per_run is not None and self._per_run.closed_once \
            else None  # a retry may send split items of a cluster closed since
        try:
            for call, args, kwargs, on_done in calls:
                if per_run is not None:
                    args, kwargs = per_run.kept_items(args, kwargs, client, self.result)
                args, kwargs = ship_arguments(call, args, kwargs, shipped)  # raises: fails alone
                if call.run_id != run_id:
                    if client.status in ("connecting", "closing", "closed"):
                        # Sent now, the task would wait for a scheduler that may never return.
                        raise scheduler_lost(client, call.task_name)
                    self._subscribe(call.run_id)
                    self._track(run_id, handles[first:])
                    run_id, first = call.run_id, len(handles)
                handle = Handle(task_name_of(call))
                key = (handle.task, call.batch_size)
                if key not in sizes:
                    sizes[key] = self._chunk_size(call)
                    if sizes[key] is None:  # not measured: its probes planned in this thread
                        self._submitter.plan_probes(call.run_id, handle.task)
                size = sizes[key]
                if size is not None:
                    call.batch_size = size  # decided: the submitter need not ask again per child
                if not resources and (size is None or size > 1):
                    # A map child may share a Dask task (not asking resources, held per chunk).
                    members.append((call, args, kwargs, handle, on_done))
                else:
                    self._submit_one(call, args, kwargs, handle, on_done, resources)
                handles.append(handle)
        finally:
            self._track(run_id, handles[first:])
            self._submitter.add_members(members)

    def _submit_one(self, call: TaskCall, args: tuple[Any, ...], kwargs: dict[str, Any],
                    handle: Handle, on_done: DoneCallback,
                    resources: dict[str, float] | None) -> None:
        """A call that is its own Dask task."""
        assert self._dispatcher is not None
        if resources and not self._adapts():  # an adaptive cluster may start a worker for it
            problem = self._offers.unsatisfiable(self._client, resources)
            if problem:
                error = ResourceUnavailableError(f"task {call.task_name!r} {problem}")
                self._dispatcher.put(on_done, Outcome(ok=False, error=error, traceback=str(error)))
                return
        self._submitter.add(*single(self, call, args, kwargs, handle, on_done), resources)

    def _track(self, run_id: str | None, handles: list[Any]) -> None:
        """The handles of a run's calls, kept for the end of its own cluster (if any)."""
        if self._per_run is not None and run_id is not None and handles:
            self._per_run.track_all(run_id, handles)

    failure_ref = staticmethod(sendable_error)

    def value_ref(self, handle: Any) -> Any:
        """The future of one task run's value (a chunk child's: its item, picked on the
        cluster); the value itself once its cluster per run closed."""
        if isinstance(handle.future, (Kept, Gone)):
            return self.result(handle)
        if handle.index is None:
            return handle.future
        if handle.item is None:
            chunk = handle.future
            handle.item = self.client.submit(child_value, chunk, handle.index,
                                             key=f"item-{handle.index}-{chunk.key}")
        return handle.item

    def result(self, handle: Any, timeout: float | None = None) -> Any:
        return self._reader.one(handle, timeout)  # one this process cannot load: ``dask_loading``

    def results(self, handles: list[Any]) -> list[Any]:
        return self._reader.many(handles)

    def lost(self, handle: Any) -> bool:
        return bool(handle.lost)

    remade_failed = staticmethod(remade_failed)

    def losses(self) -> int:
        return self._lost.count

    def settle_lost(self, handles: list[Any]) -> list[Any]:
        return self._lost.settle(handles, self.value_ref)

    def split(self, handle: Any) -> list[Any]:
        if isinstance(handle.future, (Kept, Gone)):
            return list(self.result(handle))
        client = self.client
        future = self.value_ref(handle)
        width = client.submit(events.item_count, future, key=f"len-{future.key}").result()
        keys = [f"item-{i}-{future.key}" for i in range(width)]
        items: list[Any] = client.map(events.item_at, [future] * width, range(width), key=keys)
        if self._per_run is not None:
            self._per_run.split_items(handle, items)
        return items

    def cancel(self, handles: Sequence[Any]) -> None:
        for handle in handles:
            handle.cancelled = True  # a child still waiting for its chunk stays out of it
        keeps = self._submitter.chunk_ends.keeps  # its early children's values: left to end
        futures = list({id(h.future): h.future for h in handles
                        if h.future is not None and not isinstance(h.future, (Kept, Gone))
                        and not keeps(h.future)}.values())
        self._submitter.drop({future.key for future in futures})
        if futures and self._client is not None:
            from distributed.client import ClosedClientError

            # Closed under the run: the scheduler dropped its futures, and the run ends.
            with contextlib.suppress(ClosedClientError):
                self._client.cancel(futures)

    def _chunk_size(self, call: TaskCall) -> int | None:
        """Children per Dask task for a map child (1 for anything else); None: the task is
        not measured yet, and the submitter decides (``dask_chunking``)."""
        size = call.batch_size
        if size is None or isinstance(size, int):
            return size or 1
        return self._submitter.known_size(call, task_name_of(call))

    @property
    def dispatcher(self) -> events.Dispatcher:
        assert self._dispatcher is not None
        return self._dispatcher

    # --- helpers ------------------------------------------------------------------------------

    def _subscribe(self, run_id: str) -> None:
        name = events.topic(run_id)
        if name not in self._topics:
            assert self._dispatcher is not None
            # Both or neither (interrupts_held.py): a Ctrl-C between them made the run's end
            # raise ValueError (unsubscribing a topic never subscribed), not KeyboardInterrupt.
            with InterruptsHeld():
                self._topics.add(name)
                self._client.subscribe_topic(name, self._dispatcher.handler(run_id))
            # Workers came and went since the last run: what they offer is looked at afresh.
            self._offers.forget()
            # A question to the scheduler: asked off the launching thread.
            if not self._starts_workers():
                self._dispatcher.put(say_if_no_workers, self._client, run_id)
            self._watch_workers()

    def _starts_workers(self) -> bool:
        """Whether the cluster starts workers of its own (embedded, per run, adaptive)."""
        return self.source.startswith("embedded") or self._per_run is not None or (
            self.cluster is not None and is_adaptive(self.cluster))

    def _adapts(self) -> bool:
        """Whether the cluster adds and removes workers by itself (``adapt``)."""
        return (self._per_run is not None and self._per_run.adapt is not None) or (
            self.cluster is not None and is_adaptive(self.cluster))

    def _watch_workers(self) -> None:
        """Say it when the scheduler loses its last worker while this executor's runs wait
        (``dask_worker_watch``); not for an adaptive cluster, which starts workers again."""
        if self._adapts():
            return
        if self._workers_gone is None:
            self._workers_gone = WorkersGone(
                lambda: [name.removeprefix(events.TOPIC_PREFIX) for name in list(self._topics)],
                self.dispatcher.put, self.cluster)
        self._workers_gone.watch(self._client)
