"""A PostgreSQL commit whose answer never reaches the writer (the server crashed or the network
went right after it committed): the writer asks the server whether it landed and writes it
again only if it did not. Before, it always wrote it again: the batch's log lines, state
changes and logged values were stored twice."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from labloom import ThreadExecutor, flow, log_metrics, task
from labloom.store import db
from pg_commit_cut import CommitCutter


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


def stored(url: str, run_id: str) -> tuple[list[str], list[tuple[Any, ...]], list[Any]]:
    """The run's log lines, state rows and logged calls, read straight from the server."""
    import psycopg

    from labloom.store.logged_calls import calls_of

    with psycopg.connect(url) as conn:
        lines = [r[0] for r in conn.execute(
            "SELECT text FROM logs WHERE run_id = %s AND task_run_id IS NOT NULL", (run_id,))]
        states = conn.execute("SELECT task_run_id, state, attempt, time FROM task_states "
                              "WHERE run_id = %s", (run_id,)).fetchall()
        calls = [call for row in conn.execute(
            "SELECT id, kind, task_run_id, step, time, data, packed FROM experiment_values "
            "WHERE run_id = %s", (run_id,)) for call in calls_of(*row)]
    return lines, states, calls


def stored_once(direct: str, run_id: str, refused: int | None = None) -> None:
    """Each line, state row and logged call of the run ``sweep(300)`` stored once (the line
    ``refused`` not at all)."""
    lines, states, calls = stored(direct, run_id)
    assert sorted(int(text.split()[1]) for text in lines) == [
        i for i in range(300) if i != refused]
    twice = [row for row, count in Counter(states).items() if count > 1]
    assert not twice, f"{len(twice)} state rows stored twice, e.g. {twice[0]}"
    assert Counter(state for _, state, _, _ in states) == {
        "Pending": 300, "Running": 300, "Completed": 300}
    per_task = Counter(json.dumps(call[2], sort_keys=True) for call in calls)
    assert len(calls) == 300 and set(per_task.values()) == {1}, per_task.most_common(3)


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
    stored_once(direct, run.id)
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
    stored_once(direct, run.id, refused=7)
    assert unrecorded(run.id).count == 1
