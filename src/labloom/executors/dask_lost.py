"""Values lost with their Dask worker after their task runs completed, as the executor sees
them for ``core/lost_inputs``: how many its clients were told of (``LostValues.count``, from
Dask's own "lost-data" messages: ``dask_internals.on_lost_data``), a bounded wait while Dask
makes them again, and why one is gone for good (Dask's new run of it failed)."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable
from typing import Any

from .dask_internals import held_error, on_lost_data
from .dask_keeping import RECOMPUTE_WAIT, await_remade, recompute_wait
from .dask_loading import Kept
from .dask_stopping import stopping


class LostValues:
    """Owned by the ``DaskExecutor``."""

    def __init__(self) -> None:
        self.count = 0  # values its clients were told lost
        self.keys: set[Any] = set()  # their keys, until their run's end looked at them
        # Keys a run's end waited for in vain: its cluster per run's close waits not again.
        self.waited_out: frozenset[Any] = frozenset()
        self._client: weakref.ref[Any] | None = None  # the client they are counted on
        self.wait = RECOMPUTE_WAIT

    def read_wait(self) -> None:
        """The setting, as a run starts: a bad one raises before anything runs."""
        self.wait = recompute_wait()

    def count_on(self, client: Any) -> None:
        """Count the values ``client`` is told lost (once per client)."""
        if self._client is None or self._client() is not client:
            self._client = weakref.ref(client)
            on_lost_data(client, self._one)

    def _one(self, key: Any) -> None:  # on the client's event loop: noted, nothing more
        self.keys.add(key)
        self.count += 1

    def settle(self, handles: list[Any], item_of: Callable[[Any], Any]) -> list[Any]:
        """``Executor.settle_lost``: those of ``handles`` whose value (a chunk child's: its
        chunk's) was lost, once Dask made it again or failed to. A chunk child's is then read
        on the cluster (``item_of``, its item): Dask's new run of the chunk may have failed for
        it alone (the chunk finished), which only its item says (``remade_failed``)."""
        keys = set(self.keys)  # (one step under the GIL: the loop's thread adds meanwhile)
        lost = [h for h in handles if getattr(h.future, "key", None) in keys or h.lost]
        wait = 0.0 if stopping() else self.wait  # stopping: nothing is made again
        remade = await_remade([f for h in lost for f in (h.future, h.item)
                               if getattr(f, "status", None) == "lost"], wait)
        self.waited_out = frozenset(f.key for f in remade if f.status == "lost")
        for handle in lost:
            if handle.index is not None and handle.future.status == "finished" and \
                    not isinstance(handle.future, Kept):
                with contextlib.suppress(Exception):  # its client closed: no item, no word
                    item_of(handle)
        await_remade([h.item for h in lost if getattr(h.item, "status", None) == "pending"],
                     wait)
        self.keys -= {getattr(h.future, "key", None) for h in lost}  # other runs' stay
        return lost


def remade_failed(handle: Any) -> BaseException | None:
    """``Executor.remade_failed``: a chunk child's value is its chunk's, or its own item's
    (``child_value`` raised)."""
    for future in (handle.future, handle.item):
        if getattr(future, "status", None) == "error":
            return held_error(future) or RuntimeError(f"Dask's run of {future.key} failed")
    return None
