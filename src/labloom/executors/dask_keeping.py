"""A cluster per run's finished values, brought into this process as it closes (``Kept``).

One round trip for all of them; when that fails, each on its own: a value lost with its worker
is left out (reading it fails as without a cluster), one that this process cannot load (a class
of a module only the workers have) is kept as its error, so that reading it later raises the
``ResultLoadError`` naming its task run and the fix (it raised Dask's "Cannot gather Futures
created by another client", the cluster gone), and a chunk's children are kept one by one
(``ValueReader.kept_apart``). distributed's CRITICAL "Failed to deserialize", logged with the
loader's traceback for each of these reads, is held back (``said_by_us``): one line of labloom's
says what could not be kept, and why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .dask_load_logs import said_by_us
from .dask_loading import Kept, Unloadable, ValueReader, not_loadable

log = logging.getLogger("labloom")


class _Lost:
    """A value that could not be gathered (its worker went): not kept."""


def keep_values(client: Any, where: str, handles: list[Any]) -> None:
    """The finished values of ``handles`` (a run's, on its cluster per run of ``client``:
    ``where`` names them), into them as ``Kept``, before the cluster closes."""
    live = {id(h.future): h.future for h in handles
            if h.future is not None and not isinstance(h.future, Kept)
            and h.future.status == "finished"}
    if not live:
        return
    futures = list(live.values())
    with said_by_us() as absorb:
        try:
            values = client.gather(futures)
        except Exception as exc:
            if any(not_loadable(future, exc) for future in futures):
                absorb(exc)
            values = [_gathered(client, future, absorb) for future in futures]
            _keep_apart(client, futures, values, handles)
            _say_not_kept(where, futures, values, handles, exc)
    kept = {id(f): Kept(f.key, v) for f, v in zip(futures, values, strict=True)
            if not isinstance(v, _Lost)}
    for handle in handles:
        replacement = kept.get(id(handle.future))
        if replacement is not None:
            handle.future, handle.item = replacement, None


def _gathered(client: Any, future: Any, absorb: Callable[[BaseException], None]) -> Any:
    try:
        return client.gather(future)
    except Exception as error:
        if not not_loadable(future, error):
            return _Lost()
        absorb(error)
        return Unloadable(error)


def _keep_apart(client: Any, futures: list[Any], values: list[Any], handles: list[Any]) -> None:
    """A chunk whose value could not be brought over whole (one child's value cannot be
    loaded here): its children's values one by one, in ``values``."""
    reader = ValueReader(lambda: client)
    for i, future in enumerate(futures):
        children = [h for h in handles if h.future is future and h.index is not None]
        if children and isinstance(values[i], (_Lost, Unloadable)):
            try:
                values[i] = reader.kept_apart(future, children)
            except Exception:  # lost with its worker: nothing to keep
                values[i] = _Lost()


def _say_not_kept(where: str, futures: list[Any], values: list[Any], handles: list[Any],
                  failure: BaseException) -> None:
    """One line: how many task runs' values could not be loaded here (and why), how many were
    lost."""
    by_future = dict(zip(map(id, futures), values, strict=True))
    errors: list[BaseException] = []
    tasks: set[str] = set()  # of the values that cannot be loaded
    lost = 0
    for handle in handles:
        value = by_future.get(id(handle.future))
        if isinstance(value, _Lost):
            lost += 1
        elif handle.index is None and isinstance(value, Unloadable):
            errors.append(value.error)
            tasks.add(handle.task)
        elif handle.index is not None and isinstance(value, list) and isinstance(
                value[handle.index], Unloadable):
            errors.append(value[handle.index].error)
            tasks.add(handle.task)
    said = []
    if errors:
        first = errors[0]
        named = ", ".join(repr(task) for task in sorted(tasks))
        said.append(f"the value{_of(len(errors))} of {named} could not be loaded in this process "
                    f"({type(first).__name__}: {first}): reading {_it(len(errors))} raises "
                    "labloom.ResultLoadError, naming the fix")
    if lost:
        said.append(f"the value{_of(lost)} could not be brought over ({failure}), lost with "
                    "its worker")
    if said:
        log.warning("[labloom] %s: as its cluster closed, %s", where, "; ".join(said))


def _of(count: int) -> str:
    return f" of {count} task run" if count == 1 else f"s of {count} task runs"


def _it(count: int) -> str:
    return "it" if count == 1 else "one"
