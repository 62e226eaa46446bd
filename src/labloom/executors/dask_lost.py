"""Values lost with their Dask worker after their task runs completed, as the executor sees
them for ``core/lost_inputs``: how many its clients were told of (``LostValues.count``, from
Dask's own "lost-data" messages: ``dask_internals.on_lost_data``), a bounded wait while Dask
makes them again, and why one is gone for good (Dask's new run of it failed)."""

from __future__ import annotations

import weakref
from typing import Any

from .dask_internals import held_error, on_lost_data
from .dask_keeping import RECOMPUTE_WAIT, await_remade, recompute_wait


class LostValues:
    """Owned by the ``DaskExecutor``."""

    def __init__(self) -> None:
        self.count = 0  # values its clients were told lost
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

    def _one(self) -> None:  # on the client's event loop: counted, nothing more
        self.count += 1

    def await_remade(self, handles: list[Any]) -> None:
        # A chunk child's value: its chunk's, and its own item's if a task took it.
        futures = [future for handle in handles for future in (handle.future, handle.item)
                   if getattr(future, "status", None) == "lost"]
        if futures:
            await_remade(futures, self.wait)


def remade_failed(handle: Any) -> BaseException | None:
    """``Executor.remade_failed``: a chunk child's value is its chunk's, or its own item's
    (``child_value`` raised)."""
    for future in (handle.future, handle.item):
        if getattr(future, "status", None) == "error":
            return held_error(future) or RuntimeError(f"Dask's run of {future.key} failed")
    return None
