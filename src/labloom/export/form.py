"""A flow's parameters as the Flows panel's launch form shows them: one field per parameter,
its kind read from the annotation (else the default's type, as ``Flow.launcher()`` does).

The form sends each value back as the text typed, and the run is started with exactly those
texts as ``--param NAME=TEXT``, so ``export/params.py`` checks them as it checks the CLI's: this
module only says what to draw. A secret parameter's default is never sent to the browser.

    >>> describe_params(flow)  # doctest: +SKIP
    [{'name': 'n', 'kind': 'int', 'type': 'int', 'required': False, 'default': '3'}]
"""

from __future__ import annotations

import datetime
import inspect
import json
import pathlib
import types
import typing
from typing import Any

from ..core.kept_parameters import is_over, parameter_bytes_or_default
from ..core.secrets import Secret, annotations_of
from .params import default_text, type_name

_TEXT = (str, pathlib.Path, pathlib.PurePath, datetime.date, datetime.datetime)
_SIMPLE = {bool: "bool", int: "int", float: "float"}


def _is_secret(annotation: Any) -> bool:
    return annotation is Secret or type_name(annotation) in ("SecretStr", "SecretBytes")


def _kind(annotation: Any) -> tuple[str, list[Any] | None, bool]:
    """(kind, choices, optional): the field's kind, a Literal's choices, whether None fits."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union or origin is types.UnionType:
        members = [a for a in args if a is not type(None)]
        if len(members) == 1:
            kind, choices, _ = _kind(members[0])
            return kind, choices, len(members) < len(args)
        return "json", None, type(None) in args
    if origin is typing.Literal:
        return "choice", list(args), False
    if _is_secret(annotation):
        return "secret", None, False
    if annotation in _SIMPLE:
        return _SIMPLE[annotation], None, False
    if annotation in _TEXT:
        return "str", None, False
    return "json", None, False


def _default_text(kind: str, default: Any) -> str | None:
    """The default as the text the CLI would take for it (None: none, or secret)."""
    if default is inspect.Parameter.empty or kind == "secret" or isinstance(default, Secret):
        return None
    if is_over(default, parameter_bytes_or_default()):
        return None  # as a run's record keeps it: a list of ids is not sent to the browser
    if kind == "str" and isinstance(default, (str, pathlib.PurePath, datetime.date)):
        return default.isoformat() if isinstance(default, datetime.date) else str(default)
    return default_text(default)  # None: JSON cannot spell it; the field starts empty


def describe_params(flow: Any) -> list[dict[str, Any]]:
    hints = annotations_of(flow.fn)
    fields = []
    for param in flow.signature.parameters.values():
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        annotation = hints.get(param.name)
        if annotation is None and param.default is not inspect.Parameter.empty:
            annotation = type(param.default) if param.default is not None else None
        kind, choices, optional = _kind(annotation) if annotation is not None else (
            "json", None, False)
        field: dict[str, Any] = {
            "name": param.name,
            "kind": kind,
            "type": type_name(annotation) if annotation is not None else "any",
            "required": param.default is inspect.Parameter.empty,
            "optional": optional,
            "default": _default_text(kind, param.default),
        }
        if choices is not None:
            field["choices"] = [json.dumps(c) if not isinstance(c, str) else c for c in choices]
        fields.append(field)
    return fields


def describe_flow(flow: Any) -> dict[str, Any]:
    return {"flow": flow.name, "description": flow.description or "",
            "params": describe_params(flow)}
