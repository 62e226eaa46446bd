"""A real PostgreSQL server for the tests and the benchmark, started from Debian's `postgresql`
package in a temporary folder: unix socket only (no port to collide on), trust auth, run as the
`postgres` user when we are root (the server refuses root). One database per test."""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

INSTALL_HINT = (
    "PostgreSQL server not installed: apt-get install postgresql (Debian/Ubuntu), and "
    "pip install 'labloom[postgres]'"
)


def find_bindir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                      key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(versions[-1]).parent if versions else None


def missing() -> str | None:
    """Why a PostgreSQL server cannot be started here (None when it can)."""
    if find_bindir() is None:
        return INSTALL_HINT
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        return "psycopg not installed: pip install 'labloom[postgres]'"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "no `postgres` user to run the server as: apt-get install postgresql"
    return None


class PostgresServer:
    def __init__(self, fast: bool = True, initdb: tuple[str, ...] = (), options: str = "",
                 base: Path | None = None) -> None:
        """``initdb``: more arguments of initdb (``--waldir``); ``options``: more of the
        server's (``-c name=value``); ``base``: the folder to make it in (one the `postgres`
        user may enter), else a new temporary one."""
        bindir = find_bindir()
        assert bindir is not None, INSTALL_HINT
        self.bindir = bindir
        self.base = base or Path(tempfile.mkdtemp(prefix="labloom-pg-"))
        self.data = self.base / "data"
        self.socket_dir = self.base
        self.log = self.base / "server.log"
        self._names = itertools.count()
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]
        os.chmod(self.base, 0o755)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E",
                  "UTF8", "--no-sync", "--no-instructions", *initdb)
        options = f"-k {self.socket_dir} -c listen_addresses='' -c max_connections=200 {options}"
        if fast:  # the tests' data is thrown away: skip the disk flushes
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self.options = options
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self._as_user, str(self.bindir / tool), *args], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-o", self.options, "-l", str(self.log),
                  "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, database: str = "postgres", password: str | None = None) -> str:
        secret = f":{password}" if password else ""
        return f"postgresql://postgres{secret}@/{database}?host={self.socket_dir}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)

    def password_role(self, name: str, password: str) -> str:
        """A role that must give ``password`` (scram) while every other keeps trust auth;
        returns a URL of a database it owns, with ``password`` in it (to be changed for a
        wrong one)."""
        import psycopg

        self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self._admin(f"DROP ROLE IF EXISTS {name}")
        self._admin(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
        self._admin(f"CREATE DATABASE {name} OWNER {name}")
        hba = self.data / "pg_hba.conf"
        rule = f"local all {name} scram-sha-256\n"
        if not hba.read_text().startswith(rule):
            hba.write_text(rule + hba.read_text())  # the first rule that matches applies
            self._run("pg_ctl", "-D", str(self.data), "reload")
        url = f"postgresql://{name}:{password}@/{name}?host={self.socket_dir}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the reload is asynchronous: until a wrong one fails
            try:
                psycopg.connect(url.replace(f":{password}@", ":wrong@"), connect_timeout=5).close()
            except psycopg.OperationalError:
                return url
            time.sleep(0.05)
        raise RuntimeError(f"PostgreSQL did not start asking role {name} for its password within "
                           f"30 s of `pg_ctl reload`: see {self.log}")

    def new_database(self) -> str:
        name = f"labloom_test_{os.getpid()}_{next(self._names)}"
        self._admin(f"CREATE DATABASE {name}")
        return name

    def drop_database(self, name: str) -> None:
        with contextlib.suppress(Exception):
            self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)
