"""SQLite writes of many rows as few statements: ``INSERT ... VALUES (..), (..), ...``, and
``UPDATE ... FROM (VALUES (..), (..), ...)`` (SQLite 3.33 and later).

``executemany`` runs one statement per row, and Python's ``sqlite3`` lets go of the GIL around
each: the store writer then waited for the GIL again for every row, four or five per task run,
behind the run's task threads, and a busy run went at the writer's pace (issue 21 §2). A
statement of up to ``ROWS`` rows takes it back once for all of them (and SQLite runs one
statement instead of many). Statements are of a few sizes only (powers of two), so that the
connection's statement cache keeps each prepared.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from itertools import chain
from typing import Any

ROWS = 128  # rows per statement at most
VARIABLES = 999  # SQLite's least limit of parameters per statement (before 3.32)
UPDATE_FROM = sqlite3.sqlite_version_info >= (3, 33)


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
