"""A store connection broken inside a statement batch (psycopg's pipeline), a COPY or a
transaction, as when the PostgreSQL server crashes mid-run: psycopg then logs that leaving it
failed too ("error ignored terminating <psycopg.Pipeline [BAD] at 0x...>: the connection is
lost", or "error ignored in rollback of <psycopg.Transaction ...>"), a stray line on `labloom
run`'s stderr (through logging's last resort) next to labloom's own "the store cannot be
written". The error that broke the block is still raised; that line is not said for labloom's
connections, and still is for any other."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from labloom.store import db

STRAY = "error ignored "


@pytest.fixture
def pg_url(postgres_server: Any) -> Iterator[str]:
    name = postgres_server.new_database()
    url = postgres_server.url(name)
    yield url
    db.forget(url)
    postgres_server.drop_database(name)


def _kill_backend(url: str, pid: int) -> None:
    """The server ends this backend (what a crash does to every one), and it is gone."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 60
        while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s",
                            (pid,)).fetchone():
            assert time.monotonic() < deadline, "the backend was not ended"
            time.sleep(0.05)


def _batch_broken(raw: Any, url: str) -> None:
    """A statement batch (psycopg runs ``executemany`` in a pipeline) on a broken connection."""
    import psycopg

    raw.execute("CREATE TABLE IF NOT EXISTS scratch (x int)")
    _kill_backend(url, raw.info.backend_pid)
    with pytest.raises(psycopg.OperationalError):
        # Enough rows that psycopg reads the server's end while sending (in the pipeline),
        # not only as it leaves it (then the error is raised alone, with nothing to say).
        raw.cursor().executemany("INSERT INTO scratch VALUES (%s)",
                                 [(i,) for i in range(5000)])


def _copy_broken(raw: Any, url: str) -> None:
    """A COPY (the writer's big batches) whose connection breaks while rows are sent."""
    import psycopg

    raw.execute("CREATE TABLE IF NOT EXISTS scratch (x int)")
    with pytest.raises(psycopg.OperationalError), \
            raw.cursor().copy("COPY scratch (x) FROM STDIN") as copy:
        _kill_backend(url, raw.info.backend_pid)
        for i in range(200_000):
            copy.write_row((i,))


def _transaction_broken(raw: Any, url: str) -> None:
    """A transaction whose connection the server ended while the client was not reading:
    the block's error is raised, and its rollback fails too ("error ignored in rollback of
    <psycopg.Transaction ...>: ...")."""
    with pytest.raises(LookupError), raw.transaction():
        raw.execute("SELECT 1")
        _kill_backend(url, raw.info.backend_pid)
        raise LookupError("the block's own error")


def _stray(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(STRAY)]


@pytest.mark.parametrize("broken", [_batch_broken, _copy_broken, _transaction_broken],
                         ids=["pipeline", "copy", "transaction"])
def test_a_store_connection_broken_in_a_batch_says_no_stray_psycopg_line(
    pg_url: str, caplog: pytest.LogCaptureFixture, broken: Callable[[Any, str], None],
) -> None:
    import psycopg

    caplog.set_level(logging.WARNING, logger="psycopg")
    conn = db.get_database(pg_url).connect(migrate=False)
    try:
        broken(conn.raw, pg_url)
        assert conn.broken
    finally:
        conn.close()
    assert _stray(caplog) == []

    # Another connection's (not labloom's) is still said: only labloom's own line is dropped.
    other = psycopg.connect(pg_url, autocommit=True)
    try:
        broken(other, pg_url)
    finally:
        other.close()
    said = _stray(caplog)
    assert len(said) == 1, said
