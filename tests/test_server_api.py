"""The REST API of the Jupyter server extension, on a real Jupyter server (pytest-jupyter).

Runs are made by real flows (in this process, and by the real CLI in subprocesses) in a real
SQLite store; the server is configured like the extension template's auth check: no request
without Jupyter's token or cookie.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from cli_helpers import labloom, write
from labloom import flow, task
from labloom.store import open_store

pytest_plugins = ["pytest_jupyter.jupyter_server"]

SRC = Path(__file__).resolve().parents[1] / "src"
SECRET_RESULT = "result-data-that-must-stay-on-the-workers-7f3a"
HOSTILE_ID = "' OR 1=1 --"


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {
        "ServerApp": {
            "jpserver_extensions": {"labloom": True},
            "allow_unauthenticated_access": False,
        }
    }


@pytest.fixture(autouse=True)
def child_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Retry and "run now" start `python -m labloom`: it must be this checkout's labloom.
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))
    )
    monkeypatch.setenv("LABLOOM_PROGRESS", "0")


@task
def load(n: int) -> list[int]:
    print(f"loading {n} rows")
    return list(range(n))


@task
def square(x: int) -> str:
    print(f"square of {x}")
    return SECRET_RESULT


@task
def explode(rows: list[int]) -> None:
    print("about to fail")
    raise ValueError("kaboom")


@flow
def squares(n: int = 3) -> list[str]:
    rows = load(n)
    return square.map(rows)  # type: ignore[return-value]


@flow
def failing() -> None:
    explode(load(2))


async def get(jp_fetch: Any, *path: str, **params: Any) -> Any:
    response = await jp_fetch("labloom", "api", *path, params=params or None)
    assert response.code == 200
    return json.loads(response.body)


async def post(jp_fetch: Any, *path: str) -> tuple[int, Any]:
    try:
        response = await jp_fetch("labloom", "api", *path, method="POST", body=b"{}")
    except HTTPClientError as exc:
        assert exc.response is not None
        return exc.code, json.loads(exc.response.body or b"{}")
    return response.code, json.loads(response.body)


async def status_of(jp_fetch: Any, *path: str, **params: Any) -> int:
    try:
        response = await jp_fetch("labloom", "api", *path, params=params or None)
    except HTTPClientError as exc:
        return exc.code
    return int(response.code)


async def until(check: Callable[[], Any], timeout: float = 60.0) -> Any:
    import asyncio

    deadline = time.monotonic() + timeout
    while True:
        value = await check() if _is_coroutine_function(check) else check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.2)


def _is_coroutine_function(fn: Any) -> bool:
    import inspect

    return inspect.iscoroutinefunction(fn)


async def test_runs_newest_first_filtered_and_paged(jp_fetch: Any) -> None:
    ids = [squares.run(n=2).id for _ in range(3)]
    failed = failing.run()
    listing = await get(jp_fetch, "runs")
    assert [r["id"] for r in listing["runs"]] == [failed.id, *reversed(ids)]
    first = listing["runs"][1]
    assert first["flow"] == "squares" and first["state"] == "Completed"
    assert first["done"] == first["total"] == 3 and first["duration"] >= 0
    assert first["origin"] == "script" and first["host"]
    assert listing["running"] == 0 and listing["next"] is None

    only_failed = await get(jp_fetch, "runs", state="Failed")
    assert [r["id"] for r in only_failed["runs"]] == [failed.id]
    by_flow = await get(jp_fetch, "runs", flow="squares", limit=2)
    assert [r["id"] for r in by_flow["runs"]] == [ids[2], ids[1]]
    rest = await get(jp_fetch, "runs", flow="squares", limit=2, before=by_flow["next"])
    assert [r["id"] for r in rest["runs"]] == [ids[0]] and rest["next"] is None
    later = await get(jp_fetch, "runs", since=time.time() + 60)
    assert later["runs"] == []
    assert await status_of(jp_fetch, "runs", state="Bogus") == 400
    assert await status_of(jp_fetch, "runs", limit="many") == 400


async def test_a_run_with_graph_task_runs_and_no_task_data(jp_fetch: Any) -> None:
    run = squares.run(n=3)
    detail = await get(jp_fetch, "runs", run.id)
    assert detail["id"] == run.id and detail["parameters"] == {"n": 3}
    assert detail["executor"] and detail["host"] and detail["state"] == "Completed"
    kinds = {n["name"]: n["kind"] for n in detail["graph"]["nodes"]}
    assert kinds == {"load": "task", "square": "map"}
    assert len(detail["graph"]["edges"]) == 1
    map_node = next(n["id"] for n in detail["graph"]["nodes"] if n["kind"] == "map")
    assert detail["states"][map_node] == {"state": "Completed", "counts": {"Completed": 3},
                                          "total": 3}
    assert detail["header"]["flow"] == "squares" and detail["header"]["total"] == 4
    names = sorted(t["name"] for t in detail["task_runs"])
    assert names == ["load", "square[0]", "square[1]", "square[2]"]
    assert all(t["duration"] is not None for t in detail["task_runs"])
    # The store holds no task data, and the API adds none.
    raw = (await jp_fetch("labloom", "api", "runs", run.id)).body.decode()
    assert SECRET_RESULT not in raw
    light = await get(jp_fetch, "runs", run.id, tasks="0")
    assert "task_runs" not in light and light["graph"] == detail["graph"]


async def test_a_runs_timeline_has_lanes_and_bars_by_state(jp_fetch: Any) -> None:
    run = squares.run(n=3)
    answer = await get(jp_fetch, "runs", run.id, "timeline")
    assert answer["run"] == run.id and answer["mode"] == "bars" and answer["total"] == 4
    # One lane per thread of the (default) thread executor.
    assert answer["lanes"] and all(lane.startswith("labloom-task_") for lane in answer["lanes"])
    assert sorted(b["name"] for b in answer["bars"]) == ["load", "square[0]", "square[1]",
                                                         "square[2]"]
    assert {b["state"] for b in answer["bars"]} == {"Completed"}
    assert SECRET_RESULT not in json.dumps(answer)
    assert await status_of(jp_fetch, "runs", "abcdef012345", "timeline") == 404
    assert await status_of(jp_fetch, "runs", HOSTILE_ID, "timeline") == 404


async def test_nodes_show_children_and_tracebacks(jp_fetch: Any) -> None:
    run = squares.run(n=3)
    detail = await get(jp_fetch, "runs", run.id, tasks="0")
    map_node = next(n["id"] for n in detail["graph"]["nodes"] if n["kind"] == "map")
    node = await get(jp_fetch, "runs", run.id, "nodes", map_node)
    assert node["kind"] == "map" and node["task_run"] is None
    assert node["children"]["total"] == 3
    assert [c["index"] for c in node["children"]["children"]] == [0, 1, 2]

    bad = failing.run()
    detail = await get(jp_fetch, "runs", bad.id, tasks="0")
    boom = next(n["id"] for n in detail["graph"]["nodes"] if n["name"] == "explode")
    node = await get(jp_fetch, "runs", bad.id, "nodes", boom)
    assert node["state"] == "Failed" and "ValueError: kaboom" in node["task_run"]["traceback"]
    assert await status_of(jp_fetch, "runs", bad.id, "nodes", "no-such-node") == 404


async def test_logs_read_on_from_a_cursor(jp_fetch: Any) -> None:
    run = squares.run(n=3)
    everything = await get(jp_fetch, "runs", run.id, "logs")
    texts = [line["text"] for line in everything["lines"]]
    assert texts[0] == "loading 3 rows" and len(texts) == 4
    one = await get(jp_fetch, "runs", run.id, "logs", task="square[1]")
    assert [line["text"] for line in one["lines"]] == ["square of 1"]
    assert one["lines"][0]["task"] == "square[1]"
    by_id = await get(jp_fetch, "runs", run.id, "logs", task=one["lines"][0]["task_run_id"])
    assert by_id["lines"] == one["lines"]
    first_two = await get(jp_fetch, "runs", run.id, "logs", limit=2)
    assert len(first_two["lines"]) == 2 and first_two["more"]
    rest = await get(jp_fetch, "runs", run.id, "logs", after=first_two["next"])
    assert [line["text"] for line in rest["lines"]] == texts[2:] and not rest["more"]
    nothing_new = await get(jp_fetch, "runs", run.id, "logs", after=rest["next"])
    assert nothing_new["lines"] == [] and nothing_new["next"] == rest["next"]

    bad = failing.run()
    page = await get(jp_fetch, "runs", bad.id, "logs", task="explode")
    assert [line["text"] for line in page["lines"]] == ["about to fail"]
    [info] = page["task_runs"]
    assert info["state"] == "Failed" and "kaboom" in info["traceback"]


async def test_a_task_run_that_completed_on_a_retry_shows_no_traceback(jp_fetch: Any) -> None:
    """Its first attempt's traceback is a line of its logs, not its failure: the run tab
    showed it red under "Completed" (the last failed attempt's, kept by the store)."""
    tries: list[int] = []

    @task(retries=1, retry_delay=0)
    def flaky() -> int:
        tries.append(1)
        if len(tries) == 1:
            raise ValueError("first attempt")
        return 1

    @flow
    def recovers() -> int:
        return flaky()

    run = recovers.run()
    detail = await get(jp_fetch, "runs", run.id, tasks="0")
    [node_id] = [n["id"] for n in detail["graph"]["nodes"]]
    node = await get(jp_fetch, "runs", run.id, "nodes", node_id)
    assert node["task_run"]["state"] == "Completed" and node["task_run"]["traceback"] == ""
    page = await get(jp_fetch, "runs", run.id, "logs", task="flaky")
    assert page["task_runs"][0]["traceback"] == ""
    [line] = page["lines"]
    assert line["text"].startswith("[labloom] attempt 1 of 2 failed; retrying in 0s\n")
    assert "ValueError: first attempt" in line["text"]


async def test_cancel_a_running_run_of_this_process(jp_fetch: Any) -> None:
    release = threading.Event()

    @task
    def wait_here(x: int) -> int:
        release.wait(30)
        return x

    @flow(executor="threads")
    def waiting() -> list[int]:
        return wait_here.map(range(4))  # type: ignore[return-value]

    run = waiting.run(background=True)
    try:
        await until(lambda: _stored_state(run.id) == "Running")
        code, answer = await post(jp_fetch, "runs", run.id, "cancel")
        assert code == 202 and answer["requested"] is True
        await until(lambda: run.state.is_final, timeout=60)
    finally:
        release.set()
    run.wait(60)
    assert run.state.value == "Cancelled" and run.message == "cancelled from the Flows panel"
    await until(lambda: _stored_state(run.id) == "Cancelled", timeout=60)
    code, answer = await post(jp_fetch, "runs", run.id, "cancel")
    assert code == 409 and "already ended (Cancelled)" in answer["message"]


def _stored_state(run_id: str) -> str | None:
    with open_store() as store:
        record = store.get_run(run_id)
    return None if record is None else record.state


FLOW_FILE = """
from pathlib import Path
from labloom import flow, task

@task
def step(x):
    print(f"step {x}")
    if not Path("fixed").exists():
        raise RuntimeError("not fixed yet")
    return x

@flow(executor="local")
def fragile(n: int = 2):
    return step.map(range(n))
"""


async def test_retry_reruns_in_a_new_process(jp_fetch: Any, labloom_home: Path,
                                             tmp_path: Path) -> None:
    work = tmp_path / "work"
    write(work / "fragile.py", FLOW_FILE)
    done = labloom(labloom_home, "run", f"{work / 'fragile.py'}:fragile", cwd=work)
    assert done.returncode == 1, done.stderr
    failed_id = (await get(jp_fetch, "runs"))["runs"][0]["id"]
    (work / "fixed").write_text("yes")
    code, answer = await post(jp_fetch, "runs", failed_id, "retry")
    assert code == 202 and answer["retrying"] is True

    async def retried() -> Any:
        runs = (await get(jp_fetch, "runs"))["runs"]
        return next((r for r in runs if r["retry_of"] == failed_id and r["ended"]), None)

    again = await until(retried)
    assert again["state"] == "Completed" and again["origin"] == "retry"
    assert (await get(jp_fetch, "runs", failed_id))["retried_by"] == [again["id"]]
    assert (await get(jp_fetch, "runs", again["id"]))["retried_by"] == []


async def test_retry_is_refused_for_cell_code_and_open_runs(jp_fetch: Any) -> None:
    # Flows defined in this test module have a file, so fake a notebook cell's record.
    run = failing.run()
    with open_store() as store:
        store.conn.execute(
            "UPDATE flow_runs SET target = ? WHERE id = ?",
            (json.dumps({"flow": "failing", "note": "defined in a notebook cell"}), run.id),
        )
    code, answer = await post(jp_fetch, "runs", run.id, "retry")
    assert code == 409 and "run.retry() in the kernel" in answer["message"]


async def test_retry_is_refused_when_the_runs_file_is_gone(
    jp_fetch: Any, tmp_path: Path
) -> None:
    """A flow's file renamed or deleted since its run (or its notebook): Retry answered 202
    and the tab said "Retry started", then nothing came, the reason only in a log file."""
    run = failing.run()
    for target, gone in [({"flow": "failing", "function": "failing",
                           "file": str(tmp_path / "renamed.py")}, "the flow's file"),
                         ({"flow": "failing", "notebook": str(tmp_path / "moved.ipynb")},
                          "its notebook")]:
        with open_store() as store:
            store.conn.execute("UPDATE flow_runs SET target = ? WHERE id = ?",
                               (json.dumps(target), run.id))
        code, answer = await post(jp_fetch, "runs", run.id, "retry")
        assert code == 409, answer
        assert gone in answer["message"] and "is gone" in answer["message"], answer


async def test_schedules_pause_resume_and_run_now(jp_fetch: Any, labloom_home: Path,
                                                  tmp_path: Path) -> None:
    work = tmp_path / "work"
    write(work / "fragile.py", FLOW_FILE)
    (work / "fixed").write_text("yes")
    added = labloom(labloom_home, "schedule", "add", f"{work / 'fragile.py'}:fragile",
                    "--every", "1h", "--name", "hourly", cwd=work)
    assert added.returncode == 0, added.stderr
    listing = await get(jp_fetch, "schedules")
    [hourly] = listing["schedules"]
    assert hourly["name"] == "hourly" and hourly["paused"] is False and hourly["next_run"]

    assert (await post(jp_fetch, "schedules", "hourly", "pause")) == (
        200, {"name": "hourly", "paused": True}
    )
    shown = labloom(labloom_home, "schedule", "list", "--json")
    assert json.loads(shown.stdout)["schedules"][0]["paused"] is True
    assert (await post(jp_fetch, "schedules", "hourly", "resume"))[1]["paused"] is False
    assert (await get(jp_fetch, "schedules"))["schedules"][0]["paused"] is False

    code, answer = await post(jp_fetch, "schedules", "hourly", "run")
    assert code == 202 and answer["started"] is True

    async def scheduled() -> Any:
        runs = (await get(jp_fetch, "runs", origin="schedule"))["runs"]
        return runs and runs[0]["ended"] and runs[0]

    run = await until(scheduled)
    assert run["flow"] == "fragile" and run["state"] == "Completed"
    code, _ = await post(jp_fetch, "schedules", "nope", "pause")
    assert code == 404


async def test_every_name_schedule_add_accepts_reaches_its_schedule(
    jp_fetch: Any, tmp_path: Path
) -> None:
    from labloom.schedule import stored_schedules as sched

    names = ["nightly etl", "50% sample", "what?#now", "été", "...", "x" * 200]
    with sched.store() as conn:
        for name in names:
            sched.add(conn, sched.Schedule(
                name=name, target=f"{tmp_path / 'f.py'}:f", workdir=str(tmp_path), cron=None,
                every=3600.0, timezone=None, params={}, notify=None, executor=None,
                address=None, catchup="once", overlap=False, paused=False, anchor=time.time(),
                not_before=time.time(), created=time.time(),
            ))
    for name in names:
        assert await post(jp_fetch, "schedules", name, "pause") == (
            200, {"name": name, "paused": True}
        ), name
    listed = (await get(jp_fetch, "schedules"))["schedules"]
    assert {s["name"]: s["paused"] for s in listed} == dict.fromkeys(names, True)


async def test_a_damaged_store_answers_503_with_the_reason(
    jp_fetch: Any, labloom_home: Path
) -> None:
    labloom_home.mkdir(parents=True, exist_ok=True)
    (labloom_home / "labloom.db").write_bytes(b"this is not a database" * 100)
    try:
        await jp_fetch("labloom", "api", "runs")
    except HTTPClientError as exc:
        assert exc.code == 503 and exc.response is not None
        message = json.loads(exc.response.body)["message"]
        assert "labloom.db" in message and "Traceback" not in message
    else:
        raise AssertionError("a damaged store was read")


async def test_a_store_file_deleted_while_the_server_runs_is_read_afresh(
    jp_fetch: Any, labloom_home: Path
) -> None:
    """`rm ~/.labloom/labloom.db*` to start afresh (or a backup moved in place) while Lab is
    open: the panel showed the old file's runs, held open by the server's connections, and
    never the runs written to the new file, until Jupyter was restarted."""
    old = squares.run(n=2).id
    assert [r["id"] for r in (await get(jp_fetch, "runs"))["runs"]] == [old]
    for name in ("labloom.db", "labloom.db-wal", "labloom.db-shm"):
        (labloom_home / name).unlink(missing_ok=True)
    new = failing.run().id  # the run's writer makes a new store file

    async def listed() -> list[str]:
        return [r["id"] for r in (await get(jp_fetch, "runs"))["runs"]]

    assert await until(listed, 60) == [new]  # the writer commits off the run's path
    assert await status_of(jp_fetch, "runs", old) == 404


@pytest.mark.parametrize("made_by", ["cp", "sqlite backup"])
async def test_a_backup_copied_over_the_store_file_is_read_though_its_inode_is_the_same(
    jp_fetch: Any, labloom_home: Path, made_by: str
) -> None:
    """`cp backup.db labloom.db` while Lab is open writes the backup into the same file (the
    same inode): the server's connections, reopened only when the inode changed, went on
    answering from their cached pages of the file as it was, listing a run the restored file
    does not hold, until Jupyter was restarted. A backup made by SQLite (``.backup``, ``VACUUM
    INTO``) is in rollback-journal mode: opening it again waits for every connection on the old
    file to close, so the server must let go of all of its own, not only the one that noticed."""
    import sqlite3

    kept = squares.run(n=2).id
    db, backup = labloom_home / "labloom.db", labloom_home / "backup.db"
    with contextlib.closing(sqlite3.connect(db)) as source:
        if made_by == "cp":
            source.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            backup.write_bytes(db.read_bytes())
        else:
            source.execute("VACUUM INTO ?", (str(backup),))
    lost = failing.run().id

    async def listed() -> list[str]:
        return [r["id"] for r in (await get(jp_fetch, "runs"))["runs"]]

    assert set(await until(listed, 60)) == {kept, lost}
    with contextlib.closing(sqlite3.connect(db)) as live:  # the file holds every write now
        live.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for _ in range(4):  # every thread of both lanes reads the file as it is now
        assert len(await listed()) == 2
        await get(jp_fetch, "runs", lost)
    # This process's runs' writer lets go of the file (a kernel's does within seconds too).
    await until(lambda: "labloom-store" not in {t.name for t in threading.enumerate()}, 30)
    inode = db.stat().st_ino
    with open(backup, "rb") as source_file, open(db, "r+b") as target:  # what cp does
        target.truncate(0)
        target.write(source_file.read())
    assert db.stat().st_ino == inode
    assert await listed() == [kept]
    assert await status_of(jp_fetch, "runs", lost) == 404


async def test_a_store_locked_by_a_long_write_answers_503_saying_so(
    jp_fetch: Any, labloom_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Delete (or any action) while another process holds a long write on the SQLite store
    (`labloom delete --older-than` of a big store, a backup tool): after the busy wait, a 503
    that says the store is busy and to try again; it was a 500 "Unhandled error"."""
    import sqlite3

    from labloom.store import home

    run_id = squares.run(n=2).id
    real_connect = home.connect
    # The server's connections wait 0.3 s for the lock, not 30: the test's time.
    monkeypatch.setattr(home, "connect", lambda path=None, timeout=30.0: real_connect(path, 0.3))
    holder = sqlite3.connect(labloom_home / "labloom.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(HTTPClientError) as refused:
            await jp_fetch("labloom", "api", "runs", run_id, method="DELETE")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert refused.value.code == 503 and refused.value.response is not None
    message = json.loads(refused.value.response.body)["message"]
    assert "database is locked" in message and "try again" in message
    assert str(labloom_home / "labloom.db") in message
    assert (await get(jp_fetch, "runs", run_id))["state"] == "Completed"


async def test_clusters_without_dask_labextension(jp_fetch: Any) -> None:
    answer = await get(jp_fetch, "clusters")
    assert answer["available"] is False and answer["clusters"] == []


async def test_hostile_ids_are_404(jp_fetch: Any) -> None:
    squares.run(n=1)
    quoted = HOSTILE_ID  # jp_fetch escapes it into the URL
    for path in ([quoted], [quoted, "logs"], [quoted, "nodes", "n0"]):
        assert await status_of(jp_fetch, "runs", *path) == 404
    code, _ = await post(jp_fetch, "runs", quoted, "cancel")
    assert code == 404
    code, _ = await post(jp_fetch, "runs", quoted, "retry")
    assert code == 404
    assert await status_of(jp_fetch, "runs", before=HOSTILE_ID) == 404
    # The filter is bound, not spliced: a quote in a flow name finds nothing, breaks nothing.
    assert (await get(jp_fetch, "runs", flow=HOSTILE_ID))["runs"] == []


ENDPOINTS = [
    ("GET", "runs"), ("GET", "runs/abcdef012345"), ("GET", "runs/abcdef012345/logs"),
    ("GET", "runs/abcdef012345/nodes/n0"), ("POST", "runs/abcdef012345/cancel"),
    ("POST", "runs/abcdef012345/retry"), ("GET", "schedules"),
    ("POST", "schedules/x/pause"), ("POST", "schedules/x/resume"), ("POST", "schedules/x/run"),
    ("GET", "clusters"), ("GET", "no/such/route"), ("POST", "runs/abcdef012345/bogus"),
    ("GET", "runs/abcdef012345/timeline"), ("GET", "flows"), ("GET", "flows/params"),
    ("POST", "flows/run"), ("DELETE", "runs/abcdef012345"), ("POST", "runs/delete"),
]


async def test_an_unknown_path_under_the_api_answers_json_404(jp_fetch: Any) -> None:
    for method, path in [("GET", "nope"), ("GET", "runs/abcdef012345/bogus"),
                         ("POST", "schedules/x/explode"), ("DELETE", "runs"),
                         ("GET", "runs/abcdef012345/nodes/n0/more"), ("GET", "")]:
        parts = path.split("/") if path else []
        with pytest.raises(HTTPClientError) as caught:
            await jp_fetch("labloom", "api", *parts, method=method,
                           body=b"{}" if method == "POST" else None)
        response = caught.value.response
        assert response is not None
        assert caught.value.code in (404, 405), (method, path, caught.value.code)
        assert response.headers["Content-Type"].startswith("application/json"), (method, path)
        assert json.loads(response.body)["message"], (method, path)
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("labloom", "api", "nope")
    assert caught.value.code == 404 and caught.value.response is not None
    assert "no route GET" in json.loads(caught.value.response.body)["message"]


async def test_every_endpoint_refuses_requests_without_token_or_cookie(jp_fetch: Any) -> None:
    for method, path in ENDPOINTS:
        try:
            response = await jp_fetch(
                "labloom", "api", *path.split("/"), method=method,
                body=b"{}" if method == "POST" else None, headers={"Authorization": ""},
            )
            code = response.code
        except HTTPClientError as exc:
            code = exc.code
        assert code == 403, (method, path, code)
    # The same requests with the token get past authentication.
    assert (await jp_fetch("labloom", "api", "runs")).code == 200


async def login_cookies(http_server_client: Any, jp_base_url: str, jp_serverapp: Any) -> str:
    """Log in as a browser does (the token once, then the cookie): its Cookie header."""
    token = jp_serverapp.identity_provider.token
    login = await http_server_client.fetch(f"{jp_base_url}lab?token={token}",
                                           raise_error=False, follow_redirects=False)
    return "; ".join(c.split(";", 1)[0] for c in login.headers.get_list("Set-Cookie"))


async def test_posts_with_a_cookie_need_the_xsrf_token(
    http_server_client: Any, jp_base_url: str, jp_serverapp: Any
) -> None:
    cookies = await login_cookies(http_server_client, jp_base_url, jp_serverapp)
    assert "username-" in cookies, cookies
    run = failing.run()
    path = f"{jp_base_url}labloom/api/runs/{run.id}/retry"
    refused = await http_server_client.fetch(path, method="POST", body=b"{}",
                                             raise_error=False, headers={"Cookie": cookies})
    assert refused.code == 403 and b"_xsrf" in refused.body
    xsrf = "2|00000000|abcdef0123456789abcdef0123456789|1700000000"
    allowed = await http_server_client.fetch(
        path, method="POST", body=b"{}", raise_error=False,
        headers={"Cookie": f"{cookies}; _xsrf={xsrf}", "X-XSRFToken": xsrf},
    )
    assert allowed.code == 202, allowed.body  # past auth and XSRF: the retry itself answers


def test_every_handler_is_authenticated_like_the_template_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The extension template's CI check: a server that allows no unauthenticated access
    warns about any handler without an auth decorator."""
    import warnings

    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))

    from jupyter_server.serverapp import ServerApp
    from jupyter_server.utils import JupyterServerAuthWarning

    app = ServerApp(
        allow_unauthenticated_access=False,
        jpserver_extensions={"labloom": True},
        reraise_server_extension_failures=True,
    )
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        app.initialize(argv=[], find_extensions=False, new_httpserver=False)
    problems = [str(r.message) for r in records if issubclass(r.category,
                                                              JupyterServerAuthWarning)]
    assert problems == []
    labloom_routes = [
        spec.matcher.regex.pattern for rule in app.web_app.default_router.rules
        for spec in getattr(rule.target, "rules", []) if "labloom/api" in spec.matcher.regex.pattern
    ]
    assert len(labloom_routes) == 19, labloom_routes  # 18 routes and the JSON 404
    import asyncio

    asyncio.run(app.cleanup_extensions())  # stops what the extension started (its watcher)


