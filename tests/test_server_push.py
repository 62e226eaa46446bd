"""Pushed updates (issue 20, item 1) on a real Jupyter server (pytest-jupyter): the watcher
follows the store that another process writes (the real CLI, ``labloom run``; another host on a
real PostgreSQL) and emits deltas on jupyter_server's events socket, to authenticated clients
only, without task data; a client that missed events catches up by cursor through the REST API.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from cli_helpers import start_labloom, stop, wait_for, write
from labloom import LocalExecutor, flow, task
from labloom.server_extension import push
from labloom.server_extension.push import SCHEMA_ID
from labloom.server_extension.queries import StoreAccess
from labloom.store import open_store
from test_server_api import get

pytest_plugins = ["pytest_jupyter.jupyter_server"]

SECRET_PARAM = "param-value-that-stays-in-the-store-41c2"
SECRET_LOG = "log-text-that-stays-behind-rest-9d0e"
SECRET_RESULT = "result-data-that-must-stay-on-the-workers-7f3a"

FLOW = f"""
import os, time
from pathlib import Path
from labloom import flow, task, unmapped

@task
def wait(i, secret):
    print("{SECRET_LOG}", i)
    gate = Path(os.environ["GATE"]) / str(i)
    while not gate.exists():
        time.sleep(0.05)
    return "{SECRET_RESULT}"

@flow(executor="threads")
def gated(secret: str = "x", n: int = 3):
    return wait.map(range(n), unmapped(secret))
"""


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"labloom": True},
                          "allow_unauthenticated_access": False}}


class Socket:
    """The events socket as Lab opens it; ``next_run`` waits for a labloom delta."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def event(self, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            text = await asyncio.wait_for(self.ws.read_message(), deadline - time.monotonic())
            assert text is not None, "the events socket closed"
            message = json.loads(text)
            if message.get("schema_id") == SCHEMA_ID:
                self.seen.append(message)
                return message  # type: ignore[no-any-return]

    async def until(self, check: Any, timeout: float = 60.0) -> dict[str, Any]:
        """The first delta of a run for which ``check(delta)`` holds."""
        deadline = time.monotonic() + timeout
        while True:
            message = await self.event(max(0.1, deadline - time.monotonic()))
            for delta in message["runs"]:
                if check(delta):
                    return delta  # type: ignore[no-any-return]


@pytest.fixture
def gate(tmp_path: Path) -> Path:
    folder = tmp_path / "gate"
    folder.mkdir()
    return folder


@pytest.fixture
def cli_run(labloom_home: Path, gate: Path) -> Iterator[Any]:
    procs: list[subprocess.Popen[str]] = []

    def start(**env: str) -> subprocess.Popen[str]:
        labloom_home.mkdir(parents=True, exist_ok=True)
        write(labloom_home / "gated.py", FLOW)
        proc = start_labloom(labloom_home, "run", "gated.py:gated", "--param",
                             f"secret={SECRET_PARAM}", GATE=str(gate), LABLOOM_PROGRESS="0", **env)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        for i in range(3):
            (gate / str(i)).touch()
        stop(proc, 30)


