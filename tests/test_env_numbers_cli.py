"""A bad number setting through the real entry points (the CLI in a subprocess, importing the
Jupyter extension): one line naming the variable, its value and the fix, before anything
runs or is recorded. Before, these raised a bare ValueError (a traceback), or fell back to a
default or clamped without a word."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tornado import web

from cli_helpers import cli_env, labloom, write
from labloom.server_extension.launch import launch_wait

FLOW = '''
from pathlib import Path
from labloom import flow, task

@task
def touch() -> int:
    Path("ran").write_text("yes")
    return 1

@flow(executor="local")
def chore():
    return touch()
'''


@pytest.mark.parametrize(("name", "bad", "said"), [
    ("LABLOOM_LOG_LINES", "lots", "a whole number >= 0 (log lines the store keeps per task run)"),
    ("LABLOOM_RUN_LOG_LINES", "0", "a whole number >= 1 (log lines a run keeps in memory)"),
])
def test_a_bad_log_setting_stops_labloom_run_before_the_flow_runs(
    tmp_path: Path, name: str, bad: str, said: str,
) -> None:
    write(tmp_path / "chores.py", FLOW)
    done = labloom(tmp_path, "run", "chores.py:chore", LABLOOM_PROGRESS="0", **{name: bad})
    assert done.returncode == 2, done.stderr
    assert f"{name} must be {said}, got {bad!r}: set it to one, or unset it" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "ran").exists()  # the flow did not run
    listed = labloom(tmp_path, "runs")  # nor was a run recorded
    assert listed.returncode == 0 and "chore" not in listed.stdout, listed


def test_a_bad_smtp_port_is_said_where_notify_mailto_is_given(tmp_path: Path) -> None:
    write(tmp_path / "chores.py", FLOW)
    done = labloom(tmp_path, "run", "chores.py:chore", "--notify", "mailto:ops@example.org",
                   LABLOOM_PROGRESS="0", LABLOOM_SMTP_PORT="smtp")
    assert done.returncode == 2, done.stderr
    assert ("LABLOOM_SMTP_PORT must be a port number from 1 to 65535 (the SMTP relay's port), "
            "got 'smtp'") in done.stderr
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize(("name", "bad"), [("LABLOOM_DB_POOL", "0"),
                                           ("LABLOOM_DB_CONNECT_TIMEOUT", "soon")])
def test_a_bad_postgres_setting_is_said_as_the_store_is_opened(
    tmp_path: Path, name: str, bad: str,
) -> None:
    # No server is needed: the settings are read before any connection (a closed port here).
    done = labloom(tmp_path, "--database-url", "postgresql://nobody@127.0.0.1:9/none", "runs",
                   **{name: bad})
    assert done.returncode == 2, done.stderr
    assert f"{name} must be " in done.stderr and f"got {bad!r}" in done.stderr, done.stderr
    assert "cannot reach" not in done.stderr


def test_a_bad_launch_wait_never_stops_the_extension_loading(tmp_path: Path) -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", "import labloom.server_extension.launch"],
        env=cli_env(tmp_path, LABLOOM_LAUNCH_WAIT="a minute"), capture_output=True, text=True,
        timeout=120)
    assert loaded.returncode == 0, loaded.stderr


def test_a_bad_launch_wait_answers_a_launch_naming_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LABLOOM_LAUNCH_WAIT", "90")
    assert launch_wait() == 90.0
    monkeypatch.setenv("LABLOOM_LAUNCH_WAIT", "a minute")
    with pytest.raises(web.HTTPError) as raised:
        launch_wait()
    assert raised.value.status_code == 500
    assert raised.value.log_message == (
        "[labloom] LABLOOM_LAUNCH_WAIT must be a number of seconds above 0 (how long a launch "
        "waits for the flow's process), got 'a minute': set it to one, or unset it for the "
        "default (60)")
