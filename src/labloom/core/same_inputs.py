"""Whether a call of a flow body run again (``@flow(retries=...)``, ``flow_retries.py``) has
the inputs its earlier attempt's task run had: only then is that task run's result reused.

A future is the same input when it is of the same task run (that it did not run again is the
caller's to check: ``FlowAttempts.upstream_ran_again``). Plain values compare with ``==``;
anything else (a DataFrame, an array) by its content hash, as a cached task's key hashes it
(``cache_keys.content_token``): ``==`` of those gives no plain answer. A value with no content
hash (a lock, a generator) counts as changed: running again is safe, reusing may be wrong.
"""

from __future__ import annotations

from typing import Any

from .futures import MappedFuture, TaskFuture, allow_failure

_SCALARS = frozenset((int, float, complex, str, bytes, bool, type(None)))


def same_inputs(earlier: tuple[tuple[Any, ...], dict[str, Any]],
                now: tuple[tuple[Any, ...], dict[str, Any]]) -> bool:
    """``(args, kwargs)`` of a call against its earlier attempt's."""
    return same_value(earlier[0], now[0]) and same_value(earlier[1], now[1])


def same_value(earlier: Any, now: Any, depth: int = 0) -> bool:
    if earlier is now:
        return True
    kind = type(earlier)
    if kind is not type(now):
        return False
    if kind is TaskFuture:
        return bool(earlier.task_run is now.task_run)
    if kind is MappedFuture:
        return bool(earlier.node is now.node)
    if kind is allow_failure:
        return same_value(earlier.future, now.future, depth + 1)
    if kind in _SCALARS:
        return bool(earlier == now)
    if depth < 20 and (kind is list or kind is tuple):
        return len(earlier) == len(now) and all(
            same_value(a, b, depth + 1) for a, b in zip(earlier, now, strict=True))
    if depth < 20 and kind is dict:
        return list(earlier) == list(now) and all(
            same_value(earlier[key], now[key], depth + 1) for key in earlier)
    from .cache_keys import content_token

    try:
        return content_token(earlier) == content_token(now)
    except Exception:  # no content hash (NoKey), or no dask to make one: say it changed
        return False