def test_the_store_is_never_read_on_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from labloom.server_extension import queries
    from labloom.store.reader import RunStore

    threads: list[str] = []
    real = RunStore.list_runs

    def spy(self: RunStore, *args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(RunStore, "list_runs", spy)
    access = queries.StoreAccess()
    try:
        result = asyncio.run(access.call(queries.list_runs, {}, 10))
    finally:
        access.close()
    assert result["runs"] == [] and threads and all(
        name.startswith("labloom-api") for name in threads
    )


class TestUnderABaseURL:
    @pytest.fixture
    def jp_base_url(self) -> str:
        return "/hub/user/ada/"

    async def test_routes_follow_the_base_url(self, jp_fetch: Any, http_server_client: Any,
                                              jp_serverapp: Any) -> None:
        run = squares.run(n=1)
        listing = await get(jp_fetch, "runs")
        assert [r["id"] for r in listing["runs"]] == [run.id]
        assert (await get(jp_fetch, "runs", run.id))["state"] == "Completed"
        token = jp_serverapp.identity_provider.token
        root = await http_server_client.fetch(f"/labloom/api/runs?token={token}",
                                              raise_error=False)
        assert root.code == 404


async def test_retry_of_a_flow_cells_run_reruns_it_from_its_notebook(
    jp_fetch: Any, ip: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from test_notebook_retry import run_in_kernel

    failed_id, _ = run_in_kernel(ip, monkeypatch, tmp_path)
    code, answer = await post(jp_fetch, "runs", failed_id, "retry")
    assert code == 202 and answer["retrying"] is True, answer

    async def retried() -> Any:
        runs = (await get(jp_fetch, "runs"))["runs"]
        return next((r for r in runs if r["retry_of"] == failed_id and r["ended"]), None)

    again = await until(retried)
    assert again["state"] == "Completed" and again["origin"] == "retry"
