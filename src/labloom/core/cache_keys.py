"""Keys of cached tasks: they follow the inputs' values, hashed where the values are.

A ``@task(cache=True)`` key hashes the task's source and its inputs' contents. A static input
is hashed in the kernel, where it is. An input that another task run computed is hashed where
that value is: in the task call itself (on a Dask worker), never brought into the kernel for
it (``KeyPlan`` travels with the call; the call reports its key back before it ends). An
upstream that is itself cached (and does not expire) is deterministic by the user's
declaration: its key stands in for its value, and nothing is hashed.

Content hashes: plain data (scalars, and lists, tuples and dicts of them) by its pickle, anything
else by ``dask.base.tokenize(..., ensure_deterministic=True)``; a value that has no
deterministic token (a lock, a generator, an object whose pickle changes) is refused with a
warning, and the task runs uncached; a random token would never hit, and an identity-based one
could hit wrongly. ``cache_key=`` replaces all of this with the user's own policy.

Costs (benchmarks/cache_keys.py): hashing reads every byte of an input, about 0.05 s for a
100 MB numpy array or a list of a million floats.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import logging
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import result_files
from .futures import MappedFuture, TaskFuture, allow_failure, find_futures, replace_futures
from .logs import current_task
from .result_files import CacheMissError, load_cached, result_path, save_result

if TYPE_CHECKING:
    from .attempt import TaskCall
    from .sink_registry import RunSink
    from .task_runs import TaskRun

KEY_VERSION = "labloom-cache-key-2"
log = logging.getLogger("labloom.cache")


class NoKey(Exception):
    """Why a task run has no cache key: it then runs, uncached, with a warning saying why."""


_SCALARS = frozenset((int, float, complex, str, bytes, bool, type(None)))


def _plain(value: Any, depth: int = 0) -> bool:
    """Scalars, and lists, tuples and dicts of them: their pickle is their content."""
    kind = type(value)
    if kind in _SCALARS:
        return True
    if depth > 20:
        return False
    if kind is list or kind is tuple:
        return all(type(v) in _SCALARS for v in value) or all(_plain(v, depth + 1)
                                                                for v in value)
    if kind is dict:
        return all(_plain(k, depth + 1) and _plain(v, depth + 1) for k, v in value.items())
    return False


def _plain_token(value: Any) -> str:
    # Fast mode: no memo, so equal values pickle alike whatever objects they share.
    # tokenize() formats such values as text: 3 s for 100 MB of bytes, against 0.1 s here.
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=5)
    pickler.fast = True
    pickler.dump(value)
    return "p" + hashlib.sha256(buffer.getbuffer()).hexdigest()[:31]


def content_token(value: Any) -> str:
    """A hash of ``value``'s contents, the same in every process, or ``NoKey``."""
    if _plain(value):
        return _plain_token(value)
    from dask.base import tokenize

    try:
        return str(tokenize(value, ensure_deterministic=True))
    except Exception as exc:
        kind = type(value)
        raise NoKey(
            f"an input ({kind.__module__}.{kind.__qualname__}) cannot be hashed: it has no "
            f"deterministic content hash ({type(exc).__name__}); give its class a "
            "__dask_tokenize__ method, or choose what the key depends on with "
            "@task(cache_key=...)"
        ) from None


