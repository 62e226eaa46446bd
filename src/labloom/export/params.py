"""``--param NAME=VALUE`` checked against the flow's annotations before anything starts.

A value is read as JSON where it parses, else taken as the text itself; then it must fit the
parameter's annotation: ``-p size=abc`` for ``size: int`` is refused at once, naming the
parameter and its type, instead of a cluster started and a run failed. Text for a ``str``
parameter is kept as typed (``-p day=2024`` gives ``"2024"``), ``Path``, ``date`` and
``datetime`` are read from text, and a ``Secret`` parameter gets a ``Secret``. Annotations it
cannot check (a class of the user's, say) pass the value through unchanged.
"""

from __future__ import annotations

import datetime
import pathlib
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from ..core.errors import TargetError
from ..core.secrets import Secret, annotations_of


class _Mismatch(Exception):
    pass


def convert_params(flow: Any, params: dict[str, Any], raw: Mapping[str, str]) -> dict[str, Any]:
    """``params`` (JSON-read) fitted to the flow's annotations; ``raw`` holds the text given."""
    hints = annotations_of(flow.fn)
    converted = dict(params)
    for name, value in params.items():
        if name not in hints or name not in raw:
            continue
        try:
            converted[name] = _fit(value, hints[name], raw[name])
        except _Mismatch:
            raise TargetError(
                f"--param {name}={raw[name]}: flow {flow.name!r} takes {name}: "
                f"{type_name(hints[name])}, and {raw[name]!r} is not one"
                + _example(hints[name])
            ) from None
    return converted


def type_name(annotation: Any) -> str:
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _example(annotation: Any) -> str:
    examples = {int: "3", float: "0.5", bool: "true", list: "'[1, 2]'", dict: """'{"a": 1}'"""}
    origin = typing.get_origin(annotation) or annotation
    return f" (e.g. --param NAME={examples[origin]})" if origin in examples else ""


def _fit(value: Any, annotation: Any, raw: str | None) -> Any:
    """``value`` as ``annotation`` wants it; raises _Mismatch. ``raw``: the text it came from
    (None inside lists and dicts, where JSON decides)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any or annotation is typing.Any:
        return value
    if origin is typing.Union or origin is types.UnionType:
        for member in args:
            try:
                return _fit(value, member, raw)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is typing.Literal:
        for choice in args:
            if value == choice or (raw is not None and raw == choice):
                return choice
        raise _Mismatch
    if annotation is type(None):
        if value is None:
            return None
        raise _Mismatch
    if annotation is str:
        if isinstance(value, str):
            return value
        if raw is not None:
            return raw  # -p day=2024: the text as typed
        raise _Mismatch
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch
    if annotation is Secret or type_name(annotation) in ("SecretStr", "SecretBytes"):
        text = value if isinstance(value, str) else raw
        if text is None:
            raise _Mismatch
        return annotation(text.encode() if type_name(annotation) == "SecretBytes" else text)
    if annotation in (pathlib.Path, pathlib.PurePath):
        if isinstance(value, str):
            return pathlib.Path(value)
        raise _Mismatch
    if annotation in (datetime.date, datetime.datetime):
        try:
            return annotation.fromisoformat(value if isinstance(value, str) else str(raw))
        except (TypeError, ValueError):
            raise _Mismatch from None
    container = origin or annotation
    if container in (list, tuple, set, frozenset, Sequence, typing.Sequence):
        if not isinstance(value, list):
            raise _Mismatch
        if container is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise _Mismatch
            return tuple(_fit(v, a, None) for v, a in zip(value, args, strict=True))
        items = [_fit(v, args[0], None) for v in value] if args else list(value)
        return items if container in (list, Sequence, typing.Sequence) else container(items)
    if container in (dict, Mapping, typing.Mapping):
        if not isinstance(value, dict):
            raise _Mismatch
        if len(args) == 2:
            return {_fit(k, args[0], k): _fit(v, args[1], None) for k, v in value.items()}
        return value
    return value  # an annotation this module does not know: the flow decides
