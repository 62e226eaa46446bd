"""Text that labloom prints for people: log lines, names and messages come from tasks, so their
control characters are shown escaped, never sent. A task could otherwise rewrite the screen or
the window title (ANSI and OSC sequences), hide text (carriage return, NUL) or reorder it
(bidirectional overrides). A lone surrogate (a file name's byte that is not UTF-8, as
``os.listdir`` gives it) is shown escaped too: UTF-8 output cannot hold it, and printing it was
a traceback. ``--json`` output keeps every character as it was recorded.
"""

from __future__ import annotations

import functools
import logging
import re
import time

from ..dag.bidi import BIDI

# C0 controls but tab and newline, DEL, C1 controls, the bidirectional marks and overrides
# (those every view escapes: ``dag/bidi.py``), and lone surrogates.
_UNSAFE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{BIDI}\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every character that would drive a terminal written as an escape."""
    return _UNSAFE.sub(_escape, text)


def encodable(text: str) -> str:
    """``text`` with each lone surrogate written as an escape (``caf\\udce9.csv``), the rest
    kept: for output that is data (``--csv``), which UTF-8 must be able to hold."""
    return _SURROGATE.sub(_escape, text)


def echo(text: str = "") -> None:
    """Print one line (or lines) of text for people."""
    print(printable(text))


def shown_time(stamp: float | None) -> str:
    """A time as the CLI shows it (local, to the second), or ``-`` for none."""
    return _second(int(stamp // 1)) if stamp else "-"


@functools.lru_cache(maxsize=16)
def _second(second: int) -> str:
    # A run's log lines come many a second: each second written once (0.13 s of 100,000 lines).
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))


def log_line(stamp: float, level: int, task: str, text: str) -> str:
    """A log line as ``labloom logs`` prints it (``echo`` escapes it)."""
    return f"{shown_time(stamp)} {logging.getLevelName(level):<7} {task or '(flow)'} | {text}"
