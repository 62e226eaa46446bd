"""The Experiments view's filter, on the server: the grammar of js/src/expdata.js
``filterRows`` ("auc>0.9 criterion=gini words"), so a 100,000-row run is filtered where its rows
are (``GET runs/{id}/experiments?filter=...``) rather than on the view's first 1,000.

Terms are separated by spaces; "double quotes" hold a name, value or words with spaces in
them (``"learning rate">0.01 model="random forest"``). A term ``name OP value`` (OP one of
``>= <= != = > <``) names a column by its label (a param or
metric name, ``index``, ``state``, ``duration``, ``task``, and across runs ``run``; a param
first when a name is both, as the view lists params first) or id (``params.x``, ``metrics.x``, ``map_index``); any other term
is words looked for, case-insensitively, in the text of every cell. A row is kept when every
term holds. Numbers read as the view reads them: bools as 1 and 0, NaN never compares, and
``=`` holds for the same text or the same number. A cell reads as the views show it: a param
logged as None is "None" (``opt=None``), a param not logged blank (``opt=``).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from . import experiments as ex
from .errors import LabloomError, UnknownColumnError

# A term is a run of characters without spaces, but for spaces "in double quotes": a param
# named "learning rate", a value "random forest", words "out of memory".
_WORD = re.compile(r'(?:"[^"]*"?|[^\s"])+')
_TERM = re.compile(r'^((?:"[^"]*"|[^<>=!"])+?)(>=|<=|!=|=|>|<)(.*)$', re.S)
# What JavaScript's Number() reads as a number (not Python's float(): "inf", "1_0", "nan").
_JS_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|Infinity)$")
# The view's fixed columns by label (js/src/expdata.js columnsOf).
_FIXED = {"index": "map_index", "map_index": "map_index", "state": "state",
          "duration": "duration", "task": "task", "run_id": "run_id"}
# Across runs, the compare view's run column too, labelled "run" (js/src/compareview.ts).
_ACROSS = {**_FIXED, "run": "run_id"}
MAX_FILTER = 2000
# A param logged as None (scikit-learn's max_depth=None, no limit) as every view shows it
# (js/src/expdata.js shownValue, the CLI's table), where blank is a param not logged.
SHOWN_NONE = "None"
WORDS_IN = ("map_index", "state", "duration", "task")  # the view's fixed columns (run_id aside)


COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt, "<": operator.lt, ">=": operator.ge, "<=": operator.le}


@dataclass(frozen=True)
class Term:
    column: str | None  # a column id ("params.x", "metrics.x", a fixed one); None: words
    op: str
    value: str
    wanted: float = math.nan  # the value as JavaScript's Number() reads it

    def test(self, value: Any) -> bool:
        """Whether a cell's value satisfies this column term."""
        n = number(value)
        if self.op == "=" or self.op == "!=":
            same = (n is not None and n == self.wanted) or text(value) == self.value
            return same if self.op == "=" else not same
        # NaN compares false both ways, as in JavaScript
        return n is not None and COMPARE[self.op](n, self.wanted)


def parse(query: str | None, names: Sequence[dict[str, str]], across: bool = False,
          ) -> list[Term]:
    """The terms of ``query`` (space-separated) against the columns ``names`` (a page's
    ``columns``; ``across``: rows of several runs, with a run column); an empty list keeps
    every row."""
    if not query:
        return []
    if len(query) > MAX_FILTER:
        raise LabloomError(f"[labloom] filter is {len(query)} characters long; at most "
                           f"{MAX_FILTER} (a few terms like auc>0.9 criterion=gini)")
    ids = _ids(names, across)
    terms = []
    for word in _WORD.findall(query):
        match = _TERM.match(word)
        label = _unquoted(match.group(1)) if match else ""
        named = ids.get(label)
        if match and named:
            value = _unquoted(match.group(3))
            terms.append(Term(named, match.group(2), value, _wanted(value)))
        elif words := _unquoted(word):
            terms.append(Term(None, "words", words.lower()))
    return terms


def check_names(query: str | None, names: Sequence[dict[str, str]], across: bool = False,
                ) -> None:
    """A filter a user typed in a shell (``labloom experiments --filter``) compares only
    names the rows have: a typo (``acu>0.9``) would be looked for as words, matching no row,
    and "none of the rows match" would hide why (the view says it in its summary; the server
    keeps the grammar, a view asks while the user types). ``UnknownColumnError`` lists the
    names there are."""
    if not query or not names:
        return
    ids = _ids(names, across)
    for word in _WORD.findall(query):
        match = _TERM.match(word)
        if match and _unquoted(match.group(1)) not in ids:
            known = ", ".join(dict.fromkeys(c["name"] for c in names))
            fixed = ", ".join(label for label in (_ACROSS if across else _FIXED)
                              if label not in ("map_index", "run_id"))
            raise UnknownColumnError(
                f"[labloom] no column {_unquoted(match.group(1))!r} in the filter term "
                f"{word!r}; the rows' params and metrics: {known} (also {fixed}; params.NAME "
                f"or metrics.NAME; words with no comparison are looked for in every cell)")


