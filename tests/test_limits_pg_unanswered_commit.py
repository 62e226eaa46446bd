"""A concurrency slot taken on PostgreSQL whose COMMIT goes unanswered (the server crashed or the
network went right after it committed): the limiter, seeing only a broken connection, asks for
the slot again with the same holder. Before, its own slot, landed, counted against it: with a
limit of 1 the tag was full of itself, and that task run, and every one after it, waited for
ever (its heartbeat, beaten by the live process, kept the slot from being swept)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import labloom
from labloom import ThreadExecutor, flow, task
from labloom.store import concurrency_slots as slots
from pg_commit_cut import CommitCutter, cut_database


@pytest.fixture(params=["after the commit", "before the commit", "unnoticed by the server"])
def cut_slots(postgres_server: Any, monkeypatch: pytest.MonkeyPatch,
              request: pytest.FixtureRequest) -> Iterator[CommitCutter]:
    """The first COMMIT, once armed, of a transaction taking a slot cut as the server answers
    it (it landed), or as it is sent (it did not: the slot must still be taken)."""
    with cut_database(postgres_server, monkeypatch, writes=(b"INTO concurrency_slots ",),
                      commits=request.param == "after the commit",
                      held=request.param == "unnoticed by the server") as proxy:
        yield proxy


@task(tags=["db"])
def limited(i: int) -> int:
    return i


@flow
def few(n: int) -> object:
    return limited.map(range(n))


def test_a_slot_whose_commit_answer_is_lost_is_not_held_against_its_holder(
    cut_slots: CommitCutter,
) -> None:
    proxy = cut_slots
    labloom.limits.set("db", 1)
    proxy.armed.set()
    run = few.run(n=4, executor=ThreadExecutor(2), background=True)
    assert run.wait(90).value == "Completed"  # before: Running, the first task run waiting
    assert proxy.cut.is_set(), "no COMMIT of a slot was cut"
    assert run.result() == [0, 1, 2, 3]
    assert slots.holders("db") == 0 and slots.waiting("db") == 0  # none left behind


@pytest.mark.parametrize("cut", [b"INTO concurrency_waiters ",
                                 b"DELETE FROM concurrency_slots WHERE holder"],
                         ids=["a place in line taken", "a slot given back"])
def test_a_write_cut_unnoticed_does_not_hold_the_tag(
    postgres_server: Any, monkeypatch: pytest.MonkeyPatch, cut: bytes
) -> None:
    # A take that joins the line, or a slot given back, its connection cut as the COMMIT is
    # sent, the server not noticing: the server ends that transaction once idle
    # (``lock_briefly``, ``brief``). Before, it stayed open for hours (TCP keepalive): the
    # place's take held the tag's lock (its last statement a psycopg executemany, a pipeline,
    # after which the server never timed it out), the give back its slot, counted and its row
    # locked, which the limiter's next give back waited on; no other task run started.
    with cut_database(postgres_server, monkeypatch, commits=False, held=True,
                      writes=(cut,)) as proxy:
        labloom.limits.set("db", 1)
        proxy.armed.set()
        run = few.run(n=4, executor=ThreadExecutor(2), background=True)
        assert run.wait(90).value == "Completed"  # before: Running
        assert proxy.cut.is_set(), "no COMMIT was cut"
        assert slots.holders("db") == 0 and slots.waiting("db") == 0
