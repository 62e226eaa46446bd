"""An ended run's experiment rows folded once and kept in the store (``experiment_rows`` and
``experiment_columns``, see ``schema.py``), so that any page of a big run, in any order and
filtered, is read in milliseconds by any server, fresh or not (``server_extension/
experiment_snapshot_pages.py``).

Why a snapshot of the ended run rather than a summary row per task run kept up by the writer:
a row is several logging calls folded (params, metrics, a curve's highest step), so keeping it
up while logging means a read-modify-write per task run per batch, or a row per value; both
cost the writer per logged metric, the figure issue 19's 1.10x target holds it to, and the
writer is being made cheaper, not dearer. Once the run has ended its rows no longer change:
folding them once (the whole read the server does anyway for a big run's complete pages, one
to six seconds at 100,000 rows) and keeping the result costs the logging nothing. Why not
only the server's cache of a run's rows (``experiment_rows.py``, still what pages a running
run): every server start, and every run dropped from its bound, pays that whole read again
before a deep page, a sort on state or duration, or a filter can answer. And why
columns of values rather than SQL's ORDER BY on them: the values keep NaN and Infinity, which
SQLite's JSON functions (before 3.42) and PostgreSQL's jsonb refuse, a sort puts numbers before
strings and missing last, and the filter's words match each cell's text as the view shows it;
Python sorts one column of 100,000 values in about 40 ms and keeps the order for every page.

Each column is one JSON array (Python's JSON: NaN, Infinity) of one value per row in the rows'
order (null where the row has none): ``task_run_id``, ``node``, ``task``, ``map_index``,
``state``, ``duration``, and ``param:NAME`` and ``metric:NAME`` for each logged name (and
``none:param:NAME``, the positions of the rows that logged None there, if any). Each row
is one JSON array ``[task_run_id, task, map_index, state, duration, params, metrics]`` read
for the page it is on. The column named ``""`` says what the snapshot is of: the run's state
and end (a reconciled or retried-in-place run is read again), the last logged row folded in
(values logged after it make the snapshot stale), the row count and the page's ``columns``.
"""

from __future__ import annotations

import base64
import json
import sys
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core import experiments as ex
from .storable import is_storable, storable

if TYPE_CHECKING:
    from .reader import RunRecord, RunStore

META = ""
FIXED = ("task_run_id", "node", "task", "map_index", "state", "duration")
_UNSORTED = ("task_run_id", "node")  # sorted on demand (a view never asks)


@dataclass(frozen=True)
class Meta:
    run_id: str
    rows: int
    cursor: int
    state: str
    ended: float | None
    columns: list[dict[str, str]]
    nones: list[str]  # the columns where some row logged None (see ``write``)

    def of(self, run: RunRecord) -> bool:
        """Whether this is a snapshot of ``run`` as it is recorded now."""
        return self.state == run.state and self.ended == run.ended


def column_name(kind: str, name: str) -> str:
    """The stored column of a param or metric (``kind`` "param" or "metric"). A name the
    store cannot hold as text (a lone surrogate, as a file name that is not UTF-8 gives; NUL,
    which PostgreSQL refuses) is kept escaped, after ``kind~``: never the column of a name
    written with the escape's characters, and the snapshot's write no longer fails on it."""
    if is_storable(name):
        return f"{kind}:{name}"
    return f"{kind}~{storable(name)}"


def none_name(kind: str, name: str) -> str:
    """The stored positions of the rows that logged None for a param or metric."""
    return "none:" + column_name(kind, name)


def last_logged(store: RunStore, run_id: str) -> int:
    """The id of the run's last ``experiment_values`` row (0 when none): the cursor a
    snapshot must have reached to be complete."""
    row = store.conn.execute(
        "SELECT max(id) FROM experiment_values WHERE run_id = ?", (run_id,)).fetchone()
    return int(row[0] or 0)


def read_meta(store: RunStore, run_id: str) -> Meta | None:
    """The run's snapshot, if one was written."""
    row = store.conn.execute(
        "SELECT data FROM experiment_columns WHERE run_id = ? AND name = ?", (run_id, META),
    ).fetchone()
    if row is None:
        return None
    meta = json.loads(row[0])
    return Meta(run_id, int(meta["rows"]), int(meta["cursor"]), meta["state"], meta["ended"],
                meta["columns"], meta["nones"])


def read_column(store: RunStore, meta: Meta, name: str, default: Any = None) -> list[Any]:
    """One column's values in the rows' order (None throughout for a name never logged;
    ``default`` for another missing column)."""
    row = store.conn.execute(
        "SELECT data FROM experiment_columns WHERE run_id = ? AND name = ?", (meta.run_id, name),
    ).fetchone()
    if row is None:
        return [None] * meta.rows if default is None else default
    values: list[Any] = json.loads(row[0])
    return values


def read_rows(store: RunStore, run_id: str, positions: Sequence[int]) -> list[ex.Experiment]:
    """The rows at ``positions`` (a page's), in that order."""
    if not positions:
        return []
    found = dict(store.conn.execute(
        f"SELECT pos, data FROM experiment_rows WHERE run_id = ? AND pos IN "
        f"({','.join('?' * len(positions))})", (run_id, *positions)))
    out = []
    for pos in positions:
        task_run_id, task, map_index, state, duration, params, metrics = json.loads(found[pos])
        out.append(ex.Experiment(run_id, task_run_id, task, map_index, state, duration, params,
                                 metrics))
    return out


