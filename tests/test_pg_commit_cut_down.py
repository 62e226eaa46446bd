"""The PostgreSQL tests' commit-cutting relay (tests/pg_commit_cut.py), its server taken down
(``goes_down``), ends every connection through it, also one it was connecting to the server at
that moment. Such a connection lived on: the relay had looked at ``down`` before, and kept its
sockets only after ending the others. In a test of the Lab's delete, a pool's new connection
made then answered the store's question whether the cut COMMIT landed (it had): 200, all the
runs deleted, for the 504 of a server away (CI of session 57's branch, once in 2,151)."""

from __future__ import annotations

import contextlib
import socket
import struct
import tempfile
import threading
from pathlib import Path

from cli_helpers import wait_for
from pg_commit_cut import CommitCutter


class _DownAsItConnects(CommitCutter):
    """The server goes down (another connection's COMMIT cut, in another thread) while the
    first connection after ``arm`` is being connected to the server."""

    going: threading.Thread | None = None

    def _to_server(self) -> socket.socket | None:
        server = super()._to_server()
        if self.armed.is_set() and self.going is None:
            self.going = threading.Thread(target=self._go_down)
            self.going.start()
            self.going.join(0.5)  # at once, unless it waits for this connection to be kept
        return server


def _ended(sock: socket.socket) -> bool:
    """Whether ``sock``'s peer ended the connection (a clean close or a reset)."""
    sock.settimeout(30)
    try:
        return sock.recv(64) == b""
    except ConnectionError:
        return True


def test_a_connection_made_as_the_server_goes_down_is_ended_with_the_others() -> None:
    with tempfile.TemporaryDirectory(prefix="lc") as folder:
        server_path = Path(folder) / ".s.PGSQL.5432"
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(server_path))
        server.listen()
        cutter = _DownAsItConnects(server_path, goes_down=True)
        client = socket.socket(socket.AF_UNIX)
        try:
            cutter.armed.set()
            client.connect(str(cutter.dir / ".s.PGSQL.5432"))
            backend, _ = server.accept()
            # ``down`` first: a thread not yet started is not alive either (CI once sent the
            # packet before the relay's sockets were ended, and it was relayed)
            wait_for(lambda: cutter.down.is_set() and cutter.going is not None
                     and not cutter.going.is_alive(), 30, "the server down")
            with contextlib.suppress(ConnectionError):  # the relay's side ended already
                client.sendall(struct.pack("!II", 8, 196608))  # a startup packet
            # Before: relayed, as to a server still up.
            assert _ended(backend), "nothing reaches a server that went down"
            assert _ended(client), "the relay ends the client's side too"
            backend.close()
        finally:
            client.close()
            cutter.close()
            server.close()
