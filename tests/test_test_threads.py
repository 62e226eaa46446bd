"""The threads the tests start end quietly when their peer goes: a relay or reader thread
that ended on an exception (a connection reset, a pipe closed under it, a server that cannot
be reached) failed whichever test was running then, as pg_commit_cut's relay did in the CI of
30f27de. Each case fails before its helper's fix (``threading.excepthook`` is called)."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import read_lines, wait_for


@pytest.fixture
def thread_failures(monkeypatch: pytest.MonkeyPatch) -> list[BaseException | None]:
    failures: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: failures.append(args.exc_value))
    return failures


def test_a_reader_whose_pipe_is_closed_under_it_ends_quietly(thread_failures) -> None:
    # As ``stop``'s communicate does to a process's pipe while a reader is between two lines.
    proc = subprocess.Popen([sys.executable, "-c", "print('one', flush=True); input()"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    lines: list[str] = []
    between = threading.Event()
    reader = read_lines(proc.stdout, lines, lambda line: between.wait(60))
    try:
        wait_for(lambda: lines, 60, "the first line")
        assert proc.stdout is not None and proc.stdin is not None
        proc.stdout.close()
    finally:
        between.set()
        proc.kill()
        proc.wait(60)
    reader.join(60)
    assert not reader.is_alive() and lines == ["one\n"]
    assert thread_failures == [], thread_failures


def unreachable_relay(make: Any) -> None:
    """A relay made by ``make(server_socket)`` in front of a server socket nobody listens on
    (a server stopped): each client's connection is closed, one after another, quietly."""
    with tempfile.TemporaryDirectory(prefix="lg") as folder:
        relay = make(Path(folder) / ".s.PGSQL.5432")
        try:
            for _ in range(2):  # the second: the relay still accepts after the first
                client = socket.socket(socket.AF_UNIX)
                client.settimeout(60)
                client.connect(str(relay.dir / ".s.PGSQL.5432"))
                assert client.recv(1) == b"", "the relay closes the client's side"
                client.close()
        finally:
            relay.close()


def test_the_commit_cutter_takes_an_unreachable_server_for_a_closed_one(thread_failures):
    from pg_commit_cut import CommitCutter

    unreachable_relay(CommitCutter)
    assert thread_failures == [], thread_failures


def test_the_old_server_relay_takes_an_unreachable_server_for_a_closed_one(thread_failures):
    from test_store_pg_old_server import OldServer

    unreachable_relay(lambda path: OldServer(path, b"9.6.24"))
    assert thread_failures == [], thread_failures