def _ids(names: Sequence[dict[str, str]], across: bool) -> dict[str, str]:
    """Column ids by every name a term may give them: fixed labels, then params' and
    metrics' names (a param first when a name is both) and ``params.x``, ``metrics.x``."""
    ids: dict[str, str] = {}
    for column in sorted(names, key=lambda c: c["kind"] != "param"):
        key = f"{column['kind']}s.{column['name']}"
        ids.setdefault(column["name"], key)
        ids[key] = key
    return {**ids, **(_ACROSS if across else _FIXED)}


def _unquoted(text: str) -> str:
    return text.replace('"', "")


def row_matcher(terms: Sequence[Term], columns: Sequence[str],
                get: Callable[[Any, str], Any]) -> Callable[[Any], bool]:
    """A test of one row (``get(row, column id)`` reads a cell) against every term; ``columns``
    are the ids words are looked for in."""

    def matches(row: Any) -> bool:
        for term in terms:
            if term.column is None:
                if not any(term.value in text(get(row, c)).lower() for c in columns):
                    return False
            elif not term.test(get(row, term.column)):
                return False
        return True

    return matches


def answer(rows: Sequence[ex.Experiment], sort: str | None, desc: bool, limit: int,
           offset: int, query: str | None,
           more: Callable[[ex.Experiment], dict[str, Any]] | None = None,
           extra: Sequence[str] = ()) -> dict[str, Any]:
    """``experiments.answer`` of the rows ``query`` keeps: ``total`` counts them, ``columns``
    are every row's (the filter's own terms name them). Words are looked for in the view's
    columns: ``extra`` (the compare view's ``run_id``), the fixed ones, the params, metrics."""
    names = ex.columns(rows)
    rows = kept(rows, query, names, extra)
    shown = ex.page(rows, sort, desc, limit, offset)
    return ex.answer_of(shown, names, len(rows), sort, desc, limit, offset, more)


def kept(rows: Sequence[ex.Experiment], query: str | None, names: Sequence[dict[str, str]],
         extra: Sequence[str] = ()) -> list[ex.Experiment]:
    """The rows ``query`` keeps, in their order (``names``: the rows' ``ex.columns``)."""
    matches = matcher(query, names, cell, extra)
    return list(rows) if matches is None else list(filter(matches, rows))


def matcher(query: str | None, names: Sequence[dict[str, str]], get: Callable[[Any, str], Any],
            extra: Sequence[str] = ()) -> Callable[[Any], bool] | None:
    """The test of a row ``query`` makes against the columns ``names`` (``get(row, column
    id)`` reads a cell), or None when it keeps every row."""
    terms = parse(query, names, across="run_id" in extra)
    if not terms:
        return None
    words = (*extra, *WORDS_IN, *(f"{c['kind']}s.{c['name']}" for c in names))
    return row_matcher(terms, words, get)


def cell(row: ex.Experiment, column: str) -> Any:
    """``row.get(column)`` as the filter reads it: ``shown``."""
    return shown(row, column, row.get(column))


def shown(row: ex.Experiment, column: str, value: Any) -> Any:
    """A cell's ``value`` as the views show it: a param the row logged as None is
    ``SHOWN_NONE``; "opt=None" matched no row, while the table read None."""
    if value is None and column.startswith("params.") and column[7:] in row.params:
        return SHOWN_NONE
    return value


def number(value: Any) -> float | None:
    """A cell as a number (bools 1 and 0; NaN and inf kept), or None."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    return None


def text(value: Any) -> str:
    """A cell as the view shows it (js/src/expdata.js ``text``): numbers to 5 significant
    digits, NaN and inf named, bools as true and false."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        n = float(value)
        if math.isnan(n):
            return "NaN"
        if math.isinf(n):
            return "inf" if n > 0 else "-inf"
        if n.is_integer() and abs(n) < 1e21:
            return str(int(value)) if isinstance(value, int) else str(int(n))
        shown = float(f"{n:.5g}")
        return str(int(shown)) if shown.is_integer() else repr(shown).replace("e-0", "e-")
    return str(value)


def _wanted(value: str) -> float:
    stripped = value.strip()
    if not stripped:
        return 0.0  # JavaScript's Number("") is 0
    if not _JS_NUMBER.match(stripped):
        return math.nan
    return float(stripped.replace("Infinity", "inf"))


__all__ = ["COMPARE", "MAX_FILTER", "SHOWN_NONE", "WORDS_IN", "Term", "answer", "cell",
           "check_names", "kept", "matcher", "number", "parse", "row_matcher", "shown", "text"]
