"""A Ctrl-C landing at a chosen point of labloom's code in the main thread, as a real one may.

CPython 3.11 runs a signal's Python handler (``default_int_handler`` raises KeyboardInterrupt)
only where it checks for pending calls: at a function's start (RESUME), at a loop's backward
jump, and right after a call into C returns (not after a Python function's return). ``Landing``
traces the main thread's opcodes in labloom's modules and calls the SIGINT handler installed at
that moment (as the signal would) at the ``number``-th such point, once. Tracing lines instead
would raise where no signal lands, such as before the call that leaves a ``with`` block, or
between a Python function's return and the ``try`` after it, and report leaks that cannot be.
A call into C that calls Python back is taken for a Python call: a few points are missed.
"""

from __future__ import annotations

import dis
import os
import select
import signal
import sys
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

import labloom

SRC = str(Path(labloom.__file__).parent)
_CHECKED = frozenset({"RESUME", "JUMP_BACKWARD"})
_CALLS = frozenset({"CALL", "CALL_FUNCTION_EX"})
_points: dict[CodeType, frozenset[int]] = {}


def _landing_offsets(code: CodeType) -> tuple[frozenset[int], frozenset[int]]:
    """Where signals are checked before the instruction, and where only if the call just
    made was into C."""
    found = _points.get(code)
    if found is None:
        always, after_c, after_call = set(), set(), False
        for ins in dis.get_instructions(code):
            if ins.opname in _CHECKED:
                always.add(ins.offset)
            elif after_call:
                after_c.add(ins.offset)
            after_call = ins.opname in _CALLS
        found = _points[code] = (frozenset(always), frozenset(after_c))
    return found


class Landing:
    """``sys.settrace(landing)`` in the main thread; ``where`` says where it landed."""

    def __init__(self, number: int, points: list[str] | None = None,
                 also: tuple[str, ...] = (), at: str | None = None,
                 after: str = "", signum: int = signal.SIGINT) -> None:
        self.number = number
        self.signum = signum  # whose handler is called: SIGTERM's, where a command has one
        self.also = also  # more modules' file names to land in (``threading.py``)
        # Or land at the ``number``-th point ``at`` (a ``where``) once one in ``after`` was
        # passed: the points' numbers move with the threads' timing when ``also`` has
        # threading's, not the order of the calls of one place.
        self.at, self.after, self._at_seen = at, after, 0
        self.seen = 0
        self.where: str | None = None
        self.points = points  # where each point is (a count's pass: ``number`` 0)
        self._python_callers: set[FrameType] = set()  # whose last call went to Python

    def __call__(self, frame: FrameType, event: str, arg: Any) -> Any:
        if frame.f_back is not None:  # a Python function starts (or a generator goes on)
            self._python_callers.add(frame.f_back)
        name = frame.f_code.co_filename
        if not name.startswith(SRC) and not (self.also and name.endswith(self.also)):
            return None
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        return self._opcode

    def _opcode(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "opcode":
            always, after_c = _landing_offsets(frame.f_code)
            offset = frame.f_lasti
            if offset in always or (offset in after_c and frame not in self._python_callers):
                self._land(frame)
            self._python_callers.discard(frame)
        return self._opcode

    def _land(self, frame: FrameType) -> None:
        self.seen += 1
        if self.at is not None:
            where = _where(frame)
            if self.after and where.startswith(self.after):
                self.after = ""
            if self.after or where != self.at:
                return
            self._at_seen += 1
            if self._at_seen != self.number:
                return
        else:
            if self.points is not None:
                self.points.append(_where(frame))
            if self.seen != self.number:
                return
        self.where = _where(frame)
        sys.settrace(None)
        self.arrive(frame)

    def arrive(self, frame: FrameType) -> None:
        """The signal, at the chosen point: its handler called, as the signal would."""
        handler = signal.getsignal(self.signum)
        if callable(handler):
            handler(self.signum, frame)
        elif handler == signal.SIG_DFL:  # the signal's own action: SIGTERM's ends the process
            os.kill(os.getpid(), self.signum)


class SignalAwaited(Landing):
    """A ``Landing`` where a real signal from another process lands: at its point it writes
    ``here`` (the point) and waits up to ``patience`` seconds for a SIGINT or SIGTERM, whose
    handler runs there. The wake-up fd wakes the wait also when the signal went to another
    thread of the process (its handler runs in the main thread all the same, here)."""

    def __init__(self, here: Path, number: int, at: str, after: str,
                 patience: float = 120.0) -> None:
        super().__init__(number, at=at, after=after)
        self.here, self.patience = here, patience

    def arrive(self, frame: FrameType) -> None:
        woken, wake = os.pipe()
        os.set_blocking(wake, False)
        previous = signal.set_wakeup_fd(wake)
        try:
            self.here.write_text(str(self.where))
            select.select([woken], [], [], self.patience)
        finally:
            signal.set_wakeup_fd(previous)
            os.close(woken)
            os.close(wake)


def _where(frame: FrameType) -> str:
    path = Path(frame.f_code.co_filename)
    name = path.relative_to(SRC) if path.is_relative_to(SRC) else path.name
    return f"{name}:{frame.f_lineno} {frame.f_code.co_name}"


def thread_start(points: list[str], module: str, function: str
                 ) -> tuple[str, list[tuple[str, int]]]:
    """Where a Ctrl-C lands as ``function`` of labloom's ``module`` makes and starts a thread
    (``points`` from a pass with ``also=("threading.py",)``): from the first point in
    ``threading.py`` after that function's first point to the next point in ``module`` after
    ``Thread.start``. Returns that first point (a ``Landing``'s ``after``) and each point's
    ``at`` and ``number``."""
    first = next(i for i, where in enumerate(points)
                 if where.startswith(f"{module}:") and where.endswith(f" {function}"))
    start = next(i for i in range(first, len(points)) if points[i].startswith("threading.py"))
    began = next(i for i in range(start, len(points))
                 if points[i].startswith("threading.py") and points[i].endswith(" start"))
    end = next((i for i in range(began, len(points)) if points[i].startswith(f"{module}:")),
               len(points))
    seen: dict[str, int] = {}
    for where in points[first:start]:
        seen[where] = seen.get(where, 0) + 1
    places = []
    for where in points[start:end]:
        seen[where] = seen.get(where, 0) + 1
        places.append((where, seen[where]))
    return points[first], places
