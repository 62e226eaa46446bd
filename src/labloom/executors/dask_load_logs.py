"""distributed's own log of a value this process cannot load, said once: by labloom's error.

When a value brought from the cluster cannot be unpickled here, distributed logs a CRITICAL
"Failed to deserialize" with the loader's traceback before its client raises that same error.
Read through labloom, the user then gets a ``ResultLoadError`` naming the task run and the fix,
with that error as its cause: the CRITICAL said the same thing first, louder and without the
task run (and once more per try, as a chunk's children are read one by one). So while labloom
reads (``said_by_us``), such records are held back; those of the errors the read took up
(``absorb``) are dropped, any other (another thread's read failing meanwhile) is let through
as the last read ends: nothing that labloom did not say is lost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_LOGGER = "distributed.protocol.core"  # where distributed's ``loads`` logs the failure
_MESSAGE = "Failed to deserialize"


class _HeldBack(logging.Filter):
    """On distributed's logger while at least one read of labloom's runs."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.reads = 0
        self.held: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != _MESSAGE or not record.exc_info:
            return True
        with self.lock:
            if not self.reads:
                return True
            self.held.append(record)
        return False


_held_back = _HeldBack()


@contextmanager
def said_by_us() -> Iterator[Callable[[BaseException], None]]:
    """Within: a read of values; call the function given with each loading error the read
    takes up (raised again as a ``ResultLoadError``, or got round): its log record is dropped."""
    taken: list[BaseException] = []
    logger = logging.getLogger(_LOGGER)
    with _held_back.lock:
        _held_back.reads += 1
        if _held_back.reads == 1:
            logger.addFilter(_held_back)
    try:
        yield taken.append
    finally:
        with _held_back.lock:
            _held_back.reads -= 1
            _held_back.held = [record for record in _held_back.held
                               if not any(record.exc_info[1] is error  # type: ignore[index]
                                          for error in taken)]
            others: list[logging.LogRecord] = []
            if not _held_back.reads:
                logger.removeFilter(_held_back)
                others, _held_back.held = _held_back.held, []
        for record in others:
            logger.handle(record)
