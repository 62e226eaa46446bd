"""The ``lab`` fixture's end (``lab_kill.kill_lab``): the server and what it started are
gone, its kernels too, which jupyter_client starts in sessions of their own (out of the
server's process group, where a killpg alone left them running)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

from cli_helpers import alive, wait_for
from lab_kill import kill_lab

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


@contextlib.contextmanager
def killed_lab(*args: str) -> Iterator[subprocess.Popen[bytes]]:
    """A stand-in server (``python -c *args``) in a session of its own, as the ``lab`` fixture
    starts Jupyter, killed by ``kill_lab`` at the block's end (it is gone then); whatever
    the block raised, killed outright."""
    server = subprocess.Popen([sys.executable, "-c", *args], start_new_session=True)
    try:
        yield server
        kill_lab(server)
        assert server.returncode is not None
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=30)


def test_the_lab_s_kernels_in_their_own_sessions_are_killed_with_it(tmp_path: Path) -> None:
    pid_file = tmp_path / "kernel.pid"
    kernel = None
    try:
        with killed_lab(SERVER, str(pid_file)):
            wait_for(lambda: pid_file.exists() and pid_file.read_text(), 60, "the kernel's pid")
            kernel = int(pid_file.read_text())
        wait_for(lambda: not running(kernel), 30, "the kernel to be gone")
    finally:
        if kernel is not None and alive(kernel):
            os.kill(kernel, signal.SIGKILL)


# A kernel that keeps starting processes while the Lab is killed, as one running a flow
# starts its Dask workers: some in its own process group, some in sessions of their own.
# Each is a `sleep` of a duration no other process has, which is how the test finds them.
BUSY_SERVER = """
import subprocess, sys, time
kernel = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]],
                          start_new_session=True)
time.sleep(300)
"""
BUSY_KERNEL = """
import subprocess, sys, time
for i in range(2000):  # some seconds of starting, bounded if nothing kills it
    subprocess.Popen(["sleep", sys.argv[1]], start_new_session=bool(i % 2))
    time.sleep(0.002)
"""


def sleepers(duration: str) -> list[int]:
    import psutil

    return [p.pid for p in psutil.process_iter(["cmdline"])
            if p.info["cmdline"] == ["sleep", duration] and running(p.pid)]


def test_what_a_kernel_starts_while_the_lab_is_killed_is_killed_too(tmp_path: Path) -> None:
    # Before, the Lab's family was listed and then killed, the kernels running meanwhile:
    # what a kernel started between the two outlived the Lab (5 runs of 5).
    duration = f"120.{uuid.uuid4().int % 10**9}"  # gone by itself if a run here leaks it
    try:
        with killed_lab(BUSY_SERVER, BUSY_KERNEL, duration):
            wait_for(lambda: sleepers(duration), 60, "the kernel starting processes")
        wait_for(lambda: not sleepers(duration), 30, "every process of the kernel to be gone")
    finally:
        for pid in sleepers(duration):
            os.kill(pid, signal.SIGKILL)
