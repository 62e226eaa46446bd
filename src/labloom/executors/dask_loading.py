"""Task values brought from the Dask cluster into this process, and what it means when one
cannot be loaded here.

A worker pickles a value by reference to its class (``workeronly.Model``); this process then
imports that module to load it. A module only the workers have (installed in their image, put
on their path by a task or ``client.upload_file``) fails that import here, after the task run
completed. Dask raises the loader's bare error (``No module named 'workeronly'``) from
``.result()``, and from a whole gather without saying which value. Here it becomes a
``ResultLoadError`` that holds the value's handle, so that the engine names the task run and
the fix (``core/values.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import CancelledError
from typing import Any

from ..core.errors import ResultLoadError


def _not_loadable(future: Any, error: BaseException) -> bool:
    """Whether ``error``, raised bringing the value of ``future`` here, is this process failing
    to load a value the cluster holds: the task finished, and the value did not fail to arrive
    (a timeout, a connection or worker lost, a cancel)."""
    return getattr(future, "status", None) == "finished" and not isinstance(
        error, (TimeoutError, CancelledError, OSError))


def loaded(handle: Any, timeout: float | None = None, handles: Sequence[Any] = ()) -> Any:
    """The value of ``handle``'s future (a chunk's: all its children's values, which
    ``handles`` of its children asked for together share)."""
    try:
        return handle.future.result(timeout=timeout)
    except Exception as error:
        if not _not_loadable(handle.future, error):
            raise
        together = tuple(h for h in handles if h.future is handle.future) or (handle,)
        chunk = "" if handle.index is None else (
            "; a map's children computed in one Dask task travel together, so the value may "
            "be a sibling's")
        raise ResultLoadError(f"{type(error).__name__}: {error}{chunk}", together) from error


def gathered(client: Any, futures: list[Any], handles: Sequence[Any]) -> list[Any]:
    """The values of ``futures`` (of ``handles``), in one round trip; a value that cannot be
    loaded raises ``ResultLoadError`` naming its handle."""
    try:
        return list(client.gather(futures))
    except Exception as error:
        if not any(_not_loadable(future, error) for future in futures):
            raise
        failure = error
    # Which one: each on its own (after a failure only; Dask's error does not say).
    first = {id(handle.future): handle for handle in reversed(handles)}
    for future in futures:
        loaded(first[id(future)], handles=handles)
    raise failure  # each loads on its own now: what failed was the gather itself
