"""Driving the real `labloom` command in subprocesses, with bounded waits."""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import os
import socket
import socketserver
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from labloom.store.db import Conn, get_database

SRC = Path(__file__).resolve().parents[1] / "src"
SERVE_CHILD_HOOK = Path(__file__).resolve().parent / "serve_child_hook"


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    env["LABLOOM_HOME"] = str(home)
    env.update(extra)
    return env


def stale_after(seconds: float) -> dict[str, str]:
    """The environment for the processes of a test (serve, the CLI) that judges a scheduler
    gone after ``seconds`` without a heartbeat, not after ``liveness.STALE_AFTER``'s 30 s
    (tests/serve_child_hook): give it to every process of the test alike."""
    return {"LABLOOM_TEST_STALE_AFTER": str(seconds),
            "PYTHONPATH": os.pathsep.join([str(SERVE_CHILD_HOOK), str(SRC),
                                           os.environ.get("PYTHONPATH", "")])}


def labloom(
    home: Path, *args: str, timeout: float = 60, cwd: Path | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labloom", *args],
        env=cli_env(home, **extra),
        cwd=cwd or home,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_labloom(home: Path, *args: str, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "labloom", *args],
        env=cli_env(home, **extra),
        cwd=home,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@contextlib.contextmanager
def running_script(path: Path, source: str, *args: str,
                   home: Path) -> Iterator[subprocess.Popen[str]]:
    """``source`` written to ``path`` and run (``*args``, labloom home ``home``) in a process
    of its own, its output piped; killed after the block if it still runs."""
    path.write_text(source)
    proc = subprocess.Popen([sys.executable, str(path), *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env(home))
    try:
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[Any], timeout: float = 10) -> None:
    """Last resort for a test's process: kill it if it still runs."""
    if proc.poll() is None:
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired, ValueError):
        proc.communicate(timeout=timeout)


def read_lines(stream: Any, lines: list[str],
               each: Callable[[str], Any] | None = None) -> threading.Thread:
    """A daemon thread appending ``stream``'s lines (a process's pipe) to ``lines``, calling
    ``each(line)`` after each, until its end or until the stream is closed under it: ``stop``'s
    communicate closes a process's pipes once it read them, and a reader still in its loop
    then raised ValueError, which pytest counts against whichever test is running. Join it
    once the process ended, before ``stop``: what communicate reads is not in ``lines``."""

    def read() -> None:
        try:
            for line in stream:
                lines.append(line)
                if each is not None:
                    each(line)
        except (ValueError, OSError):  # closed under it: its end
            return

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def alive(pid: int) -> bool:
    """Whether process ``pid`` still exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(
    check: Callable[[], Any], timeout: float, what: str,
    pause: Callable[[float], Any] = time.sleep,
) -> Any:
    """Poll ``check`` until it returns something true (returned), or fail naming ``what``;
    ``pause(seconds)`` between looks."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        pause(0.05)


