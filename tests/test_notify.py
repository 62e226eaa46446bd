"""Failure alerts against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import (
    Hook,
    MailRelay,
    cli_env,
    due_every,
    first_slot_in,
    labloom,
    serving,
    slot_rows,
    stale_after,
    start_labloom,
    stop,
    store_of,
    wait_for,
    write,
)
from labloom.schedule import alerts as _notify

FLOWS = """
    from labloom import flow, task

    @task
    def load(secret_rows):
        return secret_rows

    @task
    def check(rows):
        raise ValueError(f"row {rows[0]} is malformed")

    @task
    def publish(x):
        return x

    @flow
    def etl(secret_rows: list, fail: bool = True):
        rows = load(secret_rows)
        if fail:
            publish(check(rows))
        return rows
"""
SECRET_VALUE = "PATIENT-4711"


@pytest.fixture
def hook_factory() -> Iterator[Any]:
    hooks: list[Hook] = []

    def make(statuses: list[int] | None = None) -> Hook:
        hooks.append(Hook(statuses or []))
        return hooks[-1]

    yield make
    for hook in hooks:
        hook.close()


FAST = {"LABLOOM_NOTIFY_DELAYS": "0.2,0.4,0.8"}


def test_failed_run_posts_an_alert(tmp_path: Path, hook_factory: Any) -> None:
    hook = hook_factory()
    write(tmp_path / "flows.py", FLOWS)
    out = labloom(tmp_path, "run", "flows.py:etl", "-p", f'secret_rows=["{SECRET_VALUE}"]',
                  "--notify", hook.url, **FAST)
    assert out.returncode == 1
    assert "failure alert delivered" in out.stderr
    assert len(hook.bodies) == 1
    body = hook.bodies[0]
    assert body["flow"] == "etl" and body["state"] == "Failed" and len(body["run_id"]) == 12
    assert body["failed_tasks"] == ["check", "publish"]
    assert "check (ValueError)" in body["error"]
    assert body["text"].startswith("labloom: flow 'etl'") and body["run_id"] in body["text"]
    assert SECRET_VALUE not in json.dumps(body)  # neither parameters nor exception messages
    assert hook.paths == ["/hooks/T0/secret-token"]
    assert "secret-token" not in out.stdout + out.stderr


def test_a_completed_run_sends_nothing(tmp_path: Path, hook_factory: Any) -> None:
    hook = hook_factory()
    write(tmp_path / "flows.py", FLOWS)
    out = labloom(tmp_path, "run", "flows.py:etl", "-p", "secret_rows=[1]", "-p", "fail=false",
                  "--notify", hook.url, **FAST)
    assert out.returncode == 0, out.stderr
    assert hook.connections_so_far() == 0 and hook.bodies == []


def test_retries_after_a_server_error(tmp_path: Path, hook_factory: Any) -> None:
    hook = hook_factory([500])
    write(tmp_path / "flows.py", FLOWS)
    out = labloom(tmp_path, "run", "flows.py:etl", "-p", "secret_rows=[1]",
                  "--notify", hook.url, **FAST)
    assert out.returncode == 1
    assert len(hook.bodies) == 2 and hook.bodies[0] == hook.bodies[1]
    assert "HTTP 500" in out.stderr and "retrying" in out.stderr
    assert "failure alert delivered" in out.stderr
    assert "secret-token" not in out.stdout + out.stderr


def test_an_unreachable_webhook_does_not_change_the_run(tmp_path: Path, hook_factory: Any) -> None:
    hook = hook_factory()
    url = hook.url
    hook.close()  # nothing listens there any more
    write(tmp_path / "flows.py", FLOWS)
    failed = labloom(tmp_path, "run", "flows.py:etl", "-p", "secret_rows=[1]",
                     "--notify", url, **FAST)
    assert failed.returncode == 1  # the run's own state, whatever happened to the alert
    assert "connection failed" in failed.stderr and "not delivered" in failed.stderr
    assert "secret-token" not in failed.stdout + failed.stderr
    passed = labloom(tmp_path, "run", "flows.py:etl", "-p", "secret_rows=[1]", "-p",
                     "fail=false", "--notify", url, **FAST)
    assert passed.returncode == 0


def test_scheduled_failure_alert(tmp_path: Path, hook_factory: Any) -> None:
    hook = hook_factory([500, 503])
    write(tmp_path / "flows.py", FLOWS)
    # Every 10 s: a run slower than its schedule would also be alerted "overdue" (once), and
    # that alert, sent first, took the hook's scripted refusals (1 s schedules did, under load).
    added = labloom(tmp_path, "schedule", "add", "flows.py:etl", "--every", "10s",
                    "-p", f'secret_rows=["{SECRET_VALUE}"]', "--name", "nightly-etl",
                    "--notify", hook.url)
    assert added.returncode == 0, added.stderr
    first_slot_in(tmp_path, "nightly-etl", 1.0)  # not 10 s after the add
    proc = start_labloom(tmp_path, "serve", "--tick", "0.1", **FAST)
    try:
        failures = lambda: [b for b in hook.bodies if b["state"] != "overdue"]  # noqa: E731
        wait_for(lambda: len(failures()) >= 3, 40, "two refused alerts, then one delivered")
        proc.terminate()
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        stop(proc)
    assert proc.returncode == 0
    assert len(failures()) >= 3  # two refusals, then delivered
    body = failures()[2]
    assert body["schedule"] == "nightly-etl" and body["flow"] == "etl"
    assert body["failed_tasks"] == ["check", "publish"] and body["run_id"]
    # how to read the failed task's lines, not only its run's summary
    assert f"labloom logs {body['run_id']} --task check" in body["text"]
    assert SECRET_VALUE not in json.dumps(hook.bodies)
    assert "secret-token" not in stdout + stderr
    home_text = "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*.log"))
    assert "secret-token" not in home_text


def test_a_failed_run_mails_an_alert_through_the_smtp_relay(tmp_path: Path) -> None:
    """--notify mailto: for places without Slack (a hospital's internal relay): the mail holds
    what the webhook's body holds, never a parameter value or an exception message; a relay
    that refuses for now (451) is tried again."""
    relay = MailRelay(refusals=[451])
    try:
        write(tmp_path / "flows.py", FLOWS)
        out = labloom(tmp_path, "run", "flows.py:etl", "-p", f'secret_rows=["{SECRET_VALUE}"]',
                      "--notify", "mailto:ops@hospital.test, oncall@hospital.test",
                      **FAST, **relay.env())
    finally:
        relay.close()
    assert out.returncode == 1 and "failure alert delivered" in out.stderr, out.stderr
    assert "not delivered (SMTP 451); retrying" in out.stderr
    [mail] = relay.mails
    assert relay.envelopes == [("labloom@lab.test", ["ops@hospital.test", "oncall@hospital.test"])]
    run_id = mail["Subject"].split(" run ")[1].split()[0]
    assert mail["Subject"] == f"[labloom] flow 'etl' run {run_id} Failed" and len(run_id) == 12
    assert mail["To"] == "ops@hospital.test, oncall@hospital.test"
    text = mail.get_content()
    assert f"Details: labloom show {run_id}" in text and "check (ValueError)" in text
    assert SECRET_VALUE not in mail.as_string() and "malformed" not in mail.as_string()
    assert "ops@hospital.test" not in out.stdout + out.stderr


def test_a_relay_that_cannot_be_reached_does_not_change_the_run(tmp_path: Path) -> None:
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    write(tmp_path / "flows.py", FLOWS)
    out = labloom(tmp_path, "run", "flows.py:etl", "-p", "secret_rows=[1]", "--notify",
                  "mailto:ops@hospital.test", LABLOOM_SMTP_HOST="127.0.0.1",
                  LABLOOM_SMTP_PORT=str(port), **FAST)
    assert out.returncode == 1  # the run's own status: Failed
    assert "not delivered (connection failed (ConnectionRefusedError))" in out.stderr
    assert "failure alert not delivered" in out.stderr


def test_payload_and_mask() -> None:
    body = _notify.failure_payload("f", "r1", "Failed", [("a[3]", "KeyError")], schedule="s")
    assert body["failed_tasks"] == ["a[3]"] and body["error"] == "a[3]: KeyError"
    assert body["schedule"] == "s" and "r1" in body["text"]
    masked = _notify.mask_url("https://hooks.slack.com/services/X/Y/Z")
    assert masked == "https://hooks.slack.com/***"
    with pytest.raises(ValueError, match="webhook URL"):
        _notify.check_url("ftp://example.com/x")
    for bad in ("mailto:", "mailto:ops", "mailto:a@b.org,", "mailto:a@b.org\r\nBcc: x@y.org",
                "mailto:a b@c.org"):
        with pytest.raises(ValueError, match="mailto: takes email addresses separated by "):
            _notify.check_url(bad)
    assert _notify.check_url("MAILTO:ops@hospital.test") == "MAILTO:ops@hospital.test"
    assert (_notify.mask_url("mailto:ops@hospital.test,me@lab.test")
            == "mailto:***@hospital.test,***@lab.test")


SLOW_FAIL = """
    import os, time
    from labloom import flow, task

    @task
    def check(out):
        with open(out, "w") as f:
            f.write(str(os.getpid()))
        # Fails once the test lets it (its scheduler killed meanwhile): a fixed 4 s ended the
        # run before the kill when the CLI the test runs first started slowly (session 49).
        # The deadline is only so that a broken test cannot hang.
        release, deadline = out + ".release", time.monotonic() + 300
        while not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.05)
        raise ValueError("row PATIENT-4711 is malformed")

    @flow
    def etl(out: str):
        check(out)
