"""Concurrency slots kept by a call that runs on after its task run ended: one cancelled while
it ran, or past its ``timeout=``, on threads (Python cannot stop a thread). A limit stands for
a GPU, a licence seat, an API quota, which that call still uses: its slots are given back when
it returns, not when its task run ended (before session 44, a limit of 1 let the next call run
beside it).

A rerun of the task run (``run.retry()``) while the call still runs takes the slots over: they
are held under the task run's id, and the old call's end would otherwise give back the slot
the rerun asked for (and its place in the line, so that it waited for good).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .attempt import StillRunning
    from .hooks import Limiter


class LateSlots:
    """The task runs whose slots wait for a call's end, by id: (attempt, rerun) of that call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, tuple[int, int]] = {}

    def keep(self, task_run_id: str, attempt: int, rerun: int) -> bool:
        """Keep the slots until that call's end (``call_ended``); False, always (for
        ``Launcher.release_slot``'s one condition)."""
        with self._lock:
            self._calls[task_run_id] = (attempt, rerun)
        return False

    def call_ended(self, task_run_id: str, attempt: int, rerun: int) -> bool:
        """Whether the slots of that call are to be given back now."""
        if not self._calls:
            return False
        with self._lock:
            if self._calls.get(task_run_id) != (attempt, rerun):
                return False
            del self._calls[task_run_id]
            return True

    def keep_until_returned(self, running: StillRunning, limiter: Limiter,
                            tags: frozenset[str], task_run_id: str, attempt: int,
                            rerun: int) -> None:
        """A timed-out call's slots, given back once its thread (``running``) returned."""
        self.keep(task_run_id, attempt, rerun)

        def returned() -> None:  # in that thread
            if self.call_ended(task_run_id, attempt, rerun):
                limiter.release(tags, task_run_id)

        running.when_ended(returned)

    def take_over(self, task_run_id: str) -> bool:
        """Whether the task run, launched again, holds its slots already (its old call's)."""
        if not self._calls:
            return False
        with self._lock:
            return self._calls.pop(task_run_id, None) is not None
