"""SIGTERM and SIGINT asking `labloom serve` to stop, and its sleeps between ticks that they end.

The handler only sets attributes. A Python signal handler runs in the main thread between two
of its bytecodes, wherever that thread is: inside ``threading.Event.wait`` too, which holds the
event's lock (not reentrant) for a few lines before and after its sleep. An ``Event.set`` in
the handler then waited for that lock forever: a serve on a busy machine (its main thread
paused inside those lines when the signal came) did not stop on SIGTERM, nor on a second one,
until killed. So the sleep is a ``select`` on the interpreter's wakeup fd
(``signal.set_wakeup_fd``), to which its C-level handler writes a byte the moment a signal
comes: the wait ends at once, and nothing the handler does takes a lock.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
from types import FrameType


class StopSignals:
    """``stopping`` once SIGTERM or SIGINT came, ``hurry`` once one came again."""

    def __init__(self) -> None:
        self.stopping = False
        self.hurry = False
        self._wake, self._woken_by = os.pipe()
        for fd in (self._wake, self._woken_by):
            os.set_blocking(fd, False)
        self._installed = False

    def install(self) -> None:
        """Take SIGTERM and SIGINT (from the main thread, as Python requires)."""
        signal.set_wakeup_fd(self._woken_by, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self.handle)
        signal.signal(signal.SIGINT, self.handle)
        self._installed = True

    def handle(self, signum: int, frame: FrameType | None) -> None:
        # Attributes only: see the module's docstring.
        self.hurry = self.stopping
        self.stopping = True

    def wait(self, timeout: float) -> None:
        """Sleep up to ``timeout`` seconds, less when a signal comes meanwhile (or came since
        the last wait: its byte is still there)."""
        select.select([self._wake], [], [], timeout)
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake, 512):
                pass

    def close(self) -> None:
        if self._installed:
            signal.set_wakeup_fd(-1)
            self._installed = False
        for fd in (self._wake, self._woken_by):
            with contextlib.suppress(OSError):
                os.close(fd)