"""


def add_nightly_etl(home: Path, hook: Hook, param: str, once: bool = False) -> None:
    """The schedule these cases drive: flows.py:etl every second, alerting ``hook``; or
    (``once``) hourly, its first slot now: a case about one run's alert. A 4 s run of a 1 s
    schedule was also alerted overdue when the pause that ends it came late (a loaded machine)."""
    added = labloom(home, "schedule", "add", "flows.py:etl", "--every", "1h" if once else "1s",
                    "--name", "nightly-etl", "-p", param, "--notify", hook.url)
    assert added.returncode == 0, added.stderr
    if once:
        first_slot_in(home, "nightly-etl", 0.5)


def running_with_its_run(home: Path) -> bool:
    return any(r["status"] == "running" and r["run_id"] for r in slot_rows(home))


def orphan_ended(home: Path, run_id: object) -> Any:
    conn = store_of(home)
    assert conn is not None
    with conn:
        row = conn.execute("SELECT state FROM flow_runs WHERE id = ?", (run_id,)).fetchone()
    return row and row[0] not in ("Pending", "Running") and row[0]


@pytest.mark.parametrize("listed_first", [False, True])
def test_a_run_that_fails_after_its_scheduler_was_killed_alerts_once(
    tmp_path: Path, hook_factory: Any, listed_first: bool
) -> None:
    # serve killed (OOM killer, a reboot of the service) while its run goes on: the run fails
    # later and the next serve records the slot as failed. It must alert, as a run it started
    # itself would: before, the slot turned failed silently. ``listed_first``: the operator
    # types `labloom schedule list` (it says the scheduler is not running) once the run ended,
    # then starts serve: `list` recorded the slot failed itself, so the new serve found
    # nothing to settle and the failure alerted nobody (session 47).
    hook = hook_factory()
    write(tmp_path / "flows.py", SLOW_FAIL)
    out = tmp_path / "pid.txt"
    add_nightly_etl(tmp_path, hook, f"out={out}", once=True)
    first = start_labloom(tmp_path, "serve", "--tick", "0.1", **FAST)
    second = None
    try:
        wait_for(lambda: running_with_its_run(tmp_path), 30, "a running slot with its run")
        wait_for(lambda: out.exists() and out.read_text(), 30, "the run's task")
        assert labloom(tmp_path, "schedule", "pause", "nightly-etl").returncode == 0
        [orphan] = [r for r in slot_rows(tmp_path) if r["status"] == "running"]
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
        release = Path(f"{out}.release")
        if listed_first:
            release.touch()
            assert wait_for(lambda: orphan_ended(tmp_path, orphan["run_id"]), 40,
                            "the orphaned run to end") == "Failed"
            listing = labloom(tmp_path, "schedule", "list")
            assert "last failed" in listing.stdout and "NOT RUNNING" in listing.stdout
        second = start_labloom(tmp_path, "serve", "--tick", "0.1", **FAST)
        if not listed_first:  # the run fails while the next serve looks after its slot
            wait_for(lambda: serving(tmp_path, second), 60, "the next serve")
            release.touch()
        wait_for(lambda: [r for r in slot_rows(tmp_path) if r["slot_time"] == orphan["slot_time"]
                          and r["status"] == "failed"], 40, "the orphaned run's slot to fail")
        wait_for(lambda: hook.bodies, 20, "the failure alert")
        second.terminate()
        stdout, stderr = second.communicate(timeout=20)
    finally:
        stop(first)
        if second is not None:
            stop(second)
        if out.exists() and out.read_text():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(out.read_text()), signal.SIGKILL)
    assert second.returncode == 0, stderr
    assert hook.connections_so_far() == 1  # once: not again by the next tick or server
    [body] = hook.bodies
    assert body["run_id"] == orphan["run_id"] and body["schedule"] == "nightly-etl"
    assert body["flow"] == "etl" and body["state"] == "Failed"
    assert body["failed_tasks"] == ["check"]
    # named as a run serve started itself is: its failed task, its output file (session 47)
    assert "first: check" in body["text"]
    assert Path(body["log"]).is_file() and body["log"] in body["text"]
    assert SECRET_VALUE not in json.dumps(body)
    assert "secret-token" not in stdout + stderr


def alerts(hook: Hook, state: str) -> list[Any]:
    """The alerts ``hook`` took of runs ended in ``state``. Not the first alert, nor any without
    a run id: a run slower than its 1 s schedule (a loaded machine: its Python still importing)
    is also alerted, "overdue" and before its run has an id, and was taken for the one a case
    is about (session 48)."""
    return [b for b in hook.bodies if b["state"] == state]


def test_a_scheduled_target_that_no_longer_imports_alerts_with_where_to_read_why(
    tmp_path: Path, hook_factory: Any
) -> None:
    # The module was fine when scheduled; then someone removed a package it imports. The run
    # process refuses it (exit 2) before any run exists, so the alert has no run id to point
    # at: it must say which target and where the scheduler kept the process's output.
    hook = hook_factory()
    write(tmp_path / "flows.py", FLOWS)
    add_nightly_etl(tmp_path, hook, "secret_rows=[1]")
    module = tmp_path / "flows.py"
    module.write_text("import labloom_gone_package\n" + module.read_text(), encoding="utf-8")
    proc = start_labloom(tmp_path, "serve", "--tick", "0.1", **FAST)
    try:
        wait_for(lambda: alerts(hook, "refused"), 40, "the refusal's alert")
        proc.terminate()
        stdout, _ = proc.communicate(timeout=20)
    finally:
        stop(proc)
    body = alerts(hook, "refused")[0]
    assert body["schedule"] == "nightly-etl" and body["run_id"] is None
    assert "flows.py:etl" in body["text"]
    log = sorted((tmp_path / "schedule-logs").glob("nightly-etl-*.log"))[0]
    assert "labloom_gone_package" in log.read_text()
    assert str(log) in body["text"]  # where the reason is, on the scheduler's host
    assert str(log) in stdout


def test_a_run_the_scheduler_cannot_start_alerts(tmp_path: Path, hook_factory: Any) -> None:
    # The virtualenv `labloom serve` runs from was removed or rebuilt under it (an upgrade):
    # every run process fails to start. Before, each slot was recorded "crashed" with no
    # alert and no line in serve's output: the nightly job stopped without a word.
    hook = hook_factory()
    write(tmp_path / "flows.py", FLOWS)
    add_nightly_etl(tmp_path, hook, "secret_rows=[1]")
    venv = tmp_path / "venv"
    venv.mkdir()
    python = venv / "python3"
    python.symlink_to(os.path.realpath(sys.executable))
    proc = subprocess.Popen([str(python), "-m", "labloom", "serve", "--tick", "0.1"],
                            cwd=tmp_path, env=cli_env(tmp_path, **FAST), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: any(r["status"] == "completed" or r["status"] == "failed"
                             for r in slot_rows(tmp_path)), 40, "a first run")
        python.unlink()  # the interpreter's path is gone; the running server lives on
        wait_for(lambda: any(r["status"] == "crashed" for r in slot_rows(tmp_path)), 40,
                 "a run that could not start")
        wait_for(lambda: alerts(hook, "crashed"), 20, "its alert")
        proc.terminate()
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        stop(proc)
    body = alerts(hook, "crashed")[0]  # one a second since: the schedule is every second
    assert body["schedule"] == "nightly-etl" and "could not start" in body["text"]
    assert "FileNotFoundError" in body["text"]
    assert "could not start" in stdout + stderr


def test_a_frozen_scheduler_and_its_replacement_alert_once_between_them(
    tmp_path: Path, hook_factory: Any
) -> None:
    # A scheduler frozen (SIGSTOP here; a host paused or cut off) past the heartbeat's
    # staleness: another one settles its failed run and alerts. When the frozen one wakes and
    # reaps that run, the slot is no longer its to finish: no second alert.
    # Both serves (and the CLI) judge a heartbeat stale after 6 s, not 30 s: the other one's
    # wait is for the frozen one's staleness, whatever its length.
    hook = hook_factory()
    write(tmp_path / "flows.py", SLOW_FAIL)
    out = tmp_path / "pid.txt"
    add_nightly_etl(tmp_path, hook, f"out={out}", once=True)
    env = {**FAST, **stale_after(6)}
    frozen = start_labloom(tmp_path, "serve", "--tick", "0.1", **env)
    other = None
    try:
        wait_for(lambda: running_with_its_run(tmp_path), 30, "a running slot with its run")
        assert labloom(tmp_path, "schedule", "pause", "nightly-etl", **env).returncode == 0
        frozen.send_signal(signal.SIGSTOP)
        other = start_labloom(tmp_path, "serve", "--tick", "0.1", **env)
        wait_for(lambda: serving(tmp_path, other), 60, "the other serve")
        Path(f"{out}.release").touch()  # the run fails while its scheduler is frozen
        wait_for(lambda: any(r["status"] == "failed" for r in slot_rows(tmp_path)), 90,
                 "the other scheduler to settle the frozen one's failed run")
        wait_for(lambda: hook.bodies, 20, "its alert")
        frozen.send_signal(signal.SIGCONT)
        frozen.terminate()  # it reaps the run on its way out, and sends what it would send
        frozen.communicate(timeout=30)
        other.terminate()
        other.communicate(timeout=30)
    finally:
        Path(f"{out}.release").touch()  # a run left waiting ends (a case failed before)
        frozen.send_signal(signal.SIGCONT)
        stop(frozen)
        if other is not None:
            stop(other)
    assert frozen.returncode == 0 and other.returncode == 0
    assert hook.connections_so_far() == 1, hook.bodies
    assert [r["status"] for r in slot_rows(tmp_path)] == ["failed"]


def test_alerts_a_hanging_webhook_kept_back_are_counted_when_serve_stops(tmp_path: Path) -> None:
    # A webhook that accepts and never answers: serve keeps scheduling (each post times out on
    # the alert thread) and stops in bounded time. Before, the alerts still queued then were
    # dropped without a word: the log said one alert was given up, not that the rest were.
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    accepting = threading.Thread(target=lambda: [held.append(listener.accept()[0])
                                                 for _ in range(100)], daemon=True)
    accepting.start()
    write(tmp_path / "flows.py", FLOWS)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/hooks/T0/secret-token"
    added = labloom(tmp_path, "schedule", "add", "flows.py:etl", "--every", "1s",
                    "-p", "secret_rows=[1]", "--notify", url)
    assert added.returncode == 0, added.stderr
    proc = start_labloom(tmp_path, "serve", "--tick", "0.1", **FAST)
    try:
        wait_for(lambda: held and sum(r["status"] == "failed"
                                      for r in slot_rows(tmp_path)) >= 3, 60,
                 "three failed runs while the webhook hangs")
        proc.terminate()
        _, stderr = proc.communicate(timeout=60)
    finally:
        stop(proc)
        for conn in held:
            conn.close()
        listener.close()
    assert proc.returncode == 0
    assert "waiting up to 10s for 1 webhook(s)" in stderr and "stop again" in stderr, stderr
    assert "alert(s) not sent" in stderr, stderr
    assert "secret-token" not in stderr


HANGING = """
    import time
    from pathlib import Path
    from labloom import flow, task

    @task
    def wait_for_release(release):
        while not Path(release).exists():  # a run that hangs until the test lets it go
            time.sleep(0.05)

    @flow
    def nightly(release: str):
        wait_for_release(release)
