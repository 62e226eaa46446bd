"""`labloom run --notify` killed (-9) before it kept its failure alert, during the run or
between the failure written and the alert kept: the wish it kept at the run's start lets the
next `labloom serve` compose the alert from the store (Crashed, or the run's end) and send it,
once, with two serves as with one. A run that completes leaves no alert and no wish. The real
CLI in subprocesses, a webhook on 127.0.0.1, both store backends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import Hook, labloom, start_labloom, stop, store_of, wait_for, write
from test_alerts_kept import FLOWS, beats, end, pending_rows

HANGS = """
    import time
    from pathlib import Path
    from labloom import flow, task

    @task
    def load(marker):
        Path(marker).write_text("started")
        time.sleep(600)

    @flow
    def nightly(marker: str = "started.txt"):
        load(marker)
"""
FAILS = FLOWS + """
    @flow
    def fine():
        return 1
"""


def wishes(home: Path) -> list[dict[str, Any]]:
    conn = store_of(home)
    if conn is None:
        return []
    with conn:
        return [dict(r) for r in conn.execute("SELECT * FROM run_alert_wishes")]


def run_state(home: Path) -> str | None:
    """The state of the store's one run (None before it is written)."""
    conn = store_of(home)
    if conn is None:
        return None
    with conn:
        rows = conn.execute("SELECT state FROM flow_runs").fetchall()
    return str(rows[0][0]) if rows else None


def killed_mid_run(home: Path, url: str) -> str:
    """A `labloom run --notify` killed -9 while its task runs; the run's id."""
    write(home / "flows.py", HANGS)
    run = start_labloom(home, "run", "flows.py:nightly", "--notify", url, LABLOOM_PROGRESS="0")
    try:
        wait_for(lambda: (home / "started.txt").exists() and wishes(home)
                 and task_states(home) == ["Running"], 60,
                 "the task to run, in the store too, and the run's alert to be wished for")
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=60)
    finally:
        stop(run)
    [wish] = wishes(home)
    assert run_state(home) == "Running"  # nobody marked it yet
    return str(wish["run_id"])


def task_states(home: Path) -> list[str]:
    conn = store_of(home)
    if conn is None:
        return []
    with conn:
        return [str(row[0]) for row in conn.execute("SELECT state FROM task_runs")]


def serve_some(home: Path, hook: Hook, serves: int = 1) -> list[tuple[str, str]]:
    """``serves`` serves on the store until the hook took an alert and none waits, then a
    tick more of each; their output."""
    procs = [start_labloom(home, "serve", "--tick", "0.1") for _ in range(serves)]
    try:
        wait_for(lambda: hook.bodies and not pending_rows(home), 60,
                 "a serve to send the dead run's alert")
        for _ in range(serves + 1):  # one tick of each serve at least
            next_beat(home)
        return [end(proc) for proc in procs]
    finally:
        for proc in procs:
            stop(proc)


def next_beat(home: Path) -> None:
    before = beats(home)
    wait_for(lambda: beats(home) > before, 30, "a heartbeat of a serve")


