"""The columns of a live run's experiment rows (``experiments.columns``: each param and metric
once, its type, ``"steps"`` for a metric with curve points), kept up to date as rows change
rather than read from every row for each question the cell's Experiments view asks (80-160 ms
of the kernel's at 100,000 rows, each time a live run's view reloads).

Each row is known by its position (``live_order``: rows are listed in that order) and by its
signature: its params' and metrics' names and value types, in the order the row holds them,
and its curved metrics. Counts of each signature part give the columns' types; the order of
the columns is the order ``experiments.columns`` finds them in, row after row: it only moves
when a column comes or goes, or a row before the last first sighting changes (``_horizon``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from ..core import experiments as ex

Column = tuple[str, str]  # (kind, name)
Signature = tuple[tuple[tuple[str, str, str], ...], tuple[str, ...]]


class LiveColumns:
    def __init__(self) -> None:
        self._signatures: dict[int, Signature] = {}  # by row position
        self._same: dict[Signature, Signature] = {}  # one copy of each: most rows share one
        self._types: dict[Column, Counter[str]] = {}
        self._rows_with: Counter[Column] = Counter()
        self._curved: Counter[str] = Counter()
        self._first: list[Column] | None = None  # the columns in the order rows show them
        self._horizon = -1  # the position of the row where the last column was first seen
        self._names: list[dict[str, Any]] | None = None

    def __len__(self) -> int:
        """The rows there are."""
        return len(self._signatures)

    def put(self, position: int, row: ex.Experiment | None) -> bool:
        """The row at ``position`` is now ``row`` (None: none); True when a column came or
        went (a filter naming columns reads differently then)."""
        new = None if row is None else self._signature(row)
        old = self._signatures.get(position)
        if new is old:
            return False
        self._names = None
        if position <= self._horizon:
            self._first = None
        moved = False
        if old is not None:
            moved |= self._count(old, -1)
            del self._signatures[position]
        if new is not None:
            moved |= self._count(new, 1)
            self._signatures[position] = new
        if moved:
            self._first = None
        return moved

    def names(self, positions: Iterable[int]) -> list[dict[str, Any]]:
        """The columns, as ``experiments.columns`` lists them; ``positions``: the rows', in
        order (read only when the columns' order must be found again)."""
        if self._names is None:
            if self._first is None:
                self._find_first(positions)
            assert self._first is not None
            names = []
            for kind, name in sorted(self._first, key=lambda column: column[0] != "param"):
                types = [t for t, n in self._types[(kind, name)].items() if n and t != "none"]
                shown = "none" if not types else types[0] if len(types) == 1 else "mixed"
                curved = kind == "metric" and self._curved[name] > 0
                names.append({"kind": kind, "name": name, "type": shown,
                              **({"steps": True} if curved else {})})
            self._names = names
        return self._names

    def _find_first(self, positions: Iterable[int]) -> None:
        wanted = sum(1 for n in self._rows_with.values() if n)
        first: dict[Column, None] = {}
        horizon = -1
        for position in positions:
            if len(first) == wanted:
                break
            for kind, name, _type in self._signatures[position][0]:
                if (kind, name) not in first:
                    first[(kind, name)] = None
                    horizon = position
        self._first, self._horizon = list(first), horizon

    def _signature(self, row: ex.Experiment) -> Signature:
        values = tuple(("param", name, ex.value_type(value)) for name, value in row.params.items())
        values += tuple(("metric", name, ex.value_type(value))
                        for name, value in row.metrics.items())
        signature = (values, tuple(row.curved_metrics))
        return self._same.setdefault(signature, signature)

    def _count(self, signature: Signature, step: int) -> bool:
        moved = False
        for kind, name, type_ in signature[0]:
            column = (kind, name)
            self._types.setdefault(column, Counter())[type_] += step
            self._rows_with[column] += step
            moved |= self._rows_with[column] == (1 if step > 0 else 0)
        for name in signature[1]:
            self._curved[name] += step
        return moved
