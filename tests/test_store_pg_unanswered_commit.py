"""A PostgreSQL commit whose answer never reaches the writer (the server crashed or the network
went right after it committed): the writer asks the server whether it landed and writes it
again only if it did not. Before, it always wrote it again: the batch's log lines, state
changes and logged values were stored twice."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from labloom import ThreadExecutor, flow, log_metrics, task
from labloom.store import db
from pg_commit_cut import CommitCutter
from pg_stored import stored_once


@pytest.fixture(params=["after the commit", "before the commit", "unnoticed by the server"])
def cut_store(postgres_server: Any, monkeypatch: pytest.MonkeyPatch,
           request: pytest.FixtureRequest) -> Iterator[tuple[CommitCutter, str]]:
    """The writer's connection cut as the server answers a COMMIT (it landed); as the COMMIT
    is sent (it did not: the server rolls it back, and the batch must be written); or so that
    the server does not notice (its transaction stays open, holding the run's row: the
    writer ends it, else it waited on that lock for good). With the database's own URL."""
    name = postgres_server.new_database()
    proxy = CommitCutter(postgres_server.socket_dir / ".s.PGSQL.5432",
                         commits=request.param == "after the commit",
                         held=request.param == "unnoticed by the server")
    url = proxy.url(name)
    monkeypatch.setenv("LABLOOM_DATABASE_URL", url)
    yield proxy, postgres_server.url(name)
    db.forget(url)
    proxy.close()
    postgres_server.drop_database(name)


@task
def child(i: int) -> int:
    print("line", i)
    log_metrics(score=i)
    return i


@flow
def sweep(n: int) -> object:
    return child.map(range(n))


def test_a_commit_whose_answer_is_lost_is_stored_once(
    cut_store: tuple[CommitCutter, str], caplog: pytest.LogCaptureFixture
) -> None:
    proxy, direct = cut_store
    sweep.run(n=2)  # the store exists: what is cut is a batch of the run below
    proxy.armed.set()
    run = sweep.run(n=300, executor=ThreadExecutor(4), background=True)
    assert run.wait(120).value == "Completed"
    assert proxy.cut.is_set(), "no COMMIT of log lines was cut"
    # The server had committed it (idle after it, not in a failed transaction), or never got it.
    assert proxy.answer == (b"I" if proxy.commits else b"")
    said = [r.getMessage() for r in caplog.records if r.name == "labloom"]
    assert sum("cannot be written now" in m for m in said) == 1, said  # the cut was seen
    stored_once(direct, run.id, 300)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_row_written_alone_whose_answer_is_lost_is_stored_once(
    cut_store: tuple[CommitCutter, str], caplog: pytest.LogCaptureFixture
) -> None:
    # A batch the server refuses (a row it will not take) is written one row a transaction
    # (``Rows.write_one_by_one``): the row whose commit goes unanswered is not written twice.
    import psycopg

    from labloom.store import unrecorded

    proxy, direct = cut_store
    sweep.run(n=2)
    with psycopg.connect(direct, autocommit=True) as owner:
        owner.execute("ALTER TABLE logs ADD CONSTRAINT no_seven CHECK (text <> 'line 7')")
    proxy.armed.set()
    run = sweep.run(n=300, executor=ThreadExecutor(4), background=True)
    assert run.wait(120).value == "Completed"
    assert proxy.cut.is_set(), "no COMMIT of a log line was cut"
    said = [r.getMessage() for r in caplog.records if r.name == "labloom"]
    assert any("writing them one by one" in m for m in said), said
    stored_once(direct, run.id, 300, refused=7)
    assert unrecorded(run.id).count == 1
