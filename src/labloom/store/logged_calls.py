"""How one ``experiment_values`` row holds logging calls (``experiments.py``), each call
``[task_run_id, kind, values, step, time]`` with ``values`` a map by name.

Three kinds of row, read alike and mixed in one run in id order:

- ``packed`` (schema 15, what the writer writes): a batch's calls by column, one msgpack array
  ``[task_run_ids, kinds, values, steps, times]`` of five arrays of one item per call, in the
  ``packed`` column (SQLite BLOB, PostgreSQL BYTEA), ``data`` empty;
- ``calls`` (schema 11): an array of the calls as JSON text in ``data``. Still written for a batch
  msgpack cannot hold exactly: an int beyond 64 bits (``OverflowError``), a string with a lone
  surrogate (``UnicodeEncodeError``). Python's JSON keeps both, and NaN and inf as
  ``NaN``/``Infinity``;
- ``param`` or ``metric`` (schema 10): one call, its task run, step and time in their columns
  and its values a JSON object in ``data``.

Why msgpack rather than JSON text: writing the text was the store writer's largest cost per
logged metric (issue 19's 1.10x target, benchmarks/README.md): turning floats into text, about
17,000 instructions of the 51,000 a logging child added. msgpack writes a float as its 8 bytes:
2.4 µs a call as JSON, 0.25 as msgpack; reading, 1.7 µs and 0.43. It keeps what JSON kept: an
int stays an int, 1.0 a float, bools, None, NaN, inf and -inf, unicode text; tuples come back as
lists, as from JSON. msgpack is a dependency of distributed already. By column, as the
writer's events hold them (``events.ExperimentCalls``): an array per call made a tuple per call
to pack, which cost the writer as much again as msgpack itself in a process holding a big run
(its garbage collector walking the heap); the readers make them instead. The writer's insert
went from 3.1-3.5 µs a call to 0.55-0.69, a logging child's instructions over none from about
51k to 12k, and a run's whole read is about half as long (benchmarks/README.md, session 33).
"""

from __future__ import annotations

import json
from typing import Any

import msgpack

from ..core import events as ev
from ..core import experiments as ex
from ..core.errors import StoreDataError

PACKED = "packed"
CALLS = "calls"


def stored(columns: ev.Columns) -> tuple[str, str, bytes | None]:
    """A batch's calls, by column, as a row holds them: (kind, data, packed)."""
    try:
        return PACKED, "", msgpack.packb(columns)
    except (OverflowError, UnicodeEncodeError):
        # No cycle check: values are numbers, bools, strings and None (``record``), and the
        # check's bookkeeping per tuple and dict was a third of the encoding.
        return CALLS, json.dumps(list(zip(*columns, strict=True)), check_circular=False), None


def _no_extension(code: int, data: bytes) -> Any:
    raise ValueError(f"a msgpack extension type ({code}), which labloom never writes")


def unpacked(packed: bytes, row_id: Any) -> list[ex.Logged]:
    """The calls of a ``packed`` row; ``StoreDataError`` for bytes labloom did not write."""
    try:
        # raw=False: strings must be valid UTF-8; strict_map_key: names must be strings.
        columns = msgpack.unpackb(packed, raw=False, strict_map_key=True,
                                  ext_hook=_no_extension)
        if type(columns) is not list or len(columns) != 5:
            raise ValueError("not an array of five columns")
        calls = list(zip(*columns, strict=True))
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        why = str(exc) or type(exc).__name__
        raise StoreDataError(
            f"[labloom] the logged values of row {row_id} of experiment_values cannot be read "
            f"({why}): the row was damaged or written by another program. Delete that row to "
            "read the rest of the run"
        ) from exc
    return calls


def calls_of(row_id: Any, kind: str, task_run_id: str, step: int | None, when: float | None,
             data: str, packed: bytes | None) -> list[ex.Logged]:
    """The calls one row holds, whatever its kind (see the module's docstring)."""
    if kind == PACKED:
        return unpacked(packed, row_id)  # type: ignore[arg-type]  # None: an error there
    if kind == CALLS:
        calls: list[ex.Logged] = json.loads(data)
        return calls
    return [(task_run_id, kind, json.loads(data), step, when)]  # type: ignore[list-item]


__all__ = ["CALLS", "PACKED", "calls_of", "stored", "unpacked"]
