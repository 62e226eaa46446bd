"""A task's arguments on their way to a Dask worker: each one that is not plain data is pickled
on its own in this process (``ship_arguments``) and unpickled by the task run on the worker
(``unship_arguments``), not with the graph that carries the task.

Unpickled with the graph, one argument that could not be rebuilt there (an object whose
``__reduce__`` raises on load, a class the scheduler cannot import) failed every task sent with
it, with Dask's "Error during deserialization of the task graph": a sweep's whole batch of
children for one bad configuration. One that the scheduler could rebuild but a worker could
not broke that worker's connection: Dask closed it, gave the task to the next worker, which
closed too, and the run waited for workers that never came back. Unpickled by the task run, it
fails that task run alone, naming the argument; the others run and the workers live on. One that
cannot be pickled at all fails at its launch, alone (``handing_over.hand_over``), also when it
is a map child that would share a Dask task with its siblings.

Array data inside an argument travels out of band (pickle protocol 5), as Dask sends it: no
copy of a large DataFrame is made here. An argument holding a future (an upstream's value, to
be fetched by Dask on the worker) is left to Dask; plain data (numbers, strings, and lists,
tuples, sets and dicts of them, NumPy arrays of numbers) cannot fail to load and goes as it is.
"""

from __future__ import annotations

import inspect
import pickle as std_pickle
from collections.abc import Iterator
from typing import Any

from ..core.attempt import TaskCall
from .dask_load_logs import pickling_said_by_us

_PLAIN = frozenset((int, float, complex, str, bytes, bool, type(None)))
_CONTAINERS = (list, tuple, set, frozenset)
SAFE, SHIP, HOLDS_FUTURE, TOO_DEEP = 0, 1, 2, 3
# Containers deeper than _DEEP are looked into without recursion, and pickled apart; deeper
# than _TOO_DEEP, refused naming the argument and the fix. Dask's walk of a task's arguments
# and pickle both recurse, about two frames of the interpreter's recursion limit per level:
# near 450 levels (less on a deep stack) one failed with a bare RecursionError, naming no
# argument, the other with distributed's "Failed to serialize" and pickle's traceback. A
# sweep's configuration is a few levels deep.
_DEEP = 100
_TOO_DEEP = 300
_NOT_LOADED = object()
_future: type | None = None  # distributed.Future, imported by the first call that needs it


class ShippedArgument:
    """An argument pickled here (at once: one that cannot be fails its launch), sent as its
    bytes; an in-process worker receives it as it is."""

    __slots__ = ("buffers", "payload", "value")

    def __init__(self, value: Any) -> None:
        from distributed.protocol import pickle

        self.value = value
        self.buffers: list[std_pickle.PickleBuffer] = []
        self.payload: bytes = pickle.dumps(  # type: ignore[no-untyped-call]
            value, buffer_callback=self.buffers.append)

    def __reduce__(self) -> tuple[Any, ...]:
        return ArrivedArgument, (self.payload, self.buffers)


class ArrivedArgument:
    """An argument pickled apart, where Dask unpickled the task (the scheduler, the worker):
    bytes until a task run loads them, once for the calls that share it (an ``unmapped``
    value given to a chunk's children, as one unpickled with the graph was)."""

    __slots__ = ("buffers", "payload", "value")

    def __init__(self, payload: bytes, buffers: list[Any]) -> None:
        self.payload = payload
        self.buffers = buffers
        self.value: Any = _NOT_LOADED

    def __reduce__(self) -> tuple[Any, ...]:
        # Sent on again (scheduler to worker): the buffers arrived as memoryviews of the
        # message's frames, which pickle cannot take, and go out of band again.
        return ArrivedArgument, (self.payload, [std_pickle.PickleBuffer(b) for b in self.buffers])


