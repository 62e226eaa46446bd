"""The limiter's passes read only the head of each line (``StoreLimiter``), on both backends:
what only a pass over the whole line used to catch is still caught, by the pass over all of
this process's waiters once every ``FULL_PASS`` seconds and the line's sweep."""

from __future__ import annotations

import subprocess
import sys
import time

import labloom
from cli_helpers import wait_for
from labloom.store import concurrency_slots as store
from labloom.store.concurrency_limiter import StoreLimiter


def test_a_waiter_whose_place_was_swept_joins_the_line_again_and_is_granted() -> None:
    # Its process could not beat in time (a laptop asleep), so another swept its place: it is
    # in no line's head, and only the pass over all waiters asks it again.
    labloom.limits.set("db", 1)
    limiter = StoreLimiter()
    granted: list[str] = []
    assert limiter.acquire(frozenset({"db"}), "first", lambda: None)
    assert not limiter.acquire(frozenset({"db"}), "lost", lambda: granted.append("lost"))
    store.connection().execute("DELETE FROM concurrency_waiters WHERE holder = 'lost'")
    limiter.release(frozenset({"db"}), "first")
    wait_for(lambda: granted, 10 * limiter.FULL_PASS, "the waiter that lost its place")
    assert store.holders("db") == 1 and store.waiting("db") == 0
    limiter.release(frozenset({"db"}), "lost")
    assert store.holders("db") == 0


def test_a_dead_waiter_at_the_head_of_a_long_line_is_swept_and_the_next_granted() -> None:
    # The dead one is all the head there is (one slot), so no pass asks about this process's
    # waiters behind it until the line is swept: at most a second after the last sweep.
    labloom.limits.set("db", 1)
    limiter = StoreLimiter()
    granted: list[str] = []
    assert limiter.acquire(frozenset({"db"}), "first", lambda: None)
    assert not limiter.acquire(frozenset({"db"}), "early", lambda: None)  # sweeps, now
    limiter.release(frozenset({"db"}), "early")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store.connection().execute(
        "INSERT INTO concurrency_waiters (tag, holder, host, pid, beat) "
        "VALUES ('db', 'ghost', ?, ?, ?)", (store._host(), dead.pid, time.time()))
    names = [f"w{i}" for i in range(50)]
    for name in names:
        assert not limiter.acquire(frozenset({"db"}), name, lambda name=name: granted.append(name))
    limiter.release(frozenset({"db"}), "first")
    wait_for(lambda: granted, 10 * store.SWEEP_EVERY + 10 * limiter.FULL_PASS,
             "the first live waiter behind a dead one")
    assert granted == ["w0"]
    assert store.waiting("db") == len(names) - 1  # the ghost is gone
    for count, name in enumerate(names, 1):
        limiter.release(frozenset({"db"}), name)
        if count < len(names):
            wait_for(lambda count=count: len(granted) == count + 1, 60, f"grant {count + 1}")
    assert granted == names
    assert store.holders("db") == 0 and store.waiting("db") == 0
