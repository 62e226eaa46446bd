"""The parameters of listed runs (``RunStore.list_runs``): read only while their JSON is small.

An older labloom stored a big parameter whole (a list of ten million ids: 88 MB of JSON).
Parsed for each listed run, it cost the list more than a second a read, and ``to_json``
copying it seconds more, for views that show it as a summary (``kept_parameters``). So a list
takes the size of each run's parameters first, without reading them: PostgreSQL's
``octet_length`` of a stored (TOASTed) value, SQLite's blob handle (``blobopen``) on the row.
A run's parameters over ``LABLOOM_PARAMETER_BYTES`` in all are listed as ``listed_summary``;
``labloom show RUN`` and the run tab show each of them.
"""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING, Any

from ..core.kept_parameters import listed_summary, parameter_bytes_or_default
from .multirow import rows_in

if TYPE_CHECKING:
    from .db import Conn
    from .reader import RunRecord


def listed_columns(columns: str, kind: str, parameters: bool) -> str:
    """``columns`` of ``flow_runs`` with, in the place of ``parameters``, what tells their
    size (``add_parameters``), or NULL when the list shows none."""
    if not parameters:
        return columns.replace("parameters,", "NULL,", 1)
    return columns.replace("parameters,", "octet_length(parameters),"
                           if kind == "postgresql" else "rowid,", 1)


def add_parameters(conn: Conn, runs: list[RunRecord], keys: list[Any]) -> None:
    """Each run's parameters, read while their JSON is at most the limit, else the summary.
    ``keys``: what ``listed_columns`` put in their place, run by run."""
    limit = parameter_bytes_or_default()
    sizes = keys if conn.kind == "postgresql" else [_sqlite_size(conn, k) for k in keys]
    small: dict[str, RunRecord] = {}
    for run, size in zip(runs, sizes, strict=True):
        if size is not None and size > limit:
            run.parameters = listed_summary(limit)
        elif size:
            small[run.id] = run
    for run_id, text in rows_in(
            conn, "SELECT id, parameters FROM flow_runs WHERE id IN ({marks})", list(small)):
        small[run_id].parameters = json.loads(text) if text else {}


def _sqlite_size(conn: Conn, rowid: int) -> int | None:
    """The bytes of a run's parameters in SQLite, from the row's header (``length()`` of text
    reads the whole value: 0.3 s for 88 MB); None when there are none."""
    opener = getattr(conn.raw, "blobopen", None)  # Python 3.11
    try:
        if opener is not None:
            with opener("flow_runs", "parameters", rowid, readonly=True) as blob:
                return len(blob)
    except sqlite3.OperationalError:  # NULL (no parameters), or the run deleted meanwhile
        return None
    # Python 3.10 (no ``blobopen``): ``length()`` reads the text (SQLite before 3.43 has no
    # ``octet_length``, and ``length(CAST(... AS BLOB))`` reads it too) and counts characters,
    # not bytes: text that is not ASCII may be listed whole a little past the limit. Said in
    # README's parameters section; 0.1 s per 88 MB, once per listed run.
    row = conn.execute("SELECT length(parameters) FROM flow_runs WHERE rowid = ?",
                       (rowid,)).fetchone()
    return None if row is None else row[0]