def _kind(value: Any, future_type: type, depth: int = 0) -> int:
    """SAFE (plain data), HOLDS_FUTURE (Dask fetches what it names) or SHIP."""
    if depth > _DEEP:
        return _deep_kind(value, future_type)
    kind = type(value)
    if kind in _PLAIN:
        return SAFE
    if kind in _CONTAINERS:
        items: Any = value
    elif kind is dict:
        if not set(map(type, value)) <= _PLAIN:
            return SHIP  # keys that are objects: rare, and pickled apart whole
        items = value.values()
    elif isinstance(value, future_type):
        return HOLDS_FUTURE
    elif kind.__module__ == "numpy" and kind.__name__ == "ndarray":
        return SAFE if value.dtype.kind in "biufcmMSU" else SHIP
    else:
        return SHIP
    if set(map(type, items)) <= _PLAIN:  # the types gathered in C: a settings dict, a long list
        return SAFE
    worst = SAFE
    for item in items:
        found = _kind(item, future_type, depth + 1)
        if found >= HOLDS_FUTURE:
            return found
        worst = max(worst, found)
    return worst


def _deep_kind(value: Any, future_type: type) -> int:
    """``_kind`` of what is nested past ``_DEEP`` levels, without recursion: TOO_DEEP past
    ``_TOO_DEEP``, HOLDS_FUTURE if a future is inside, else SHIP (pickled apart, out of the
    reach of Dask's walk of a task's arguments)."""
    if _depth(value) + _DEEP > _TOO_DEEP:
        return TOO_DEEP
    for item in _nested(value):
        if isinstance(item, future_type):
            return HOLDS_FUTURE
    return SHIP


def _nested(value: Any) -> Iterator[Any]:
    """``value`` and every container's item inside it, each once (a cycle ends), with no
    recursion."""
    seen: set[int] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        yield item
        if type(item) in _CONTAINERS or type(item) is dict:
            if id(item) in seen:
                continue
            seen.add(id(item))
            stack.extend(item.values() if type(item) is dict else item)


