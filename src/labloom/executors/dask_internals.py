"""Dask's private internals that labloom uses, each behind one small function with a plain
fallback, so a Dask release that moves them costs speed or precision, never a broken run.
Nothing else in labloom touches a private name of dask or distributed. ``in_use()`` names the
path each takes with the installed release; ``tests/test_dask_internals.py`` checks each path
and its fallback against the installed release.

- ``task_spec``: ``dask._task_spec.Task`` (dask >= 2024.12) builds a task whose arguments hold
  futures without Dask walking them again per task; the fallback is the classic tuple task
  ``(fn, *args)``, which ``client.get`` still accepts (a little slower to submit).
- ``watch``: ``distributed.client.done_callback``, the coroutine behind
  ``Future.add_done_callback``, started for a whole batch in one hop onto the client's event
  loop. ``add_done_callback`` makes that hop (a socket write to wake the loop) and a thread
  handoff per future: the largest per-task cost labloom had over ``client.map``. Fallback:
  ``add_done_callback`` per future.
- ``send_graph``: ``Client._graph_to_futures``, the call behind ``client.map``, given the tasks'
  order as ``internal_priority``. ``client.get`` has no such argument: it hashes the whole graph
  for a name and orders it with ``dask.order``, which ran a map's children roughly backwards.
  With it task runs run in the order they were launched, across batches, as ``client.map``'s
  tasks do.
  Fallback: ``client.get``.
- ``is_adaptive``: ``cluster._adaptive`` is set once ``cluster.adapt()`` ran; there is no public
  flag. Without it labloom assumes a fixed cluster, so a task asking for resources no current
  worker offers fails at once instead of waiting for a worker the cluster might add.
- ``cancel_reason``: why Dask cancelled a future, from ``future._state.exception`` (a
  ``FutureCancelledError``; ``Future.exception()`` answers None for a cancelled future). The
  client cancels every future with "scheduler-connection-lost" when its scheduler goes away,
  which labloom then says instead of "cancelled". Fallback: a client reconnecting (status
  "connecting") counts as a lost scheduler too, and one closed (its cluster was closed: Dask
  says "unknown") is said as such.
- ``held_error``: the error an erred future holds, from ``future._state.exception`` too:
  ``Future.exception()`` asks the client's loop, which is gone once a cluster per run closed.
  Fallback: None, and the error is not named.
- ``semaphore``: ``Semaphore(scheduler_rpc=client.scheduler, loop=client.loop)`` binds a
  semaphore to the executor's own client (the keywords are undocumented: the public form finds
  "the current client"). Fallback: the public form, built while the executor's client is
  current.
- ``on_lost_data``: a call each time the scheduler tells a client that a value it wants was
  lost (the "lost-data" message: the worker holding it died), by wrapping the client's handler
  of that message in ``client._stream_handlers``; a future's done callbacks fire once, at its
  first end, and nothing public says a finished value went. A run's end looks for its values
  lost and not made again only when one was (``core/lost_inputs``). Fallback: nothing is
  counted, and such a value with no task run waiting for it is said only when read.
- ``future``: ``Future(key, client)`` made *before* the task is sent, so the client wants the
  key from the start (else the scheduler may drop a result nobody wants yet) and the engine
  holds the future at once. Fallback: none is needed while ``Future`` takes ``key, client``
  (checked once; a release that changes it fails ``test_dask_internals`` by name).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import uuid
import weakref
from collections.abc import Callable, Sequence
from typing import Any


@functools.cache
def _spec_types() -> tuple[Any, Any] | None:
    try:
        from dask._task_spec import Task, parse_input
    except ImportError:
        return None
    return Task, parse_input


def task_spec(key: str, fn: Callable[..., Any], *args: Any,
              plain: frozenset[int] = frozenset()) -> Any:
    """A graph entry calling ``fn(*args)``; futures anywhere in ``args`` are dependencies,
    except in the args at the indexes ``plain`` (known to hold none: not searched)."""
    found = _spec_types()  # looked up once: this runs once per task run
    if found is None:
        return _tuple_task(fn, *args)
    task, parse_input = found
    return task(key, fn, *(arg if i in plain else parse_input(arg)
                           for i, arg in enumerate(args)))


def _tuple_task(fn: Callable[..., Any], *args: Any) -> Any:
    # Classic graphs read a tuple starting with a callable as a call; a dict argument is
    # passed through ``dict`` so that Dask resolves the keys inside it.
    return (fn, *((dict, [[k, v] for k, v in arg.items()]) if isinstance(arg, dict) else arg
                  for arg in args))


# The scheduler orders by (generation, internal priority), and graphs sent within fifo_timeout
# share a generation: numbering each batch from 0 would let a later batch (a map's children held
# until a probe is measured) run before the earlier batch's queued tasks. Counting across batches
# keeps launch order.
_LAUNCHED = itertools.count()


def send_graph(client: Any, graph: dict[str, Any], resources: dict[str, float] | None) -> None:
    """Submit ``graph`` (its keys in launch order); its tasks are run in that order."""
    if not _can_send_in_order():
        client.get(graph, list(graph), sync=False, resources=resources)
        return
    from dask._expr import LLGExpr

    client._graph_to_futures(
        LLGExpr(graph, _determ_token=uuid.uuid4().hex),  # type: ignore[no-untyped-call]
        list(graph),
        span_metadata={"collections": [{"type": "low-level-graph"}]},
        internal_priority={key: next(_LAUNCHED) for key in graph},
        resources=resources,
        fifo_timeout="60s",  # as client.get
    )


@functools.cache
def _can_send_in_order() -> bool:
    """Whether ``_graph_to_futures`` takes what ``send_graph`` gives it (checked once)."""
    try:
        from dask._expr import LLGExpr
        from distributed import Client

        wanted = {"span_metadata", "internal_priority", "resources", "fifo_timeout"}
        taken = set(inspect.signature(Client._graph_to_futures).parameters)
        return wanted <= taken and "_determ_token" in inspect.signature(LLGExpr).parameters
    except (ImportError, AttributeError, TypeError, ValueError):
        return False


def is_adaptive(cluster: Any) -> bool:
    """Whether ``cluster.adapt()`` is in force (False where that cannot be told)."""
    return getattr(cluster, "_adaptive", None) is not None


SCHEDULER_LOST = "scheduler-connection-lost"
SCHEDULER_RESTART = "scheduler-restart"  # client.restart(), the dashboard's Restart
# Not Dask's: a future cancelled with no reason ("unknown") by a client that is closed, which is
# what a cluster closed under a run leaves (``cluster.close()`` in another cell).
CLIENT_CLOSED = "client-closed"


def cancel_reason(future: Any) -> str | None:
    """Why Dask cancelled ``future`` (None where that cannot be told)."""
    reason = getattr(getattr(getattr(future, "_state", None), "exception", None), "reason", None)
    if isinstance(reason, str) and reason != "unknown":
        return reason
    status = getattr(getattr(future, "client", None), "status", None)
    if status in ("closing", "closed"):
        return CLIENT_CLOSED
    return SCHEDULER_LOST if status == "connecting" else None


def held_error(future: Any) -> BaseException | None:
    """The error an erred ``future`` holds, read from its state in this process: no question
    to the client's loop, which is closed once a cluster per run closed."""
    error = getattr(getattr(future, "_state", None), "exception", None)
    return error if isinstance(error, BaseException) else None


