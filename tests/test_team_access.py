"""Who may act on whose runs in a shared store: each run records its user; retry, cancel and
schedule changes on another user's run or schedule need an admin, and a refusal says why."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from labloom import NotAllowedError
from labloom.store.cancel import request_cancel
from labloom.store.db import get_database
from labloom.store.home import user_name
from store_helpers import cli, cli_json, run_script

FAILS = """
from labloom import flow, task

@task
def broken():
    raise RuntimeError("boom")

@flow
def shaky():
    return broken()

if __name__ == "__main__":
    shaky.run()
"""


def test_each_run_records_its_user(labloom_home: Path, tmp_path: Path) -> None:
    script = tmp_path / "shaky.py"
    script.write_text(FAILS)
    run_script(labloom_home, script, JUPYTERHUB_USER="ada")
    run_script(labloom_home, script)
    users = sorted(r["user"] for r in cli_json(labloom_home, "runs"))
    assert users == sorted(["ada", user_name()])


def test_retry_of_another_users_run_needs_an_admin(labloom_home: Path, tmp_path: Path) -> None:
    script = tmp_path / "shaky.py"
    script.write_text(FAILS)
    run_script(labloom_home, script, JUPYTERHUB_USER="ada")
    [run] = cli_json(labloom_home, "runs")
    refused = cli(labloom_home, "retry", run["id"], JUPYTERHUB_USER="bob")
    assert refused.returncode == 1
    assert (f"bob may not retry run {run['id']}: it belongs to ada" in refused.stderr
            and "LABLOOM_ADMINS (now: nobody)" in refused.stderr)
    assert len(cli_json(labloom_home, "runs")) == 1  # nothing ran
    as_admin = cli(labloom_home, "retry", run["id"], JUPYTERHUB_USER="bob",
                   LABLOOM_ADMINS="carol, bob")
    assert "may not" not in as_admin.stderr
    assert len(cli_json(labloom_home, "runs")) == 2  # the retry ran (and failed again)
    own = cli(labloom_home, "retry", run["id"], JUPYTERHUB_USER="ada")
    assert "may not" not in own.stderr


def test_schedule_changes_need_the_owner_or_an_admin(labloom_home: Path, tmp_path: Path) -> None:
    script = tmp_path / "shaky.py"
    script.write_text(FAILS)
    added = cli(labloom_home, "schedule", "add", f"{script}:shaky", "--every", "1h",
                JUPYTERHUB_USER="ada")
    assert added.returncode == 0, added.stderr
    refused = cli(labloom_home, "schedule", "pause", "shaky", JUPYTERHUB_USER="bob")
    assert refused.returncode == 1
    assert "bob may not pause schedule 'shaky': it belongs to ada" in refused.stderr
    assert cli(labloom_home, "schedule", "remove", "shaky",
               JUPYTERHUB_USER="bob").returncode == 1
    listing = cli_json(labloom_home, "schedule", "list")
    assert listing["schedules"][0]["owner"] == "ada" and not listing["schedules"][0]["paused"]
    assert cli(labloom_home, "schedule", "pause", "shaky", JUPYTERHUB_USER="bob",
               LABLOOM_ADMINS="bob").returncode == 0
    assert cli(labloom_home, "schedule", "resume", "shaky",
               JUPYTERHUB_USER="ada").returncode == 0


def test_cancel_of_another_users_run_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with get_database().connect() as conn:
        conn.execute(
            "INSERT INTO flow_runs (id, flow_name, state, created, host, pid, heartbeat, "
            "username) VALUES ('r1', 'f', 'Running', ?, 'elsewhere', 1, ?, 'ada')",
            (time.time(), time.time()),
        )
    monkeypatch.setenv("JUPYTERHUB_USER", "bob")
    with pytest.raises(NotAllowedError, match="bob may not cancel run r1: it belongs to ada"):
        request_cancel("r1")
    monkeypatch.setenv("LABLOOM_ADMINS", "bob")
    assert request_cancel("r1") == "Running"
    with get_database().connect() as conn:
        assert conn.execute("SELECT run_id FROM cancel_requests").fetchall() == [("r1",)]


def test_an_admin_s_cancel_of_another_users_run_names_the_admin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Ada found her nightly run Cancelled "from the command line" and could not tell who: the
    # run's message (labloom show, the Flows panel) names the admin who cancelled it.
    with get_database().connect() as conn:
        for run_id, owner in (("r1", "ada"), ("r2", "bob")):
            conn.execute(
                "INSERT INTO flow_runs (id, flow_name, state, created, host, pid, heartbeat, "
                "username) VALUES (?, 'f', 'Running', ?, 'elsewhere', 1, ?, ?)",
                (run_id, time.time(), time.time(), owner),
            )
    monkeypatch.setenv("JUPYTERHUB_USER", "bob")
    monkeypatch.setenv("LABLOOM_ADMINS", "bob")
    request_cancel("r1", "cancelled from the Flows panel")
    request_cancel("r2", "cancelled from the Flows panel")
    with get_database().connect() as conn:
        reasons = dict(conn.execute("SELECT run_id, reason FROM cancel_requests").fetchall())
    assert reasons == {"r1": "cancelled from the Flows panel by bob (an admin)",
                       "r2": "cancelled from the Flows panel"}  # one's own: as before


def test_the_flows_panel_refuses_with_403_and_the_reason(
    labloom_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tornado import web

    from labloom.server_extension import control
    from labloom.store import open_store

    script = tmp_path / "shaky.py"
    script.write_text(FAILS)
    run_script(labloom_home, script, JUPYTERHUB_USER="ada")
    monkeypatch.setenv("JUPYTERHUB_USER", "bob")  # the single-user server's owner
    with open_store() as store:
        [run] = store.list_runs()
        with pytest.raises(web.HTTPError) as refused:
            control.retry(None, store, run.id)
    assert refused.value.status_code == 403
    assert "bob may not retry" in str(refused.value.log_message)



def test_the_panel_s_schedule_actions_and_launch_refuse_alike(
    labloom_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``POST schedules/{name}/ACTION`` and ``POST flows/run {"schedule": ...}`` look the
    schedule up with one helper: the same 404 and the same 403 with the access rules' reason."""
    from tornado import web

    from labloom.server_extension import launch, schedules
    from labloom.store import open_store

    script = tmp_path / "shaky.py"
    script.write_text(FAILS)
    added = cli(labloom_home, "schedule", "add", f"{script}:shaky", "--every", "1h",
                JUPYTERHUB_USER="ada")
    assert added.returncode == 0, added.stderr
    monkeypatch.setenv("JUPYTERHUB_USER", "bob")  # the single-user server's owner
    calls = [
        ("pause", lambda store, name: schedules.act(None, store, name, "pause")),
        ("run", lambda store, name: schedules.act(None, store, name, "run")),
        ("run", lambda store, name: launch.resolve(None, store, {"schedule": name})),
    ]
    with open_store() as store:
        for action, call in calls:
            with pytest.raises(web.HTTPError) as refused:
                call(store, "shaky")
            assert refused.value.status_code == 403
            assert (f"bob may not {action} schedule 'shaky': it belongs to ada"
                    in str(refused.value.log_message))
            for name in ("nope", "../etc"):
                with pytest.raises(web.HTTPError) as missing:
                    call(store, name)
                assert (missing.value.status_code, missing.value.log_message) == (
                    404, "no such schedule")
    listing = cli_json(labloom_home, "schedule", "list")
    assert not listing["schedules"][0]["paused"]

def test_the_flows_panel_lists_runs_by_user(labloom_home: Path, tmp_path: Path) -> None:
    from labloom.server_extension import queries
    from labloom.store import open_store

    script = tmp_path / "shaky.py"
    script.write_text(FAILS)
    for user in ("ada", "bob", "ada"):
        run_script(labloom_home, script, JUPYTERHUB_USER=user)
    access = queries.StoreAccess()
    with open_store() as store:
        page = queries.list_runs(access, store, {"user": "ada"}, 10)
        everyone = queries.list_runs(access, store, {}, 10)
    access.close()
    assert [run["user"] for run in page["runs"]] == ["ada", "ada"]
    assert sorted(run["user"] for run in everyone["runs"]) == ["ada", "ada", "bob"]
