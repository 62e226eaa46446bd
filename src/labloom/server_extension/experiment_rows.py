"""A run's experiment rows as the server keeps them between pages (``GET runs/{id}/experiments``).

Why a per-run cache and not ORDER BY ... LIMIT in SQL: a row is several logging calls folded
together (params, metrics, a curve's last step), each call's values one JSON object whose NaN
and Infinity neither SQLite's JSON functions (before 3.42) nor PostgreSQL's jsonb accept, so
sorting by a metric in SQL would need the storage changed and a window function per sort that
repeats ``Experiment.add``'s rule in two dialects. And a view pages through one order many
times (scrolling 100,000 rows is up to a thousand pages): here the run's rows are read and
folded once, each order is sorted once, and every page after that is a slice (a few
milliseconds, whatever the offset).

The first look at a big run: reading and folding all its calls costs about a second of CPU
for 100,000 rows (200,000 calls), too long for the view's first page. So an unsorted first
page of a run not read yet is answered from its first calls only (an index range of the run,
read in growing chunks until the page is full, given up past ``FIRST_LOOK`` calls; in the order
logged: the same rows the whole read puts first) and says ``"partial": true``: ``total`` and ``columns`` are those of the calls read, and a row's
values may lack calls logged later; the whole read starts at once on the pool
(``StoreAccess.later``), and the next question gets the complete answer (the view asks again
on its next tick). A sorted first look waits for the whole read: its first rows can be
anywhere in the run.

Invalidation follows the store's cursor: values are only ever appended, so each page first
reads the values logged after the last one read (an index seek, nothing when the run has
ended) and folds them in; new values drop the kept orders and columns. The task-run columns
(state, duration) change as the run runs: a page's rows are read afresh from ``task_runs`` by
id (100 at most), and a sort on one of them reads them all, kept only once the run has ended.
``task`` (a node id or task name) keeps the rows of those task runs only; which those are is
read per page while the run runs, once after it ended. At most ``MAX_ROWS`` rows are kept in
all, the least recently paged runs dropped first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ..core import experiments as ex
from ..core.errors import LabloomError
from ..store.experiments import fill, read_logged, task_run_ids
from ..store.reader import RunRecord, RunStore

MAX_ROWS = 300_000  # about 0.9 KB each (a run of 3 params and 3 metrics): some 270 MB at worst
FIRST_LOOK = 20_000  # calls read at most for a partial first page: about 0.1 s of CPU
_OPEN = ("Pending", "Running")

Later = Callable[..., None]  # runs ``fn(store, *args)`` on the pool, not waited for


class UnknownTask(LabloomError):
    """``task`` names no node or task of the run."""


class RunRows:
    """One run's rows, orders and columns; every use holds ``lock``."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.lock = threading.Lock()
        self.cursor = 0
        self.warming = False  # a partial first page was given, the whole read is under way
        self.rows: dict[str, ex.Experiment] = {}
        self.listed: list[ex.Experiment] = []
        self.orders: dict[tuple[str | None, str, bool], list[ex.Experiment]] = {}
        self.subsets: dict[str, list[ex.Experiment]] = {}  # by task, once the run ended
        self.subset_names: dict[str, list[dict[str, str]]] = {}
        self.names: list[dict[str, str]] | None = None
        self.filled: tuple[str, float | None] | None = None  # the ended run all rows are of

    def catch_up(self, store: RunStore) -> None:
        """Fold in the values logged since the last look."""
        new, more = False, True
        while more:
            chunk, self.cursor, more = read_logged(store, self.run_id, self.cursor)
            if chunk:
                ex.collect(self.run_id, chunk, self.rows)
                new = True
        if new:
            self.listed = list(self.rows.values())
            self.orders.clear()
            self.subsets.clear()
            self.subset_names.clear()
            self.names = None
            self.filled = None

    def warm(self, store: RunStore) -> None:
        """The whole read after a partial first page (on the pool, the next page waits)."""
        try:
            with self.lock:
                self.catch_up(store)
                if self.names is None:
                    self.names = ex.columns(self.listed)
        finally:
            self.warming = False

    def chosen(self, store: RunStore, task: str | None,
               ended: tuple[str, float | None] | None) -> list[ex.Experiment]:
        """The rows of ``task``'s task runs (every row without it)."""
        if task is None:
            return self.listed
        kept = self.subsets.get(task)
        if kept is not None:
            return kept
        ids = task_run_ids(store, self.run_id, task)
        if ids is None:
            raise UnknownTask(f"[labloom] run {self.run_id} has no node or task {task!r}; "
                              f"GET runs/{self.run_id} lists its nodes")
        rows = [row for row in self.listed if row.task_run_id in ids]
        if ended is not None:
            self.subsets[task] = rows
        return rows

    def page(self, store: RunStore, run: RunRecord, sort: str | None, desc: bool, limit: int,
             offset: int, task: str | None = None,
             ) -> tuple[list[ex.Experiment], list[dict[str, str]], int]:
        """The rows of one page, their task-run columns read, the columns and the total."""
        ended = (run.state, run.ended) if run.state not in _OPEN else None
        by_task_run = sort in ex.FIXED
        if by_task_run and (ended is None or self.filled != ended):
            fill(store, self.run_id, self.rows)
            self.filled = ended
            self.orders = {key: rows for key, rows in self.orders.items()
                           if key[1] not in ex.FIXED}
        chosen = self.chosen(store, task, ended)
        if sort:
            ordered = self.orders.get((task, sort, desc))
            if ordered is None:
                ordered = ex.order(chosen, sort, desc)
                if (not by_task_run or ended is not None) and (task is None or ended is not None):
                    self.orders[(task, sort, desc)] = ordered
        else:
            ordered = chosen
        shown = ordered[offset : offset + limit]
        if ended is None or self.filled != ended:
            fill(store, self.run_id, {row.task_run_id: row for row in shown}, by_id=True)
        if task is not None:
            names = self.subset_names.get(task)
            if names is None:
                names = ex.columns(chosen)
                if ended is not None:
                    self.subset_names[task] = names
            return shown, names, len(chosen)
        if self.names is None:
            self.names = ex.columns(self.listed)
        return shown, self.names, len(chosen)


