"""Setting and reading a signal's Python handler without the ``signal`` module's enum
conversions: CPython's ``_signal``, the C module that ``signal.signal`` and ``signal.getsignal``
wrap (they convert the signal and the handler to and from enums, in Python, at every call).
``interrupts_held`` swaps the SIGINT and SIGTERM handlers around a few steps of every run:
through ``signal`` a swap and back took 6.5 µs, here 0.3 µs (0.2 ms of CPU a run of one task,
7%, in ``benchmarks/small_runs.py``). Fallback: ``signal``'s own. ``in_use()`` names the path
this Python takes; ``tests/test_interrupt_anywhere.py`` checks it.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

C_MODULE = "_signal"
WRAPPED = "signal"

set_handler: Callable[[int, Any], Any] = signal.signal
get_handler: Callable[[int], Any] = signal.getsignal
_path = WRAPPED
try:
    import _signal

    set_handler, get_handler, _path = _signal.signal, _signal.getsignal, C_MODULE
except (ImportError, AttributeError):  # another Python: the wrappers, slower, the same
    pass


def in_use() -> str:
    """Which functions set and read handlers here."""
    return _path
