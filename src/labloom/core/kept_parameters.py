"""How much of a flow parameter a run's record keeps: the value whole while its JSON is small
(a grid of a few hundred configs, a date, a threshold), else a summary: its type and length.

A run's parameters are shown by every view of it (``labloom show``, the Flows panel, the
REST API) and replayed by ``labloom retry``. A list of ten million ids given as a parameter is
task data (patients, rows): kept whole it would put tens of MB into the store and into each
answer that reads the run, and data into a store that holds metadata, never task data. So a
value whose JSON is over ``LABLOOM_PARAMETER_BYTES`` (default 100,000) is kept as
``{"__type__": "builtins.list", "__len__": 10000000, "__over_bytes__": 100000}``, as an array
is kept as its type and shape; such a run cannot be replayed from the store (the retry says
which parameter, and to run the flow with the value instead).

>>> kept(list(range(3)), 100_000)
[0, 1, 2]
>>> kept(list(range(100_000)), 100_000)["__len__"]
100000
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sized
from typing import Any

from .env_numbers import env_number
from .errors import LabloomError

ENV = "LABLOOM_PARAMETER_BYTES"
DEFAULT_BYTES = 100_000
OVER = "__over_bytes__"  # the key that marks a summary of a value too big to keep


def parameter_bytes() -> int:
    """The setting: how many bytes of JSON a parameter may take and still be kept whole."""
    return int(env_number(ENV, DEFAULT_BYTES, "a whole number of bytes >= 0",
                          lambda limit: limit >= 0, LabloomError,
                          "0 keeps every parameter as a summary", whole=True))


def _stand_in(obj: Any) -> Any:
    # What the store keeps for a value JSON cannot hold is small (its type and shape, see
    # ``store/storable.py``); a set becomes a list there.
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    return None


def is_over(value: Any, limit: int) -> bool:
    """Whether ``value``'s JSON is over ``limit`` bytes, encoding no more than that: a list of
    ten million ints stops after the first few thousand."""
    size = 0
    try:
        for chunk in json.JSONEncoder(default=_stand_in).iterencode(value):
            size += len(chunk)  # ASCII (``ensure_ascii``): characters are bytes
            if size > limit:
                return True
    except (TypeError, ValueError, RecursionError):
        return True  # a key JSON cannot hold, a value that contains itself: not keepable
    return False


def type_name(value: Any) -> str:
    """``value``'s type as the store names it: ``builtins.list``, ``pandas.core.frame.DataFrame``."""
    return type(value).__module__ + "." + type(value).__qualname__


def summary(value: Any, limit: int) -> dict[str, Any]:
    """What is kept of a value too big to keep: its type and length, never its content."""
    kept: dict[str, Any] = {"__type__": type_name(value)}
    if isinstance(value, Sized):
        with contextlib.suppress(Exception):  # a broken __len__: the type alone
            kept["__len__"] = len(value)
    kept[OVER] = limit
    return kept


def kept(value: Any, limit: int) -> Any:
    """``value`` as a run's record keeps it: whole, or ``summary`` when over ``limit``."""
    return summary(value, limit) if is_over(value, limit) else value


def listed_summary(limit: int) -> dict[str, Any]:
    """What a list of runs (``labloom runs --json``, ``%flow_runs``) holds for a run's
    parameters whose JSON is over ``limit`` in all: this summary, not them (never read for the
    list); ``labloom show RUN`` and the run tab show each."""
    return {"__type__": "builtins.dict", OVER: limit}


def is_summary(value: Any) -> bool:
    return isinstance(value, dict) and OVER in value and "__type__" in value


def shown_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """Recorded parameters as a view shows them: JSON-safe (NaN and inf as strings, as in the
    experiments' answers), a value recorded whole by a labloom from before the limit but
    over it now as its summary (it still replays: ``labloom retry`` reads the record), and a
    string holding a lone surrogate (a file name that is not UTF-8) with it escaped,
    ``caf\\udce9.csv``: the record keeps it exactly, for a retry, but no terminal or page can
    show it."""
    from .experiments import jsonable

    limit = parameter_bytes_or_default()
    return {readable(name): readable(jsonable(kept(value, limit)))
            for name, value in parameters.items()}


def readable(value: Any) -> Any:
    """``value`` (JSON-like) with each lone surrogate in its strings backslash-escaped."""
    if type(value) is str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if type(value) is dict:
        return {readable(key): readable(item) for key, item in value.items()}
    if type(value) is list:
        return [readable(item) for item in value]
    return value


def parameter_bytes_or_default() -> int:
    """The setting for a view, which must show a run whatever the environment holds."""
    try:
        return parameter_bytes()
    except LabloomError:
        return DEFAULT_BYTES
