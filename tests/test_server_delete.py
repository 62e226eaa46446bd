"""Deleting runs from the Flows panel: ``DELETE runs/{id}`` and ``POST runs/delete`` on a real
Jupyter server (pytest-jupyter), on SQLite and PostgreSQL, by the rules of ``labloom delete``."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

import test_server_api as api
from labloom import flow, log_metrics, task
from labloom.store.db import get_database

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"labloom": True},
                          "allow_unauthenticated_access": False}}


@task(cache=True)
def cube(i: int) -> int:
    log_metrics(cube=i ** 3)  # rows the server keeps for the experiments table
    return i ** 3


@flow(executor="local")
def cubes(n: int = 2) -> list[int]:
    return cube.map(range(n))  # type: ignore[return-value]


async def delete(jp_fetch: Any, *path: str, method: str = "DELETE",
                 body: Any = None) -> tuple[int, Any]:
    try:
        response = await jp_fetch("labloom", "api", "runs", *path, method=method,
                                  body=None if body is None else json.dumps(body).encode())
    except HTTPClientError as exc:
        assert exc.response is not None
        return exc.code, json.loads(exc.response.body or b"{}")
    return response.code, json.loads(response.body)


def set_row(run_id: str, **row: object) -> None:
    conn = get_database().connect()
    try:
        sets = ", ".join(f"{name} = ?" for name in row)
        conn.execute(f"UPDATE flow_runs SET {sets} WHERE id = ?", (*row.values(), run_id))
    finally:
        conn.close()


async def test_delete_an_ended_run_and_its_unshared_result_files(
    jp_fetch: Any, labloom_home: Path, store_backend: str
) -> None:
    first, second = cubes.run(n=3), cubes.run(n=2)  # the second hits two of three files
    seen = await api.get(jp_fetch, "runs", first.id)  # read (and kept by the server) first
    assert seen["state"] == "Completed"
    node = seen["graph"]["nodes"][0]["id"]
    for path in (["experiments"], ["timeline"], ["tasks"], ["nodes", node]):
        assert await api.status_of(jp_fetch, "runs", first.id, *path) == 200, path
    assert (await api.get(jp_fetch, "runs", first.id, "experiments"))["total"] == 3
    code, answer = await delete(jp_fetch, first.id)
    assert code == 200, answer
    assert answer == {"run_id": first.id, "deleted": True, "task_runs": 3,
                      "result_files": {"deleted": 1, "bytes": answer["result_files"]["bytes"],
                                       "kept_shared": 2, "errors": []}}
    assert await api.status_of(jp_fetch, "runs", first.id) == 404
    for path in (["logs"], ["experiments"], ["timeline"], ["tasks"], ["nodes", node]):
        assert await api.status_of(jp_fetch, "runs", first.id, *path) == 404, path
    assert (await api.get(jp_fetch, "experiments", runs=first.id))["runs"] == []
    listed = await api.get(jp_fetch, "runs")
    assert [run["id"] for run in listed["runs"]] == [second.id]
    assert len(list((labloom_home / "results").rglob("*.pkl"))) == 2
    code, answer = await delete(jp_fetch, first.id)
    assert code == 404 and answer["message"] == "no such run"
    assert (await delete(jp_fetch, api.HOSTILE_ID))[0] == 404


async def test_what_may_not_be_deleted_is_refused_saying_why(
    jp_fetch: Any, labloom_home: Path, store_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()

    @task
    def hold() -> int:
        release.wait(30)
        return 1

    @flow(executor="threads")
    def holding() -> int:
        return hold()  # type: ignore[return-value]

    going = holding.run(background=True)
    try:
        await api.until(lambda: api._stored_state(going.id) == "Running")
        code, answer = await delete(jp_fetch, going.id)
        assert code == 409
        assert answer["message"] == (f"run {going.id} is still Running: only an ended run is "
                                     "deleted; cancel it or wait for it to end")
    finally:
        release.set()
    going.wait(30)

    alices, far = cubes.run(n=1), cubes.run(n=1)
    set_row(alices.id, username="alice")
    code, answer = await delete(jp_fetch, alices.id)
    assert code == 403 and "may not delete run" in answer["message"]
    assert "it belongs to alice" in answer["message"] and "LABLOOM_ADMINS" in answer["message"]
    # A run marked Crashed for its silence, its process elsewhere and maybe still writing.
    set_row(far.id, state="Crashed", host="far-host", heartbeat=time.time() - 90)
    code, answer = await delete(jp_fetch, far.id)
    assert code == 409 and "may still be writing" in answer["message"], answer

    # The panel's batch: each run that may go goes; the others say why they stayed.
    code, answer = await delete(jp_fetch, "delete", method="POST",
                                body={"runs": [going.id, alices.id, far.id, "abcdef0123"]})
    assert code == 200, answer
    assert answer["deleted"] == [going.id] and answer["task_runs"] == 1
    assert [(k["id"], k["status"]) for k in answer["kept"]] == [
        ("abcdef0123", 404), (alices.id, 403), (far.id, 409)]
    monkeypatch.setenv("LABLOOM_ADMINS", "someone," + _me())
    code, answer = await delete(jp_fetch, "delete", method="POST", body={"runs": [alices.id]})
    assert code == 200 and answer["deleted"] == [alices.id] and answer["kept"] == []

    for body in [{}, {"runs": []}, {"runs": "abc"}, {"runs": [api.HOSTILE_ID]}, [1]]:
        code, answer = await delete(jp_fetch, "delete", method="POST", body=body)
        assert code == 400 and "run id" in answer["message"], (body, answer)


def _me() -> str:
    from labloom.store.home import user_name

    return user_name()


async def test_delete_needs_jupyters_auth(jp_fetch: Any) -> None:
    for method, path in [("DELETE", ["abcdef012345"]), ("POST", ["delete"])]:
        with pytest.raises(HTTPClientError) as caught:
            await jp_fetch("labloom", "api", "runs", *path, method=method,
                           body=b"{}" if method == "POST" else None,
                           headers={"Authorization": ""})
        assert caught.value.code == 403, (method, path)


async def test_result_files_at_a_url_go_and_one_that_cannot_costs_only_itself(
    jp_fetch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A team's shared result folder (LABLOOM_RESULTS_URL, any fsspec URL): the server deletes
    # there too. An object store refusing one delete (gcsfs' HttpError, botocore's
    # ClientError: not OSErrors) must not turn a deletion whose rows are gone into a 500.
    import fsspec
    from fsspec.implementations.memory import MemoryFileSystem

    monkeypatch.setenv("LABLOOM_RESULTS_URL", "memory://labloom-delete-test")
    fs = fsspec.filesystem("memory")
    first, second = cubes.run(n=2), cubes.run(n=3)  # the second computes the third cube
    assert len(fs.find("/labloom-delete-test")) == 3
    code, answer = await delete(jp_fetch, second.id)
    assert code == 200 and answer["result_files"]["deleted"] == 1, answer
    assert len(fs.find("/labloom-delete-test")) == 2

    def refuse(self: Any, path: str) -> None:
        raise RuntimeError("403 Forbidden: storage.objects.delete")

    allowed = MemoryFileSystem.rm_file
    monkeypatch.setattr(MemoryFileSystem, "rm_file", refuse)
    code, answer = await delete(jp_fetch, first.id)
    assert code == 200, answer
    assert answer["result_files"]["deleted"] == 0
    assert "403 Forbidden" in answer["result_files"]["errors"][0]
    assert await api.status_of(jp_fetch, "runs", first.id) == 404
    monkeypatch.setattr(MemoryFileSystem, "rm_file", allowed)
    fs.rm("/labloom-delete-test", recursive=True)


async def test_a_delete_with_a_cookie_needs_the_xsrf_token(
    http_server_client: Any, jp_base_url: str, jp_serverapp: Any
) -> None:
    cookies = await api.login_cookies(http_server_client, jp_base_url, jp_serverapp)
    run = cubes.run(n=1)
    path = f"{jp_base_url}labloom/api/runs/{run.id}"
    refused = await http_server_client.fetch(path, method="DELETE", raise_error=False,
                                             headers={"Cookie": cookies})
    assert refused.code == 403 and b"_xsrf" in refused.body
    xsrf = "2|00000000|abcdef0123456789abcdef0123456789|1700000000"
    deleted = await http_server_client.fetch(
        path, method="DELETE", raise_error=False,
        headers={"Cookie": f"{cookies}; _xsrf={xsrf}", "X-XSRFToken": xsrf},
    )
    assert deleted.code == 200, deleted.body
    assert json.loads(deleted.body)["deleted"] is True


async def test_a_deletion_is_pushed_to_this_servers_other_views(
    jp_fetch: Any, jp_ws_fetch: Any, store_backend: str
) -> None:
    # Another browser window of the same server drops the rows and marks its tabs at once,
    # not at its next safety-net read: the store keeps no trace of a deleted run to push.
    from test_server_push import Socket

    socket = Socket(await jp_ws_fetch("api", "events", "subscribe"))
    one, two, three = cubes.run(n=1), cubes.run(n=1), cubes.run(n=1)
    assert (await delete(jp_fetch, one.id))[0] == 200
    code, answer = await delete(jp_fetch, "delete", method="POST",
                                body={"runs": [two.id, three.id]})
    assert code == 200 and answer["deleted"] == [two.id, three.id]
    deleted: list[str] = []
    deadline = time.monotonic() + 30
    while len(deleted) < 3:
        event = await socket.event(max(0.1, deadline - time.monotonic()))
        deleted += event.get("deleted", [])
    assert deleted == [one.id, two.id, three.id]
