"""The PostgreSQL tests' commit-cutting relay (tests/pg_commit_cut.py) says a cut was made
(``cut``, and ``down`` with ``goes_down``) before any connection through it ends: a test that
saw its command end (its connection cut) reads both. Before, ``cut`` was set only after the
server was taken down, and a relay's thread held up there (a loaded VM) let the Lab's delete
answer first: its test found ``cut`` unset, the cut made (1 run in 4 alone on this VM,
``test_a_lab_delete_whose_server_went_away_at_its_files_answers_200``)."""

from __future__ import annotations

import socket
import struct
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest

from pg_commit_cut import _READY, CommitCutter
from test_pg_commit_cut_down import _ended


class _HeldAfterDown(CommitCutter):
    """The relay's thread held up just after it took the server down, until ``go_on``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.go_on = threading.Event()

    def _go_down(self, *args: Any, **kwargs: Any) -> None:
        super()._go_down(*args, **kwargs)
        self.go_on.wait(30)


def _query(sql: bytes) -> bytes:
    return b"Q" + struct.pack("!I", 4 + len(sql) + 1) + sql + b"\0"


@pytest.mark.parametrize("at", ["write", "commit"])
def test_a_cut_is_said_before_its_client_sees_the_connection_end(at: str) -> None:
    with tempfile.TemporaryDirectory(prefix="lc") as folder:
        server_path = Path(folder) / ".s.PGSQL.5432"
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(server_path))
        server.listen()
        # "write": the statement cut before it goes; "commit": its COMMIT's answer kept back.
        cutter = _HeldAfterDown(server_path, goes_down=True, at=at, commits=at == "commit",
                                writes=(b"WHERE result_path IN",))
        client = socket.socket(socket.AF_UNIX)
        try:
            cutter.armed.set()
            client.connect(str(cutter.dir / ".s.PGSQL.5432"))
            backend, _ = server.accept()
            client.sendall(struct.pack("!II", 8, 196608))  # a startup packet
            client.sendall(_query(b"SELECT 1 FROM t WHERE result_path IN ('a')"))
            if at == "commit":
                client.sendall(_query(b"COMMIT"))
                backend.settimeout(30)
                sent = b""
                while b"COMMIT" not in sent:
                    sent += backend.recv(4096)
                backend.sendall(b"C\x00\x00\x00\x0bCOMMIT\x00" + _READY + b"I")
            assert _ended(client), "the cut ends the client's connection"
            # Before: unset, its thread held up after taking the server down.
            assert cutter.cut.is_set() and cutter.down.is_set()
            backend.close()
        finally:
            cutter.go_on.set()
            client.close()
            cutter.close()
            server.close()
