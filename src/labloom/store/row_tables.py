"""A statement's rows of one write (``rows.Rows``), each with the run it belongs to."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def insert(table: str, columns: Sequence[str], conflict: str = "") -> str:
    marks = ",".join("?" * len(columns))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) {conflict}".rstrip()


class Table:
    """The rows of one statement, each with the run it belongs to; ``done`` counts the rows
    already settled (written or dropped) when they go one by one."""

    def __init__(self, what: str, sql: str,
                 params: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None = None) -> None:
        self.what = what  # for people: "log lines", "error messages", ...
        self.sql = sql
        self.params = params  # a row as ``sql``'s parameters, when the row is not already
        self.rows: list[tuple[Any, ...]] = []
        self.runs: list[str] = []
        self.done = 0

    def add(self, run_id: str, row: tuple[Any, ...]) -> None:
        self.rows.append(row)
        self.runs.append(run_id)

    def __bool__(self) -> bool:
        return bool(self.rows)
