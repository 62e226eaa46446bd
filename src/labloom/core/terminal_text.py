"""Recorded text (names, messages, log lines: they come from tasks) as a terminal shows it:
each character that would drive the terminal written as an escape. A task could otherwise
rewrite the screen or the window title (ANSI and OSC sequences), hide text (carriage return,
NUL) or reorder it (bidirectional overrides, ``bidi.py``). A lone surrogate (a file name's byte
that is not UTF-8, as ``os.listdir`` gives it) is escaped too: UTF-8 output cannot hold it.

Here, in core, because more than the CLI's commands (``cli/terminal.py``) print names and
messages: the console progress of ``labloom run`` and of scripts (``dag/console_progress.py``)
and the task name before each line a task prints (``logs.py``)."""

from __future__ import annotations

import re

from .bidi import BIDI

# C0 controls but tab and newline, DEL, C1 controls, the bidirectional marks and overrides
# (those every view escapes: ``bidi.py``), and lone surrogates.
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


__all__ = ["encodable", "printable"]
