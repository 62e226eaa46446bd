"""`labloom serve` whose alerts go by mail checks the SMTP relay's settings at its start, as
`labloom run --notify mailto:` does: a bad LABLOOM_SMTP_PORT (or, since session 58,
LABLOOM_SMTP_FROM) refuses to start with the line naming the variable, its value and the fix.
Before, serve started and ran the schedules, and each mail alert failed when a run failed (at
night), said only on serve's output. A serve with no alert by mail starts all the same."""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_helpers import labloom, read_lines, start_labloom, stop, wait_for, write
from test_schedule_serve import FLOW

SAID = ("LABLOOM_SMTP_PORT must be a port number from 1 to 65535 (the SMTP relay's port), "
        "got 'smtp'")


def _serve(home: Path, **env: str) -> subprocess.Popen[str]:
    """`labloom serve` with ``env`` (LABLOOM_SMTP_PORT=smtp by default) over ``home``'s store."""
    return start_labloom(home, "serve", "--tick", "0.1", **(env or {"LABLOOM_SMTP_PORT": "smtp"}))


@contextlib.contextmanager
def _serving(home: Path, notify: str, **env: str) -> Iterator[subprocess.Popen[str]]:
    """`labloom serve` (with ``env``, see ``_serve``) started over a schedule whose alerts go
    to ``notify``; killed after the block if it still runs."""
    write(home / "flows.py", FLOW)
    added = labloom(home, "schedule", "add", "flows.py:job", "--every", "1h", "-p",
                    f"out={home / 'out.txt'}", "--notify", notify)
    assert added.returncode == 0, added.stderr
    proc = _serve(home, **env)
    try:
        yield proc
    finally:
        stop(proc)


@pytest.mark.parametrize(("env", "said"), [
    ({"LABLOOM_SMTP_PORT": "smtp"}, SAID),
    # Before session 58, the sender was read at each alert: serve started, and each mail alert
    # failed when a run failed.
    ({"LABLOOM_SMTP_FROM": "labloom at lab"}, "LABLOOM_SMTP_FROM must be one email address "
     "(labloom@lab.example.org, or Labloom <labloom@lab.example.org>), got 'labloom at lab'"),
], ids=["port", "sender"])
def test_serve_with_a_mail_alert_refuses_a_bad_smtp_setting_at_its_start(
    store_backend: str, tmp_path: Path, env: dict[str, str], said: str,
) -> None:
    with _serving(tmp_path, "MAILTO:ops@hospital.test", **env) as proc:
        out, err = proc.communicate(timeout=60)  # before: served on, until this gave up
    assert proc.returncode == 2, (out, err)
    assert said in err, err
    assert "Traceback" not in err and "serving" not in out, (out, err)


def test_serve_with_no_mail_alert_starts_whatever_the_smtp_port(
    store_backend: str, tmp_path: Path,
) -> None:
    with _serving(tmp_path, "https://hooks.example.org/x") as proc:
        assert proc.stdout is not None
        assert "serving" in proc.stdout.readline()  # said once the scheduler is up
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "LABLOOM_SMTP_PORT" not in err


def test_a_mail_schedule_added_while_serve_runs_with_a_bad_port_is_refused_alone(
    store_backend: str, tmp_path: Path,
) -> None:
    # serve checked the relay only for the schedules there were at its start: before, one
    # added later by mail ran, and its alerts failed at each failed run, at night.
    write(tmp_path / "flows.py", FLOW)

    def add(name: str, notify: str) -> None:  # from a shell whose SMTP settings are fine
        added = labloom(tmp_path, "schedule", "add", "flows.py:job", "--every", "1s", "--name",
                        name, "-p", f"out={tmp_path / name}.txt", "--notify", notify)
        assert added.returncode == 0, added.stderr

    add("hooked", "https://hooks.example.org/x")
    proc = _serve(tmp_path)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        assert "serving" in proc.stdout.readline()
        errors: list[str] = []
        read_lines(proc.stderr, errors)
        add("mailed", "MAILTO:ops@hospital.test")
        said = wait_for(lambda: [e for e in errors if "'mailed'" in e], 60, "the refusal")
        assert ("schedule 'mailed' is not run by this scheduler: its failure alerts go by mail, "
                f"and {SAID}") in said[0], said
        assert said[0].rstrip().endswith(
            "in `labloom serve`'s environment: fix it there and start serve again; the other "
            "schedules go on"), said
        hooked = tmp_path / "hooked.txt"
        seen = hooked.read_text().count("end") if hooked.exists() else 0
        # two more runs of the other schedule: the refused one's slots came due meanwhile
        wait_for(lambda: hooked.exists() and hooked.read_text().count("end") >= seen + 2, 60,
                 "the other schedule's runs")
        assert not (tmp_path / "mailed.txt").exists()
        assert len([e for e in errors if "'mailed'" in e]) == 1, errors  # said once
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        stop(proc)
    assert proc.returncode == 0, errors
