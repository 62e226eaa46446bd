"""Futures in Python expressions, inside a flow body.

Indexing is the one expression a future supports (``futures.index_future``): ``cfg()["lr"]``
becomes a small task run of its own, named ``cfg["lr"]``, that takes the item where the value
lives (on Dask, a worker).
Everything else that would need the value (``+``, ``<``, ``if fut:``, ``len``, ``float``, an
attribute of the value) raises a ``TypeError`` saying what to do instead, as dask.delayed does
("Truth of Delayed objects is not supported"): the value does not exist yet while the flow is
being built.
"""

from __future__ import annotations

from typing import Any

_INSTEAD = (
    "pass the future to a task that does this with its value, or take the value first with "
    ".result(), which waits for the task run"
)


def _refusal(what: str) -> Any:
    def refuse(self: Any, *args: Any) -> Any:
        raise TypeError(
            f"{what.format(kind=type(self).__name__)} is not supported: {self.name!r} has no "
            f"value while the flow is built; {_INSTEAD}"
        )

    return refuse


# Operators that would need the value, by method name: what the message calls them.
_OPERATORS = {
    **{f"__{op}__": f"Operator {symbol} on a {{kind}}" for op, symbol in (
        ("add", "+"), ("sub", "-"), ("mul", "*"), ("truediv", "/"), ("floordiv", "//"),
        ("mod", "%"), ("pow", "**"), ("matmul", "@"), ("lshift", "<<"), ("rshift", ">>"),
        ("and", "&"), ("or", "|"), ("xor", "^"),
    ) for op in (op, f"r{op}")},
    **{f"__{op}__": "Comparison of a {kind}" for op in ("lt", "le", "gt", "ge")},
    **{f"__{op}__": f"Operator {symbol} on a {{kind}}" for op, symbol in (
        ("neg", "unary -"), ("pos", "unary +"), ("invert", "~"), ("abs", "abs()"),
    )},
    **{f"__{op}__": f"Conversion of a {{kind}} to {op}" for op in ("int", "float", "complex")},
    "__index__": "Using a {kind} as an index",
    "__round__": "round() of a {kind}",
    "__contains__": "The `in` test on a {kind}",
    "__call__": "Calling a {kind}",
    "__setitem__": "Item assignment on a {kind}",
    "__delitem__": "Item deletion on a {kind}",
}


def refuse_operators(cls: type) -> None:
    """Give ``cls`` (a future class) a method per operator that raises the explanation."""
    for method, what in _OPERATORS.items():
        if method not in vars(cls):
            setattr(cls, method, _refusal(what))


def refuse_equality(self: Any, other: Any) -> Any:
    """``==`` and ``!=`` between futures compare identity (a future is a hashable name); with
    anything else the answer would silently be False: ``if cfg()["mode"] == "fast"``."""
    if type(other) is type(self):
        return NotImplemented  # Python then compares identity
    raise TypeError(
        f"Comparison of a {type(self).__name__} is not supported: {self.name!r} has no value "
        f"while the flow is built; {_INSTEAD}"
    )


def missing_attribute(self: Any, name: str) -> AttributeError:
    """The error for an attribute a future does not have (most likely its value's)."""
    if name.startswith("_"):  # probes by copy, pickle, IPython's display: the plain error
        return AttributeError(name)
    return AttributeError(
        f"{type(self).__name__!r} object has no attribute {name!r}: a {type(self).__name__} "
        f"stands for the value of {self.name!r} while the flow is built, and .{name} would "
        f"be the value's; {_INSTEAD}"
    )


__all__ = ["missing_attribute", "refuse_equality", "refuse_operators"]
