"""A task call's arguments as they were at the call: its lists, dicts, tuples and sets copied
when the flow body calls the task, since the task runs later (``body_calls.submit``)."""

from __future__ import annotations

from typing import Any

# Values that hold nothing to copy or search: a container of only these is looked at in C.
PLAIN = frozenset((int, float, complex, str, bytes, bool, type(None)))


def as_called(obj: Any) -> Any:
    """``obj`` with its lists, dicts, tuples and sets copied (their futures and other values
    kept): what a task call's arguments were at the call. A task runs later (the local
    executor's calls when the run is waited for, Dask's once the flow body submitted its
    block), and a sweep's loop editing one dict of settings between calls gave every call
    the loop's last settings. A list of plain values (a million floats) is copied whole,
    without a look at each of them from Python. A value that contains itself (``x.append(x)``)
    or is nested deeper than Python's recursion limit is given as it is, not copied; the
    arguments beside it are copied still."""
    try:
        return _copied(obj)
    except RecursionError:
        kind = type(obj)
        if kind is tuple or kind is list:  # a call's positional arguments
            return kind(map(_copied_or_kept, obj))
        if kind is dict:  # its keyword arguments
            return {key: _copied_or_kept(value) for key, value in obj.items()}
        return obj


def _copied_or_kept(obj: Any) -> Any:
    try:
        return _copied(obj)
    except RecursionError:
        return obj


def _copied(obj: Any) -> Any:
    kind = type(obj)
    if kind is list or kind is tuple or kind is set:
        if set(map(type, obj)) <= PLAIN:
            return obj if kind is tuple else kind(obj)
        return kind(map(_copied, obj))
    if kind is dict:
        return {key: _copied(value) for key, value in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # a namedtuple
        return kind(*map(_copied, obj))
    return obj  # a future, or a value not copied (frozen, or not a plain container)


def arguments_as_called(args: tuple[Any, ...], kwargs: dict[str, Any],
                        ) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A task call's arguments as they were at the call (``as_called``); as they are when
    none is a container, the most common call (``train(i, lr)``), with no copy made."""
    if any(type(v) in _HOLDERS for v in args) or any(
            type(v) in _HOLDERS for v in kwargs.values()):
        return as_called(args), as_called(kwargs)
    return args, kwargs


_HOLDERS = frozenset((list, dict, tuple, set))