def shown(home: Path, run_id: str) -> tuple[dict[str, Any] | None, str]:
    out = labloom(home, "show", run_id, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["alert"], labloom(home, "show", run_id).stdout


def test_a_run_killed_mid_task_is_alerted_crashed_by_the_next_serve(labloom_home: Path) -> None:
    # The nightly job's process is killed (-9, the OOM killer) while its task runs. Before,
    # the run ended Crashed once something read the store, and nobody was told.
    home = labloom_home
    hook = Hook([])
    try:
        run_id = killed_mid_run(home, hook.url)
        alert, text = shown(home, run_id)  # show marks it Crashed: the alert waits for a serve
        assert alert == {"state": "pending", "attempts": 0, "next_try": None,
                         "reason": "its `labloom run` stopped before it sent it"}, alert
        assert "failure alert: not sent yet" in text and "`labloom serve`" in text, text
        [(stdout, stderr)] = serve_some(home, hook)
        assert hook.connections_so_far() == 1, (stdout, stderr)
    finally:
        hook.close()
    [body] = hook.bodies
    assert body["run_id"] == run_id and body["state"] == "Crashed" and body["flow"] == "nightly"
    assert body["failed_tasks"] == ["load"] and "is gone" in body["error"], body
    assert f"run {run_id} Crashed" in body["text"] and f"labloom retry {run_id}" in body["text"]
    assert f"run {run_id} of flow 'nightly' ended Crashed" in stderr, stderr
    assert not wishes(home)
    alert, text = shown(home, run_id)
    assert alert is not None and alert["state"] == "delivered" and alert["attempts"] == 1
    assert "secret-token" not in stdout + stderr + text


def test_two_serves_send_a_dead_runs_alert_once(labloom_home: Path) -> None:
    home = labloom_home
    hook = Hook([])
    try:
        run_id = killed_mid_run(home, hook.url)
        outputs = serve_some(home, hook, serves=2)
        assert hook.connections_so_far() == 1, outputs
    finally:
        hook.close()
    assert [body["run_id"] for body in hook.bodies] == [run_id]
    said = [err for _, err in outputs if f"run {run_id} of flow 'nightly' ended Crashed" in err]
    assert len(said) == 1, outputs


def test_a_run_killed_after_its_failure_before_its_alert_is_alerted_failed(
    labloom_home: Path,
) -> None:
    # The command is killed after the store has the run's failure and before it keeps its
    # alert: held there by a --report (the file a serve's run writes first) that is a FIFO
    # nobody reads.
    home = labloom_home
    hook = Hook([])
    run, _ = held_at_its_report(home, "etl", hook.url)
    try:
        # The wish and the failure are written apart: both waited for (the command is held at
        # the FIFO meanwhile), not the wish read at once once the failure shows.
        wait_for(lambda: run_state(home) == "Failed" and wishes(home), 60,
                 "the run to fail, its alert wished for")
        assert run.poll() is None and not pending_rows(home)
    except BaseException:
        stop(run)
        hook.close()
        raise
    body = killed_then_served(home, run, hook)
    assert body["state"] == "Failed" and body["failed_tasks"] == ["check"], body
    assert "its `labloom run` died before it sent this alert" in body["error"]
    assert "PATIENT-4711" not in json.dumps(body)


def killed_then_served(home: Path, run: subprocess.Popen[str], hook: Hook) -> dict[str, Any]:
    """The held command killed -9, a serve until it sent the one alert there is: its body."""
    try:
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=60)
        [(stdout, stderr)] = serve_some(home, hook)
        assert hook.connections_so_far() == 1, (stdout, stderr)
    finally:
        stop(run)
        hook.close()
    [body] = hook.bodies
    return dict(body)


def held_at_its_report(home: Path, flow: str, url: str, **env: str
                       ) -> tuple[subprocess.Popen[str], Path]:
    """`labloom run flows.py:FLOW --notify URL` (FAILS) whose --report (the file a serve's run
    writes first) is a FIFO nobody reads yet: it stops after the run's end is recorded and
    before its alert is kept; the FIFO."""
    write(home / "flows.py", FAILS)
    fifo = home / "report.fifo"
    os.mkfifo(fifo)
    return start_labloom(home, "run", f"flows.py:{flow}", "--notify", url, "--report",
                         str(fifo), LABLOOM_PROGRESS="0", **env), fifo


def test_a_completed_run_leaves_no_alert_and_no_wish(labloom_home: Path) -> None:
    home = labloom_home
    write(home / "flows.py", FAILS)
    hook = Hook([])
    try:
        out = labloom(home, "run", "flows.py:fine", "--notify", hook.url, LABLOOM_PROGRESS="0")
        assert out.returncode == 0, out.stderr
        assert not wishes(home) and not pending_rows(home)
        serve = start_labloom(home, "serve", "--tick", "0.1")
        try:
            wait_for(lambda: beats(home) > 0, 60, "the serve to beat")
            next_beat(home)
            next_beat(home)
            end(serve)
        finally:
            stop(serve)
        assert hook.connections_so_far() == 0
    finally:
        hook.close()


@pytest.mark.parametrize("store", ["1", "0"])
def test_a_failed_run_sends_its_alert_itself_as_before(labloom_home: Path, store: str) -> None:
    # The command keeps and posts its alert as before, and leaves no wish; with the store off
    # (LABLOOM_STORE=0: nothing written, the wish neither) it posts it all the same.
    home = labloom_home
    write(home / "flows.py", FAILS)
    hook = Hook([])
    try:
        out = labloom(home, "run", "flows.py:etl", "--notify", hook.url, LABLOOM_PROGRESS="0",
                      LABLOOM_STORE=store)
        assert out.returncode == 1 and "failure alert delivered" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
        assert hook.connections_so_far() == 1
    finally:
        hook.close()
    if store == "1":
        assert not wishes(home) and not pending_rows(home)