def digest(*parts: str) -> str:
    return hashlib.sha256("\0".join((KEY_VERSION, *parts)).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class CacheContext:
    """What a ``cache_key=`` hook receives besides the inputs.

    >>> def by_day(ctx: CacheContext, inputs: dict) -> str | None:
    ...     return f"{ctx.task_source}-{inputs['day']}"     # ignore the other inputs
    """

    task_name: str
    # A hash of the task's code (``source.code_hash``: its source and the helpers and constants
    # it uses from its module): put it in the key to follow code edits.
    task_source: str
    flow_name: str
    flow_run_id: str
    map_index: int | None

    def token(self, value: Any) -> str:
        """labloom's content hash of ``value`` (raises if it has no deterministic one)."""
        return content_token(value)


Slot = tuple[str, "int | str"]  # ("args", position) or ("kwargs", name)


@dataclass
class KeyPlan:
    """How a task call makes its key where its inputs are; set on ``TaskCall.keying``."""

    base: str  # token of what the kernel knew: source, static inputs, upstreams' keys
    slots: tuple[Slot, ...]  # the arguments to hash in the call
    hook: Callable[..., Any] | None = None
    context: CacheContext | None = None
    folder: str = ""
    expiration: float | None = None
    lookup: bool = True  # False once a stored result could not be read

    def key(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        if self.hook is not None:
            return self._hook_key(fn, args, kwargs)
        tokens = [content_token(args[int(at)] if where == "args" else kwargs[str(at)])
                  for where, at in self.slots]
        return digest(self.base, *tokens)

    def _hook_key(self, fn: Callable[..., Any], args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> str | None:
        assert self.hook is not None
        try:
            bound = inspect.signature(fn).bind(*args, **kwargs)
            bound.apply_defaults()
            inputs = dict(bound.arguments)
        except (TypeError, ValueError):
            inputs = {**{str(i): value for i, value in enumerate(args)}, **kwargs}
        chosen = self.hook(self.context, inputs)
        if chosen is None:
            return None
        if not isinstance(chosen, str):
            raise TypeError(
                f"cache_key= of task {self.context.task_name if self.context else '?'!r} "
                f"returned a {type(chosen).__name__}; return a str (equal strings share one "
                "result), or None to run uncached"
            )
        return digest("hook", chosen)


def run_keyed(call: TaskCall, sink: RunSink | None, args: tuple[Any, ...],
              kwargs: dict[str, Any], compute: Callable[[], Any]) -> Any:
    """In the task call: make the key, load a stored result or compute and save one. The
    key reaches the engine (``sink.task_keyed``) before the call's end does."""
    plan = call.keying
    assert plan is not None

    def report(key: str | None, path: str | None, message: str) -> None:
        if sink is not None:
            sink.task_keyed(call.run_id, call.task_run_id, call.attempt, key, path, message,
                            call.rerun)

    try:
        key = plan.key(call.fn, args, kwargs)
    except NoKey as exc:
        log.warning("[labloom] not cached: %s", exc)
        key = None
    if key is None:
        report(None, None, "")
        return compute()
    path = result_path(key, plan.folder)
    if plan.lookup:
        saved = result_files.modified(path)
        if saved is not None and (plan.expiration is None
                                  or time.time() - saved <= plan.expiration):
            try:
                value = load_cached(path)
            except CacheMissError as exc:
                log.warning("[labloom] %s; computing it again", exc)
            else:
                report(key, path, "cached result")
                return value
    report(key, path, "")
    value = compute()
    ctx = current_task()
    save_result(path, value, None if ctx is None else ctx.kept)
    return value


def plan_for(tr: TaskRun, task_source: str, stand_in: Callable[[TaskRun], str | None]) -> KeyPlan:
    """The key plan of a cached task run (``slots`` empty: the kernel can finish the key).

    ``stand_in(upstream)`` is the key of an upstream whose key may stand in for its value.
    """
    task = tr.task
    hook = task.cache_key
    node = tr.parent
    if hook is not None:
        return KeyPlan("", (), hook)
    parts: list[Any] = []
    slots: list[Slot] = []

    def add(where: str, at: int | str, value: Any) -> None:
        token = _known_token(value, stand_in)
        if token is None:
            slots.append((where, at))
            token = ("labloom-slot", len(slots) - 1)
        parts.append((where, at, token))

    if node is None or tr.map_index is None:
        for position, value in enumerate(tr.args):
            add("args", position, value)
        for name in sorted(tr.kwargs):
            add("kwargs", name, tr.kwargs[name])
    else:
        for position, mapped in enumerate(node.sources):
            _add_source(add, "args", position, mapped, tr, tr.args[position], stand_in)
        for name in sorted(node.keywords):
            _add_source(add, "kwargs", name, node.keywords[name], tr, tr.kwargs[name], stand_in)
    return KeyPlan(content_token((task_source, parts)), tuple(slots))


def _add_source(add: Callable[[str, Any, Any], None], where: str, at: int | str, source: Any,
                tr: TaskRun, value: Any, stand_in: Callable[[TaskRun], str | None]) -> None:
    """A map child's input: an item of an upstream's result is hashed in the call unless
    that upstream's key stands in for it."""
    if source.kind == "future":
        upstream, position = source.value, tr.map_index
    elif source.kind == "flat":
        from .flatten import origin_of

        assert tr.parent is not None and tr.map_index is not None
        upstream, position = origin_of(tr.parent, tr.map_index)
    else:
        add(where, at, value)
        return
    key = stand_in(upstream)
    add(where, at, _Known(("labloom-item", key, position)) if key else _Unknown())


class _Known:
    __slots__ = ("token",)

    def __init__(self, token: Any) -> None:
        self.token = token


class _Unknown:
    """An executor-side reference: only the call sees its value."""


def _known_token(value: Any, stand_in: Callable[[TaskRun], str | None]) -> Any:
    """What the kernel can say of ``value`` (None: hash it in the call)."""
    if isinstance(value, _Known):
        return value.token
    if isinstance(value, _Unknown):
        return None
    found: list[Any] = []
    find_futures(value, found)
    if not found:
        return ("labloom-value", content_token(value))
    keys: dict[int, str | None] = {}
    for item in found:
        if isinstance(item, allow_failure):
            raise NoKey("an input is wrapped in allow_failure(...), whose value may be an error")
        runs = item.node.children if isinstance(item, MappedFuture) else [item.task_run]
        keys.update((id(run), stand_in(run)) for run in runs)
    if not all(keys.values()):
        return None

    def key_of(future: Any) -> Any:
        if isinstance(future, TaskFuture):
            return ("labloom-key", keys[id(future.task_run)])
        return ("labloom-keys", [keys[id(child)] for child in future.node.children])

    return ("labloom-value", content_token(replace_futures(value, key_of)))
