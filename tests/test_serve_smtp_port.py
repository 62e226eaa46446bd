"""`labloom serve` whose alerts go by mail checks the SMTP relay's settings at its start, as
`labloom run --notify mailto:` does: a bad LABLOOM_SMTP_PORT refuses to start with the line
naming the variable, its value and the fix. Before, serve started and ran the schedules, and
each mail alert failed when a run failed (at night), said only on serve's output. A serve
with no alert by mail does not read the relay's settings."""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

from cli_helpers import labloom, start_labloom, stop, write
from test_schedule_serve import FLOW

SAID = ("LABLOOM_SMTP_PORT must be a port number from 1 to 65535 (the SMTP relay's port), "
        "got 'smtp'")


@contextlib.contextmanager
def _serving(home: Path, notify: str) -> Iterator[subprocess.Popen[str]]:
    """`labloom serve` (LABLOOM_SMTP_PORT=smtp) started over a schedule whose alerts go to
    ``notify``; killed after the block if it still runs."""
    write(home / "flows.py", FLOW)
    added = labloom(home, "schedule", "add", "flows.py:job", "--every", "1h", "-p",
                    f"out={home / 'out.txt'}", "--notify", notify)
    assert added.returncode == 0, added.stderr
    proc = start_labloom(home, "serve", "--tick", "0.1", LABLOOM_SMTP_PORT="smtp")
    try:
        yield proc
    finally:
        stop(proc)


def test_serve_with_a_mail_alert_refuses_a_bad_smtp_port_at_its_start(
    store_backend: str, tmp_path: Path,
) -> None:
    with _serving(tmp_path, "MAILTO:ops@hospital.test") as proc:
        out, err = proc.communicate(timeout=60)  # before: served on, until this gave up
    assert proc.returncode == 2, (out, err)
    assert SAID in err, err
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