def order_of(values: Sequence[Any], desc: bool) -> array[int]:
    """Positions in ``core/experiments.order``'s order of these values: numbers (bools as 0
    and 1) before strings ascending, after them descending, missing and NaN last, ties in
    position order either way."""
    numbers: list[int] = []
    strings: list[int] = []
    absent: list[int] = []
    for i, value in enumerate(values):
        if value is None or value != value:
            absent.append(i)
        elif isinstance(value, (bool, int, float)):
            numbers.append(i)
        else:
            strings.append(i)
    keys = [float(values[i]) for i in numbers]
    numbers = [numbers[j] for j in sorted(range(len(keys)), key=keys.__getitem__, reverse=desc)]
    texts = [str(values[i]) for i in strings]
    strings = [strings[j] for j in sorted(range(len(texts)), key=texts.__getitem__,
                                          reverse=desc)]
    return array("i", (strings + numbers if desc else numbers + strings) + absent)


def order_name(column: str, desc: bool) -> str:
    """The stored order of a column (``map_index``, ``param:x``...), one way."""
    return f"order:{'desc' if desc else 'asc'}:{column}"


def read_order(store: RunStore, meta: Meta, column: str, desc: bool) -> array[int] | None:
    """A column's order as written with the snapshot, or None (a column not sorted then)."""
    row = store.conn.execute(
        "SELECT data FROM experiment_columns WHERE run_id = ? AND name = ?",
        (meta.run_id, order_name(column, desc))).fetchone()
    if row is None:
        return None
    order = array("i", base64.b64decode(row[0]))
    if sys.byteorder == "big":
        order.byteswap()  # written little-endian
    return order


def _encoded(order: array[int]) -> str:
    if sys.byteorder == "big":
        order = array("i", order)
        order.byteswap()
    return base64.b64encode(order.tobytes()).decode("ascii")


def write(store: RunStore, run: RunRecord, rows: Sequence[ex.Experiment], cursor: int) -> Meta:
    """Keep the ended ``run``'s rows (every one, folded up to the logged row ``cursor``, in
    the order logged): one transaction, any earlier snapshot of the run replaced. The rows'
    task-run columns are read here (their final values)."""
    node_of: dict[str, str | None] = {}
    by_id = {row.task_run_id: row for row in rows}
    for task_run_id, node, name, map_index, state, started, ended in store.conn.execute(
        "SELECT id, node_id, task_name, map_index, state, started, ended FROM task_runs "
        "WHERE run_id = ?", (run.id,)
    ):
        row = by_id.get(task_run_id)
        if row is not None:
            node_of[task_run_id] = node
            row.task, row.map_index, row.state = name, map_index, state
            row.duration = ended - started if started is not None and ended is not None else None
    names = ex.columns(rows)
    nones: list[tuple[str, list[int]]] = []
    columns: list[tuple[str, list[Any]]] = [
        ("task_run_id", [row.task_run_id for row in rows]),
        ("node", [node_of.get(row.task_run_id) for row in rows]),
        ("task", [row.task for row in rows]),
        ("map_index", [row.map_index for row in rows]),
        ("state", [row.state for row in rows]),
        ("duration", [row.duration for row in rows]),
    ]
    for column in names:
        kind, name = column["kind"], column["name"]
        values = [(row.params if kind == "param" else row.metrics).get(name) for row in rows]
        columns.append((column_name(kind, name), values))
        # A None logged is not a value missing: a node's columns list a param only ever None.
        logged = [i for i, value in enumerate(values) if value is None and name in (
            rows[i].params if kind == "param" else rows[i].metrics)]
        if logged:
            nones.append((none_name(kind, name), logged))
    # Each sortable column's orders, sorted here once: a sorted page of a fresh server then
    # reads 4 bytes a row (base64) instead of parsing the values and sorting them.
    orders = [(order_name(name, desc), _encoded(order_of(values, desc)))
              for name, values in columns if name not in _UNSORTED for desc in (False, True)]
    # And the views' own order (by task, then map index): a big run's tab asks it first.
    orders += [(order_name(ex.INDEX_ORDER, desc), _encoded(array("i", ex.index_positions(
        columns[2][1], columns[3][1], desc)))) for desc in (False, True)]
    columns += nones
    meta = Meta(run.id, len(rows), cursor, run.state, run.ended, names,
                [name for name, _ in nones])
    dumps = json.dumps
    row_data = [(run.id, pos, dumps([row.task_run_id, row.task, row.map_index, row.state,
                                     row.duration, row.params, row.metrics]))
                for pos, row in enumerate(rows)]
    column_data = [(run.id, name, dumps(values)) for name, values in columns]
    column_data += [(run.id, name, text) for name, text in orders]
    column_data.append((run.id, META, dumps({
        "rows": meta.rows, "cursor": cursor, "state": run.state, "ended": run.ended,
        "columns": names, "nones": meta.nones, "written": time.time()})))
    conn = store.conn
    with conn.transaction():
        conn.lock(f"labloom-experiment-snapshot:{run.id}")
        conn.execute("DELETE FROM experiment_rows WHERE run_id = ?", (run.id,))
        conn.execute("DELETE FROM experiment_columns WHERE run_id = ?", (run.id,))
        conn.insert_rows("experiment_rows", ("run_id", "pos", "data"), row_data)
        conn.insert_rows("experiment_columns", ("run_id", "name", "data"), column_data)
    return meta


__all__ = ["FIXED", "META", "Meta", "column_name", "last_logged", "none_name", "order_name",
           "order_of", "read_column", "read_meta", "read_order", "read_rows", "write"]
