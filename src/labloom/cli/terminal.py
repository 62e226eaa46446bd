"""Text that labloom prints for people: log lines, names and messages come from tasks, so their
control characters are shown escaped, never sent. A task could otherwise rewrite the screen or
the window title (ANSI and OSC sequences), hide text (carriage return, NUL) or reorder it
(bidirectional overrides). A lone surrogate (a file name's byte that is not UTF-8, as
``os.listdir`` gives it) is shown escaped too: UTF-8 output cannot hold it, and printing it was
a traceback (``core/terminal_text.py``, shared with the console progress). ``--json`` output
keeps every character as it was recorded.
"""

from __future__ import annotations

import functools
import logging
import time

from ..core.terminal_text import printable


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
