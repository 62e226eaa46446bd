"""A run's parameters as ``labloom show RUN`` and the run tab show them, from their stored
JSON text, without parsing a value too big to show.

An older labloom kept a big parameter whole (a list of ten million ids: 88 MB of JSON).
``json.loads`` of it took a second or more each time a view opened the run, to show it as a
summary (type and length, ``kept_parameters.summary``). So the text is walked at its top
level: a value whose text is within the limit is parsed and shown as ``shown_parameters``
shows it; one over the limit (its text is never shorter than the JSON ``kept`` measures) is
summed up with C-level string scans, never parsed: its length is the count of commas at its
own depth, strings skipped whole with the JSON decoder's scanner. A value with too
many strings or nested values to walk quickly is parsed after all (what it cost before).
A retry and ``run.parameters`` in Python parse the whole text: they need every value.

>>> shown_stored('{"xs": [1, 2, 3], "lr": 0.1}', 5)["xs"]["__len__"]
3
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from json.scanner import make_scanner
from typing import Any, cast

from ..core.kept_parameters import OVER, readable, shown_parameters

_MARKS = '"[]{}'
_STEPS = 10_000  # marks walked in Python in a value before it is parsed instead
# (C) the value at a position of the text, and where it ends: a string (from its quote), a
# number, true, false or null
_SCAN = make_scanner(cast(Any, json.JSONDecoder()))  # (typeshed names its argument oddly)
_TYPES = {"[": "builtins.list", "{": "builtins.dict", '"': "builtins.str"}


class _Busy(Exception):
    """The value holds too many strings or nested values to walk quickly: parse it."""


def shown_stored(text: str, limit: int) -> dict[str, Any]:
    """``shown_parameters(json.loads(text))``, without parsing a value whose text is over
    ``limit``: such a value is shown as its summary (type, length), as there."""
    if len(text) <= limit:
        return shown_parameters(json.loads(text))
    try:
        members = list(_members(text))
    except (ValueError, _Busy):  # parsed, so it is shown (or said wrong) as before
        return shown_parameters(json.loads(text))
    shown: dict[str, Any] = {}
    for name, start, end, length in members:
        if end - start <= limit or length is None:  # (a number of over ``limit`` digits)
            shown.update(shown_parameters({name: json.loads(text[start:end])}))
        else:
            shown[readable(name)] = {"__type__": _TYPES[text[start]], "__len__": length,
                                     OVER: limit}
    return shown


def _members(text: str) -> Iterator[tuple[str, int, int, int | None]]:
    """(name, start, end, length) of each value of the top-level object ``text``."""
    pos = _skip(text, 0)
    if text[pos:pos + 1] != "{":
        raise ValueError("not an object")
    pos = _skip(text, pos + 1)
    if text[pos:pos + 1] == "}":
        return
    while True:
        if text[pos:pos + 1] != '"':
            raise ValueError("a name expected")
        name, pos = _scanned(text, pos)
        pos = _skip(text, pos)
        if text[pos:pos + 1] != ":":
            raise ValueError("':' expected")
        start = _skip(text, pos + 1)
        end, length = _value(text, start)
        yield name, start, end, length
        pos = _skip(text, end)
        if text[pos:pos + 1] == "}":
            return
        if text[pos:pos + 1] != ",":
            raise ValueError("',' expected")
        pos = _skip(text, pos + 1)


def _value(text: str, start: int) -> tuple[int, int | None]:
    """Where the value at ``start`` ends, and its length: its elements, keys or characters
    (None for a number, true, false or null)."""
    char = text[start:start + 1]
    if char in ("[", "{"):
        end, commas = _walk(text, start)
        return end, 0 if _skip(text, start + 1) == end - 1 else commas + 1
    value, end = _scanned(text, start)
    return end, len(value) if char == '"' else None


def _scanned(text: str, start: int) -> tuple[Any, int]:
    """The string, number, true, false or null at ``start``, and where it ends."""
    try:
        value, end = _SCAN(text, start)
    except StopIteration:
        raise ValueError("a value expected") from None
    return value, int(end)


def _walk(text: str, start: int) -> tuple[int, int]:
    """Where the array or object at ``start`` ends, and the commas at its own depth (a
    string is skipped whole). Each mark is found by ``str.find``, the next of each kind kept
    until passed, so the text is scanned about once whatever it holds; ``_Busy`` past
    ``_STEPS`` marks."""
    nexts = dict.fromkeys(_MARKS, -1)
    depth, pos, commas = 1, start + 1, 0
    for _ in range(_STEPS):
        for mark, at in nexts.items():
            if at < pos:
                found = text.find(mark, pos)
                nexts[mark] = len(text) if found < 0 else found
        at = min(nexts.values())
        if at >= len(text):
            raise ValueError("not closed")
        if depth == 1:
            commas += text.count(",", pos, at)
        if text[at] == '"':
            pos = _scanned(text, at)[1]
        else:
            depth += 1 if text[at] in "[{" else -1
            pos = at + 1
            if depth == 0:
                return pos, commas
    raise _Busy


def _skip(text: str, pos: int) -> int:
    """Past JSON's white space from ``pos``."""
    while text[pos:pos + 1] in (" ", "\t", "\n", "\r"):
        pos += 1
    return pos
