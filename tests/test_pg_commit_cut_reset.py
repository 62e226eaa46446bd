"""The PostgreSQL tests' commit-cutting relay (tests/pg_commit_cut.py) takes a connection reset
by a peer for that connection's end, as it takes a clean close: a server or client closing with
bytes unread resets the socket, and the relay's thread ended on ConnectionResetError, failing
whichever test was running (CI of 30f27de, at a teardown)."""

from __future__ import annotations

import socket
import struct
import tempfile
import threading
import time
from pathlib import Path

from pg_commit_cut import CommitCutter


def test_a_connection_reset_by_the_server_ends_its_relay_quietly(monkeypatch):
    failures: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: failures.append(args.exc_value))
    with tempfile.TemporaryDirectory(prefix="lc") as folder:
        server_path = Path(folder) / ".s.PGSQL.5432"
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(server_path))
        server.listen()
        cutter = CommitCutter(server_path)
        try:
            client = socket.socket(socket.AF_UNIX)
            client.connect(str(cutter.dir / ".s.PGSQL.5432"))
            backend, _ = server.accept()
            # A startup packet and a query, which the backend leaves unread.
            sent = struct.pack("!II", 8, 196608) + b"Q\x00\x00\x00\x07x;\x00"
            client.sendall(sent)
            backend.settimeout(60)
            while len(backend.recv(64, socket.MSG_PEEK)) < len(sent):  # all relayed
                time.sleep(0.01)
            backend.close()  # closed with bytes unread: the relay's side is reset
            assert client.recv(1) == b"", "the relay ends the client's side too"
            client.close()
        finally:
            cutter.close()
            server.close()
    assert failures == [], failures
