"""A new SQLite store's schema in fewer statements: each column that a later migration adds
(``ALTER TABLE t ADD COLUMN ...``) written into the ``CREATE TABLE t`` that made the table.

SQLite reads its whole schema again after each ALTER TABLE: the twelve of them were about two
of the 3 ms of CPU a new store's schema took, paid inside a new ``LABLOOM_HOME``'s first run
(issue 21 §2). The columns land in the same order as the migrations give them (before the
table's constraints, as an ALTER appends them after its last column);
``tests/test_store_schema.py`` checks that the result equals the store migrated step by
step, column by column and index by index.
"""

from __future__ import annotations

import re

_CREATE = re.compile(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+)\s*\(")
_ADD_COLUMN = re.compile(r"ALTER TABLE (\w+) ADD COLUMN (.+)", re.S)
_CONSTRAINT = re.compile(r"\s*(PRIMARY\s+KEY|UNIQUE|CHECK|FOREIGN\s+KEY|CONSTRAINT)\b", re.I)


def fold_added_columns(statements: list[str]) -> list[str]:
    """``statements`` (SQLite's, in order, for an empty store) with every ADD COLUMN of a table
    they create folded into its CREATE TABLE; the rest kept in order."""
    out: list[str] = []
    created: dict[str, int] = {}  # table -> its CREATE's place in ``out``
    for statement in statements:
        added = _ADD_COLUMN.fullmatch(statement)
        if added and added.group(1) in created:
            at = created[added.group(1)]
            out[at] = _with_column(out[at], added.group(2).strip())
            continue
        create = _CREATE.match(statement)
        if create:
            created[create.group(1)] = len(out)
        out.append(statement)
    return out


def _with_column(create: str, column: str) -> str:
    start, end = create.index("("), create.rindex(")")
    parts = [part.rstrip() for part in _top_level(create[start + 1:end])]
    at = next((i for i, part in enumerate(parts) if _CONSTRAINT.match(part)), len(parts))
    parts.insert(at, f"\n    {column}")
    return create[:start + 1] + ",".join(parts) + create[end:]


def _top_level(body: str) -> list[str]:
    """``body`` split at its commas outside parentheses and quotes."""
    parts: list[str] = []
    depth, quote, last = 0, "", 0
    for i, char in enumerate(body):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(body[last:i])
            last = i + 1
    parts.append(body[last:])
    return parts
