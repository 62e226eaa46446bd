"""Bidirectional marks, embeddings, overrides and isolates in recorded text (a flow's or a
task's name, a log line, a parameter) reorder what follows them on screen ("Trojan Source": a
state read backwards, "total: \\u202e0001" read as 1000). Every view shows them escaped: the
CLI and the console progress (``terminal_text.py``), the notebook's HTML summary and its drawing, and in the browser
js/src/bidi.js (the same characters, the same escapes). The store, the REST API and ``--json``
keep every character."""

from __future__ import annotations

import re

# A regular expression's character class body: terminal_text.py adds it to its own.
BIDI = "\u200e\u200f\u202a-\u202e\u2066-\u2069"
_BIDI = re.compile(f"[{BIDI}]")


def escape_bidi(text: str) -> str:
    """``text`` with each bidirectional control written out as ``\\uXXXX``."""
    return _BIDI.sub(lambda match: f"\\u{ord(match.group()):04x}", text)
