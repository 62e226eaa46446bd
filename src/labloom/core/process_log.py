"""labloom's own lines on the process's log (the ``labloom`` logger) that a thread holding a
run's lock has to say (``sinks.ExecutorSink.warn``: calls of a batch that came late, a stored
result that could not be read): said by one thread of their own, in order, holding no lock.

``logging`` takes each handler's lock around its emit, and a handler may take a run's lock
inside it: labloom's capture handler keeps a task's record in its run's logs, and so does a
``StreamHandler`` made on ``sys.stderr`` while tasks ran (labloom's proxy, which keeps a
task's lines). A line said under the run's lock waited for such a handler's lock while a task
logging through that handler held it and waited for the run's lock: the run never ended.
"""

from __future__ import annotations

import atexit
import logging
from typing import Any

from .idle_thread import IdleEndingThread

_sayer = IdleEndingThread("labloom-say", "labloom: saying a line on the process's log failed")
# At exit, the lines still queued get this long to be said: the thread is a daemon, and a
# script (the CLI) exiting right after its run ended lost them.
EXIT_WAIT = 2.0


def _said_at_exit() -> None:
    _sayer.wait_done(EXIT_WAIT)


# After ``threading``'s exit callbacks (``at_exit``: a run ended there may say a line), before
# ``logging``'s own ``shutdown`` (registered earlier, so run later), which flushes the handlers.
atexit.register(_said_at_exit)


def warn_later(message: str, *args: Any) -> None:
    """``logging.getLogger("labloom").warning(message, *args)``, said soon by another thread:
    for a thread that holds a run's lock."""
    _sayer.put(logging.getLogger("labloom").warning, message, *args)