async def test_a_cli_run_is_pushed_to_authenticated_sockets_and_caught_up_by_cursor(
    jp_fetch: Any, jp_ws_fetch: Any, jp_http_port: int, jp_base_url: str, gate: Path,
    cli_run: Any,
) -> None:
    # Without Jupyter's token the events socket is refused, so it never sees a delta.
    url = f"ws://localhost:{jp_http_port}{jp_base_url}api/events/subscribe"
    with pytest.raises(HTTPClientError) as refused:
        await websocket_connect(HTTPRequest(url))
    assert refused.value.code in (302, 401, 403)  # 302: to the login page

    socket = Socket(await jp_ws_fetch("api", "events", "subscribe"))
    proc = cli_run()
    running = await socket.until(lambda d: d["state"] == "Running" and d["total"] == 3
                                 and d["counts"].get("Running") == 3)
    run_id = running["id"]
    assert running["flow"] == "gated" and running["origin"] == "script"

    (gate / "0").touch()
    moved = await socket.until(lambda d: d["id"] == run_id and d["nodes"]
                               and d["counts"].get("Completed") == 1)
    assert moved["from"] and moved["to"] != moved["from"]
    (node,) = moved["nodes"].values()  # only the map node changed
    assert node["counts"] == {"Completed": 1, "Running": 2} and node["total"] == 3

    # A client that slept (another stayed): it missed the events of the next change. The next
    # event it gets shows the gap in seq, and its run's ``from`` is not the cursor it holds;
    # the REST API by that cursor gives exactly what it missed.
    missed_from = moved["to"]
    other = Socket(await jp_ws_fetch("api", "events", "subscribe"))
    socket.ws.close()
    (gate / "1").touch()
    await other.until(lambda d: d["id"] == run_id and d["counts"].get("Completed") == 2)
    caught = await until_rest(jp_fetch, run_id, missed_from)
    (state,) = caught["states"].values()
    assert state["counts"] == {"Completed": 2, "Running": 1}
    last_seq = socket.seen[-1]["seq"]
    socket = Socket(await jp_ws_fetch("api", "events", "subscribe"))
    (gate / "2").touch()
    ended = await socket.until(lambda d: d["id"] == run_id and d["state"] == "Completed")
    assert socket.seen[0]["seq"] > last_seq + 1, "the missed events leave a gap in seq"
    assert ended["from"] != missed_from
    assert ended["counts"] == {"Completed": 3} and ended["ended"] is not None
    assert ended["nodes"] is None, "a run's end changes its graph: views read it by cursor"
    assert proc.wait(60) == 0
    assert socket.seen[-1]["running"] == 0

    # Metadata only: no parameter, log line or result crossed the socket.
    text = json.dumps(socket.seen + other.seen)
    for secret in (SECRET_PARAM, SECRET_LOG, SECRET_RESULT):
        assert secret not in text
    detail = await get(jp_fetch, "runs", run_id)
    assert detail["parameters"]["secret"] == SECRET_PARAM  # the REST API has it, behind auth


