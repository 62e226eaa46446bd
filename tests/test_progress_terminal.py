"""Terminal progress: a live table on a terminal (a real pty), plain lines elsewhere."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = """
import time
from labloom import flow, task

@task
def step(i):
    time.sleep(0.05)
    return i

@flow(executor="threads")
def demo():
    return step.map(range(20))

demo()
"""


def _run(script: Path, env: dict[str, str], use_pty: bool) -> str:
    if not use_pty:
        done = subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == ""  # progress goes to stderr: stdout is the flow's own
        return done.stderr
    main, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=child, stderr=child)
    os.close(child)
    chunks = []
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            data = os.read(main, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(main)
    assert proc.returncode == 0
    return b"".join(chunks).decode()


def test_live_table_on_a_terminal_and_plain_lines_otherwise(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    script = tmp_path / "demo.py"
    script.write_text(SCRIPT)
    live = _run(script, subprocess_env, use_pty=True)
    assert "\x1b[" in live, "no redraw on a terminal"
    assert "step" in live and "20/20 done" in live
    plain = _run(script, subprocess_env, use_pty=False)
    assert "\x1b[" not in plain
    assert "20/20 done" in plain and "Completed" in plain
