"""`labloom run --notify`'s failure alert kept in the store's outbox: what the command could not
deliver (its webhook down: 500, refused) the next `labloom serve` on the store sends, once; one
it delivered is not sent again; one it was posting when killed (-9) a serve sends. `labloom
show` says what became of it. The real CLI in subprocesses, webhooks on 127.0.0.1, both store
backends."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import Hook, labloom, start_labloom, stop, store_of, wait_for, write
from test_alerts_kept import FLOWS, HangingHook, beats, end, pending_rows
from test_server_api import get

pytest_plugins = ["pytest_jupyter.jupyter_server"]

FAST = {"LABLOOM_NOTIFY_DELAYS": "0.1,0.1"}  # three attempts by the command


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"labloom": True}}}


def failed_run(home: Path, url: str, **env: str) -> tuple[subprocess.CompletedProcess[str], str]:
    write(home / "flows.py", FLOWS)
    out = labloom(home, "run", "flows.py:etl", "--notify", url, LABLOOM_PROGRESS="0", **env)
    assert out.returncode == 1, out.stderr
    return out, last_run(home)


def last_run(home: Path) -> str:
    runs = json.loads(labloom(home, "runs", "--json").stdout)
    return str(runs[0]["id"])


def shown_alert(home: Path, run_id: str) -> tuple[dict[str, Any] | None, str]:
    shown = labloom(home, "show", run_id, "--json")
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)["alert"], labloom(home, "show", run_id).stdout


def serve_until_sent(home: Path, hook: Hook, sent: int) -> tuple[str, str]:
    """A serve on the store until the hook took ``sent`` alerts and none waits; its output."""
    serve = start_labloom(home, "serve", "--tick", "0.1")
    try:
        wait_for(lambda: len(hook.bodies) >= sent and not pending_rows(home), 60,
                 "the serve to send the alert the command left")
        before = beats(home)
        wait_for(lambda: beats(home) > before, 30, "a tick of the serve after that")
        return end(serve)
    finally:
        stop(serve)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("down", ["HTTP 500", "refused"])
def test_an_alert_the_run_could_not_deliver_is_sent_once_by_the_next_serve(
    labloom_home: Path, down: str,
) -> None:
    # A cron job's run fails while its webhook is down. Before, the command gave up after its
    # retries and the alert was gone: nobody heard of the failure. Now it waits in the store,
    # `labloom show` says so, and a serve started later delivers it, once.
    home = labloom_home
    port = free_port()
    hook = Hook([500, 500, 500]) if down == "HTTP 500" else None
    url = hook.url if hook else f"http://127.0.0.1:{port}/hooks/T0/secret-token"
    try:
        out, run_id = failed_run(home, url, **FAST)
        assert "failure alert not delivered yet" in out.stderr, out.stderr
        assert "the next `labloom serve` on it sends it" in out.stderr
        [row] = pending_rows(home)
        assert row["run_id"] == run_id and row["schedule"] == "" and row["sender"] is None
        alert, text = shown_alert(home, run_id)
        assert alert is not None and alert["state"] == "pending", alert
        reason = "HTTP 500" if hook else "connection failed (ConnectionRefusedError)"
        assert alert["reason"] == f"{reason} (labloom run: 3 attempt(s))", alert
        assert "failure alert: not delivered yet" in text and "`labloom serve` sends it" in text
        if hook is None:
            hook = Hook([], port=port)  # the webhook is back
        taken_by_run = len(hook.bodies)  # the refused ones
        stdout, stderr = serve_until_sent(home, hook, taken_by_run + 1)
        assert hook.connections_so_far() == taken_by_run + 1, (stdout, stderr)
    finally:
        if hook is not None:
            hook.close()
    body = hook.bodies[-1]
    assert body["run_id"] == run_id and body["failed_tasks"] == ["check"]
    assert "schedule" not in body and "PATIENT-4711" not in json.dumps(body)
    alert, text = shown_alert(home, run_id)
    assert alert is not None and alert["state"] == "delivered", alert
    assert "failure alert: delivered" in text
    assert "secret-token" not in out.stderr + stdout + stderr + text


def test_an_alert_the_run_delivered_is_not_sent_again_by_a_serve(labloom_home: Path) -> None:
    home = labloom_home
    hook = Hook([])
    try:
        out, run_id = failed_run(home, hook.url, **FAST)
        assert "failure alert delivered" in out.stderr, out.stderr
        assert not pending_rows(home)
        serve = start_labloom(home, "serve", "--tick", "0.1")
        try:
            wait_for(lambda: beats(home) > 0, 60, "the serve to beat")
            before = beats(home)
            wait_for(lambda: beats(home) > before, 30, "a tick after its first")
            end(serve)
        finally:
            stop(serve)
        assert hook.connections_so_far() == 1
    finally:
        hook.close()
    alert, text = shown_alert(home, run_id)
    assert alert is not None and alert["state"] == "delivered" and alert["attempts"] == 1
    assert "failure alert: delivered" in text


def test_a_run_killed_while_it_posts_its_alert_leaves_it_to_a_serve(labloom_home: Path) -> None:
    # The webhook hangs (accepts, never answers) and the command is killed (-9) while it waits
    # for the answer: the alert, kept with the failure before the first post, is the serve's to
    # send, as soon as it sees the command gone (not after the command's 60 s window).
    home = labloom_home
    write(home / "flows.py", FLOWS)
    hanging = HangingHook()
    run = start_labloom(home, "run", "flows.py:etl", "--notify", hanging.url,
                        LABLOOM_PROGRESS="0", LABLOOM_NOTIFY_TIMEOUT="600")
    hook = None
    try:
        [row] = wait_for(lambda: pending_rows(home), 60, "the command to keep its alert")
        assert row["sender"] == f"run:{run.pid}@{socket.gethostname()}", row
        wait_for(lambda: hanging.requests, 60, "the command to post it")
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=60)
        conn = store_of(home)
        assert conn is not None
        with conn:
            [(state,)] = conn.execute("SELECT state FROM flow_runs").fetchall()
        assert state == "Failed"
        hanging.close()
        hook = Hook([], port=int(hanging.url.split(":")[2].split("/")[0]))  # back, answering
        serve_until_sent(home, hook, 1)
        assert hook.connections_so_far() == 1
    finally:
        stop(run)
        hanging.close()
        if hook is not None:
            hook.close()
    assert hook.bodies[0]["run_id"] == row["run_id"]
    alert, _ = shown_alert(home, str(row["run_id"]))
    assert alert is not None and alert["state"] == "delivered"


def test_an_alert_a_serve_gives_up_is_said_by_show(labloom_home: Path) -> None:
    # The webhook's token was revoked (404): the command's tries and then the serve's are
    # refused. The serve gives it up, and the run says so; `schedule list` has no schedule to
    # show it under.
    home = labloom_home
    once = {"LABLOOM_NOTIFY_DELAYS": "0.1"}  # two attempts each, the command's and the serve's
    hook = Hook([404] * 4)
    try:
        out, run_id = failed_run(home, hook.url, **once)
        assert "failure alert not delivered yet (HTTP 404 (no such webhook" in out.stderr
        serve = start_labloom(home, "serve", "--tick", "0.1", **once)
        try:
            wait_for(lambda: not pending_rows(home), 60, "the serve to give the alert up")
            _, stderr = end(serve)
        finally:
            stop(serve)
        assert hook.connections_so_far() == 4
    finally:
        hook.close()
    assert f"alert for run {run_id} (labloom run --notify) not delivered after 2 attempts" \
        in stderr and f"`labloom show {run_id}` says so" in stderr, stderr
    alert, text = shown_alert(home, run_id)
    assert alert is not None and alert["state"] == "given up" and alert["attempts"] == 2
    assert "failure alert: given up" in text and "after 2 attempt(s): HTTP 404" in text, text
    listed = labloom(home, "schedule", "list", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout)["schedules"] == []


def test_a_bad_notify_timeout_stops_the_run_before_it_starts(labloom_home: Path) -> None:
    # The command's posts now take LABLOOM_NOTIFY_TIMEOUT, as a serve's do: a wrong one is
    # refused before the run starts, not found after its failure (a traceback, the alert lost).
    write(labloom_home / "flows.py", FLOWS)
    out = labloom(labloom_home, "run", "flows.py:etl", "--notify", "http://127.0.0.1:9/x",
                  LABLOOM_NOTIFY_TIMEOUT="ten")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "LABLOOM_NOTIFY_TIMEOUT must be a number of seconds above 0" in out.stderr
    assert json.loads(labloom(labloom_home, "runs", "--json").stdout) == []


async def test_the_runs_rest_answer_says_what_became_of_its_alert(
    labloom_home: Path, jp_fetch: Any
) -> None:
    # The Lab's run tab reads GET runs/{id}: the alert waiting for a serve is there too.
    port = free_port()  # nothing listens: refused
    _, run_id = failed_run(labloom_home, f"http://127.0.0.1:{port}/hooks/T0/secret-token",
                           LABLOOM_NOTIFY_DELAYS="0.1")
    detail = await get(jp_fetch, "runs", run_id)
    assert detail["alert"]["state"] == "pending", detail["alert"]
    assert detail["alert"]["reason"] == ("connection failed (ConnectionRefusedError) "
                                         "(labloom run: 2 attempt(s))")
    assert "secret-token" not in json.dumps(detail)
