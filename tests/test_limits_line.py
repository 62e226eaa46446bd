"""A long line behind a concurrency limit: each freed slot asks the store about the first
waiters only, not about every waiter (one store transaction each), so a map of many task runs
behind a small limit costs the store a few questions per task run, not one per waiter."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

import labloom
from cli_helpers import wait_for
from labloom import State, ThreadExecutor, flow, task
from labloom.store import concurrency_slots
from labloom.store.concurrency_limiter import StoreLimiter
from store_helpers import ThreadsWithLimiter


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
    limiter._waiting = dict(reversed(limiter._waiting.items()))  # the order the race leaves
    limiter.release(frozenset({"one"}), "first")
    wait_for(lambda: granted, 60, "the slot given back reaches the line's head")
    assert granted == ["second"]
    limiter.release(frozenset({"one"}), "second")
    wait_for(lambda: len(granted) == 2, 60, "the next in line")
    assert granted == ["second", "third"]
    limiter.release(frozenset({"one"}), "third")



def test_waiters_asking_from_many_threads_are_granted_in_the_stores_line_order() -> None:
    # The limiter's own list has no order: 12 threads ask at once (they reach the store and
    # the list in different orders, and the list is then reversed besides); each slot given
    # back still goes to the next in the store's line.
    labloom.limits.set("one", 1)
    limiter = StoreLimiter()
    granted: list[str] = []
    assert limiter.acquire(frozenset({"one"}), "head", lambda: None)
    names = [f"waiter-{i}" for i in range(12)]
    together = threading.Barrier(len(names))

    def ask(name: str) -> None:
        together.wait(60)
        assert not limiter.acquire(frozenset({"one"}), name, lambda: granted.append(name))

    threads = [threading.Thread(target=ask, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    wait_for(lambda: len(limiter._waiting) == len(names), 60, "every waiter in the list")
    place = concurrency_slots.places(["one"])
    line = sorted(names, key=place.__getitem__)
    limiter._waiting = dict(reversed(limiter._waiting.items()))
    holder = "head"
    for count in range(1, len(names) + 1):
        limiter.release(frozenset({"one"}), holder)
        wait_for(lambda count=count: len(granted) == count, 60, f"grant number {count}")
        holder = granted[-1]
    limiter.release(frozenset({"one"}), holder)
    assert granted == line
    assert concurrency_slots.holders("one") == 0 and concurrency_slots.waiting("one") == 0

class _LateGiveBack(StoreLimiter):
    """Gives a slot back only once the same holder asked for one again (or after 2 s), as a
    thread that pops the slot to give back and is then descheduled does."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = 0
        self.asked_again = threading.Event()
        self.gave_back = threading.Event()

    def acquire(self, tags: frozenset[str], holder: str, granted: Callable[[], None]) -> bool:
        taken = super().acquire(tags, holder, granted)
        self.asked += 1
        if self.asked > 1:  # the retry's (the task's first attempt asked first)
            self.asked_again.set()
        return taken

    def release(self, tags: frozenset[str], holder: str) -> None:
        self.asked_again.wait(2)
        super().release(tags, holder)
        self.gave_back.set()


def test_a_retry_asks_for_its_slot_only_after_its_first_attempt_gave_it_back() -> None:
    # The first attempt's slot is given back by one thread (whichever applied its end) while
    # the retry timer's thread launches the retry. Asked meanwhile, the retry queued in the
    # store as the slot's own holder, then the late give-back removed that place: never
    # granted, the run waited for good (the limited map stalled in about 1 run in 4).
    labloom.limits.set("one", 1)
    tried: list[int] = []

    @task(tags=["one"], retries=1, retry_delay=0.2)
    def flaky() -> int:
        tried.append(1)
        if len(tried) == 1:
            raise ValueError("first attempt")
        return len(tried)

    @flow
    def once() -> int:
        return flaky()  # type: ignore[return-value]

    limiter = _LateGiveBack()
    run = once.run(executor=ThreadsWithLimiter(limiter), background=True)
    run.wait(60)
    assert run.state is State.COMPLETED, f"{run.state}: stalled on a slot given back late"
    assert run.result() == 2
    assert limiter.gave_back.is_set()
    assert concurrency_slots.holders("one") == 0 and concurrency_slots.waiting("one") == 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize("change", ["raised", "deleted"])
def test_a_limit_changed_while_task_runs_wait_applies_to_them(change: str) -> None:
    # `labloom limit set db 3` during a night's run, its map queued behind limit 1: the
    # waiters kept the limit they had queued under, one at a time to the run's end.
    labloom.limits.set("one", 1)
    limiter = StoreLimiter()
    granted: list[str] = []
    assert limiter.acquire(frozenset({"one"}), "first", lambda: granted.append("first"))
    for holder in ("second", "third"):
        assert not limiter.acquire(frozenset({"one"}), holder, lambda h=holder: granted.append(h))
    if change == "raised":
        labloom.limits.set("one", 3)
    else:
        labloom.limits.delete("one")
    # "first" still holds its slot: granted by the new limit, not by a slot given back
    wait_for(lambda: len(granted) == 2, 60, "both waiters granted")
    assert granted == ["second", "third"]
    for holder in ("first", "second", "third"):
        limiter.release(frozenset({"one"}), holder)
