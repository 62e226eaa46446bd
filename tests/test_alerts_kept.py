"""`labloom serve`'s failure alerts kept in the store until a webhook takes them: a serve
killed (-9) while the webhook was down leaves them to the next serve, which sends each once
(two serves on the store between them); a webhook that hangs holds back its own alerts only;
an alert given up is listed (CLI, --json, GET schedules) until the schedule's next one is
delivered. The real CLI in subprocesses, webhooks on 127.0.0.1, both store backends."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import (
    Hook,
    first_slot_in,
    labloom,
    read_lines,
    serving,
    slot_rows,
    start_labloom,
    stop,
    store_of,
    wait_for,
    write,
)
from test_server_api import get

pytest_plugins = ["pytest_jupyter.jupyter_server"]

FLOWS = """
    from labloom import flow, task

    @task
    def check(rows):
        raise ValueError(f"row {rows} is malformed")

    @flow
    def etl(rows: str = "PATIENT-4711"):
        check(rows)
"""
FAST = {"LABLOOM_NOTIFY_DELAYS": "0.2,0.4,0.8"}
# Tried again and again, every 0.2 s, while the webhook stays down.
PATIENT = {"LABLOOM_NOTIFY_DELAYS": ",".join(["0.2"] * 500)}


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"labloom": True},
                          "allow_unauthenticated_access": False}}


class HangingHook:
    """A webhook that accepts each connection, reads the request, and never answers; which
    connections the client closed (given up on)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.held: list[socket.socket] = []
        self.requests = 0  # connections that sent a request
        self.ended = 0  # connections the client closed
        threading.Thread(target=self._accept, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/hooks/T1/secret-token"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.held.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        asked = False
        try:
            while conn.recv(65536):
                if not asked:
                    asked = True
                    self.requests += 1
        except OSError:
            return  # closed by us
        self.ended += 1

    def close(self) -> None:
        """Hang up: shut down first, as a close alone leaves a socket another thread reads
        from open (no FIN sent until that read returns)."""
        for sock in (self.listener, *self.held):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def add(home: Path, name: str, url: str, due: bool = True) -> None:
    """flows.py:etl (it fails) hourly as ``name``, alerting ``url``; ``due``: its first run
    in half a second rather than an hour."""
    added = labloom(home, "schedule", "add", "flows.py:etl", "--every", "1h", "--name", name,
                    "--notify", url)
    assert added.returncode == 0, added.stderr
    if due:
        first_slot_in(home, name, 0.5)


def pending_rows(home: Path) -> list[dict[str, Any]]:
    conn = store_of(home)
    if conn is None:
        return []
    with conn:
        return [dict(r) for r in conn.execute("SELECT * FROM pending_alerts ORDER BY id")]


def listed(home: Path) -> dict[str, Any]:
    out = labloom(home, "schedule", "list", "--json")
    assert out.returncode == 0, out.stderr
    return {row["name"]: row for row in json.loads(out.stdout)["schedules"]}


def end(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGTERM, then its output once it stopped cleanly."""
    proc.terminate()
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    return stdout, stderr


def end_in_a_hurry(proc: subprocess.Popen[str]) -> tuple[str, str, float]:
    """SIGTERM; once serve says it waits for a webhook, SIGTERM again (a second Ctrl-C): its
    output once it stopped cleanly, and the seconds from the second signal to its end."""
    lines: list[str] = []
    reader = read_lines(proc.stderr, lines)
    proc.terminate()
    wait_for(lambda: any("stop again" in line for line in lines), 30,
             "serve saying it waits for the webhook")
    again = time.monotonic()
    proc.terminate()
    proc.wait(timeout=60)
    took = time.monotonic() - again
    reader.join(timeout=10)
    stdout, stderr = proc.communicate(timeout=10)[0], "".join(lines)
    assert proc.returncode == 0, stderr
    return stdout, stderr, took


def test_alerts_a_killed_serve_left_go_out_once_from_the_serves_after_it(
    labloom_home: Path,
) -> None:
    # The webhook is down (nothing listens) when the nightly run fails; serve retries, and
    # is killed (-9: the OOM killer, a machine restarted). Before, its queue was in memory:
    # the alert was lost, and the failure told nobody. Now two serves started on the store
    # afterwards, with the webhook back up, send it, once between them.
    home = labloom_home
    write(home / "flows.py", FLOWS)
    down = socket.socket()  # bound, never listening: connections refused, the port kept
    down.bind(("127.0.0.1", 0))
    port = down.getsockname()[1]
    add(home, "nightly", f"http://127.0.0.1:{port}/hooks/T0/secret-token")
    first = start_labloom(home, "serve", "--tick", "0.1", **PATIENT)
    serves: list[subprocess.Popen[str]] = []
    hook = None
    try:
        [row] = wait_for(lambda: [r for r in pending_rows(home) if r["attempts"] >= 2], 60,
                         "two refused attempts at the alert")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
        waiting = listed(home)["nightly"]["pending_alerts"]
        assert waiting["count"] == 1 and waiting["attempts"] >= 2, waiting
        assert waiting["last_error"] == "connection failed (ConnectionRefusedError)"
        text = labloom(home, "schedule", "list").stdout
        assert "1 alert(s) waiting to be sent; the oldest tried" in text, text
        down.close()
        hook = Hook([], port=port)  # the webhook is back
        serves = [start_labloom(home, "serve", "--tick", "0.1", **PATIENT) for _ in range(2)]
        wait_for(lambda: hook is not None and hook.bodies, 60, "the alert the killed serve left")
        wait_for(lambda: not pending_rows(home), 30, "the alert to leave the store")
        wait_for(lambda: all(serving(home, proc) for proc in serves), 60, "both serves")
        outputs = [end(proc) for proc in serves]
        assert hook.connections_so_far() == 1, (hook.bodies, outputs)  # once, by one of the two
    finally:
        down.close()
        for proc in [first, *serves]:
            stop(proc)
        if hook is not None:
            hook.close()
    [body] = hook.bodies
    [slot] = slot_rows(home)
    assert body["run_id"] == slot["run_id"] == row["run_id"] and slot["status"] == "failed"
    assert body["schedule"] == "nightly" and body["failed_tasks"] == ["check"]
    assert "PATIENT-4711" not in json.dumps(body)
    assert listed(home)["nightly"]["pending_alerts"] is None
    assert "secret-token" not in "".join(out + err for out, err in outputs)


def test_a_webhook_that_hangs_holds_back_its_own_alerts_only(labloom_home: Path) -> None:
    # One schedule's webhook accepts and never answers. Before, the one alert thread waited
    # for it (its timeout, times its retries) while every other schedule's alert queued
    # behind: here the other's alert was posted only after four attempts at the hanging one.
    home = labloom_home
    write(home / "flows.py", FLOWS)
    hanging, hook = HangingHook(), Hook([])
    add(home, "stuck", hanging.url)
    add(home, "quick", hook.url, due=False)
    proc = start_labloom(home, "serve", "--tick", "0.1", LABLOOM_NOTIFY_TIMEOUT="600", **FAST)
    try:
        wait_for(lambda: hanging.requests, 60, "the stuck schedule's alert posted")
        first_slot_in(home, "quick", 0.5)  # its run fails after the stuck alert is posted
        wait_for(lambda: hook.bodies, 60, "the other schedule's alert")
        # ... while the first post to the hanging webhook still waits for its answer
        assert (len(hanging.held), hanging.requests, hanging.ended) == (1, 1, 0)
        _, stderr, took = end_in_a_hurry(proc)
    finally:
        stop(proc)
        hanging.close()
        hook.close()
    [body] = hook.bodies
    assert body["schedule"] == "quick" and body["state"] == "Failed"
    # stopped, the alert still on its way is kept for the next serve, and said; stopped
    # again, at once: before, a second SIGTERM or Ctrl-C still waited out the 10 s given to
    # the webhook, without a word on why serve did not stop
    assert "waiting up to 10s for 1 webhook(s)" in stderr, stderr
    assert took < 5, f"stopped {took:.1f}s after the second SIGTERM"
    assert "1 alert(s) not sent" in stderr and "kept in the store" in stderr, stderr
    [left] = pending_rows(home)
    assert left["schedule"] == "stuck" and left["sender"] is None
    # removing the schedule takes its URL: its alerts cannot go, and that is said
    removed = labloom(home, "schedule", "remove", "stuck")
    assert removed.returncode == 0, removed.stderr
    assert "1 of its failure alert(s) not sent yet went with it" in removed.stdout
    assert pending_rows(home) == []
    assert "secret-token" not in stderr + removed.stdout


async def test_an_alert_given_up_is_listed_until_the_schedules_next_is_delivered(
    jp_fetch: Any, labloom_home: Path
) -> None:
    # A revoked webhook (404) refused the nightly failure's alert until serve gave up: that
    # was said in serve's log alone, which nobody reads. Now `schedule list`, its --json and
    # GET schedules say when and why, until an alert of the schedule is delivered again.
    home = labloom_home
    write(home / "flows.py", FLOWS)
    hook = Hook([404, 404])
    add(home, "etl", hook.url)
    proc = start_labloom(home, "serve", "--tick", "0.1", LABLOOM_NOTIFY_DELAYS="0.2")
    try:
        lost = wait_for(lambda: listed(home)["etl"]["undelivered_alert"], 60,
                        "the alert given up")
        [slot] = slot_rows(home)
        assert lost["run_id"] == slot["run_id"] and lost["state"] == "Failed"
        assert (lost["attempts"], lost["count"]) == (2, 1) and lost["at"] == lost["since"]
        assert lost["reason"] == "HTTP 404 (no such webhook: a token mistyped or revoked?)"
        text = labloom(home, "schedule", "list").stdout
        assert (f"alert NOT DELIVERED (run {slot['run_id']} Failed) given up {lost['at']} after "
                "2 attempt(s): HTTP 404 (no such webhook") in text, text
        assert "`labloom schedule test-alert etl`" in text
        [shown] = (await get(jp_fetch, "schedules"))["schedules"]
        assert shown["undelivered_alert"] == lost and shown["pending_alerts"] is None
        # The webhook fixed (its 404s are spent): the next failure's alert is delivered, and
        # the note goes with it.
        first_slot_in(home, "etl", 0.5)
        wait_for(lambda: len(hook.bodies) == 3, 60, "the next failure's alert")
        wait_for(lambda: listed(home)["etl"]["undelivered_alert"] is None, 30,
                 "the note of the alert given up to go")
        _, stderr = end(proc)
    finally:
        stop(proc)
        hook.close()
    [shown] = (await get(jp_fetch, "schedules"))["schedules"]
    assert shown["undelivered_alert"] is None and shown["pending_alerts"] is None
    assert "NOT DELIVERED" not in labloom(home, "schedule", "list").stdout
    assert "giving up" in stderr and "secret-token" not in stderr


def test_a_bad_notify_timeout_stops_serve_naming_the_fix(labloom_home: Path,
                                                         tmp_path: Path) -> None:
    out = labloom(labloom_home, "serve", cwd=tmp_path, LABLOOM_NOTIFY_TIMEOUT="ten")
    assert out.returncode != 0
    assert "LABLOOM_NOTIFY_TIMEOUT must be a number of seconds above 0" in out.stderr
    assert "'ten'" in out.stderr and "Traceback" not in out.stderr


def test_alerts_waiting_behind_one_given_up_go_with_it(labloom_home: Path) -> None:
    # A webhook that refuses every alert (a token revoked) while the schedule fails again:
    # each alert waits behind the one before it for the webhook, and would wait its whole
    # retry window in turn, a backlog that grows with each failure. When the first is given
    # up, those behind it go with it, counted and said.
    home = labloom_home
    write(home / "flows.py", FLOWS)
    down = socket.socket()  # bound, never listening: connections refused
    down.bind(("127.0.0.1", 0))
    port = down.getsockname()[1]
    add(home, "etl", f"http://127.0.0.1:{port}/hooks/T0/secret-token")
    first = start_labloom(home, "serve", "--tick", "0.1", **PATIENT)
    second, hook = None, None
    try:
        wait_for(lambda: [r for r in pending_rows(home) if r["attempts"] >= 1], 60,
                 "a refused attempt at the first alert")
        first_slot_in(home, "etl", 0.5)  # the next failure, its alert behind the first
        wait_for(lambda: len(pending_rows(home)) == 2, 60, "the second failure's alert")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
        down.close()
        hook = Hook([404] * 10, port=port)
        second = start_labloom(home, "serve", "--tick", "0.1", LABLOOM_NOTIFY_DELAYS="0.2")
        lost = wait_for(lambda: listed(home)["etl"]["undelivered_alert"], 60,
                        "the alerts given up")
        wait_for(lambda: serving(home, second), 60, "the second serve")
        _, stderr = end(second)
        assert hook.connections_so_far() == 1  # the first alert's last try; none behind it
    finally:
        down.close()
        stop(first)
        if second is not None:
            stop(second)
        if hook is not None:
            hook.close()
    assert pending_rows(home) == []
    later = slot_rows(home)[-1]
    assert lost["count"] == 2 and lost["run_id"] == later["run_id"] and lost["attempts"] == 0
    assert lost["reason"].startswith("not sent: its webhook refused the alert before it (HTTP "
                                     "404 (no such webhook"), lost
    assert "1 alert(s) waiting behind it for the same webhook given up with it" in stderr


def beats(home: Path) -> float:
    conn = store_of(home)
    assert conn is not None
    with conn:
        return float(conn.execute("SELECT MAX(beat) FROM schedulers").fetchone()[0] or 0)


def test_at_most_four_webhooks_are_posted_to_at_once(labloom_home: Path) -> None:
    # A thread per webhook, bounded: five schedules whose webhooks all hang hold four threads,
    # and the fifth webhook's alert waits in the store until one of the four lets go.
    home = labloom_home
    write(home / "flows.py", FLOWS)
    hooks = [HangingHook() for _ in range(5)]
    for number, hook in enumerate(hooks):
        add(home, f"etl-{number}", hook.url)
    proc = start_labloom(home, "serve", "--tick", "0.1", LABLOOM_NOTIFY_TIMEOUT="600", **FAST)
    try:
        wait_for(lambda: len(pending_rows(home)) == 5 and sum(h.requests for h in hooks) == 4,
                 90, "five alerts, four of them posted")
        beat = beats(home)  # two heartbeats later, many ticks have passed: none took the fifth
        wait_for(lambda: beats(home) > beat + 1.5, 60, "two more heartbeats")
        assert sum(h.requests for h in hooks) == 4
        [waiting] = [r for r in pending_rows(home) if r["sender"] is None]
        [fifth] = [h for h in hooks if not h.requests]
        assert waiting["schedule"] == f"etl-{hooks.index(fifth)}"
        next(h for h in hooks if h.requests).close()  # one webhook hangs up: its thread ends
        wait_for(lambda: fifth.requests, 60, "the fifth webhook's alert")
        end_in_a_hurry(proc)  # (four webhooks still hang: one SIGTERM waits 10 s for them)
    finally:
        stop(proc)
        for hook in hooks:
            hook.close()


SLOW_TO_IMPORT = """
    import os, time
    from pathlib import Path
    from labloom import flow, task

    if os.environ.get("LABLOOM_SCHEDULE"):
        time.sleep(3)  # the run process imports this module slowly (a big library, a share)

    @task
    def wait_for_release(release):
        while not Path(release).exists():  # a run that hangs until the test lets it go
            time.sleep(0.05)

    @flow
    def nightly(release: str):
        wait_for_release(release)
"""


def test_an_overdue_run_slow_to_start_is_alerted_by_its_id(labloom_home: Path) -> None:
    # The run process imports the flow's module before it makes its run: a module slow to
    # import was still importing when the next slot came (every second here), and the overdue
    # alert said `labloom cancel RUN_ID`, no run named (seen under load). It waits for the
    # run's id, a few seconds at most.
    home = labloom_home
    write(home / "flows.py", SLOW_TO_IMPORT)
    release = home / "release"
    hook = Hook([])
    added = labloom(home, "schedule", "add", "flows.py:nightly", "--every", "1s", "--name",
                    "nightly", "-p", f"release={release}", "--notify", hook.url)
    assert added.returncode == 0, added.stderr
    proc = start_labloom(home, "serve", "--tick", "0.1", **FAST)
    try:
        wait_for(lambda: hook.bodies, 40, "the overdue alert")
        assert labloom(home, "schedule", "pause", "nightly").returncode == 0
        release.write_text("go")
        wait_for(lambda: [r for r in slot_rows(home) if r["status"] == "completed"], 40,
                 "the released run's end")
        end(proc)
    finally:
        stop(proc)
        release.write_text("go")
        hook.close()
    [first] = [r for r in slot_rows(home) if r["status"] == "completed"]
    [body] = [b for b in hook.bodies if b["state"] == "overdue"]
    assert body["run_id"] == first["run_id"] and first["run_id"]
    assert f"`labloom cancel {first['run_id']}`" in body["error"]