def first_look(store: RunStore, run_id: str, limit: int, offset: int) -> dict[str, Any] | None:
    """An unsorted page from the run's first calls only, marked partial; None when the run is
    small (the whole read costs no more) or its first ``FIRST_LOOK`` calls hold too few rows."""
    rows: dict[str, ex.Experiment] = {}
    cursor = read = 0
    size = 4  # rows per read, growing: a row holds one call or a batch of them
    while len(rows) < offset + limit:
        if read >= FIRST_LOOK:
            return None
        chunk, cursor, more = read_logged(store, run_id, cursor, size)
        if not more:
            return None  # the run's calls end here: the whole read is hardly longer
        ex.collect(run_id, chunk, rows)
        read += len(chunk)
        size *= 4
    listed = list(rows.values())
    shown = listed[offset : offset + limit]
    fill(store, run_id, {row.task_run_id: row for row in shown}, by_id=True)
    answer = ex.answer_of(shown, ex.columns(listed), len(listed), None, False, limit, offset)
    answer["partial"] = True
    return answer


class ExperimentRows:
    """``RunRows`` by store and run, the least recently paged dropped past ``max_rows``."""

    def __init__(self, max_rows: int = MAX_ROWS) -> None:
        self._max_rows = max_rows
        self._runs: OrderedDict[tuple[str, str], RunRows] = OrderedDict()
        self._lock = threading.Lock()

    def page(self, store: RunStore, run: RunRecord, sort: str | None, desc: bool, limit: int,
             offset: int, task: str | None = None, later: Later | None = None,
             ) -> dict[str, Any]:
        """One page; ``later``: the pool to read the whole run on after a partial first page
        (without it, a first look reads the whole run before answering)."""
        key = (store.database.url, run.id)
        with self._lock:
            entry = self._runs.get(key)
            if entry is None:
                entry = self._runs[key] = RunRows(run.id)
            self._runs.move_to_end(key)
            cold = (later is not None and not sort and task is None and entry.cursor == 0
                    and not entry.warming and not entry.lock.locked())
            if cold:
                entry.warming = True
        if cold:
            try:
                partial = first_look(store, run.id, limit, offset)
            except BaseException:
                entry.warming = False
                raise
            if partial is not None:
                assert later is not None
                later(entry.warm)
                return partial
            entry.warming = False
        with entry.lock:
            entry.catch_up(store)
            shown, names, total = entry.page(store, run, sort, desc, limit, offset, task)
            answer = ex.answer_of(shown, names, total, sort, desc, limit, offset)
        self._trim()
        return answer

    def _trim(self) -> None:
        with self._lock:
            kept = sum(len(entry.rows) for entry in self._runs.values())
            while kept > self._max_rows and len(self._runs) > 1:
                _, dropped = self._runs.popitem(last=False)
                kept -= len(dropped.rows)


__all__ = ["FIRST_LOOK", "ExperimentRows", "RunRows", "UnknownTask", "first_look"]