def on_lost_data(client: Any, noted: Callable[[Any], None]) -> bool:
    """``noted(key)`` (on the client's event loop: keep it short) each time ``client`` is told
    that a value it wants was lost, after the client's own handling; False where that cannot
    be seen. Wrapped once per client, whatever the number of executors using it (a kernel
    making one per run on a client of its own); a method is held weakly."""
    handlers = getattr(client, "_stream_handlers", None)
    if not isinstance(handlers, dict) or handlers.get("lost-data") is None:
        return False
    handler = handlers["lost-data"]
    if not isinstance(handler, _LostData):
        handler = handlers["lost-data"] = _LostData(handler)
    handler.listen(noted)
    return True


class _LostData:
    """The client's own handler of "lost-data", then labloom's listeners."""

    def __init__(self, own: Callable[..., Any]) -> None:
        self.own = own
        self.listeners: list[Callable[[], Any]] = []  # each gives the listener (or None)

    def listen(self, noted: Callable[[Any], None]) -> None:
        # (Replaced whole, never changed in place: the loop's thread reads it meanwhile.)
        kept = [ref for ref in self.listeners if ref() not in (None, noted)]
        self.listeners = [*kept, weakref.WeakMethod(noted) if inspect.ismethod(noted)
                          else (lambda: noted)]

    def __call__(self, **message: Any) -> Any:
        try:
            return self.own(**message)
        finally:
            for ref in self.listeners:
                listener = ref()
                if listener is not None:
                    listener(message.get("key"))