def dask_scheduler(cwd: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """A `dask scheduler` process of its own on a free local port, once it accepts
    connections: the process and its address (the caller terminates it)."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
         "--port", str(port), "--dashboard-address", ":0", "--no-show"],
        cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return scheduler, f"tcp://127.0.0.1:{port}"
        except OSError:
            if time.monotonic() > deadline or scheduler.poll() is not None:
                scheduler.kill()
                raise AssertionError("the dask scheduler did not start") from None
            time.sleep(0.1)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


class Hook:
    """A webhook that answers with the scripted statuses, then 200; on ``port``, where one
    went down (0: a free port)."""

    def __init__(self, statuses: list[int], port: int = 0) -> None:
        self.statuses = list(statuses)
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                hook.bodies.append(json.loads(self.rfile.read(length)))
                hook.paths.append(self.path)
                status = hook.statuses.pop(0) if hook.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def process_request(self, request: Any, client_address: Any) -> None:
                hook.accepted += 1  # in the serving thread, as each connection is accepted
                super().process_request(request, client_address)

        self.accepted = 0
        self.server = Server(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T0/secret-token"

    def connections_so_far(self) -> int:
        """Connections made to the hook before this call (a probe of ours not counted): the
        listen queue is first in, first out, so once the probe is accepted, every connection
        made before it was too. No sleep can tell that nothing more is on its way."""
        before = self.accepted
        with socket.create_connection(self.server.server_address[:2], timeout=60):
            wait_for(lambda: self.accepted > before, 60, "the hook to accept a probe")
        return self.accepted - 1

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(60)


class MailRelay:
    """A real SMTP server on 127.0.0.1 (RFC 5321's dialogue, nothing relayed on): the mails it
    took, after answering the scripted refusal codes to MAIL FROM first."""

    def __init__(self, refusals: list[int] | None = None) -> None:
        self.refusals = list(refusals or [])
        self.mails: list[Any] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        relay = self

        class Handler(socketserver.StreamRequestHandler):
            def say(self, line: str) -> None:
                self.wfile.write(line.encode() + b"\r\n")
                self.wfile.flush()

            def handle(self) -> None:
                self.say("220 relay.test ESMTP")
                sender, recipients = "", []
                while line := self.rfile.readline():
                    command = line.decode().strip()
                    verb = command[:4].upper()
                    if verb in ("HELO", "EHLO", "RSET", "NOOP"):
                        self.say("250 relay.test")
                    elif verb == "MAIL" and relay.refusals:
                        self.say(f"{relay.refusals.pop(0)} try again later")
                    elif verb == "MAIL":
                        sender, recipients = command[10:].strip(" <>"), []
                        self.say("250 OK")
                    elif verb == "RCPT":
                        recipients.append(command[8:].strip(" <>"))
                        self.say("250 OK")
                    elif verb == "DATA":
                        self.say("354 end with a line holding a dot")
                        data = []
                        while (part := self.rfile.readline()) not in (b".\r\n", b""):
                            data.append(part[1:] if part.startswith(b"..") else part)
                        relay.mails.append(email.message_from_bytes(
                            b"".join(data), policy=email.policy.default))
                        relay.envelopes.append((sender, recipients))
                        self.say("250 queued")
                    elif verb == "QUIT":
                        self.say("221 bye")
                        return
                    else:
                        self.say("502 not implemented")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def env(self) -> dict[str, str]:
        """The settings that send labloom's alerts here."""
        return {"LABLOOM_SMTP_HOST": "127.0.0.1", "LABLOOM_SMTP_PORT": str(self.port),
                "LABLOOM_SMTP_FROM": "labloom@lab.test"}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(60)


def store_of(home: Path) -> Conn | None:
    """A connection to the store the scheduler under test uses (None before it exists)."""
    url = os.environ.get("LABLOOM_DATABASE_URL")
    if url is None:
        if not (home / "labloom.db").exists():
            return None
        url = f"sqlite:///{home / 'labloom.db'}"
    return get_database(url).connect(named_rows=True)


def slot_rows(home: Path) -> list[dict[str, object]]:
    conn = store_of(home)
    if conn is None:
        return []
    with conn:
        rows = conn.execute("SELECT * FROM schedule_slots ORDER BY slot_time").fetchall()
        return [dict(row) for row in rows]


def serving(home: Path, proc: subprocess.Popen[str]) -> bool:
    """Whether ``proc``'s serve beats its heartbeat: it handles SIGTERM from then on."""
    conn = store_of(home)
    assert conn is not None
    with conn:
        return conn.execute("SELECT 1 FROM schedulers WHERE pid = ?",
                            (proc.pid,)).fetchone() is not None


def first_slot_in(home: Path, name: str, seconds: float) -> None:
    """Move the first slot of the ``--every`` schedule ``name`` to ``seconds`` from now (it
    comes a whole interval after `schedule add`; the slots after it keep their interval): a
    test of what a scheduled run does, not of when it starts, then waits no 10 s interval out."""
    conn = store_of(home)
    assert conn is not None, "add the schedule first"
    with conn:
        moved = conn.execute(
            "UPDATE schedules SET anchor = ? - every WHERE name = ? AND every IS NOT NULL",
            (time.time() + seconds, name),
        ).rowcount
    assert moved == 1, f"no --every schedule {name!r}"


def due_every(home: Path, name: str, seconds: float) -> None:
    """Make the ``--every`` schedule ``name`` due every ``seconds`` from now on (its next slot
    ``seconds`` from now). A case about a run still going at its next due time runs it on a
    long interval until the run is where the case needs it (its id in its slot, waiting for
    its retry), then brings the next slots near: with a short interval from the start, a loaded
    machine's run was not there yet when the next slot came (still importing)."""
    conn = store_of(home)
    assert conn is not None, "add the schedule first"
    with conn:
        changed = conn.execute(
            "UPDATE schedules SET every = ?, anchor = ? WHERE name = ? AND every IS NOT NULL",
            (seconds, time.time(), name),
        ).rowcount
    assert changed == 1, f"no --every schedule {name!r}"
