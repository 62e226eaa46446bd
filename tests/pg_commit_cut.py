"""A proxy in front of the tests' PostgreSQL server that loses the answer to a COMMIT: it passes
every message both ways, but the first COMMIT, once ``armed``, of a transaction that wrote log
lines (or what ``writes`` names) goes to the server, and when the server has answered it
(committed) the connection is closed instead of the answer passed on: as when the server
crashes, or the network goes, right after committing. With ``commits=False`` that COMMIT is not
passed on either: the connection goes just before it, and nothing of the transaction lands;
with ``held=True`` too, the server's side of it stays open (until ``close``): a network cut the
server has not noticed, its transaction open, holding its row locks. With ``goes_down=True``,
the cut COMMIT takes the server away, as a crash does: every connection through the proxy is
closed (one being made as it goes too) and new ones are refused (closed at once) until ``down``
is cleared. With ``at="alone"``, a statement that writes what ``writes`` names outside a
transaction (its own, committed as it is answered) is cut as that COMMIT is; with
``at="write"`` (and ``commits=False``), that statement itself, in its transaction: the
connection goes before its COMMIT is sent. With ``skip=N``, the first N such COMMITs once armed
pass (a command's later change cut, its earlier ones made); with ``at="write"``, the first N such
statements sent with their text (one psycopg prepared is sent again by name alone, not counted:
a later batch's is seen where its text differs, e.g. a delete of fewer runs).

A unix socket (the tests' server has no TCP port), read as libpq speaks: a startup packet (a
length, no type), then messages of a type byte and a length."""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cli_helpers import labloom

_WRITES_LINES = (b"INTO logs ", b"COPY logs ")
_READY = b"Z\x00\x00\x00\x05"  # ReadyForQuery: the server is done with the COMMIT


class CommitCutter:
    def __init__(self, server_socket: Path, commits: bool = True, held: bool = False,
                 writes: tuple[bytes, ...] = _WRITES_LINES, goes_down: bool = False,
                 at: str = "commit", skip: int = 0) -> None:
        self.server_socket = server_socket  # the server's .s.PGSQL.5432
        self.writes = writes  # a statement holding one of these marks its transaction's COMMIT
        self.commits = commits
        self.held = held
        self._held: list[socket.socket] = []
        self.goes_down = goes_down
        self.at = at  # "commit", "alone" or "write" (see above)
        self.skip = skip  # armed cuts to let pass first
        self._skip_lock = threading.Lock()
        self.down = threading.Event()  # set: the server taken for away (see ``goes_down``)
        self._going_down = threading.Lock()  # ``down`` set, or a connection kept: one at a time
        self._sockets: list[socket.socket] = []  # of every connection relayed, to end at once
        self.dir = Path(tempfile.mkdtemp(prefix="labloom-cut-"))
        self.armed = threading.Event()
        self.cut = threading.Event()  # a connection was cut at a COMMIT
        self.direct = ""  # the database's own URL (``cut_database``)
        self.answer = b""  # the transaction status the server answered it with ("I": done)
        self._listener = socket.socket(socket.AF_UNIX)
        self._listener.bind(str(self.dir / ".s.PGSQL.5432"))
        self._listener.listen(64)
        self._listener.settimeout(0.2)
        self._closed = False
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def url(self, database: str) -> str:
        return f"postgresql://postgres@/{database}?host={self.dir}"

    def close(self) -> None:
        self._closed = True
        for thread in list(self._threads):
            thread.join(30)
        self._listener.close()
        for sock in self._held:
            sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            client.setblocking(True)
            # Looked at and kept under the lock ``_go_down`` takes: a connection made as the
            # server goes down is refused, or kept in time to be ended with the others. Before,
            # one kept just after they were ended lived on: a pool's new connection answered
            # whether the cut COMMIT landed (a Lab delete's 200 for a 504, CI of session 57).
            with self._going_down:
                server = None if self.down.is_set() else self._to_server()
                if server is not None:
                    self._sockets += [client, server]
            if server is None:
                client.close()
                continue
            thread = threading.Thread(target=self._relay, args=(client, server), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _to_server(self) -> socket.socket | None:
        """A connection to the server; None when it is away (stopped, restarting): as a
        server that closes."""
        server = socket.socket(socket.AF_UNIX)
        try:
            server.connect(str(self.server_socket))
        except OSError:
            server.close()
            return None
        return server

    def take(self) -> bool:
        """Armed: whether this cut is made (``skip`` spent), disarming once it is."""
        with self._skip_lock:
            if not self.armed.is_set():
                return False
            if self.skip > 0:
                self.skip -= 1
                return False
            self.armed.clear()
            return True

    def _relay(self, client: socket.socket, server: socket.socket) -> None:
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ)
        sel.register(server, selectors.EVENT_READ)
        reader = _ClientMessages(self)
        answers: bytes | None = None  # once the COMMIT to cut went: the server's answers
        try:
            while not self._closed:
                for key, _ in sel.select(0.2):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    if key.fileobj is client:
                        for message, cut in reader.messages(data):
                            if cut and not self.commits:
                                if self.held:
                                    self._held.append(server)
                                    server = client  # closed once, below
                                self._cut_made()
                                return
                            server.sendall(message)
                            if cut:
                                answers = b""
                    elif answers is None:
                        client.sendall(data)
                    else:
                        answers += data
                        if (at := answers.find(_READY)) >= 0:
                            self.answer = answers[at + 5:at + 6]
                            self._cut_made()
                            return
        except ConnectionError:  # reset or broken by a peer (a closed connection): its end
            return
        finally:
            sel.close()
            for sock in (client, server):
                with contextlib.suppress(OSError):
                    sock.close()

    def _cut_made(self) -> None:
        """``cut`` set (with ``goes_down``, the server taken down) before any connection
        ends: this one (``_relay``'s ``finally``) or the others (``_go_down``), so a test that
        saw its command's connection end finds it set. Before, it was set after ``_go_down``
        ended them: this thread held up there (a loaded VM), a Lab delete cut at its files
        query answered first, and its test found ``cut`` unset (1 run in 4)."""
        if self.goes_down:
            self._go_down(cut=True)
        else:
            self.cut.set()

    def _go_down(self, cut: bool = False) -> None:
        """Every connection ended, new ones refused; ``cut``: ``cut`` set with ``down``."""
        with self._going_down:  # a connection being made is kept, or refused (``_accept``)
            self.down.set()
            if cut:
                self.cut.set()
            ended = list(self._sockets)
        for sock in ended:
            with contextlib.suppress(OSError):  # closed already
                sock.shutdown(socket.SHUT_RDWR)  # its relay sees the end and closes it


