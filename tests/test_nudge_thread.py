"""The process's one nudging thread (``core/inbox._Nudger``) applies what an inbox's ``add``
left within ``NUDGE`` seconds. It is started without waiting for it to run (the asking thread
is a task's first logging call), so it is not a ``threading.Thread`` whose ``is_alive`` says
when another is needed: a fork's child and a thread ended by a ``BaseException`` start a new
one at the next nudge."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from typing import Any

import pytest

from cli_helpers import wait_for
from labloom.core import inbox as inbox_module
from labloom.core.inbox import Inbox


def _inbox() -> Inbox:
    lock = threading.RLock()
    return Inbox(lock, threading.Condition(lock), lambda: None)


def _exit() -> None:
    raise SystemExit  # ends the thread applying it (the nudging thread here), silently


def test_a_nudging_thread_ended_by_an_exit_is_started_again() -> None:
    inbox = _inbox()
    inbox.add(_exit)  # no report follows: the nudging thread applies it, and ends
    wait_for(lambda: inbox_module._nudger._running_in is None, 120,
             "the nudging thread to end")
    applied: list[int] = []
    inbox.add(applied.append, 1)
    # No report follows: only a new nudging thread applies it (the wait is a guard).
    wait_for(lambda: applied == [1], 120, "a new nudging thread to apply what add left")


def test_a_forked_child_nudges_with_a_thread_of_its_own() -> None:
    script = textwrap.dedent("""
        import os, threading, time
        from labloom.core.inbox import Inbox

        def inbox():
            lock = threading.RLock()
            return Inbox(lock, threading.Condition(lock), lambda: None)

        def applied_within(box, guard):
            seen = []
            box.add(seen.append, 1)  # no report follows: only a nudge applies it
            end = time.monotonic() + guard
            while not seen and time.monotonic() < end:
                time.sleep(0.01)
            return seen == [1]

        assert applied_within(inbox(), 60)  # the parent's nudging thread runs from here on
        pid = os.fork()
        if pid == 0:
            os._exit(0 if applied_within(inbox(), 60) else 3)  # the thread was not copied
        _, status = os.waitpid(pid, 0)
        print("CHILD", os.waitstatus_to_exitcode(status))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=dict(os.environ), timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "CHILD 0" in proc.stdout.splitlines(), (proc.stdout, proc.stderr[-3000:])


def test_a_nudging_thread_that_ended_before_its_start_was_noted_is_started_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The asking thread held up right after starting the nudging thread (a loaded machine)
    until that thread had run and ended (a BaseException): before, ``ask`` noted it running
    only then, for good, and nothing ``add`` left was ever nudged again in the process."""
    nudger = inbox_module._Nudger()  # this process's own is running already
    monkeypatch.setattr(inbox_module, "_nudger", nudger)
    monkeypatch.setattr(inbox_module, "NUDGE", 0.0)
    real = inbox_module._thread
    ended = threading.Event()

    class HeldUp:
        """``_thread``, whose ``start_new_thread`` returns once the thread has ended."""

        @staticmethod
        def start_new_thread(function: Callable[..., None], args: tuple[Any, ...]) -> int:
            def ends() -> None:
                try:
                    function(*args)
                finally:
                    ended.set()

            ident = real.start_new_thread(ends, ())
            assert ended.wait(120), "the nudging thread did not end"
            return ident

    monkeypatch.setattr(inbox_module, "_thread", HeldUp)
    inbox = _inbox()
    inbox.add(_exit)  # the nudging thread applies it and ends, before ``ask`` goes on
    monkeypatch.setattr(inbox_module, "_thread", real)
    applied: list[int] = []
    inbox.add(applied.append, 1)
    wait_for(lambda: applied == [1], 120, "a new nudging thread to apply what add left")