def watch(client: Any, watched: Sequence[tuple[Any, Callable[[Any], None]]]) -> None:
    """Call each ``callback(future)`` once its future is done, on the client's event loop (so
    keep callbacks short: queue, do not wait)."""
    try:
        from distributed.client import done_callback
    except ImportError:
        for future, callback in watched:
            future.add_done_callback(callback)
        return

    async def track() -> None:
        for future, callback in watched:
            waiter = asyncio.ensure_future(done_callback(future, callback))  # type: ignore[no-untyped-call]
            _waiting.add(waiter)  # asyncio keeps only weak references to tasks
            waiter.add_done_callback(_waiting.discard)

    client.loop.add_callback(track)


_waiting: set[asyncio.Future[Any]] = set()


def semaphore(client: Any, name: str, max_leases: int) -> Any:
    """A ``distributed.Semaphore`` on ``client``'s scheduler, its lease refresh on ``client``'s
    loop."""
    from distributed import Semaphore

    if _semaphore_takes_rpc():
        return Semaphore(  # type: ignore[no-untyped-call]
            max_leases=max_leases, name=name, scheduler_rpc=client.scheduler, loop=client.loop
        )
    return _public_semaphore(client, name, max_leases)


def _public_semaphore(client: Any, name: str, max_leases: int) -> Any:
    from distributed import Semaphore

    with client.as_current():  # the public form binds to the current client, now
        made = Semaphore(max_leases=max_leases, name=name)  # type: ignore[no-untyped-call]
        made.scheduler  # noqa: B018  (binds here, not on whichever client is current later)
    return made


@functools.cache
def _semaphore_takes_rpc() -> bool:
    from distributed import Semaphore

    return {"scheduler_rpc", "loop"} <= set(inspect.signature(Semaphore).parameters)


@functools.cache
def _future_type() -> Any:
    from distributed import Future  # looked up once: this runs once per Dask task

    return Future


def future_of(key: str, client: Any) -> Any:
    """The future of ``key`` on ``client``, made before its task is sent."""
    return _future_type()(key, client)


def in_use() -> dict[str, str]:
    """Which path each internal takes with the installed dask and distributed."""
    from distributed import Future

    future_args = list(inspect.signature(Future).parameters)[:2]
    return {
        "task_spec": "dask._task_spec.Task" if _spec_types() else "tuple task",
        "send_graph": "Client._graph_to_futures" if _can_send_in_order() else "client.get",
        "watch": "distributed.client.done_callback" if _has_done_callback()
        else "Future.add_done_callback",
        "semaphore": "Semaphore(scheduler_rpc=)" if _semaphore_takes_rpc()
        else "Semaphore under client.as_current()",
        "future": "Future(key, client)" if future_args == ["key", "client"]
        else f"Future({', '.join(future_args)})",
        "on_lost_data": "Client._stream_handlers['lost-data']" if _has_lost_data_handler()
        else "not seen",
    }


def _has_lost_data_handler() -> bool:
    from distributed import Client

    handler = getattr(Client, "_handle_lost_data", None)  # what the client's table holds
    return callable(handler)


def _has_done_callback() -> bool:
    try:
        from distributed.client import done_callback  # noqa: F401
    except ImportError:
        return False
    return True
