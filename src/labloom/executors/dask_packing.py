"""A chunk's calls packed for the trip to its worker (``Packed``).

Sent as a list of ``TaskCall`` objects, a chunk of 1,000 map children cost the submitting
thread a pickler hook and an object state per child, twice for a function defined in
``__main__`` (distributed pickles, finds ``__main__``, then cloudpickles). Packed, what the
children share (the function, the run, the options) travels once and what differs (names,
ids, attempts, result paths) as lists of strings and numbers, which pickle in C. The worker
makes the ``TaskCall`` objects again: each child still runs as a call of its own.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..core.attempt import TaskCall
from .dask_shipping import Shipped

_FIELDS = tuple(field.name for field in dataclasses.fields(TaskCall))
_VALUES = (int, float, str)  # equal ones may be distinct objects (a size > 256, a path)


class Packed:
    """``count`` calls: the fields they share, and a column per field that differs."""

    __slots__ = ("columns", "count", "shared")

    def __init__(self, shared: dict[str, Any], columns: dict[str, list[Any]], count: int) -> None:
        self.shared = shared
        self.columns = columns
        self.count = count

    def __reduce__(self) -> tuple[Any, ...]:
        return Packed, (self.shared, self.columns, self.count)

    def __len__(self) -> int:
        return self.count

    def calls(self) -> list[TaskCall]:
        """The calls again (on the worker)."""
        shared, columns = self.shared, list(self.columns.items())
        made: list[TaskCall] = []
        for i in range(self.count):
            fields = dict(shared)
            for name, column in columns:
                fields[name] = column[i]
            made.append(TaskCall(**fields))
        return made


def pack(calls: list[TaskCall]) -> Packed:
    shared: dict[str, Any] = {}
    columns: dict[str, list[Any]] = {}
    for name in _FIELDS:
        values = [getattr(call, name) for call in calls]
        first = values[0]
        if all(value is first for value in values) or (
                type(first) in _VALUES and all(value == first for value in values)):
            shared[name] = first
        else:
            columns[name] = values
    # The function travels apart, unpickled by the chunk on its worker (``dask_shipping``).
    if "fn" in shared:
        shared["fn"] = Shipped(shared["fn"])
    else:
        columns["fn"] = [Shipped(fn) for fn in columns["fn"]]
    return Packed(shared, columns, len(calls))
