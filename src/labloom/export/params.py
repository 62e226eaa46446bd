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
import inspect
import json
import pathlib
import shlex
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from ..core.errors import TargetError
from ..core.secrets import Secret, annotations_of, is_secret_type

_EXAMPLE_WIDTH = 60  # a longer default is no example: the kind's own is shown instead


_NOT_JSON = object()


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
                + _example(name, hints[name], _default(flow, name))
            ) from None
    return converted


def type_name(annotation: Any) -> str:
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _default(flow: Any, name: str) -> Any:
    param = flow.signature.parameters.get(name)
    return inspect.Parameter.empty if param is None else param.default


def _example(name: str, annotation: Any, default: Any) -> str:
    """`` (e.g. -p 'tables=["Orders"]')``: the parameter's default as the text that gives it
    (a form that surely fits), else a value of the annotation's kind; "" when neither."""
    examples = {int: "3", float: "0.5", bool: "true", list: "[1, 2]", dict: '{"a": 1}',
                datetime.date: "2026-01-31", datetime.datetime: "2026-01-31T02:00:00"}
    origin = typing.get_origin(annotation) or annotation
    text = examples.get(origin)
    # None fits (else the value would not be refused): the example shows the other kind
    shown = default is not None and not is_secret_type(annotation)
    spelled = default_text(default) if shown else None
    if spelled is not None and len(spelled) <= _EXAMPLE_WIDTH:
        text = spelled
    return f" (e.g. -p {shlex.quote(f'{name}={text}')})" if text is not None else ""


def default_text(default: Any) -> str | None:
    """The ``--param`` text that gives ``default`` (the Flows panel's form starts with it too);
    None when there is none to show."""
    if default is inspect.Parameter.empty:
        return None
    if isinstance(default, str) and _read_as_json(default) in (_NOT_JSON, default):
        return default  # read back as this text: no quotes needed
    if isinstance(default, (datetime.date, pathlib.PurePath)):
        return default.isoformat() if isinstance(default, datetime.date) else str(default)
    if isinstance(default, (tuple, set, frozenset)):
        default = list(default)
    try:
        return json.dumps(default)
    except (TypeError, ValueError):
        return None  # an object of the user's: JSON cannot spell it


def _read_as_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return _NOT_JSON


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
