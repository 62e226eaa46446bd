"""A cluster per run's finished values, brought into this process as it closes (``Kept``).

One round trip for all of them; when that fails, each on its own. A value lost with its worker
after its task run completed is waited for while Dask makes it again (``LABLOOM_RECOMPUTE_WAIT``);
one that could not be brought over, or whose new run failed or did not end, is kept as ``Gone``:
reading it raises a ``WorkerDiedError`` naming the task run, why, and the fix (``run.retry()``
runs it again). Left as the closed client's future, reading it started a new cluster to fail
with Dask's "Cannot gather Futures created by another client". One that this process cannot
load (a class of a module only the workers have) is kept as its error, so that reading it
later raises the ``ResultLoadError`` naming its task run and the fix (it raised Dask's "Cannot
gather Futures created by another client", the cluster gone), and a chunk's children are kept
one by one (``ValueReader.kept_apart``). distributed's CRITICAL "Failed to deserialize",
logged with the loader's traceback for each of these reads, is held back (``said_by_us``): one
line of labloom's says what could not be kept, and why.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from ..core.env_numbers import env_number
from ..core.errors import ClusterConfigError
from .dask_internals import held_error
from .dask_load_logs import said_by_us
from .dask_loading import Gone, Kept, Unloadable, ValueReader, not_loadable, recompute_failed

log = logging.getLogger("labloom")

# How long a run's end waits, before its own cluster closes, for Dask to make again a value
# lost with its worker (it runs the task again; the run's reader may still ask for it). A
# bound, as a cluster with no worker left would make it never. ``LABLOOM_RECOMPUTE_WAIT``.
RECOMPUTE_WAIT = 120.0


def recompute_wait() -> float:
    """The setting, read as a cluster starts (a bad one raises then, not as the run ends)."""
    return env_number("LABLOOM_RECOMPUTE_WAIT", RECOMPUTE_WAIT, "a number of seconds >= 0",
                      lambda seconds: 0 <= seconds < math.inf, ClusterConfigError,
                      "how long a run's end waits for Dask to make again a value lost with "
                      "its worker")


class _Lost:
    """A value that could not be gathered (its worker went, or its new run failed)."""

    def __init__(self, why: str) -> None:
        self.why = why


def keep_values(client: Any, where: str, handles: list[Any], wait: float = RECOMPUTE_WAIT,
                waited: frozenset[Any] = frozenset()) -> None:
    """The finished values of ``handles`` (a run's, on its cluster per run of ``client``:
    ``where`` names them), into them as ``Kept``, before the cluster closes; those lost with
    their worker as ``Gone`` (made again within ``wait`` seconds: kept; not waited for again
    when the run's end waited for them already, by their keys ``waited``)."""
    ours = {id(h.future): h.future for h in handles
            if h.future is not None and not isinstance(h.future, (Kept, Gone))}
    remade = [f for f in ours.values() if f.status == "lost"]
    await_remade([f for f in remade if f.key not in waited], wait)
    # An erred future is a failed task run's (never read) or a completed one's whose new run
    # failed: Gone either way, which says why if it is read.
    gone = {key: Gone(f.key, recompute_failed(held_error(f)) if f.status == "error" else
                      f"Dask was still making it again after {wait:g} s "
                      "(LABLOOM_RECOMPUTE_WAIT)")
            for key, f in ours.items() if f.status in ("error", "lost")}
    live = {key: f for key, f in ours.items() if f.status == "finished"}
    if live:
        gone.update(_kept(client, where, handles, list(live.values())))
    lost_here = sum(1 for f in remade if f.status != "finished")
    if lost_here:
        log.warning("[labloom] %s: as its cluster closed, the value%s, lost with %s worker, "
                    "could not be made again: reading %s raises WorkerDiedError; run.retry() "
                    "runs %s again", where, _of(lost_here), "its" if lost_here == 1 else "their",
                    _it(lost_here), "it" if lost_here == 1 else "them")
    for handle in handles:
        replacement = gone.get(id(handle.future))
        if replacement is not None:
            handle.future, handle.item = replacement, None


def await_remade(futures: list[Any], wait: float) -> list[Any]:
    """``futures`` (lost with their worker), once Dask made them again, failed to, or
    ``wait`` seconds passed."""
    # Each on its own client (distributed.wait asks for a default one, which a cluster per
    # run's is not); ``exception`` waits for the end without moving the value.
    end = time.monotonic() + wait
    for future in futures:
        # Timed out, or the cluster is going: what is made by now is kept.
        with contextlib.suppress(Exception):
            future.exception(timeout=max(0.0, end - time.monotonic()))
    return futures


def _kept(client: Any, where: str, handles: list[Any], futures: list[Any]) -> dict[int, Gone]:
    """The values of ``futures``, into their handles as ``Kept``; those that could not be
    brought over, by the id of their future, as ``Gone``."""
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
    return {id(f): Gone(f.key, v.why) for f, v in zip(futures, values, strict=True)
            if isinstance(v, _Lost)}


def _gathered(client: Any, future: Any, absorb: Callable[[BaseException], None]) -> Any:
    try:
        return client.gather(future)
    except Exception as error:
        if not not_loadable(future, error):
            return _Lost(recompute_failed(error) if future.status == "error" else
                         f"it could not be brought over ({type(error).__name__}: {error})")
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
            except Exception as error:  # lost with its worker: nothing to keep
                values[i] = _Lost(f"it could not be brought over ({type(error).__name__}: "
                                  f"{error})")


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
                    f"its worker: reading {_it(lost)} raises WorkerDiedError; run.retry() runs "
                    f"{'it' if lost == 1 else 'them'} again")
    if said:
        log.warning("[labloom] %s: as its cluster closed, %s", where, "; ".join(said))


def _of(count: int) -> str:
    return f" of {count} task run" if count == 1 else f"s of {count} task runs"


def _it(count: int) -> str:
    return "it" if count == 1 else "one"
