"""A function's source, hashed: what names a version of a flow in the store and a task's code
in its result keys (``results.py``)."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from typing import Any


def source_hash(fn: Callable[..., Any]) -> str:
    """A short hash of a function's source (its bytecode when the source is not available)."""
    try:
        text = inspect.getsource(fn)
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        text = repr((code.co_code, code.co_consts)) if code is not None else repr(fn)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
