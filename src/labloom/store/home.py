"""Where labloom keeps its state: ``LABLOOM_HOME`` (default ``~/.labloom``)."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import sqlite3
import time
from pathlib import Path

from ..core.errors import StoreUnavailableError
from ..core.result_files import is_url, local_path
from .settings import heartbeat_timeout

_made: set[Path] = set()


def home_path() -> Path:
    """Where the state folder is, without creating it."""
    return Path(os.environ.get("LABLOOM_HOME") or Path.home() / ".labloom").expanduser()


def home() -> Path:
    """The state folder, created (owner-only) on first use."""
    path = home_path()
    if path not in _made:  # a tagged task's launch asks for it: no mkdir per launch
        make_folder(path)
        _made.add(path)
    return path


def make_folder(path: Path) -> Path:
    """Create an owner-only folder of labloom's state, or say in one line why it cannot be."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied", str(path))
    except OSError as exc:
        raise StoreUnavailableError(
            f"[labloom] cannot use {path} for labloom's state ({exc.strerror or exc}): set "
            "LABLOOM_HOME to a folder you can write, or fix that folder's permissions"
            + _read_only_history(path / "labloom.db")
        ) from None
    return path


def _read_only_history(store: Path) -> str:
    """How to reach the runs of a store this user can read but not write (a read-only mount,
    a backup): labloom writes to its store even to read it."""
    if not (store.is_file() and os.access(store, os.R_OK)):
        return ""
    return (f"; the runs in {store} stay readable: `labloom db copy --from {store}` (it reads "
            "the file as it is) brings them into a store you can write")


def db_path() -> Path:
    return home() / "labloom.db"


def results_location() -> str:
    """Where results are written: ``LABLOOM_RESULTS_URL`` (a folder or any fsspec URL,
    shared by every host of a team), else ``LABLOOM_HOME/results``."""
    url = os.environ.get("LABLOOM_RESULTS_URL", "").strip().rstrip("/")
    if is_url(url):
        return url
    # A relative folder is this process's: Dask workers and other processes have working
    # directories of their own, so they are handed (and the store records) the absolute path.
    folder = os.path.expanduser(local_path(url)) if url else results_dir()
    return os.path.abspath(folder)


def results_dir() -> Path:
    return make_folder(home() / "results")


def connect(path: Path | None = None, timeout: float = 30.0) -> sqlite3.Connection:
    """A connection to the store file: WAL, a generous busy timeout, file mode 0600."""
    path = path or db_path()
    fresh = not path.exists()
    try:
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None,
                               check_same_thread=False)
        if fresh:
            os.chmod(path, 0o600)
            # Switching an empty file to WAL goes through a rollback journal: without syncing,
            # as a crash meanwhile loses nothing (no run is in it yet). Milliseconds to tens of
            # them on a busy disk, paid by a new LABLOOM_HOME's first run (issue 21).
            conn.execute("PRAGMA synchronous=OFF")
        _enter_wal(conn, timeout)
    except sqlite3.DatabaseError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise  # another process's long write: the callers wait it out
        if disk_full(path):
            raise StoreUnavailableError(
                f"[labloom] the store {path} cannot be opened now: the disk holding it is full "
                f"({exc}); free some space, then try again"
            ) from None
        if not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
            raise StoreUnavailableError(  # not damaged: "move it aside" would hide the runs
                f"[labloom] the store {path} cannot be opened ({exc}): labloom writes to its "
                "store, and this one (or its folder) is read-only here; set LABLOOM_HOME or "
                "--database-url to a store you can write" + _read_only_history(path)
            ) from None
        raise StoreUnavailableError(
            f"[labloom] the store {path} cannot be opened ({exc}): if it is damaged, move it "
            f"aside (labloom then starts a new one) or set LABLOOM_HOME to another folder"
        ) from None
    except OSError as exc:
        raise StoreUnavailableError(
            f"[labloom] the store {path} cannot be opened ({exc.strerror or exc}): fix its "
            "permissions or set LABLOOM_HOME to a folder you can write"
        ) from None
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    return conn


