"""SQLite writes of many rows as few statements: ``INSERT ... VALUES (..), (..), ...``, and
``UPDATE ... FROM (VALUES (..), (..), ...)`` (SQLite 3.33 and later).

``executemany`` runs one statement per row, and Python's ``sqlite3`` lets go of the GIL around
each: the store writer then waited for the GIL again for every row, four or five per task run,
behind the run's task threads, and a busy run went at the writer's pace (issue 21 §2). A
statement of up to ``ROWS`` rows takes it back once for all of them (and SQLite runs one
statement instead of many). Statements are of a few sizes only (powers of two), so that the
connection's statement cache keeps each prepared.

``ROWS`` is 64, not 128: SQLite prepares a statement in time that grows with its rows (a
first use of 111 rows of ``task_states`` or of the update: 0.18 / 0.34 ms more than its
later uses, 1.6 / 3.1 µs a row; run once for each kind and size by a connection), while a row
written costs about the same in a statement of 64 (1.11 against 1.04 µs). A fresh process's
first run of 1,000 task runs spent a little less in its statements (8.5 -> 8.2 ms of CPU,
medians of 8 processes), and runs of 50,000 and 1,000,000 were no dearer (issue 21 §2).
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterator, Sequence
from itertools import chain
from typing import Any

ROWS = 64  # rows per statement at most
VARIABLES = 999  # SQLite's least limit of parameters per statement (before 3.32)
UPDATE_FROM = sqlite3.sqlite_version_info >= (3, 33)
IN_CHUNK = 500  # values of a read's ``IN (...)`` per statement: under VARIABLES, with room


def rows_in(conn: Any, sql: str, values: Sequence[Any], size: int = IN_CHUNK,
            before: Sequence[Any] = ()) -> Iterator[Any]:
    """The rows of ``sql`` whose ``IN ({marks})`` is given ``values``, ``size`` of them a
    statement (SQLite's limit of parameters), one statement after the other; ``before``: the
    statement's parameters that come before the ``IN``'s."""
    for statement, chunk in in_chunks(sql, values, size):
        yield from conn.execute(statement, [*before, *chunk])


def in_chunks(
    sql: str, values: Sequence[Any], size: int = IN_CHUNK
) -> Iterator[tuple[str, list[Any]]]:
    """``sql`` with its ``IN ({marks})`` made for each ``size`` of ``values`` in turn, and
    those values: for a statement that returns no rows (a ``DELETE``)."""
    for start in range(0, len(values), size):
        chunk = list(values[start:start + size])
        yield sql.replace("{marks}", ",".join("?" * len(chunk))), chunk


@functools.lru_cache(maxsize=256)
def _statement(head: str, columns: int, rows: int, tail: str) -> str:
    row = "(" + ",".join("?" * columns) + ")"
    return f"{head} VALUES {','.join([row] * rows)} {tail}".rstrip()


def many_rows(raw: Any, head: str, columns: int, rows: Sequence[Sequence[Any]],
              tail: str = "") -> None:
    """``head VALUES (..), (..) tail`` for all ``rows``: ``head`` is ``INSERT INTO t (a, b)``
    and ``tail`` an ``ON CONFLICT`` clause or empty; or ``head`` is ``UPDATE t SET a =
    v.column1 ... FROM (`` and ``tail`` ``) AS v WHERE t.id = v.column3``."""
    most = min(ROWS, VARIABLES // columns)
    start = 0
    while start < len(rows):
        size = most
        while size > len(rows) - start:
            size //= 2
        chunk = rows[start:start + size]
        raw.execute(_statement(head, columns, size, tail), list(chain.from_iterable(chunk)))
        start += size
