"""The end of a Lab the tests started (``lab_helpers.lab``): the server killed outright with
all it started, its kernels' processes too (tests/test_lab_kill.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess


def kill_lab(proc: subprocess.Popen[bytes]) -> None:
    """The Lab killed outright with all it started. Its own clean stop (SIGTERM: about a
    second and a half of a loaded machine, kernels shut down one by one) is no test's subject
    and nothing read it; what it leaves is in the test's tmp_path.

    Its kernels have sessions of their own (jupyter_client starts them so), out of the
    server's process group, and a kernel running a flow starts processes (Dask workers) in its
    group or in sessions of their own. Everything is stopped before it is killed: each round
    lists the server's descendants and stops the ones not seen yet, with their groups, until a
    round finds none new. A stopped process starts nothing, so that last list is all there is."""
    seen = {proc.pid}
    groups = {proc.pid}
    _stop(proc.pid, proc.pid)
    while new := {pid: group for pid, group in _family(proc.pid).items() if pid not in seen}:
        for pid, group in new.items():
            _stop(pid, group)
        seen |= new.keys()
        groups |= set(new.values())
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
    for pid in seen:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _stop(pid: int, group: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGSTOP)
    if group != os.getpgid(0):  # never the tests' own group (a child that kept ours)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGSTOP)


def _family(root: int) -> dict[int, int]:
    """The descendants of ``root`` now, each with its process group."""
    import psutil

    try:
        children = psutil.Process(root).children(recursive=True)
    except psutil.NoSuchProcess:
        return {}
    family = {}
    for child in children:
        with contextlib.suppress(ProcessLookupError):
            family[child.pid] = os.getpgid(child.pid)
    return family