def disk_full(path: Path) -> bool:
    """Whether the file system holding ``path`` has (next to) no space left."""
    try:
        return shutil.disk_usage(path.parent).free < 64 * 1024
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    """Whether a process of this host with that pid is running (zombies count as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def started_after(pid: int, when: float) -> bool:
    """Whether the live process ``pid`` of this host started after ``when`` (epoch seconds):
    then it is not the process that was running at ``when``, its pid was reused. False when
    its start cannot be read."""
    try:
        import psutil  # a dependency of distributed

        return bool(psutil.Process(pid).create_time() > when + 1.0)  # its clock ticks
    except Exception:  # gone meanwhile, no access, no psutil: not shown reused
        return False


# The writer's beat. A run its writer still holds lives: one marked Crashed by a read from
# another host while its beats could not be written (a PostgreSQL server away for longer than
# LABLOOM_HEARTBEAT_TIMEOUT) is Running again with its next beat, not Crashed until it ends.
# (Its task runs marked Cancelled then get their states back as they move.)
HEARTBEAT = (
    "UPDATE flow_runs SET heartbeat = ?, "
    "message = CASE WHEN state = 'Crashed' THEN '' ELSE message END, "
    "ended = CASE WHEN state = 'Crashed' THEN NULL ELSE ended END, "
    "state = CASE WHEN state = 'Crashed' THEN 'Running' ELSE state END WHERE id = ?"
)


def why_gone(host: str | None, pid: int | None, beat: float | None, created: float | None,
             now: float) -> str | None:
    """Why a run recorded as going (``host``, ``pid``, last ``beat``, ``created``) is not, its
    process dead; None while it may live. On its own host the process is asked: one that
    lives but has not beaten (frozen: a laptop asleep, SIGSTOP; or starved) beats again when
    it wakes. Marked Crashed for its silence alone, the run showed Crashed, its running task
    runs Cancelled, until it wrote its end. Elsewhere the heartbeat decides."""
    timeout = heartbeat_timeout()
    stale = beat is None or now - beat > timeout
    if host == host_name() and pid is not None:
        if not pid_alive(int(pid)):
            return f"its process (pid {pid} on {host}){_GONE}"
        if stale and started_after(int(pid), created or 0.0):
            return f"its process (pid {pid} on {host}){_GONE}; a later process has its pid"
        return None
    if stale:
        return f"no sign of life from pid {pid} on {host} for over {timeout:g}s"
    return None


_GONE = " is gone"


def seen_gone(message: str) -> bool:
    """Whether a Crashed run's message (``why_gone``'s) says its own host saw its process gone:
    then nothing of it writes again, wherever this is asked. (Marked for silence, it may.)"""
    return f"){_GONE}" in message


def host_name() -> str:
    """This host's identity in the store: ``LABLOOM_HOST``, else the hostname. Two hosts
    sharing a store must differ here (containers often share a hostname)."""
    return os.environ.get("LABLOOM_HOST", "").strip() or socket.gethostname()


def user_name() -> str:
    """Who runs: the JupyterHub user where there is one, else the OS user."""
    hub = os.environ.get("JUPYTERHUB_USER", "").strip()
    if hub:
        return hub
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return f"uid{os.getuid()}"


def owner_alive(host: str | None, pid: int | None, beat: float | None, now: float,
                stale_after: float) -> bool:
    """Whether a process that writes heartbeats to the store still lives: on this host its pid
    says so at once; elsewhere only a heartbeat younger than ``stale_after`` does."""
    if beat is None or now - beat > stale_after:
        return False
    if host == host_name() and pid is not None:
        return pid_alive(int(pid))
    return True


def _enter_wal(conn: sqlite3.Connection, timeout: float) -> None:
    # Switching a new file to WAL can answer "locked" at once, without the busy handler, while
    # another process does the same: two processes opening a fresh store together. Retry it
    # for the busy timeout's length instead of failing the run.
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