"""


def test_a_run_still_going_at_its_next_due_time_alerts_once(tmp_path: Path,
                                                               hook_factory: Any) -> None:
    # A nightly run that hung skipped every night after it (no overlap), each slot recorded
    # skipped, and nobody was told.
    hook = hook_factory()
    write(tmp_path / "flows.py", HANGING)
    release = tmp_path / "release"
    added = labloom(tmp_path, "schedule", "add", "flows.py:nightly", "--every", "1h", "--name",
                    "nightly", "-p", f"release={release}", "--notify", hook.url)
    assert added.returncode == 0, added.stderr
    first_slot_in(tmp_path, "nightly", 0.5)
    proc = start_labloom(tmp_path, "serve", "--tick", "0.1", **FAST)
    try:
        # Its run named in its slot first: the alert names the run to cancel. Every second
        # from the start, a loaded machine's run was still importing at the next slot, and
        # the alert rightly had no run id to name (session 48).
        wait_for(lambda: running_with_its_run(tmp_path), 40, "the run named in its slot")
        due_every(tmp_path, "nightly", 1)
        wait_for(lambda: hook.bodies, 40, "the overdue alert")
        wait_for(lambda: len([r for r in slot_rows(tmp_path) if r["status"] == "skipped"]) >= 3,
                 40, "three slots skipped behind the hanging run")
        # No run after it: under load a run of its own takes over the 1 s between slots.
        assert labloom(tmp_path, "schedule", "pause", "nightly").returncode == 0
        release.write_text("go")
        wait_for(lambda: [r for r in slot_rows(tmp_path) if r["status"] == "completed"], 40,
                 "the released run's end")
        proc.terminate()
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        stop(proc)
        release.write_text("go")
    assert proc.returncode == 0, stderr
    [first] = [r for r in slot_rows(tmp_path) if r["status"] == "completed"]
    overdue = [b for b in hook.bodies if b["state"] == "overdue"]
    assert len(overdue) == 1, hook.bodies  # once for the run, not once per slot skipped
    [body] = overdue
    assert body["schedule"] == "nightly" and body["run_id"] == first["run_id"]
    assert "still running after" in body["error"] and "--allow-overlap" in body["error"]
    assert f"`labloom cancel {first['run_id']}`" in body["error"]
    assert "still running after" in stdout


def test_a_run_past_its_flow_timeout_alerts_saying_so(tmp_path: Path, hook_factory: Any) -> None:
    # A nightly run whose database hangs: the run ends Failed at its timeout and the alert
    # says why (no task of it failed: the one that hung was cancelled).
    hook = hook_factory()
    write(tmp_path / "flows.py", """
        import time
        from labloom import flow, task

        @task
        def query():
            time.sleep(30)

        @flow(timeout=1)
        def nightly():
            query()
    """)
    out = labloom(tmp_path, "run", "flows.py:nightly", "--notify", hook.url, **FAST)
    assert out.returncode == 1 and "timed out after 1s (timeout=1)" in out.stderr
    [body] = hook.bodies
    assert body["state"] == "Failed" and "timed out after 1s" in body["text"], body


def test_a_test_alert_says_now_whether_the_webhook_takes_alerts(
    tmp_path: Path, hook_factory: Any
) -> None:
    # A Slack webhook whose token was revoked (the app reinstalled) or whose channel was
    # archived answers 404 or 410: that was learnt from the first failure at night, said only
    # in serve's output. `schedule test-alert` asks the webhook now.
    write(tmp_path / "flows.py", FLOWS)
    hook = hook_factory([404])
    for name, url in (("etl", hook.url), ("quiet", None)):
        added = labloom(tmp_path, "schedule", "add", "flows.py:etl", "--every", "1d", "--name",
                        name, "-p", "secret_rows=[1]", *(["--notify", url] if url else []))
        assert added.returncode == 0, added.stderr
        assert ("labloom schedule test-alert" in added.stdout) == bool(url)
    refused = labloom(tmp_path, "schedule", "test-alert", "etl")
    assert refused.returncode == 1, refused.stdout
    assert "not taken" in refused.stderr and "HTTP 404" in refused.stderr
    assert "revoked" in refused.stderr and "secret-token" not in refused.stderr
    taken = labloom(tmp_path, "schedule", "test-alert", "etl")
    assert taken.returncode == 0, taken.stderr
    assert "test alert delivered to http://127.0.0.1/***" in taken.stdout
    assert [b["state"] for b in hook.bodies] == ["test", "test"]
    assert "test alert for schedule 'etl'" in hook.bodies[-1]["text"]
    nobody = labloom(tmp_path, "schedule", "test-alert", "quiet")
    assert nobody.returncode == 2 and "has no --notify" in nobody.stderr
    assert "no schedule named 'gone'" in labloom(tmp_path, "schedule", "test-alert",
                                                 "gone").stderr
