"""Where labloom keeps its state: ``LABLOOM_HOME`` (default ``~/.labloom``)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path


def home() -> Path:
    """The state folder, created (owner-only) on first use."""
    path = Path(os.environ.get("LABLOOM_HOME") or Path.home() / ".labloom").expanduser()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def db_path() -> Path:
    return home() / "labloom.db"


def results_dir() -> Path:
    path = home() / "results"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def connect(path: Path | None = None, timeout: float = 30.0) -> sqlite3.Connection:
    """A connection to the store file: WAL, a generous busy timeout, file mode 0600."""
    path = path or db_path()
    fresh = not path.exists()
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    if fresh:
        os.chmod(path, 0o600)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    return conn
