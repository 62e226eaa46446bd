"""The limiter's passes read only the head of each line (``StoreLimiter``), on both backends:
what only a pass over the whole line used to catch is still caught, by the pass over all of
this process's waiters once every ``FULL_PASS`` seconds and the line's sweep."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

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


def test_waiters_with_no_place_in_line_all_join_it_at_one_pass_over_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Task runs that asked while the store was away (a full disk: tests/test_chaos.py) wait
    # here with no place in its line. Before, each pass over all waiters queued one of them
    # (the rest skipped once one was refused): a pass a second, one task run each.
    labloom.limits.set("db", 1)
    limiter = StoreLimiter()
    passes: list[int] = []
    renew = limiter._with_limits_now
    monkeypatch.setattr(limiter, "_with_limits_now", lambda w: passes.append(len(w)) or renew(w))
    granted: list[str] = []
    assert limiter.acquire(frozenset({"db"}), "first", lambda: None)
    names = [f"w{i}" for i in range(20)]
    for name in names:
        assert not limiter.acquire(frozenset({"db"}), name, lambda name=name: granted.append(name))
    store.connection().execute("DELETE FROM concurrency_waiters")  # their places lost
    lost_at = len(passes)
    wait_for(lambda: store.waiting("db") == len(names), 60, "every waiter in line again")
    assert len(passes) - lost_at <= 2, passes  # one, and one begun as the places went
    limiter.release(frozenset({"db"}), "first")
    wait_for(lambda: granted, 60, "the first waiter")
    assert granted == ["w0"]
    for name in names:
        limiter.release(frozenset({"db"}), name)
    assert store.holders("db") == 0 and store.waiting("db") == 0


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


def test_the_limiter_reads_its_beat_interval_once_as_its_thread_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The store's settings are fixed as its Database is made: before, the thread asked the
    # store for the interval at every poll, ten times a second, taking the store's lock.
    monkeypatch.setenv("LABLOOM_HEARTBEAT_TIMEOUT", "2.4")  # a beat every 0.2 s
    labloom.limits.set("db", 1)
    asked: list[float] = []
    beats: list[set[str]] = []
    read, beat = store.beat_every, store.beat
    monkeypatch.setattr(store, "beat_every", lambda: asked.append(read()) or asked[-1])
    monkeypatch.setattr(store, "beat", lambda held: beats.append(set(held)) or beat(held))
    limiter = StoreLimiter()
    granted: list[str] = []
    assert limiter.acquire(frozenset({"db"}), "first", lambda: None)
    assert not limiter.acquire(frozenset({"db"}), "second", lambda: granted.append("second"))
    # two beats: the thread went through polls enough (at least the interval apart)
    wait_for(lambda: len(beats) >= 2, 60, "two beats of the limiter")
    assert beats[-1] == {"first", "second"}
    limiter.release(frozenset({"db"}), "first")
    wait_for(lambda: granted, 60, "the second one granted")
    limiter.release(frozenset({"db"}), "second")
    assert asked == [read()], asked  # before: once per poll
