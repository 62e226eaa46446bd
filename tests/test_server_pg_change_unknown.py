"""The Flows panel's delete and cancel (REST, a real Jupyter server in this process) whose
PostgreSQL server goes away at the change's COMMIT and stays away past the connection wait:
504, saying the change may or may not have been made (and, for a delete over several
batches, which runs were deleted before it), never made again. Before, the delete was tried
again on a new connection of the pool thread, which could not be made: 503 "cannot reach the
store", as if nothing had been done; a cancel answered 503, which means "not made, try again"
to a client (docs/rest-api.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from cli_helpers import labloom, wait_for
from cut_runs import sixty_runs, states_of, three_held_runs
from pg_commit_cut import cut_database

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"labloom": True},
                          "allow_unauthenticated_access": False}}


async def post(jp_fetch: Any, *path: str, body: Any) -> tuple[int, Any]:
    try:
        response = await jp_fetch("labloom", "api", "runs", *path, method="POST",
                                  body=json.dumps(body).encode())
    except HTTPClientError as exc:
        assert exc.response is not None
        return exc.code, json.loads(exc.response.body or b"{}")
    return response.code, json.loads(response.body)


async def test_a_delete_whose_commit_went_unanswered_answers_504_naming_what_was_deleted(
    jp_fetch: Any, postgres_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    labloom_home: Path,
) -> None:
    monkeypatch.setenv("LABLOOM_DB_CONNECT_TIMEOUT", "1")  # read as the store opens
    with cut_database(postgres_server, monkeypatch, goes_down=True, skip=1,
                      writes=(b"INTO deleted_runs ",)) as proxy:
        ids = sixty_runs(labloom_home, tmp_path)
        proxy.armed.set()
        code, answer = await post(jp_fetch, "delete", body={"runs": ids})
        assert proxy.cut.is_set() and proxy.down.is_set()
        message = " ".join(answer.get("message", "").split())
        assert code == 504, (code, answer)  # before: 503, "cannot reach the store"
        assert message.startswith("[labloom] deleted before the store's server went away: 50 "
                                  f"run(s) ({', '.join(ids[:20])} and 30 more); of the next "
                                  "10"), message
        assert "the change may or may not have been made" in message, message
        assert message.endswith("before making it again: the run list tells"), message
        # for the panel to drop their rows: before, only the message named them
        assert answer["deleted"] == ids[:50], answer
        assert answer["cut_off"] == ids[50:] and answer["not_tried"] == 0, answer
        proxy.down.clear()
        left = json.loads(labloom(labloom_home, "runs", "--json", "--limit", "100").stdout)
        assert not {r["id"] for r in left} & set(ids[:50]), left


async def test_a_cancel_whose_commit_went_unanswered_answers_504(
    jp_fetch: Any, postgres_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    labloom_home: Path,
) -> None:
    monkeypatch.setenv("LABLOOM_DB_CONNECT_TIMEOUT", "1")
    stop = tmp_path / "stop"
    with cut_database(postgres_server, monkeypatch, goes_down=True,
                      writes=(b"INTO cancel_requests ",)) as proxy, \
            three_held_runs(labloom_home, stop) as proc:
        run_id = json.loads(labloom(labloom_home, "runs", "--json").stdout)[0]["id"]
        proxy.armed.set()
        code, answer = await post(jp_fetch, run_id, "cancel", body={})
        assert proxy.cut.is_set() and proxy.down.is_set()
        assert code == 504, (code, answer)  # before: 503, read as "not made"
        assert "the change may or may not have been made" in answer["message"], answer
        proxy.down.clear()  # it landed: the run's process finds it once the server is back
        wait_for(lambda: states_of(labloom_home, [run_id]) == ["Cancelled"], 60,
                 "the run cancelled")
        stop.touch()
        out, _ = proc.communicate(timeout=120)
        assert f"{run_id}=Cancelled" in out.split(), out


async def test_a_delete_whose_later_batch_was_cut_before_its_commit_answers_503_naming_both(
    jp_fetch: Any, postgres_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    labloom_home: Path,
) -> None:
    # The second batch's connection goes at its last delete, before its COMMIT (its text, for
    # 10 runs, is sent anew: the proxy sees it), the server away past the wait: that batch
    # was not made. Before, the pool thread ran the whole delete again on a new connection,
    # which could not be made: a plain 503 "cannot reach the store", the 50 runs the first
    # batch deleted named nowhere (the panel kept their rows).
    monkeypatch.setenv("LABLOOM_DB_CONNECT_TIMEOUT", "1")
    with cut_database(postgres_server, monkeypatch, goes_down=True, skip=1, commits=False,
                      at="write", writes=(b"DELETE FROM flow_runs ",)) as proxy:
        ids = sixty_runs(labloom_home, tmp_path)
        proxy.armed.set()
        code, answer = await post(jp_fetch, "delete", body={"runs": ids})
        assert proxy.cut.is_set() and proxy.down.is_set()
        message = " ".join(answer.get("message", "").split())
        assert code == 503, (code, answer)  # not made: sending it again is safe
        assert answer.get("deleted") == ids[:50], answer  # before: no field, 503 all the same
        assert answer["cut_off"] == ids[50:] and answer["not_tried"] == 0, answer
        assert message.startswith("[labloom] deleted before the store's server went away: 50 "
                                  f"run(s) ({', '.join(ids[:20])} and 30 more); of the next "
                                  "10"), message
        assert "the change was not made" in message and "may or may not" not in message
        proxy.down.clear()
        left = json.loads(labloom(labloom_home, "runs", "--json", "--limit", "100").stdout)
        assert [r["id"] for r in left] == ids[50:], left  # the cut batch's runs all there
