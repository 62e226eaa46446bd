"""A delete whose store's server goes away after every batch of it landed: the runs are gone,
and so it says (`labloom delete`, the Flows panel's POST runs/delete), with their result files
left for `labloom delete --files-left` once the server is back (``store/files_left.py``).
Before, the CLI said only "the store cannot be used now" (exit 2) and the Flows panel answered
a plain 503 (or, the server quickly back, ran the delete again: every run "no such run"), and
no command ever deleted those files. And a batch whose lost COMMIT was found landed is counted
deleted though the store's connection cannot be made again after it. The tests' PostgreSQL
behind ``pg_commit_cut``'s proxy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import cli_env, labloom
from cut_runs import sixty_runs
from labloom.core.errors import StoreChangeUnknownError, StoreUnreachableError
from pg_commit_cut import cut_command, cut_database
from test_server_pg_change_unknown import post

pytest_plugins = ["pytest_jupyter.jupyter_server"]

SQUARES = """
from labloom import flow, task

@task(cache=True)
def square(i):
    return i * i

@flow
def squares(n: int):
    return square.map(range(n))

squares.run(n=3)
"""
# The files step's one query (``unreferenced_results.still_named``): cut, the server away.
_FILES_QUERY = dict(goes_down=True, commits=False, at="write", writes=(b"WHERE result_path IN",))


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"labloom": True},
                          "allow_unauthenticated_access": False}}


def a_run_with_three_files(home: Path, folder: Path) -> str:
    script = folder / "squares.py"
    script.write_text(SQUARES)
    made = subprocess.run([sys.executable, str(script)], text=True, capture_output=True,
                          env=cli_env(home), timeout=120)
    assert made.returncode == 0, made.stderr
    assert len(files_of(home)) == 3
    [run] = json.loads(labloom(home, "runs", "--json").stdout)
    return str(run["id"])


def files_of(home: Path) -> list[Path]:
    return list((home / "results").rglob("*.pkl"))


def freed_later(home: Path, proxy: Any) -> None:
    """Once the server is back, `labloom delete --files-left` deletes the files left."""
    proxy.down.clear()
    done = labloom(home, "delete", "--files-left", "--json")
    assert done.returncode == 0, (done.stdout, done.stderr)
    said = json.loads(done.stdout)
    assert said["deleted"] == [] and said["result_files"]["deleted"] == 3, said
    assert said["result_files"]["errors"] == [], said
    assert files_of(home) == []
    again = json.loads(labloom(home, "delete", "--files-left", "--json").stdout)
    assert again["result_files"]["deleted"] == 0, again  # forgotten once freed


def says_left(error: str) -> None:
    assert error.startswith("3 result file(s) of the deleted runs not deleted: the store's "
                            "server went away before it said whether runs left in it name "
                            "them ("), error
    assert "`labloom delete --files-left` deletes those no run names once the server is back"\
        in error, error


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "text"])
def test_a_cli_delete_whose_server_went_away_at_its_files_says_the_runs_are_deleted(
    postgres_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    labloom_home: Path, as_json: bool,
) -> None:
    with cut_database(postgres_server, monkeypatch, **_FILES_QUERY) as proxy:
        run_id = a_run_with_three_files(labloom_home, tmp_path)
        done = cut_command(proxy, labloom_home, "delete", run_id, *["--json"] * as_json)
        # before: exit 2, "the store cannot be used now", the files never deleted after
        assert done.returncode == 0, (done.stdout, done.stderr)
        if as_json:
            said = json.loads(done.stdout)
            assert said["deleted"] == [run_id] and said["task_runs"] == 3, said
            assert said["result_files"]["deleted"] == 0, said
            [error] = said["result_files"]["errors"]
        else:
            lines = done.stdout.splitlines()
            assert lines[0] == "deleted 1 run(s) (3 task runs)", lines
            [error] = lines[1:]
        says_left(error)
        assert len(files_of(labloom_home)) == 3
        freed_later(labloom_home, proxy)


async def test_a_lab_delete_whose_server_went_away_at_its_files_answers_200(
    jp_fetch: Any, postgres_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    labloom_home: Path,
) -> None:
    monkeypatch.setenv("LABLOOM_DB_CONNECT_TIMEOUT", "1")  # read as the store opens
    with cut_database(postgres_server, monkeypatch, **_FILES_QUERY) as proxy:
        run_id = a_run_with_three_files(labloom_home, tmp_path)
        proxy.armed.set()
        code, answer = await post(jp_fetch, "delete", body={"runs": [run_id]})
        assert proxy.cut.is_set() and proxy.down.is_set(), (code, answer)
        assert code == 200, (code, answer)  # before: 503 "cannot reach the store"
        assert answer["deleted"] == [run_id] and answer["kept"] == [], answer
        [error] = answer["result_files"]["errors"]
        says_left(error)
        freed_later(labloom_home, proxy)


def test_a_batch_found_landed_stays_deleted_when_the_next_connection_cannot_be_made(
    postgres_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    # The first batch's COMMIT lands, its answer lost; a new connection asks and finds it
    # landed; then the server goes away (here, as that answer came). Before, the connection
    # made again after that batch failed inside its try: it was reported cut off, "not made",
    # and the other 10 not tried. In this process: the moment it goes is the test's.
    from labloom.store import open_store, pruning

    monkeypatch.setenv("LABLOOM_DB_CONNECT_TIMEOUT", "1")  # read as the store opens
    with cut_database(postgres_server, monkeypatch, writes=(b"INTO deleted_runs ",)) as proxy:
        ids = sixty_runs(tmp_path, tmp_path)
        asked = pruning.written_once

        def then_away(*args: Any, **kwargs: Any) -> Any:
            value = asked(*args, **kwargs)
            if proxy.cut.is_set():
                proxy._go_down()  # found landed: the server goes
            return value

        monkeypatch.setattr(pruning, "written_once", then_away)
        with open_store() as store:
            runs = [store.get_run(run_id) for run_id in ids]
            proxy.armed.set()
            with pytest.raises(StoreUnreachableError) as raised:
                pruning.delete_runs(store, runs)
        assert proxy.cut.is_set() and proxy.down.is_set()
        done = raised.value.done or {}
        assert done["deleted"] == ids[:50], done  # before: [], the 50 said cut off
        assert done["cut_off"] == ids[50:] and done["not_tried"] == 0, done
        assert not isinstance(raised.value, StoreChangeUnknownError), raised.value  # not made
        proxy.down.clear()
        left = json.loads(labloom(tmp_path, "runs", "--json", "--limit", "100").stdout)
        assert [r["id"] for r in left] == ids[50:], left
