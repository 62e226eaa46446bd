"""Dask's private internals that labloom uses, each behind one small function with a plain
fallback, so a Dask release that moves them costs speed or precision, never a broken run.
``tests/test_dask_internals.py`` checks each against the installed release.

- ``task_spec``: ``dask._task_spec.Task`` (dask >= 2024.12) builds a task whose arguments hold
  futures without Dask walking them again per task; the fallback is the classic tuple task
  ``(fn, *args)``, which ``client.get`` still accepts (a little slower to submit).
- ``is_adaptive``: ``cluster._adaptive`` is set once ``cluster.adapt()`` ran; there is no public
  flag. Without it labloom assumes a fixed cluster, so a task asking for resources no current
  worker offers fails at once instead of waiting for a worker the cluster might add.

The Dask limiter's use of ``distributed.Semaphore`` internals lives in ``dask_limits.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def task_spec(key: str, fn: Callable[..., Any], *args: Any) -> Any:
    """A graph entry calling ``fn(*args)``; futures anywhere in ``args`` are dependencies."""
    try:
        from dask._task_spec import Task, parse_input
    except ImportError:
        return _tuple_task(fn, *args)
    return Task(key, fn, *(parse_input(arg) for arg in args))


def _tuple_task(fn: Callable[..., Any], *args: Any) -> Any:
    # Classic graphs read a tuple starting with a callable as a call; a dict argument is
    # passed through ``dict`` so that Dask resolves the keys inside it.
    return (fn, *((dict, [[k, v] for k, v in arg.items()]) if isinstance(arg, dict) else arg
                  for arg in args))


def is_adaptive(cluster: Any) -> bool:
    """Whether ``cluster.adapt()`` is in force (False where that cannot be told)."""
    return getattr(cluster, "_adaptive", None) is not None
