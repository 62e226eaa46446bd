"""A command's change (`labloom schedule add`, `labloom limit set`) whose store server goes away
as it commits, and stays away past the connection wait: the command cannot ask whether the
change landed (``unanswered_commits.written_once``), so it says plainly what it knows. A COMMIT
sent but never answered: "may or may not have been made", the command that tells, exit status
4, whether it landed or not. A connection gone before the COMMIT was sent: "was not made",
exit status 2, and making it again once the server is back works. Before, both said only "the
store cannot be used now (...)", exit status 2: the user could not tell whether to add again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import labloom, running_script, wait_for, write
from pg_commit_cut import cut_command, cut_database
from test_cli_cancel import FLOW as HUNG
from test_schedule_pg_unanswered_commit import FLOW


@pytest.mark.parametrize("lands", [True, False], ids=["landed", "not landed"])
def test_a_change_whose_commit_went_unanswered_says_it_may_have_been_made(
    postgres_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, lands: bool
) -> None:
    write(tmp_path / "flows.py", FLOW)
    with cut_database(postgres_server, monkeypatch, commits=lands, goes_down=True,
                      writes=(b"INTO schedules ",)) as proxy:
        assert labloom(tmp_path, "schedule", "list").returncode == 0  # the store made
        done = cut_command(proxy, tmp_path, "schedule", "add", "flows.py:job", "--every", "1h")
        # Before: exit 2, "the store cannot be used now (...); try again later".
        assert done.returncode == 4, (done.stdout, done.stderr)
        assert "the change may or may not have been made" in done.stderr, done.stderr
        assert "`labloom schedule list` tells" in done.stderr, done.stderr
        proxy.down.clear()  # the server back: what the message names tells the truth
        listed = labloom(tmp_path, "schedule", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        assert ('"job"' in listed.stdout) is lands, listed.stdout


def test_a_change_cut_before_its_commit_says_it_was_not_made(
    postgres_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import psycopg

    with cut_database(postgres_server, monkeypatch, commits=False, goes_down=True,
                      at="write", writes=(b"INTO concurrency_limits ",)) as proxy:
        assert labloom(tmp_path, "limit", "list").returncode == 0
        done = cut_command(proxy, tmp_path, "limit", "set", "db", "3")
        assert done.returncode == 2, (done.stdout, done.stderr)
        assert "the change was not made" in done.stderr, done.stderr
        assert "make it again once the server is back" in done.stderr, done.stderr
        assert "may or may not" not in done.stderr
        proxy.down.clear()
        with psycopg.connect(proxy.direct) as direct:
            assert direct.execute("SELECT tag FROM concurrency_limits").fetchall() == []
        again = labloom(tmp_path, "limit", "set", "db", "3")
        assert again.returncode == 0 and "limit db: 3" in again.stdout, again.stderr


def test_a_cancel_whose_commit_went_unanswered_says_so_and_lands(
    postgres_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # at="alone": before, the request was a statement of its own, committed as answered.
    gate = tmp_path / "gate"
    with cut_database(postgres_server, monkeypatch, goes_down=True, at="alone",
                      writes=(b"INTO cancel_requests ",)) as proxy, \
            running_script(tmp_path / "nightly.py", HUNG, str(gate), home=tmp_path) as proc:
        wait_for(gate.exists, 60, "the run's hung task")
        [run] = json.loads(labloom(tmp_path, "runs", "--json").stdout)
        done = cut_command(proxy, tmp_path, "cancel", run["id"])
        assert done.returncode == 4, (done.stdout, done.stderr)
        assert "may or may not have been made" in done.stderr, done.stderr
        assert "`labloom runs` tells" in done.stderr, done.stderr
        proxy.down.clear()  # it landed: the run's process finds it once the server is back
        out, _ = proc.communicate(timeout=120)
        assert out.startswith("Cancelled"), out


@pytest.mark.parametrize("stays_down", [False, True], ids=["server back", "server away"])
def test_a_delete_whose_commit_went_unanswered(
    postgres_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, stays_down: bool
) -> None:
    # Back at once: asked, and done once (before: exit 2, "the store cannot be used now",
    # though the run was deleted). Away: said so, exit 4; `labloom runs` then tells.
    write(tmp_path / "flows.py", FLOW)
    with cut_database(postgres_server, monkeypatch, goes_down=stays_down,
                      writes=(b"INTO deleted_runs ",)) as proxy:
        ran = labloom(tmp_path, "run", "flows.py:job")
        assert ran.returncode == 0, ran.stderr
        [run] = json.loads(labloom(tmp_path, "runs", "--json").stdout)
        done = cut_command(proxy, tmp_path, "delete", run["id"])
        if stays_down:
            assert done.returncode == 4, (done.stdout, done.stderr)
            assert "may or may not have been made" in done.stderr, done.stderr
            assert "`labloom runs` tells" in done.stderr, done.stderr
            proxy.down.clear()
        else:
            assert done.returncode == 0, (done.stdout, done.stderr)
            assert "deleted 1 run(s)" in done.stdout, done.stdout
        listed = labloom(tmp_path, "runs", "--json")
        assert listed.returncode == 0 and json.loads(listed.stdout) == [], listed.stdout