def _depth(value: Any) -> int:
    """How many containers deep ``value`` goes (lists in lists...), with no recursion."""
    deepest, seen, stack = 0, set(), [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if (type(item) in _CONTAINERS or type(item) is dict) and id(item) not in seen:
            seen.add(id(item))
            deepest = max(deepest, depth + 1)
            stack.extend((inner, depth + 1)
                         for inner in (item.values() if type(item) is dict else item))
    return deepest


def _argument_kind(call: TaskCall, where: int | str, value: Any, future_type: type) -> int:
    """As ``_kind``; an argument too deep to be sent raises ``TypeError`` naming it."""
    try:
        kind = _kind(value, future_type)
    except RecursionError:  # nested objects' own recursion (``_kind`` stops at ``_DEEP``)
        return SHIP  # pickled apart whole, or refused naming it
    if kind == TOO_DEEP:
        raise _too_deep(call, where, value)
    return kind


def ship_arguments(call: TaskCall, args: tuple[Any, ...], kwargs: dict[str, Any],
                   shipped: dict[int, ShippedArgument]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``args`` and ``kwargs`` with each argument that is not plain data pickled apart; raises
    ``TypeError`` naming the argument that cannot be pickled. ``shipped``: what was pickled
    for the calls before, by id (the caller keeps the values alive): a value given to many
    calls (``unmapped(table)``) is pickled and sent once per graph, not once per call."""
    if not kwargs and set(map(type, args)) <= _PLAIN:
        return args, kwargs  # the most common call (``fit(i)``): 0.3 µs, not 4
    global _future
    if _future is None:
        from distributed import Future

        _future = Future
    future = _future

    shipped_args: tuple[Any, ...] = args
    for i, value in enumerate(args):
        if type(value) not in _PLAIN and _argument_kind(call, i, value, future) == SHIP:
            if shipped_args is args:
                shipped_args = list(args)  # type: ignore[assignment]
            shipped_args[i] = _shipped(call, i, value, shipped)  # type: ignore[index]
    shipped_kwargs = kwargs
    for name, value in kwargs.items():
        if type(value) not in _PLAIN and _argument_kind(call, name, value, future) == SHIP:
            if shipped_kwargs is kwargs:
                shipped_kwargs = dict(kwargs)
            shipped_kwargs[name] = _shipped(call, name, value, shipped)
    return tuple(shipped_args), shipped_kwargs


def _shipped(call: TaskCall, where: int | str, value: Any,
             shipped: dict[int, ShippedArgument]) -> ShippedArgument:
    known = shipped.get(id(value))
    if known is not None and known.value is value:
        return known
    with pickling_said_by_us() as absorb:
        try:
            shipped[id(value)] = known = ShippedArgument(value)
            return known
        except Exception as exc:
            absorb(exc)
            error = exc
    raise _not_sent(call, where, value, error) from None


def _not_sent(call: TaskCall, where: int | str, value: Any, exc: Exception) -> TypeError:
    """The error of an argument that cannot be pickled, naming it and the fix."""
    if _recursed(exc):  # objects nested too deep (containers are refused before)
        return _too_deep(call, where, value)
    kind = type(value)
    return TypeError(
        f"the task's arguments cannot be sent to a Dask worker: {_named(call, where)} of "
        f"task {call.task_name!r}, a {kind.__module__}.{kind.__qualname__} "
        f"({type(exc).__name__}: {exc}). Dask must serialize them. Pass plain data "
        "(numbers, strings, lists, dicts, arrays, DataFrames, paths), or create the object "
        "(a database connection, a lock, an open file) inside the task that uses it"
    )


def _recursed(error: BaseException | None) -> bool:
    """Whether ``error`` is, or comes of, a RecursionError (cloudpickle's PicklingError, after
    pickle's)."""
    while error is not None:
        if isinstance(error, RecursionError):
            return True
        error = error.__cause__ or error.__context__
    return False


def _too_deep(call: TaskCall, where: int | str, value: Any) -> TypeError:
    kind = type(value)
    depth = _depth(value)
    why = (f"nested {depth} levels deep: Dask walks and pickles a task's arguments "
           f"recursively, and labloom refuses over {_TOO_DEEP} levels before that fails with "
           "a RecursionError" if depth > _TOO_DEEP else
           "holding objects nested too deep for pickle, which recurses at each level "
           "(RecursionError)")
    return TypeError(
        f"the task's arguments cannot be sent to a Dask worker: {_named(call, where)} of task "
        f"{call.task_name!r}, a {kind.__module__}.{kind.__qualname__} {why}. Flatten it (a "
        "list of rows, a dict keyed by path), or write it to a file and pass the file's path"
    )


def unship_arguments(call: TaskCall, args: tuple[Any, ...], kwargs: dict[str, Any],
                     ) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """On the worker: the arguments themselves. One that cannot be loaded here fails this task
    run, naming it and what to do."""
    if any(type(v) in _ARRIVED for v in args):
        args = tuple(_loaded(call, i, v) if type(v) in _ARRIVED else v
                     for i, v in enumerate(args))
    if any(type(v) in _ARRIVED for v in kwargs.values()):
        kwargs = {k: _loaded(call, k, v) if type(v) in _ARRIVED else v
                  for k, v in kwargs.items()}
    return args, kwargs


_ARRIVED = frozenset((ShippedArgument, ArrivedArgument))


def _loaded(call: TaskCall, where: int | str, value: ShippedArgument | ArrivedArgument) -> Any:
    if isinstance(value, ShippedArgument):
        return value.value  # never left this process (an in-process worker)
    if value.value is not _NOT_LOADED:
        return value.value
    from distributed.protocol import pickle

    try:
        value.value = pickle.loads(value.payload,  # type: ignore[no-untyped-call]
                                   buffers=value.buffers)
        return value.value
    except Exception as exc:
        raise RuntimeError(
            f"{_named(call, where)} of task {call.task_name!r} cannot be loaded on the Dask "
            f"worker ({type(exc).__name__}: {exc}): Dask workers rebuild a task's arguments "
            "from their pickle, and this one's cannot be rebuilt there. Define its class (and "
            "what its pickle calls) in a module the workers import, not in the notebook, or "
            "pass plain data (numbers, strings, lists, dicts, arrays) and build the object "
            "inside the task"
        ) from None  # its cause's class may not load where this error is read


def _named(call: TaskCall, where: int | str) -> str:
    """"argument 'config'" (its parameter's name when the signature says it)."""
    if isinstance(where, str):
        return f"argument {where!r}"
    fn = call.fn
    try:
        params = list(inspect.signature(getattr(fn, "fn", fn)).parameters.values())
    except (TypeError, ValueError):
        params = []
    if where < len(params) and params[where].kind in (
            inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
        return f"argument {params[where].name!r}"
    return f"positional argument {where + 1}"
