"""Text the store can hold: the one place where what a database refuses is escaped.

Both backends refuse a lone surrogate (``"surrogates not allowed"``): Python makes one whenever
it decodes bytes that are not UTF-8 with ``surrogateescape``, as ``os.listdir`` does for a file
named ``caf\\xe9.csv`` on a UTF-8 system, so a task that prints or raises with such a name
would otherwise lose its run's record. PostgreSQL also refuses NUL in text. Such characters are
written backslash-escaped (``\\udce9``, ``\\x00``); the writer adds a note to the run's log
saying so, since an escaped text no longer reads back exactly as it was.

>>> storable("caf\\udce9.csv")
'caf\\\\udce9.csv'
"""

from __future__ import annotations

import datetime
import decimal
import enum
import json
import os
import uuid
from collections.abc import Sized
from typing import Any

from ..core.kept_parameters import type_name

NOTE = (
    "[labloom] some text of this run held characters the store cannot hold (a lone surrogate, "
    "as Python makes from a file name that is not UTF-8, or NUL): {where} stored with them "
    "backslash-escaped (\\udcXX, \\x00)"
)


def is_storable(text: str) -> bool:
    if text.isascii():  # O(1) in CPython: the common case costs one NUL scan
        return "\x00" not in text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def storable(text: str) -> str:
    """``text`` with lone surrogates and NUL backslash-escaped (unchanged when it has none)."""
    if is_storable(text):
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def storable_value(value: Any) -> Any:
    """``value`` (JSON-like) with every string in it, keys too, made storable."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return {storable_value(k): storable_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [storable_value(v) for v in value]
    return value


# Values JSON cannot hold whose text is a setting, not data: kept as text (a nightly run's
# date, the file it read), so its history says what it ran with.
_SCALARS = (datetime.date, datetime.time, datetime.timedelta, decimal.Decimal, uuid.UUID,
            enum.Enum, os.PathLike)


def described(obj: Any) -> dict[str, Any]:
    """A value JSON cannot hold, as the store keeps it: ``{"__type__": ...}`` with its text for
    a scalar (``_SCALARS``), else with its shape or length only. Never its repr: a DataFrame or
    an array given as a flow parameter is task data (a table of patients), which the store
    never keeps; its repr showed the first rows. (Rows written before held ``{"__repr__":
    ...}``: read as opaque alike.)"""
    kind = type_name(obj)
    if isinstance(obj, _SCALARS):
        text = os.fspath(obj) if isinstance(obj, os.PathLike) else str(obj)
        return {"__type__": kind, "__text__": str(text)[:1000]}
    shape = getattr(obj, "shape", None)
    if isinstance(shape, tuple) and all(type(n) is int for n in shape):
        return {"__type__": kind, "__shape__": list(shape)}
    if isinstance(obj, Sized):
        try:
            return {"__type__": kind, "__len__": len(obj)}
        except Exception:  # a broken __len__: the type alone
            pass
    return {"__type__": kind}


def is_described(value: Any) -> bool:
    """A stored value that stands for one JSON could not hold (not the value itself)."""
    return isinstance(value, dict) and ("__type__" in value or "__repr__" in value)


def to_json(value: Any, exact: bool = False) -> str:
    """JSON for the store; values JSON cannot hold become ``described``'s dict, strings that
    the store cannot hold are escaped (JSON's own ``\\udce9`` would read back as the same
    unstorable string). ``exact``: they are written as JSON's own escapes, which the store
    holds as ASCII, so the value reads back exactly as it was: a run's parameters, which a
    retry replays (``kept_parameters.shown_parameters`` shows such a string escaped)."""
    def fallback(obj: Any) -> Any:
        if isinstance(obj, (set, frozenset, tuple)):
            return list(obj)
        return described(obj)

    text = json.dumps(value, default=fallback, ensure_ascii=False)
    if is_storable(text):  # (JSON escapes NUL itself: \u0000)
        return text
    if exact:
        return json.dumps(value, default=fallback)
    return json.dumps(storable_value(json.loads(text)), ensure_ascii=False)


def storable_row(row: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """``row`` with its strings made storable, or None when nothing needed it."""
    if all(not isinstance(v, str) or is_storable(v) for v in row):
        return None
    return tuple(storable(v) if isinstance(v, str) else v for v in row)