async def until_rest(jp_fetch: Any, run_id: str, cursor: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        answer: dict[str, Any] = await get(jp_fetch, "runs", run_id, since=cursor)
        if answer["states"] and next(iter(answer["states"].values()))["counts"].get(
                "Completed") == 2:
            return answer
        assert time.monotonic() < deadline, f"not caught up: {answer}"
        await asyncio.sleep(0.1)


async def test_the_watcher_reads_only_while_someone_listens_and_stops_with_the_server(
    jp_serverapp: Any, jp_ws_fetch: Any
) -> None:
    watcher = jp_serverapp.web_app.settings["labloom_watcher"]
    checks: list[bool] = []
    listened = watcher.listened
    watcher.listened = lambda: checks.append(listened()) or checks[-1]  # counts its turns
    deadline = time.monotonic() + 30
    while len(checks) < 2:  # two turns of its loop: the first one's look would be done
        assert time.monotonic() < deadline, "the watcher's loop never turned"
        await asyncio.sleep(0.05)
    del watcher.listened
    assert not any(checks) and watcher.running and watcher.looks == 0, \
        "no listener: the store is not read"
    ws = await jp_ws_fetch("api", "events", "subscribe")
    deadline = time.monotonic() + 30
    while watcher.looks < 2:
        assert time.monotonic() < deadline, "the watcher never looked"
        await asyncio.sleep(0.05)
    ws.close()
    await jp_serverapp.cleanup_extensions()  # what the server does when it stops
    assert not watcher.running
    looks = watcher.looks
    deadline = time.monotonic() + 60  # a guard
    while any(t.name.startswith("labloom-api-watch") for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the watcher's pool thread outlived the server"
        await asyncio.sleep(0.05)
    assert watcher.looks == looks  # and it read nothing more once stopped (its thread is gone)


@pytest.fixture
def on_postgresql(postgres_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh PostgreSQL database as the server's store (set before the server starts)."""
    name = postgres_server.new_database()
    url = postgres_server.url(name)
    monkeypatch.setenv("LABLOOM_DATABASE_URL", url)
    yield url
    from labloom.store import db

    db.forget(url)
    postgres_server.drop_database(name)


async def test_a_run_of_another_host_on_postgresql_is_pushed(
    on_postgresql: str, jp_ws_fetch: Any, gate: Path, cli_run: Any
) -> None:
    socket = Socket(await jp_ws_fetch("api", "events", "subscribe"))
    cli_run(LABLOOM_DATABASE_URL=on_postgresql, LABLOOM_HOST="far-away-host")
    seen = await socket.until(lambda d: d["host"] == "far-away-host" and d["state"] == "Running")
    for i in range(3):
        (gate / str(i)).touch()
    done = await socket.until(lambda d: d["id"] == seen["id"] and d["state"] == "Completed")
    assert done["counts"] == {"Completed": 3}


@flow
def quick(n: int = 2) -> list[int]:
    return tick.map(range(n))  # type: ignore[return-value]


@task
def tick(i: int) -> int:
    return i


def test_the_first_look_sends_the_runs_going_on_and_only_the_newest_ended_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server started just after thousands of runs (a sweep) must not push them all in one
    event: its first look, when the first Lab connects, would block the server's loop (each
    event is copied and validated there) and the page. It sends the newest ``FIRST_ENDED``;
    the others are remembered, and pushed again only when their row changes."""
    monkeypatch.setattr(push, "FIRST_ENDED", 3)
    ids = [quick.run(executor=LocalExecutor()).id for _ in range(7)]
    follower, access = push.StoreFollower(), StoreAccess()
    try:
        with open_store() as store:
            first = follower.look(access, store)
            assert first is not None
            assert sorted(delta["id"] for delta in first["runs"]) == sorted(ids[-3:])
            assert all(d["from"] == "" and d["nodes"] is None and d["counts"] == {"Completed": 2}
                       for d in first["runs"])
            assert follower.look(access, store) is None, "the older ones were remembered"
            later = quick.run(executor=LocalExecutor()).id
            (new,) = follower.look(access, store)["runs"]  # type: ignore[index]
            assert new["id"] == later and new["counts"] == {"Completed": 2}
    finally:
        access.close()



@task
def say(n: int) -> None:
    for i in range(n):
        print("line", i)


@flow
def chatty(n: int = 2) -> None:
    say(n)


GO_ON, END = threading.Event(), threading.Event()


@task
def held() -> None:
    print("before")
    GO_ON.wait(30)
    print("after")
    END.wait(30)


@flow
def holding() -> None:
    held()


@pytest.mark.parametrize("how", ["deleted", "backup copied over"])
def test_a_store_file_replaced_is_watched_from_its_start(labloom_home: Path, how: str) -> None:
    """The store deleted (a fresh start) or a backup moved in place while Jupyter runs: the new
    file numbers its log lines from 1, and the watcher, still past the old file's last line,
    pushed none of a running task's new lines until the new file had written as many (a tab
    following the task's log then moved only at the safety net's read, every 10 s). A backup
    copied over the file (`cp backup.db labloom.db`: the same inode) numbers its lines on from
    its own last one: the watcher took the file for the same store, and pushed none either."""
    import contextlib
    import sqlite3

    GO_ON.clear()
    END.clear()
    follower, access = push.StoreFollower(), StoreAccess()
    db, backup = labloom_home / "labloom.db", labloom_home / "backup.db"
    run = None
    try:
        chatty.run(n=1, executor=LocalExecutor())
        with contextlib.closing(sqlite3.connect(db)) as live:
            live.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        backup.write_bytes(db.read_bytes())
        chatty.run(n=50, executor=LocalExecutor())
        with open_store() as store:
            assert follower.look(access, store) is not None
        if how == "deleted":
            for name in ("labloom.db", "labloom.db-wal", "labloom.db-shm"):
                (labloom_home / name).unlink(missing_ok=True)
        else:
            wait_for(lambda: "labloom-store" not in {t.name for t in threading.enumerate()},
                     30, "this process's writer to let go of the file")
            with contextlib.closing(sqlite3.connect(db)) as live:
                live.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            inode = db.stat().st_ino
            with open(backup, "rb") as source, open(db, "r+b") as target:  # what cp does
                target.truncate(0)
                target.write(source.read())
            assert db.stat().st_ino == inode
        run = holding.run(executor=LocalExecutor(), background=True)

        def look_once_logged(text: str) -> Any:
            with open_store() as store:  # the writer writes the new file off the run's path
                wait_for(lambda: text in [e.text for e in store.logs(run.id)[0]], 60, text)
                return follower.look(access, store)

        look_once_logged("before")
        GO_ON.set()
        event = look_once_logged("after")
        assert event is not None
        [delta] = [d for d in event["runs"] if d["id"] == run.id]
        assert delta.get("lines"), delta
    finally:
        GO_ON.set()
        END.set()
        if run is not None:
            run.wait()
        access.close()

