"""A run is finished only once the concurrency slots of its task runs are given back, whichever
thread gives them back: a give-back is a store write that another thread may still be making
when the last task run ends (CI caught ``holders == 1`` just after a limited map returned)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from labloom import State, flow, task
from store_helpers import ThreadsWithLimiter


class SlowLimiter:
    """Grants from a thread of its own, as the store's limiter does (that thread then launches
    and gives back slots for the run); each give-back takes a while, as a busy store's write
    does."""

    def __init__(self) -> None:
        self.held: set[str] = set()
        self.lock = threading.Lock()

    def acquire(self, tags: frozenset[str], holder: str,
                granted: Callable[[], None]) -> bool:
        with self.lock:
            self.held.add(holder)
        threading.Thread(target=granted, name="limiter-grant").start()
        return False

    def release(self, tags: frozenset[str], holder: str) -> None:
        time.sleep(0.2)
        with self.lock:
            self.held.discard(holder)


@task(tags=["db"])
def query(x: int) -> int:
    return x


@flow
def queries(n: int) -> None:
    query.map(range(n))


def test_a_finished_run_has_given_back_every_slot() -> None:
    limiter = SlowLimiter()
    for n in (1, 6):
        run = queries.run(n=n, executor=ThreadsWithLimiter(limiter))
        assert run.state is State.COMPLETED
        assert limiter.held == set(), f"slots still held after the run of {n}: {limiter.held}"
