"""The logging calls a run keeps in memory (``log_params``, ``log_metrics``, ...), packed: for
``run.experiments()``, a late subscriber's replay and a store file written again mid-run.

Kept as they came (a dict of values, a tuple, a time and a task run id per call), 100,000
children each logging 3 metrics held 420 bytes a call, 42 MB: more than the engine keeps for
the task run itself (about 230 bytes), and new memory a fresh process must fault in page by
page while the run goes on (peak RSS 103 MB against 61 MB for the same run logging
nothing; 69 MB packed). The cost of logging per child also grew with the run's size (issue
19's 1.10x target: about 6 µs more per child at 20,000 children, 40 µs at 100,000), which the
work per call does not explain and the memory kept per call may. Packed, a call is 7
machine words: its task run id as a shared prefix and a number, its time, its step, and its
values as numbers in one array (an int exactly, up to 2**53; a bool as 0 or 1) or, for
strings, None and bigger ints, the objects themselves. The names, the kind and which value
is which type are one shared ``Shape`` per distinct call. Read back, each call is what was
logged: the same names in the same order, the same types and values (NaN, inf and -0.0
included).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from typing import Any

# (task run id, time, kind, values, step): one logging call as the sink gives it back.
Call = tuple[str, float, str, dict[str, Any], "int | None"]

_EXACT = 2**53  # ints up to this size are exact as doubles
_NO_STEP = -1
_BIG_STEP = -2  # a step past a signed 64-bit int: kept in ``_big_steps``
_DIGITS = "0123456789"


class Shape:
    """What calls of one kind, task run id prefix and names share; ``codes`` says where each
    value is: "f" a float, "i" an int and "b" a bool in the numbers, "o" in the objects."""

    __slots__ = ("codes", "kind", "mixed", "names", "prefix")

    def __init__(self, prefix: str, kind: str, names: tuple[str, ...], codes: str) -> None:
        self.prefix = prefix
        self.kind = kind
        self.names = names
        self.codes = codes
        self.mixed = "o" in codes  # some values are objects: each goes to its place


class CallLog:
    """The calls in the order logged: ``shape`` a call (any thread), then ``add`` it (under
    the run's lock, so that the calls kept and the calls sent to subscribers agree); iterate
    them all."""

    def __init__(self) -> None:
        self._shapes: dict[tuple[str, str, tuple[str, ...], str], Shape] = {}
        self._shape_of: list[Shape] = []
        self._numbers_of_ids = array("q")  # the task run id's number, -1 when it has none
        self._times = array("d")
        self._steps = array("q")
        self._big_steps: dict[int, int] = {}
        self._numbers = array("d")
        self._objects: list[Any] = []

    def __len__(self) -> int:
        return len(self._shape_of)

    def shape(self, task_run_id: str, kind: str, values: dict[str, Any]) -> tuple[Shape, int]:
        """The call's shared shape and its task run id's number (-1: none). The work of
        ``add`` that needs no lock: two threads may make equal shapes, which is harmless."""
        codes = ""
        for value in values.values():
            kind_of = type(value)
            if kind_of is float:
                codes += "f"
            elif kind_of is int and -_EXACT <= value <= _EXACT:
                codes += "i"
            elif kind_of is bool:
                codes += "b"
            else:
                codes += "o"
        # A map child's id is its map's prefix and its number: the prefix is shared.
        prefix = task_run_id.rstrip(_DIGITS)
        tail = task_run_id[len(prefix):]
        if tail and (tail[0] != "0" or tail == "0") and len(tail) < 18:
            number = int(tail)
        else:
            prefix, number = task_run_id, -1
        key = (prefix, kind, tuple(values), codes)
        shape = self._shapes.get(key)
        if shape is None:
            shape = self._shapes[key] = Shape(*key)
        return shape, number

    def add(self, shape: Shape, number: int, when: float, values: dict[str, Any],
            step: int | None) -> None:
        """Keep one call, ``shape`` and ``number`` from ``shape``."""
        if step is None:
            step = _NO_STEP
        elif step >= 2**63:
            self._big_steps[len(self._shape_of)] = step
            step = _BIG_STEP
        if shape.mixed:
            for code, value in zip(shape.codes, values.values(), strict=True):
                if code == "o":
                    self._objects.append(value)
                else:
                    self._numbers.append(value)
        else:
            self._numbers.extend(values.values())
        self._shape_of.append(shape)
        self._numbers_of_ids.append(number)
        self._times.append(when)
        self._steps.append(step)
    def __iter__(self) -> Iterator[Call]:
        numbers, objects = self._numbers, self._objects
        at_number = at_object = 0
        for i, shape in enumerate(self._shape_of):
            values: dict[str, Any] = {}
            for name, code in zip(shape.names, shape.codes, strict=True):
                if code == "o":
                    values[name] = objects[at_object]
                    at_object += 1
                    continue
                number = numbers[at_number]
                at_number += 1
                values[name] = number if code == "f" else (
                    int(number) if code == "i" else number != 0)
            at_id = self._numbers_of_ids[i]
            task_run_id = shape.prefix if at_id < 0 else shape.prefix + str(at_id)
            step: int | None = self._steps[i]
            if step == _NO_STEP:
                step = None
            elif step == _BIG_STEP:
                step = self._big_steps[i]
            yield task_run_id, self._times[i], shape.kind, values, step


__all__ = ["Call", "CallLog", "Shape"]
