"""The ``lab`` fixture's end (``lab_helpers.kill_lab``): the server and what it started are
gone, its kernels too, which jupyter_client starts in sessions of their own (out of the
server's process group, where a killpg alone left them running)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from cli_helpers import alive, wait_for
from lab_helpers import kill_lab

# A stand-in for the server: a child in its own session, as jupyter_client starts a kernel,
# whose pid it writes; then it waits to be killed, as a server does.
SERVER = """
import subprocess, sys, time
kernel = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"],
                          start_new_session=True)
open(sys.argv[1], "w").write(str(kernel.pid))
time.sleep(300)
"""


def running(pid: int) -> bool:
    """Alive and not a zombie (one killed whose parent died waits for init to reap it)."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_the_lab_s_kernels_in_their_own_sessions_are_killed_with_it(tmp_path: Path) -> None:
    pid_file = tmp_path / "kernel.pid"
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(pid_file)],
                              start_new_session=True)
    kernel = None
    try:
        wait_for(lambda: pid_file.exists() and pid_file.read_text(), 60, "the kernel's pid")
        kernel = int(pid_file.read_text())
        kill_lab(server)
        assert server.returncode is not None
        wait_for(lambda: not running(kernel), 30, "the kernel to be gone")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=30)
        if kernel is not None and alive(kernel):
            os.kill(kernel, signal.SIGKILL)
