"""The server extension opens the store in the background when it loads
(``StoreAccess.warm``): a route's first request finds it open on every pool thread (on
PostgreSQL that was about a second: psycopg's import, the first connection, the schema check),
and a store that hangs or goes away neither holds up the server's start nor breaks it: the
routes answer with the store's own error, as without the warm-up."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from labloom.store import db, open_store

pytest_plugins = ["pytest_jupyter.jupyter_server"]

POOL_THREADS = 5  # the "list" and "run" lanes' two threads each, and the watcher's one


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"labloom": True},
                          "allow_unauthenticated_access": False}}


@pytest.fixture(params=["sqlite", "postgresql"])
def made_store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
               labloom_home: Path) -> Iterator[Callable[[], int]]:
    """A store that exists before the server starts; yields how many connections this process
    (the server's) holds to it."""
    if request.param == "sqlite":
        open_store().close()  # the file and its tables
        path = os.path.realpath(labloom_home / "labloom.db")
        yield lambda: sum(os.path.realpath(fd) == path for fd in _fds())
        return
    import psycopg

    server = request.getfixturevalue("postgres_server")
    name = server.new_database()
    url = server.url(name)
    monkeypatch.setenv("LABLOOM_DATABASE_URL", url)

    def held() -> int:
        with psycopg.connect(url) as conn:  # not counted: its application_name is not labloom's
            found = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND "
                "application_name = 'labloom'", (name,)).fetchone()
        return int(found[0]) if found else 0

    yield held
    db.forget(url)
    server.drop_database(name)


def _fds() -> list[str]:
    return [str(fd) for fd in Path("/proc/self/fd").iterdir()]


async def test_the_store_is_open_on_every_pool_thread_before_any_request(
    made_store: Callable[[], int], jp_fetch: Any
) -> None:
    deadline = time.monotonic() + 60
    while made_store() < POOL_THREADS:  # no request made: the extension's load opened them
        assert time.monotonic() < deadline, f"{made_store()} connections open"
        await asyncio.sleep(0.1)
    answer = await jp_fetch("labloom", "api", "runs")
    assert json.loads(answer.body)["runs"] == []
    assert made_store() == POOL_THREADS  # the request used its thread's connection


@pytest.fixture
def hanging_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A PostgreSQL URL whose "server" takes connections and never answers (a store that
    hangs), until the test closes it (a store that went away)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    monkeypatch.setenv("LABLOOM_DATABASE_URL", f"postgresql://u:secret@127.0.0.1:{port}/x")
    monkeypatch.setenv("LABLOOM_DB_CONNECT_TIMEOUT", "30")
    yield listener
    listener.close()
    db.forget(f"postgresql://u:secret@127.0.0.1:{port}/x")


async def test_a_store_that_hangs_holds_up_neither_the_start_nor_the_routes(
    hanging_store: socket.socket, jp_fetch: Any
) -> None:
    hanging_store.settimeout(30)
    waiting, _ = await asyncio.to_thread(hanging_store.accept)  # the warm-up, connecting
    # The server started while the store hangs: it answers, the warm-up waits on its thread.
    assert (await jp_fetch("api", "status")).code == 200
    waiting.close()
    hanging_store.close()  # the store goes away: the warm-up gives up, the routes say why
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("labloom", "api", "runs")
    assert caught.value.code == 503 and caught.value.response is not None
    message = json.loads(caught.value.response.body)["message"]
    assert "cannot reach the store" in message and "127.0.0.1" in message
    assert "secret" not in message and "Traceback" not in message


async def test_the_routes_answer_again_once_a_restarted_server_is_back(
    postgres_server: Any, monkeypatch: pytest.MonkeyPatch, jp_fetch: Any
) -> None:
    # The team's PostgreSQL restarts (an upgrade, a failover) under a JupyterLab that runs
    # for weeks. Before, each pool thread kept its dropped connection: the Flows panel got
    # 500 ("the connection is closed") on every request until Jupyter itself was restarted.
    name = postgres_server.new_database()
    url = postgres_server.url(name)
    monkeypatch.setenv("LABLOOM_DATABASE_URL", url)
    try:
        assert json.loads((await jp_fetch("labloom", "api", "runs")).body)["runs"] == []
        postgres_server.stop("fast")  # every connection dies
        with pytest.raises(HTTPClientError) as caught:  # while it is away: the store's reason
            await jp_fetch("labloom", "api", "runs")
        assert caught.value.code == 503, caught.value
        postgres_server.start()
        for _ in range(POOL_THREADS):  # whichever thread answers: its connection is new
            answer = await jp_fetch("labloom", "api", "runs")
            assert json.loads(answer.body)["runs"] == []
    finally:
        db.forget(url)
        postgres_server.drop_database(name)
