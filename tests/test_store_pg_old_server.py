"""A PostgreSQL server older than 10 cannot hold labloom's store (its tables' identity columns,
and ``txid_status``, with which a write whose answer was lost is asked about, came in 10):
labloom says so, with the version, at its first connection. None runs here: the tests' server
is made to say it is 9.6 by a relay that rewrites what it reports as the connection starts
(its ``server_version``, from which libpq tells the version); the rest of such a server's
behaviour (its syntax errors on the schema) is not tested."""

from __future__ import annotations

import shutil
import socket
import struct
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import labloom


class OldServer:
    """A unix socket relaying to ``server_socket`` whose server says it is ``version``."""

    def __init__(self, server_socket: Path, version: bytes) -> None:
        self.server_socket, self.version = server_socket, version
        self.dir = Path(tempfile.mkdtemp(prefix="labloom-old-"))
        self._listener = socket.socket(socket.AF_UNIX)
        self._listener.bind(str(self.dir / ".s.PGSQL.5432"))
        self._listener.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._listener.close()  # its accept ends; relays end with their connections
        shutil.rmtree(self.dir, ignore_errors=True)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.socket(socket.AF_UNIX)
            try:
                server.connect(str(self.server_socket))
            except OSError:  # the server away: as a server that closes (this thread goes on)
                client.close()
                server.close()
                continue
            threading.Thread(target=_pipe, args=(client, server, None), daemon=True).start()
            threading.Thread(target=_pipe, args=(server, client, self.version),
                             daemon=True).start()


def _pipe(source: socket.socket, sink: socket.socket, version: bytes | None) -> None:
    """Bytes from ``source`` to ``sink``; from the server (``version`` given), message by
    message, its ParameterStatus ``server_version`` saying ``version``."""
    pending = b""
    try:
        while data := source.recv(65536):
            if version is None:
                sink.sendall(data)
                continue
            pending += data
            while len(pending) >= 5 and len(pending) >= 1 + struct.unpack("!I", pending[1:5])[0]:
                size = 1 + struct.unpack("!I", pending[1:5])[0]
                message, pending = pending[:size], pending[size:]
                if message[:1] == b"S" and message[5:].startswith(b"server_version\0"):
                    body = b"server_version\0" + version + b"\0"
                    message = b"S" + struct.pack("!I", 4 + len(body)) + body
                sink.sendall(message)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            sock.close()


@pytest.fixture
def old_server(postgres_server: Any) -> Iterator[str]:
    """The URL of a new database of the tests' server, reached through a relay saying 9.6."""
    name = postgres_server.new_database()
    relay = OldServer(postgres_server.socket_dir / ".s.PGSQL.5432", b"9.6.24")
    yield f"postgresql://postgres@/{name}?host={relay.dir}"
    relay.close()
    postgres_server.drop_database(name)


def test_a_server_older_than_10_is_named_with_its_version(old_server: str,
                                                          tmp_path: Path) -> None:
    # Before: used as any other (on a real 9.6, the schema's CREATE TABLE failed on its
    # identity columns, and a write whose answer was lost failed on txid_status for good).
    done = labloom(tmp_path, "limit", "list", LABLOOM_DATABASE_URL=old_server)
    assert done.returncode != 0, done.stdout
    assert "is on PostgreSQL 9.6, and labloom needs PostgreSQL 10 or later" in done.stderr, (
        done.stderr)
