"""A run's experiment rows as the server keeps them between pages (``GET runs/{id}/experiments``).

Why a per-run cache and not ORDER BY ... LIMIT in SQL: a row is several logging calls folded
together (params, metrics, a curve's last step), each call's values one JSON object whose NaN
and Infinity neither SQLite's JSON functions (before 3.42) nor PostgreSQL's jsonb accept, so
sorting by a metric in SQL would need the storage changed and a window function per sort that
repeats ``Experiment.add``'s rule in two dialects. And a view pages through one order many
times (scrolling 100,000 rows is up to a thousand pages): here the run's rows are read and
folded once, each order is sorted once, and every page after that is a slice (a few
milliseconds, whatever the offset).

Invalidation follows the store's cursor: values are only ever appended, so each page first
reads the values logged after the last one read (an index seek, nothing when the run has
ended) and folds them in; new values drop the kept orders and columns. The task-run columns
(state, duration) change as the run runs: a page's rows are read afresh from ``task_runs`` by
id (100 at most), and a sort on one of them reads them all, kept only once the run has ended.
At most ``MAX_ROWS`` rows are kept in all, the least recently paged runs dropped first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from ..core import experiments as ex
from ..store.experiments import PAGE, fill, read_logged
from ..store.reader import RunRecord, RunStore

MAX_ROWS = 300_000  # about 0.9 KB each (a run of 3 params and 3 metrics): some 270 MB at worst
_OPEN = ("Pending", "Running")


class RunRows:
    """One run's rows, orders and columns; every use holds ``lock``."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.lock = threading.Lock()
        self.cursor = 0
        self.rows: dict[str, ex.Experiment] = {}
        self.listed: list[ex.Experiment] = []
        self.orders: dict[tuple[str, bool], list[ex.Experiment]] = {}
        self.names: list[dict[str, str]] | None = None
        self.filled: tuple[str, float | None] | None = None  # the ended run all rows are of

    def catch_up(self, store: RunStore) -> None:
        """Fold in the values logged since the last look."""
        new = False
        while True:
            chunk, self.cursor = read_logged(store, self.run_id, self.cursor)
            if chunk:
                ex.collect(self.run_id, chunk, self.rows)
                new = True
            if len(chunk) < PAGE:
                break
        if new:
            self.listed = list(self.rows.values())
            self.orders.clear()
            self.names = None
            self.filled = None

    def page(self, store: RunStore, run: RunRecord, sort: str | None, desc: bool, limit: int,
             offset: int) -> tuple[list[ex.Experiment], list[dict[str, str]]]:
        """The rows of one page, their task-run columns read, and the run's columns."""
        ended = (run.state, run.ended) if run.state not in _OPEN else None
        by_task_run = sort in ex.FIXED
        if by_task_run and (ended is None or self.filled != ended):
            fill(store, self.run_id, self.rows)
            self.filled = ended
            self.orders = {key: rows for key, rows in self.orders.items()
                           if key[0] not in ex.FIXED}
        if sort:
            ordered = self.orders.get((sort, desc))
            if ordered is None:
                ordered = ex.order(self.listed, sort, desc)
                if not by_task_run or ended is not None:
                    self.orders[(sort, desc)] = ordered
        else:
            ordered = self.listed
        shown = ordered[offset : offset + limit]
        if ended is None or self.filled != ended:
            fill(store, self.run_id, {row.task_run_id: row for row in shown}, by_id=True)
        if self.names is None:
            self.names = ex.columns(self.listed)
        return shown, self.names


class ExperimentRows:
    """``RunRows`` by store and run, the least recently paged dropped past ``max_rows``."""

    def __init__(self, max_rows: int = MAX_ROWS) -> None:
        self._max_rows = max_rows
        self._runs: OrderedDict[tuple[str, str], RunRows] = OrderedDict()
        self._lock = threading.Lock()

    def page(self, store: RunStore, run: RunRecord, sort: str | None, desc: bool, limit: int,
             offset: int) -> dict[str, Any]:
        key = (store.database.url, run.id)
        with self._lock:
            entry = self._runs.get(key)
            if entry is None:
                entry = self._runs[key] = RunRows(run.id)
            self._runs.move_to_end(key)
        with entry.lock:
            entry.catch_up(store)
            shown, names = entry.page(store, run, sort, desc, limit, offset)
            total = len(entry.listed)
            answer = ex.jsonable({
                "columns": names, "total": total, "offset": offset, "limit": limit,
                "sort": sort, "desc": desc,
                "next": offset + len(shown) if offset + len(shown) < total else None,
                "rows": [row.as_dict() for row in shown],
            })
        self._trim()
        return answer  # type: ignore[no-any-return]

    def _trim(self) -> None:
        with self._lock:
            kept = sum(len(entry.rows) for entry in self._runs.values())
            while kept > self._max_rows and len(self._runs) > 1:
                _, dropped = self._runs.popitem(last=False)
                kept -= len(dropped.rows)


__all__ = ["ExperimentRows", "RunRows"]