class _ClientMessages:
    """One connection's messages from the client, each with whether it is the COMMIT to cut."""

    def __init__(self, cutter: CommitCutter) -> None:
        self.cutter = cutter
        self.pending = b""  # not yet a whole message
        self.started = False  # the startup packet went
        self.lines = False  # the transaction under way wrote log lines
        self.within = False  # a transaction is under way (BEGIN sent, not ended)
        # Statements psycopg prepared (after a few uses of one text) that write them: used
        # again, by name, their text is not sent again.
        self.prepared: set[bytes] = set()

    def messages(self, data: bytes) -> Iterator[tuple[bytes, bool]]:
        self.pending += data
        if not self.started:
            if len(self.pending) < 4 or len(self.pending) < _length(self.pending, 0):
                return
            size = _length(self.pending, 0)
            message, self.pending = self.pending[:size], self.pending[size:]
            self.started = True
            yield message, False
        while len(self.pending) >= 5 and len(self.pending) >= 1 + _length(self.pending, 1):
            size = 1 + _length(self.pending, 1)
            message, self.pending = self.pending[:size], self.pending[size:]
            kind, body = message[:1], message[5:]
            # A statement's text that writes what ``writes`` names; ``at="write"`` counts
            # (``skip``) and cuts these alone: before, their transaction's COMMIT was counted
            # too, and ``skip=1`` cut the first batch's COMMIT, not the second batch's write.
            writes = kind in (b"Q", b"P") and any(w in body for w in self.cutter.writes)
            if writes:
                self.lines = True
                if kind == b"P" and body[:1] != b"\0":  # named: prepared
                    self.prepared.add(body.split(b"\0", 1)[0])
            if kind == b"B" and body.split(b"\0", 2)[1] in self.prepared:
                self.lines = True
            cut = writes and self.cutter.at == "write" and self.cutter.take()
            if kind == b"Q" and body.startswith((b"BEGIN", b"ROLLBACK")):
                self.lines = False
                self.within = body.startswith(b"BEGIN")
            alone = self.lines and self.cutter.at == "alone" and not self.within
            if (kind == b"Q" and body.startswith(b"COMMIT")) or alone:
                cut = self.lines and self.cutter.at != "write" and self.cutter.take()
                self.lines = self.within = False
            yield message, cut


def _length(data: bytes, at: int) -> int:
    return int(struct.unpack("!I", data[at:at + 4])[0])


@contextlib.contextmanager
def cut_database(server: Any, monkeypatch: Any, **options: Any) -> Iterator[CommitCutter]:
    """A new database of the tests' ``server`` behind a ``CommitCutter(**options)``, named by
    LABLOOM_DATABASE_URL while the block runs; dropped after it. With ``held``, the server
    ends a short transaction left idle after ``ORPHANED_IN_TESTS`` seconds, not 30."""
    from labloom.store import db

    name = server.new_database()
    if options.get("held"):
        _orphaned_soon(monkeypatch)
    proxy = CommitCutter(server.socket_dir / ".s.PGSQL.5432", **options)
    proxy.direct = server.url(name)  # the database straight, not through the proxy
    url = proxy.url(name)
    monkeypatch.setenv("LABLOOM_DATABASE_URL", url)
    try:
        yield proxy
    finally:
        db.forget(url)
        proxy.close()
        server.drop_database(name)


# Seconds a short transaction may sit idle before the server ends it, in the tests whose cut
# the server never notices (``held``): they wait for that end, 30 s in the product. Long enough
# that a legitimate transaction is never ended by it when a loaded 2-core machine stalls its
# thread for a second or two between two statements.
ORPHANED_IN_TESTS = 5


def _orphaned_soon(monkeypatch: Any) -> None:
    """``unanswered_commits.ORPHANED`` set to ``ORPHANED_IN_TESTS`` here, and in the `labloom`
    processes the test starts (tests/serve_child_hook): read at each use, not copied at import."""
    from labloom.store import unanswered_commits

    monkeypatch.setattr(unanswered_commits, "ORPHANED", ORPHANED_IN_TESTS)
    monkeypatch.setenv("LABLOOM_TEST_ORPHANED", str(ORPHANED_IN_TESTS))
    hook = str(Path(__file__).parent / "serve_child_hook")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, (hook, os.environ.get(
        "PYTHONPATH")))))


def cut_command(proxy: CommitCutter, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`labloom *args` run with ``proxy`` armed, waiting 1 s for a connection (the server, if
    it goes down, stays away longer): its answer, once the cut was made."""
    proxy.armed.set()
    done = labloom(home, *args, LABLOOM_DB_CONNECT_TIMEOUT="1")
    assert proxy.cut.is_set() and proxy.down.is_set() == proxy.goes_down, (done.stdout,
                                                                           done.stderr)
    return done
