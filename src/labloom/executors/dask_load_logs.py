"""distributed's own log of a value that cannot be loaded here, or of an argument that cannot
be pickled, said once: by labloom's error.

When a value brought from the cluster cannot be unpickled here, distributed logs a CRITICAL
"Failed to deserialize" with the loader's traceback before its client raises that same error.
Read through labloom, the user then gets a ``ResultLoadError`` naming the task run and the fix,
with that error as its cause: the CRITICAL said the same thing first, louder and without the
task run (and once more per try, as a chunk's children are read one by one). Likewise a task's
argument that cannot be pickled (a lock, objects nested too deep): distributed logs an ERROR
"Failed to serialize" with pickle's traceback (pages of it, for a RecursionError), and labloom
fails the task run with an error naming the argument and the fix. So while labloom reads
(``said_by_us``) or pickles (``pickling_said_by_us``), such records are held back; those of
the errors it took up (``absorb``) are dropped, any other (another thread's meanwhile) is let
through as the last such read ends: nothing that labloom did not say is lost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager


class _HeldBack(logging.Filter):
    """On one of distributed's loggers while at least one of labloom's reads (or pickles)
    runs: its records of ``message`` with a traceback."""

    def __init__(self, logger: str, message: str) -> None:
        super().__init__()
        self.logger = logger
        self.message = message
        self.lock = threading.Lock()
        self.reads = 0
        self.held: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != self.message or not record.exc_info:
            return True
        with self.lock:
            if not self.reads:
                return True
            self.held.append(record)
        return False

    @contextmanager
    def held_back(self) -> Iterator[Callable[[BaseException], None]]:
        taken: list[BaseException] = []
        logger = logging.getLogger(self.logger)
        with self.lock:
            self.reads += 1
            if self.reads == 1:
                logger.addFilter(self)
        try:
            yield taken.append
        finally:
            with self.lock:
                self.reads -= 1
                self.held = [record for record in self.held
                             if not any(record.exc_info[1] is error  # type: ignore[index]
                                        for error in taken)]
                others: list[logging.LogRecord] = []
                if not self.reads:
                    logger.removeFilter(self)
                    others, self.held = self.held, []
            for record in others:
                logger.handle(record)


# Where distributed's ``loads`` and ``dumps`` log their failures.
_loads = _HeldBack("distributed.protocol.core", "Failed to deserialize")
_dumps = _HeldBack("distributed.protocol.pickle", "Failed to serialize %s.")


def said_by_us() -> AbstractContextManager[Callable[[BaseException], None]]:
    """Within: a read of values; call the function given with each loading error the read
    takes up (raised again as a ``ResultLoadError``, or got round): its log record is dropped."""
    return _loads.held_back()


def pickling_said_by_us() -> AbstractContextManager[Callable[[BaseException], None]]:
    """Within: a task's argument pickled; call the function given with the error that labloom
    raises again, naming the argument: its log record is dropped."""
    return _dumps.held_back()
