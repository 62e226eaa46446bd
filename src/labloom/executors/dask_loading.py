"""Task values brought from the Dask cluster into this process, and what it means when one
cannot be loaded here.

A worker pickles a value by reference to its class (``workeronly.Model``); this process then
imports that module to load it. A module only the workers have (installed in their image, put
on their path by a task or ``client.upload_file``) fails that import here, after the task run
completed. Dask raises the loader's bare error (``No module named 'workeronly'``) from
``.result()``, and from a whole gather without saying which value. Here it becomes a
``ResultLoadError`` that holds the value's handle, so that the engine names the task run and
the fix (``core/values.py``).

A map's children computed in one Dask task travel as one value (``ChunkValues``), in one
pickle: the common case costs nothing per child. When that pickle cannot be loaded here, the
chunk is read child by child instead (``children_pickled``, a small task on the cluster): only
the child whose value cannot be loaded fails, and its siblings' values are read as if alone.
The chunk is remembered, so that its other children's reads go that way at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import CancelledError
from typing import Any

from ..core.errors import ResultLoadError, SchedulerLostError, WorkerDiedError, error_text
from .dask_internals import held_error
from .dask_load_logs import said_by_us
from .dask_outcomes import ChildFailed


def not_loadable(future: Any, error: BaseException) -> bool:
    """Whether ``error``, raised bringing the value of ``future`` here, is this process failing
    to load a value the cluster holds: the task finished, and the value did not fail to arrive
    (a timeout, a connection or worker lost, a cancel)."""
    return getattr(future, "status", None) == "finished" and not isinstance(
        error, (TimeoutError, CancelledError, OSError))


def children_pickled(chunk: Sequence[Any], indices: list[int]) -> list[bytes]:
    """On a worker: the values of a chunk's children at ``indices``, each serialized on its
    own (as Dask would a task's result), so that one that cannot be loaded fails alone."""
    from distributed.protocol.serialize import serialize_bytes

    return [serialize_bytes(chunk[i]) for i in indices]


def _failed(error: BaseException, handles: tuple[Any, ...]) -> ResultLoadError:
    return ResultLoadError(f"{type(error).__name__}: {error}", handles)


class Kept:
    """A finished task run's value, brought over before its cluster closed; stands in for the
    Dask future in the executor's handle."""

    __slots__ = ("key", "value")
    status = "finished"

    def __init__(self, key: str, value: Any) -> None:
        self.key, self.value = key, value

    def result(self, timeout: float | None = None) -> Any:
        return self.value


class Gone:
    """Stands in for the Dask future of a task run whose value its cluster per run could not
    keep as it closed: it was lost with its worker after the task run completed, and Dask's
    run to make it again failed or had not ended (``dask_keeping``). Reading it raises
    ``lost_value`` at once (it started a new cluster to fail with Dask's "Cannot gather Futures
    created by another client"); a retry runs the task run again (``Handle.lost``)."""

    __slots__ = ("key", "why")
    status = "lost"

    def __init__(self, key: str, why: str) -> None:
        self.key, self.why = key, why


def recompute_failed(error: BaseException | None, chunk: bool = False) -> str:
    """Why a value lost with its worker is still gone: Dask ran its task (a map child's: its
    chunk) again, and that run failed (with ``error``)."""
    said = f" ({error_text(error)})" if error is not None else ""
    if chunk:
        return f"Dask ran its chunk again to make it, and that run failed for it{said}"
    return f"Dask ran the task again to make it, and that run failed{said}"


def lost_value(handle: Any, why: str, closed: str = "") -> WorkerDiedError:
    """What reading the value of ``handle``'s task run raises once it is gone: which one, why,
    and the fix (its call returned, and its record says Completed)."""
    key = getattr(handle.future, "key", "?")
    return WorkerDiedError(
        f"[labloom] the value of task run {_name(handle)} (Dask key {key}) is gone: it was lost "
        "with its Dask worker (killed, out of memory, or retired) after the task run completed, "
        f"and {why}{closed}. run.retry() runs it again (or `labloom retry RUN_ID`)")


def _name(handle: Any) -> str:
    return repr(handle.task) if handle.index is None else f"{handle.task}[{handle.index}]"


class ValueReader:
    """Owned by the ``DaskExecutor``: reads task runs' values (``one``, ``many``) from the
    cluster of ``client_of()``."""

    def __init__(self, client_of: Callable[[], Any]) -> None:
        self._client_of = client_of
        self._lock = threading.Lock()
        # Keys of the chunks one of whose children's values cannot be loaded here: read child
        # by child. Only chunks that failed so: a handful in a kernel's life.
        self._apart: set[str] = set()

    def _read_apart(self, future: Any) -> bool:
        with self._lock:
            return future.key in self._apart

    def _set_apart(self, future: Any) -> None:
        with self._lock:
            self._apart.add(future.key)

    def one(self, handle: Any, timeout: float | None = None) -> Any:
        """The value of ``handle``'s task run (a chunk's child: its own value)."""
        return _not_failed(handle, self._one(handle, timeout))

    def _one(self, handle: Any, timeout: float | None) -> Any:
        future = handle.future
        if isinstance(future, (Kept, Gone)):
            return _kept_value(handle)
        _check_client(handle)
        with said_by_us() as absorb:
            if handle.index is None or not self._read_apart(future):
                try:
                    value = future.result(timeout=timeout)
                except Exception as error:
                    _check_recomputed(handle, error)
                    if not not_loadable(future, error):
                        raise
                    absorb(error)
                    if handle.index is None:
                        raise _failed(error, (handle,)) from error
                    self._set_apart(future)
                else:
                    return value if handle.index is None else value[handle.index]
            failures: list[tuple[Any, BaseException]] = []
            values = self._children({id(future): (future, [handle])}, timeout, failures)
        if failures:
            raise _failed(failures[0][1], (handle,)) from failures[0][1]
        return values[id(handle)]

    def many(self, handles: Sequence[Any]) -> list[Any]:
        """The values of ``handles``' task runs, in one round trip (a chunk travels once,
        whatever the number of its children asked for); those that cannot be loaded raise one
        ``ResultLoadError`` naming their handles."""
        values = self._many(handles)
        for handle, value in zip(handles, values, strict=True):
            if type(value) is ChildFailed:
                _not_failed(handle, value)  # raises
        return values

    def _many(self, handles: Sequence[Any]) -> list[Any]:
        if not handles:
            return []  # no client asked for: a cluster per run that closed is not started again
        futures = {id(handle.future): handle.future for handle in handles}
        if any(isinstance(future, (Kept, Gone)) for future in futures.values()):
            return _with_kept(handles, self._many)
        for handle in {id(handle.future): handle for handle in handles}.values():
            _check_client(handle)
        with said_by_us() as absorb:
            failure = None
            if not self._any_apart(futures.values()):
                try:
                    fetched = dict(zip(futures, self._client_of().gather(list(futures.values())),
                                       strict=True))
                except Exception as error:
                    for handle in handles:
                        _check_recomputed(handle, error)
                    if not any(not_loadable(future, error) for future in futures.values()):
                        raise
                    absorb(error)
                    failure = error
                else:
                    return [fetched[id(handle.future)] if handle.index is None
                            else fetched[id(handle.future)][handle.index] for handle in handles]
            return self._many_apart(handles, absorb, failure)

    def _any_apart(self, futures: Iterable[Any]) -> bool:
        with self._lock:
            return bool(self._apart) and any(future.key in self._apart for future in futures)

    def _many_apart(self, handles: Sequence[Any], absorb: Callable[[BaseException], None],
                    failure: BaseException | None) -> list[Any]:
        """``many`` when a value cannot be loaded (``failure``, of their gather) or a chunk is
        read child by child: the chunks' children one by one, the rest whole."""
        by_future: dict[int, tuple[Any, list[Any]]] = {}
        for handle in handles:
            by_future.setdefault(id(handle.future), (handle.future, []))[1].append(handle)
        failures: list[tuple[Any, BaseException]] = []
        fetched = self._whole({key: asked for key, asked in by_future.items()
                               if not (_chunk(asked) and self._read_apart(asked[0]))},
                              absorb, failures, failure)
        apart = {key: asked for key, asked in by_future.items()
                 if key not in fetched and _chunk(asked)}
        values = self._children(apart, None, failures) if apart else {}
        if failures:
            first = failures[0][1]
            raise _failed(first, tuple(handle for handle, _ in failures)) from first
        return [values[id(handle)] if id(handle) in values
                else fetched[id(handle.future)] if handle.index is None
                else fetched[id(handle.future)][handle.index] for handle in handles]

    def _whole(self, asked: dict[int, tuple[Any, list[Any]]],
               absorb: Callable[[BaseException], None],
               failures: list[tuple[Any, BaseException]],
               failure: BaseException | None) -> dict[int, Any]:
        """The values of the futures ``asked`` (by id), each brought whole (one round trip,
        unless their gather failed already: ``failure``); one that cannot be loaded is left
        out: a chunk is set apart, a task run alone goes into ``failures``."""
        futures = [future for future, _ in asked.values()]
        if not futures:
            return {}
        if failure is None:
            try:
                return dict(zip(asked, self._client_of().gather(futures), strict=True))
            except Exception as error:
                if not any(not_loadable(future, error) for future in futures):
                    raise
                absorb(error)
                failure = error
        # Which one: each on its own (after a failure only; Dask's error does not say).
        fetched: dict[int, Any] = {}
        for key, (future, handles) in asked.items():
            try:
                fetched[key] = future.result()
            except Exception as error:
                if not not_loadable(future, error):
                    raise
                absorb(error)
                if _chunk((future, handles)):
                    self._set_apart(future)
                else:
                    failures.extend((handle, error) for handle in handles)
        if len(fetched) == len(futures):
            raise failure  # each loads on its own now: what failed was the gather itself
        return fetched

    def kept_apart(self, future: Any, handles: list[Any]) -> list[Any]:
        """The values of a chunk's children ``handles`` (all of them), read one by one, in the
        order of their places in the chunk; one that cannot be loaded is ``Unloadable`` (a
        cluster per run that closes keeps them so: ``dask_clusters.RunCluster``)."""
        failures: list[tuple[Any, BaseException]] = []
        values = self._children({id(future): (future, handles)}, None, failures)
        failed = {id(handle): error for handle, error in failures}
        kept: list[Any] = [None] * (max(handle.index for handle in handles) + 1)
        for handle in handles:
            kept[handle.index] = (Unloadable(failed[id(handle)]) if id(handle) in failed
                                  else values[id(handle)])
        return kept

    def _children(self, chunks: dict[int, tuple[Any, list[Any]]], timeout: float | None,
                  failures: list[tuple[Any, BaseException]]) -> dict[int, Any]:
        """The values of chunks' children asked (by handle id), each loaded on its own; a
        child whose value cannot be loaded goes into ``failures``, with why."""
        from distributed.protocol.serialize import deserialize_bytes

        client = self._client_of()
        asked = [(handles, client.submit(children_pickled, future,
                                         [handle.index for handle in handles], pure=False))
                 for future, handles in chunks.values()]
        futures = [future for _, future in asked]
        try:
            pickled = client.gather(futures) if timeout is None else [
                future.result(timeout=timeout) for future in futures]
        finally:  # let the cluster drop them now, not when a traceback holding them goes
            futures.clear()
            asked = [(handles, None) for handles, _ in asked]
        values: dict[int, Any] = {}
        for (handles, _), pickles in zip(asked, pickled, strict=True):
            for handle, data in zip(handles, pickles, strict=True):
                try:
                    values[id(handle)] = deserialize_bytes(data)
                except Exception as error:
                    failures.append((handle, error))
        return values


def _chunk(asked: tuple[Any, list[Any]]) -> bool:
    """Whether the future of ``(future, handles)`` is a chunk's (its children's handles)."""
    return asked[1][0].index is not None


class Unloadable:
    """Kept in place of a value (a task run's, a chunk child's) that could not be loaded here."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _not_failed(handle: Any, value: Any) -> Any:
    """``value``, read for ``handle``'s task run, unless it is a chunk's ``ChildFailed``: the
    child returned, its value was lost with its worker, and Dask's run of its chunk to make it
    again failed for this child (it was returned as the child's value)."""
    if type(value) is ChildFailed:
        raise lost_value(handle, recompute_failed(value.error, chunk=True))
    return value


def _check_client(handle: Any) -> None:
    """A value whose client closed before it was brought over (a cluster per run's, its keeping
    cut short by a Ctrl-C; a cluster closed under the run) is gone: said, before reading it
    started a new cluster per run only to fail with Dask's "Cannot gather Futures created by
    another client"."""
    client = getattr(handle.future, "client", None)
    if getattr(client, "status", None) in ("closing", "closed"):
        raise SchedulerLostError(
            f"[labloom] the value of task run {_name(handle)} (Dask key {handle.future.key}) is "
            "gone: its Dask client closed before the value was brought into this process (the "
            "run's own cluster closed as the run ended, its keeping cut short, or the cluster "
            "was closed under the run). run.retry() runs it again")


def _check_recomputed(handle: Any, error: BaseException) -> None:
    """Reading a completed task run's value raised ``error`` with its future erred: the value
    was lost with its worker and Dask's run of the task to make it again failed (without this,
    the Completed task run's read raised that run's error as if it were the task's own)."""
    if getattr(handle.future, "status", None) == "error":
        raise lost_value(handle, recompute_failed(held_error(handle.future))) from error


def _kept_value(handle: Any) -> Any:
    """The value of a task run whose cluster per run closed (brought over before)."""
    if isinstance(handle.future, Gone):
        raise lost_value(handle, handle.future.why, ", before the run's own cluster closed (a "
                                                    "closed cluster keeps nothing)")
    value = handle.future.value
    item = value if handle.index is None else value[handle.index]
    if isinstance(item, Unloadable):
        raise _failed(item.error, (handle,)) from item.error
    return item


def _with_kept(handles: Sequence[Any], many: Callable[[list[Any]], list[Any]]) -> list[Any]:
    """The values of ``handles``, some of them kept here (``Kept``): the others by ``many``."""
    for handle in handles:
        if isinstance(handle.future, Gone):
            _kept_value(handle)  # raises, before any read
    read = iter(many([h for h in handles if not isinstance(h.future, Kept)]))
    return [_kept_value(h) if isinstance(h.future, Kept) else next(read) for h in handles]
