"""The columns of a live run's experiment rows (``experiments.columns``: each param and metric
once, its type, ``"steps"`` for a metric with curve points), kept up to date as rows change
rather than read from every row for each question the cell's Experiments view asks (80-160 ms
of the kernel's at 100,000 rows, each time a live run's view reloads).

Each row is known by its position (``live_order``: rows are listed in that order) and by its
signature: its params' and metrics' names and value types, in the order the row holds them,
and its curved metrics. Rows are counted by signature (most rows of a sweep share one), and
the signatures some row has give the columns and their types; the order of
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
        self._seen: dict[tuple[tuple[Any, ...], ...], Signature] = {}
        self._rows_with: Counter[Signature] = Counter()  # rows of each signature
        self._columns: set[Column] = set()
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
        crossed = False  # a signature no row had, or that no row has any more
        if old is not None:
            self._rows_with[old] -= 1
            crossed = not self._rows_with[old]
            del self._signatures[position]
        if new is not None:
            self._rows_with[new] += 1
            crossed |= self._rows_with[new] == 1
            self._signatures[position] = new
        if not crossed:
            return False
        columns = {(kind, name) for signature, n in self._rows_with.items() if n
                   for kind, name, _type in signature[0]}
        moved, self._columns = columns != self._columns, columns
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
            types: dict[Column, set[str]] = {column: set() for column in self._first}
            curved: set[str] = set()
            for signature, n in self._rows_with.items():
                if n:
                    for kind, name, type_ in signature[0]:
                        types[(kind, name)].add(type_)
                    curved.update(signature[1])
            names = []
            for kind, name in sorted(self._first, key=lambda column: column[0] != "param"):
                shown = types[(kind, name)] - {"none"}
                type_ = "none" if not shown else shown.pop() if len(shown) == 1 else "mixed"
                steps = {"steps": True} if kind == "metric" and name in curved else {}
                names.append({"kind": kind, "name": name, "type": type_, **steps})
            self._names = names
        return self._names

    def _find_first(self, positions: Iterable[int]) -> None:
        wanted = len(self._columns)
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
        # Looked up by names and Python types, read without a Python call per value (a type
        # says its column type: ``value_type``); made once for each.
        params, metrics = row.params, row.metrics
        seen = (tuple(params), tuple(map(type, params.values())), tuple(metrics),
                tuple(map(type, metrics.values())), tuple(row.curved_metrics))
        signature = self._seen.get(seen)
        if signature is None:
            values = tuple(("param", name, ex.value_type(value)) for name, value in params.items())
            values += tuple(("metric", name, ex.value_type(value))
                            for name, value in metrics.items())
            made = (values, seen[4])
            signature = self._seen[seen] = self._same.setdefault(made, made)
        return signature
