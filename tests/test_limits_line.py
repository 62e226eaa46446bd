"""A long line behind a concurrency limit: each freed slot asks the store about the first
waiters only, not about every waiter (one store transaction each), so a map of many task runs
behind a small limit costs the store a few questions per task run, not one per waiter."""

from __future__ import annotations

from typing import Any

import pytest

import labloom
from cli_helpers import wait_for
from labloom import State, ThreadExecutor, flow, task
from labloom.store import concurrency_slots
from labloom.store.concurrency_limiter import StoreLimiter


@task(tags=["one-at-a-time"])
def step(i: int) -> int:
    return i


@flow
def line(n: int) -> list[int]:
    return step.map(range(n))  # type: ignore[return-value]


def test_a_freed_slot_asks_the_store_about_the_first_waiters_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[str] = []
    real = concurrency_slots.try_take

    def counted(limits: dict[str, int], holder: str, queue: bool = False) -> Any:
        asked.append(holder)
        return real(limits, holder, queue=queue)

    monkeypatch.setattr(concurrency_slots, "try_take", counted)
    labloom.limits.set("one-at-a-time", 1)
    n = 300
    run = line.run(n=n, executor=ThreadExecutor(8))
    assert run.state is State.COMPLETED
    assert run.result() == list(range(n))
    # Each task run asks once when it arrives and about twice more in line (when it is next,
    # and when it is granted); asking every waiter on every freed slot made it ~n/2 each.
    assert len(asked) < 6 * n, f"{len(asked)} questions to the store for {n} task runs"


def test_the_line_is_asked_in_the_stores_order_not_in_the_order_waiters_came_here() -> None:
    # Two threads can queue in the store in one order and reach the limiter's own list in the
    # other (and a place given back late sends its holder to the end of the store's line).
    # Asked in the list's order, the store's head was never asked: it waited for good.
    labloom.limits.set("one", 1)
    limiter = StoreLimiter()
    granted: list[str] = []
    assert limiter.acquire(frozenset({"one"}), "first", lambda: granted.append("first"))
    assert not limiter.acquire(frozenset({"one"}), "second", lambda: granted.append("second"))
    assert not limiter.acquire(frozenset({"one"}), "third", lambda: granted.append("third"))
    limiter._waiting.reverse()  # third, then second: the order the race leaves
    limiter.release(frozenset({"one"}), "first")
    wait_for(lambda: granted, 10, "the slot given back reaches the line's head")
    assert granted == ["second"]
    limiter.release(frozenset({"one"}), "second")
    wait_for(lambda: len(granted) == 2, 10, "the next in line")
    assert granted == ["second", "third"]
    limiter.release(frozenset({"one"}), "third")
