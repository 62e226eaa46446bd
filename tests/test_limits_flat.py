"""A long line behind a concurrency limit costs each task run what a short one does: the store
work of a take, a grant, a slot or place given back and a pass of the limiter's thread does not
grow with the line (SQLite's virtual-machine steps counted, the same on every machine). Before
the holder indexes and the bounded counts, each read the whole line: a map of 2,000 task runs
behind 4 slots cost about 4 times per task run what a map of 500 did."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import labloom
from labloom import State, ThreadExecutor, flow, task
from labloom.store import concurrency_slots as store
from labloom.store.concurrency_limiter import StoreLimiter


@pytest.fixture(autouse=True)
def no_timed_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    # The line is swept, and the limiter asks over all its waiters, once a second: work per
    # second, not per task run, left out here so that what is counted does not hang on timing.
    monkeypatch.setattr(store, "SWEEP_EVERY", 3600.0, raising=False)
    monkeypatch.setattr(StoreLimiter, "FULL_PASS", 3600.0, raising=False)


class Steps:
    """SQLite virtual-machine steps run on this process's limits connection."""

    def __init__(self) -> None:
        self.count = 0
        store.connection().raw.set_progress_handler(self._step, 1)

    def _step(self) -> int:
        self.count += 1
        return 0

    def of(self, call: Callable[[], Any]) -> int:
        before = self.count
        call()
        return self.count - before


def _line_of(length: int, home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """The steps of each thing a task run asks of the store, in a fresh store whose one slot is
    held and ``length`` waiters stand in line."""
    monkeypatch.setenv("LABLOOM_HOME", str(home))
    labloom.limits.set("db", 1)
    conn = store.connection()
    now = time.time()
    with conn.transaction():
        conn.execute("INSERT INTO concurrency_slots (tag, holder, host, pid, acquired, beat) "
                     "VALUES ('db', 'holder', ?, ?, ?, ?)", (store._host(), os.getpid(), now, now))
        conn.executemany("INSERT INTO concurrency_waiters (tag, holder, host, pid, beat) "
                         "VALUES ('db', ?, ?, ?, ?)",
                         [(f"w{i}", store._host(), os.getpid(), now) for i in range(length)])
    steps = Steps()
    assert not store.try_take({"db": 1}, "first", queue=True)  # sweeps the line, once
    counted = {
        "arrives, refused": steps.of(
            lambda: store.try_take({"db": 1}, "arriving", queue=True)),
        "a waiter gives its place back": steps.of(lambda: store.give_back(f"w{length // 2}")),
        "the slot is given back": steps.of(lambda: store.give_back("holder")),
        "far back, refused": steps.of(lambda: store.try_take({"db": 1}, f"w{length - 3}")),
        "the head, granted": steps.of(lambda: store.try_take({"db": 1}, "w0", queue=True)),
        "next, refused": steps.of(lambda: store.try_take({"db": 1}, "w1", queue=True)),
    }
    if hasattr(store, "line_heads"):
        counted["the head read"] = steps.of(lambda: store.line_heads({"db": 1}))
    assert store.holders("db") == 1 and store.waiting("db") == length  # two came, two left
    return counted


def test_each_thing_a_task_run_asks_costs_the_same_in_a_long_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    short = _line_of(100, tmp_path / "short", monkeypatch)
    long = _line_of(2_000, tmp_path / "long", monkeypatch)
    grew = {what: (short[what], long[what]) for what in short
            if long[what] > 1.2 * short[what] + 20}
    assert not grew, f"steps with 100 waiters, with 2,000: {grew}"


def test_holders_are_found_by_index() -> None:
    conn = store.connection()
    for sql in ("DELETE FROM concurrency_waiters WHERE holder = 'h'",
                "SELECT seq FROM concurrency_waiters WHERE holder = 'h' AND tag = 'db'",
                "UPDATE concurrency_waiters SET beat = 1 WHERE holder = 'h'",
                "DELETE FROM concurrency_slots WHERE holder = 'h'"):
        plan = " ".join(row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
        assert "_by_holder" in plan, f"{sql}: {plan}"


@task(tags=["flat"])
def child(i: int) -> int:
    return i


@flow
def limited(n: int) -> list[int]:
    return child.map(range(n))  # type: ignore[return-value]


def test_a_limited_maps_store_work_per_task_run_does_not_grow_with_its_length(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    per_run = {}
    for n in (150, 600):
        monkeypatch.setenv("LABLOOM_HOME", str(tmp_path / str(n)))
        labloom.limits.set("flat", 2)
        steps = Steps()
        run = limited.run(n=n, executor=ThreadExecutor(4))
        assert run.state is State.COMPLETED and run.result() == list(range(n))
        assert store.holders("flat") == 0 and store.waiting("flat") == 0
        per_run[n] = steps.count / n
    # Before: about 4 times as many steps per task run in the map 4 times as long.
    assert per_run[600] < 1.5 * per_run[150], f"steps per task run: {per_run}"
