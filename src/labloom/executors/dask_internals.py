"""Dask's private internals that labloom uses, each behind one small function with a plain
fallback, so a Dask release that moves them costs speed or precision, never a broken run.
``tests/test_dask_internals.py`` checks each against the installed release.

- ``task_spec``: ``dask._task_spec.Task`` (dask >= 2024.12) builds a task whose arguments hold
  futures without Dask walking them again per task; the fallback is the classic tuple task
  ``(fn, *args)``, which ``client.get`` still accepts (a little slower to submit).
- ``watch``: ``distributed.client.done_callback``, the coroutine behind
  ``Future.add_done_callback``, started for a whole batch in one hop onto the client's event
  loop. ``add_done_callback`` makes that hop (a socket write to wake the loop) and a thread
  handoff per future: the largest per-task cost labloom had over ``client.map``. Fallback:
  ``add_done_callback`` per future.
- ``is_adaptive``: ``cluster._adaptive`` is set once ``cluster.adapt()`` ran; there is no public
  flag. Without it labloom assumes a fixed cluster, so a task asking for resources no current
  worker offers fails at once instead of waiting for a worker the cluster might add.

The Dask limiter's use of ``distributed.Semaphore`` internals lives in ``dask_limits.py``.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from typing import Any


@functools.cache
def _spec_types() -> tuple[Any, Any] | None:
    try:
        from dask._task_spec import Task, parse_input
    except ImportError:
        return None
    return Task, parse_input


def task_spec(key: str, fn: Callable[..., Any], *args: Any) -> Any:
    """A graph entry calling ``fn(*args)``; futures anywhere in ``args`` are dependencies."""
    found = _spec_types()  # looked up once: this runs once per task run
    if found is None:
        return _tuple_task(fn, *args)
    task, parse_input = found
    return task(key, fn, *(parse_input(arg) for arg in args))


def _tuple_task(fn: Callable[..., Any], *args: Any) -> Any:
    # Classic graphs read a tuple starting with a callable as a call; a dict argument is
    # passed through ``dict`` so that Dask resolves the keys inside it.
    return (fn, *((dict, [[k, v] for k, v in arg.items()]) if isinstance(arg, dict) else arg
                  for arg in args))


def is_adaptive(cluster: Any) -> bool:
    """Whether ``cluster.adapt()`` is in force (False where that cannot be told)."""
    return getattr(cluster, "_adaptive", None) is not None


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
