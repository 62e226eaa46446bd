"""Parameters that must not be kept: ``Secret`` values, and a setting that keeps none.

A flow parameter annotated ``Secret`` (or pydantic's ``SecretStr``/``SecretBytes``), or whose
value is one, reaches the flow body as given but is recorded and shown as ``***``: in the
store, the event stream and every view of the run. ``LABLOOM_STORE_PARAMETERS=0`` (or
``c.Labloom.store_parameters = False``) records every parameter value as ``***``.

>>> from labloom import Secret, flow
>>> @flow
... def nightly(password: Secret, day: str) -> None:
...     connect(password=password.get_secret_value())
"""

from __future__ import annotations

import inspect
import os
import typing
from typing import Any

from .kept_parameters import kept, parameter_bytes

HIDDEN = "***"
_OFF = ("0", "false", "no", "off")


class Secret:
    """A string kept out of labloom's records: its ``repr`` and ``str`` are ``***``.

    ``get_secret_value()`` returns it (the same name as pydantic's ``SecretStr``).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{HIDDEN}')"

    def __str__(self) -> str:
        return HIDDEN

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> tuple[Any, ...]:  # to Dask workers and the result cache
        return (Secret, (self._value,))


def is_secret_type(annotation: Any) -> bool:
    """``Secret``, pydantic's ``SecretStr``/``SecretBytes``, or an optional/union of one."""
    if annotation is Secret or (
        isinstance(annotation, type) and annotation.__name__ in ("SecretStr", "SecretBytes")
        and annotation.__module__.startswith("pydantic")
    ):
        return True
    return any(is_secret_type(arg) for arg in typing.get_args(annotation))


def is_secret_value(value: Any) -> bool:
    return isinstance(value, Secret) or is_secret_type(type(value))


def store_parameters() -> bool:
    """False when ``LABLOOM_STORE_PARAMETERS`` is off: no parameter value is recorded."""
    return os.environ.get("LABLOOM_STORE_PARAMETERS", "1").strip().lower() not in _OFF


def annotations_of(fn: Any) -> dict[str, Any]:
    """Parameter annotations as types (resolving ``from __future__ import annotations``);
    those that cannot be resolved are left out."""
    try:
        return typing.get_type_hints(fn)
    except Exception:
        hints = {}
        for name, param in inspect.signature(fn).parameters.items():
            if param.annotation is not inspect.Parameter.empty and not isinstance(
                param.annotation, str
            ):
                hints[name] = param.annotation
        return hints


def recorded_parameters(fn: Any, parameters: dict[str, Any]) -> dict[str, Any]:
    """The parameters as labloom records and shows them: secrets (and, with the setting off,
    every value) replaced by ``***``, a value too big to keep by its summary (``kept``)."""
    if not store_parameters():
        return dict.fromkeys(parameters, HIDDEN)
    hints = annotations_of(fn)
    limit = parameter_bytes()
    return {
        name: HIDDEN if is_secret_type(hints.get(name)) or is_secret_value(value)
        else kept(value, limit)
        for name, value in parameters.items()
    }
