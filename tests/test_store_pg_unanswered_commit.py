"""A PostgreSQL commit whose answer never reaches the writer (the server crashed or the network
went right after it committed): the writer asks the server whether it landed and writes it
again only if it did not. Before, it always wrote it again: the batch's log lines, state
changes and logged values were stored twice."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from cli_helpers import wait_for
from labloom import ThreadExecutor, flow, log_metrics, task
from labloom.store import db
from pg_commit_cut import CommitCutter, cut_database
from pg_stored import stored, stored_once


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


MORE = threading.Event()  # the task's second lines
GO = threading.Event()  # its last lines, and its end


@task
def speaks() -> int:
    print("line 0")
    assert MORE.wait(120)
    for i in range(1, 11):
        print(f"line {i}")
    assert GO.wait(120)
    for i in range(11, 21):
        print(f"line {i}")
    return 21


@flow
def talk() -> object:
    return speaks()


def test_a_runs_last_write_that_finds_its_reserve_emptied_keeps_its_lines(
    postgres_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server goes (a crash: its recovery empties the unlogged reserve, here emptied by
    # hand) right after committing a batch of lines: the writer back finds that it landed and
    # writes nothing (``unanswered_commits``), so it looks at its reserve only at its next
    # write, here the run's last. Finding it empty it held that write's lines "for want of
    # room" and, the run ended, never tried again: exit status 3 on a disk with room (the CI
    # of 8bd72be, test_a_reserve_emptied_by_a_servers_crash_recovery_is_made_again).
    import psycopg

    from labloom.core import events as ev
    from labloom.store import unrecorded
    from labloom.store.writer import Writer

    ended = threading.Event()  # the run's end is queued for the writer
    real_put = Writer.put

    def put(writer: Writer, rec: Any, batch: Any) -> int:  # a spy: the real put, then told
        seq = real_put(writer, rec, batch)
        if any(isinstance(event, ev.RunFinished) for event in batch):
            ended.set()
        return seq

    monkeypatch.setattr(Writer, "put", put)
    MORE.clear()
    GO.clear()
    with cut_database(postgres_server, monkeypatch, goes_down=True) as proxy:
        run = talk.run(background=True)
        with psycopg.connect(proxy.direct, autocommit=True) as owner:
            # The writer made its reserve, then wrote the first line.
            wait_for(lambda: owner.execute("SELECT count(*) FROM logs").fetchone()[0], 120,
                     "the first line")
            assert owner.execute("SELECT pg_relation_size('labloom_reserve')").fetchone()[0]
            owner.execute("TRUNCATE labloom_reserve")  # as the server's crash recovery does
        proxy.armed.set()
        MORE.set()
        assert proxy.cut.wait(120), "no COMMIT of log lines was cut"
        assert proxy.answer == b"I"  # it landed
        GO.set()
        assert ended.wait(120), "the run's end never reached the writer"
        proxy.down.clear()  # the server back: its first write is the run's end
        assert run.wait(120).value == "Completed"
        assert unrecorded(run.id) is None  # before: 10 (or 20) lines "waiting for room"
        lines, _, _ = stored(proxy.direct, run.id)
        assert sorted(int(text.split()[1]) for text in lines) == list(range(21))
        with psycopg.connect(proxy.direct) as owner:  # and the reserve made again
            assert owner.execute("SELECT pg_relation_size('labloom_reserve')").fetchone()[0]
