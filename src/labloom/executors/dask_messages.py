"""A chunk's task-run starts and ends, kept as columns on the worker (``Columns``) and sent
as one message each, read back on the client (``starts_of``, ``ends_of``).

As rows, a chunk of 1,000 map children sent 1,000 starts and 1,000 ends, each a small list
(``["s", id, when, attempt, lane, rerun]``, ``["e", id, attempt, started, ended, ok, rerun]``),
which msgpack
made and read three times in the kernel's process (the scheduler reads the worker's message
and writes it again to the client, which reads it): about 280 bytes and several µs of the
kernel's event loop per child. As columns, a batch's starts travel as one ``["S", ids, whens,
attempts, lanes, reruns]`` and its ends as one ``["E", ids, attempts, starts, ends, oks,
reruns]``: the ids joined in one string, times as packed doubles, what all share once (a
rerun: the run's reruns at the call's launch, ``TaskCall.rerun``; absent from a worker of an
older labloom, read as None).

Order is kept where it matters: a batch sends the starts first and the ends last, so each
child's start comes before its log lines (which travel as rows in between), and its end after
them (an end only leaves the times its chunk's own completion reads).
"""

from __future__ import annotations

from array import array
from typing import Any

_SEP = "\n"  # never in a task run id (a run id, a node and a number)
_OK = {True: 1, False: 0, None: 2}


def _column(values: list[Any], code: str) -> Any:
    """One value when all are equal, else the values packed (``code``: an array type)."""
    if values.count(values[0]) == len(values):
        return values[0]
    return array(code, values).tobytes()


def _values(column: Any, code: str, count: int) -> list[Any]:
    if isinstance(column, bytes):
        return array(code, column).tolist()
    return [column] * count


class Columns:
    """The starts and ends of a run's chunk children on one worker, not sent yet."""

    __slots__ = ("e_attempts", "e_ended", "e_ids", "e_ok", "e_reruns", "e_started",
                 "s_attempts", "s_ids", "s_lanes", "s_reruns", "s_whens")

    def __init__(self) -> None:
        self.s_ids: list[str] = []
        self.s_whens: list[float] = []
        self.s_attempts: list[int] = []
        self.s_lanes: list[str] = []
        self.s_reruns: list[int] = []
        self.e_ids: list[str] = []
        self.e_attempts: list[int] = []
        self.e_started: list[float] = []
        self.e_ended: list[float] = []
        self.e_ok: list[int] = []
        self.e_reruns: list[int] = []

    def started(self, task_run_id: str, when: float, attempt: int, lane: str,
                rerun: int = 0) -> None:
        self.s_ids.append(task_run_id)
        self.s_whens.append(when)
        self.s_attempts.append(attempt)
        self.s_lanes.append(lane)
        self.s_reruns.append(rerun)

    def ended(self, task_run_id: str, attempt: int, started: float, ended: float,
              ok: bool | None, rerun: int = 0) -> None:
        self.e_ids.append(task_run_id)
        self.e_attempts.append(attempt)
        self.e_started.append(started)
        self.e_ended.append(ended)
        self.e_ok.append(_OK[ok])
        self.e_reruns.append(rerun)

    def around(self, rows: list[list[Any]]) -> list[list[Any]]:
        """The message to send: these starts, ``rows`` (log lines and others), these ends."""
        out: list[list[Any]] = []
        if self.s_ids:
            lanes = self.s_lanes
            out.append(["S", _SEP.join(self.s_ids), array("d", self.s_whens).tobytes(),
                        _column(self.s_attempts, "q"),
                        lanes[0] if lanes.count(lanes[0]) == len(lanes) else lanes,
                        _column(self.s_reruns, "q")])
        out += rows
        if self.e_ids:
            out.append(["E", _SEP.join(self.e_ids), _column(self.e_attempts, "q"),
                        array("d", self.e_started).tobytes(),
                        array("d", self.e_ended).tobytes(), _column(self.e_ok, "b"),
                        _column(self.e_reruns, "q")])
        return out


def _reruns(msg: Any, at: int, count: int) -> list[int | None]:
    """A message's reruns column, None each from a worker of an older labloom."""
    return _values(msg[at], "q", count) if len(msg) > at else [None] * count


def starts_of(msg: Any) -> list[tuple[str, float, int, str, int | None]]:
    """An "S" message's starts: (task run id, when, attempt, lane, rerun)."""
    ids = msg[1].split(_SEP)
    count = len(ids)
    whens = array("d", msg[2]).tolist()
    attempts = _values(msg[3], "q", count)
    lanes = msg[4] if isinstance(msg[4], (list, tuple)) else [msg[4]] * count
    return list(zip(ids, whens, attempts, lanes, _reruns(msg, 5, count), strict=True))


def ends_of(msg: Any) -> list[tuple[str, int, float, float, bool | None, int | None]]:
    """An "E" message's ends: (task run id, attempt, started, ended, returned, rerun)."""
    ids = msg[1].split(_SEP)
    count = len(ids)
    attempts = _values(msg[2], "q", count)
    oks = [None if ok == 2 else bool(ok) for ok in _values(msg[5], "b", count)]
    return list(zip(ids, attempts, array("d", msg[3]).tolist(), array("d", msg[4]).tolist(),
                    oks, _reruns(msg, 6, count), strict=True))
