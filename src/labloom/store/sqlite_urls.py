"""Where a ``sqlite:`` store URL points, in SQLAlchemy's form: ``sqlite:///relative.db`` (three
slashes) or ``sqlite:////absolute/path.db`` (four)."""

from __future__ import annotations

import os
from pathlib import Path

from ..core.errors import DatabaseURLError

PREFIX = "sqlite:///"


def sqlite_path(url: str) -> Path:
    """The file ``url`` names, refused in one line when it names none: with two slashes
    (``sqlite://labloom.db``) the path lost its first letter and a new store was made at
    ``abloom.db``; ``sqlite:///`` alone named the working directory."""
    if not url[:len(PREFIX)].lower() == PREFIX or not url[len(PREFIX):].strip("/"):
        raise DatabaseURLError(
            f"[labloom] SQLite URL {url!r} names no file: write three slashes before a "
            "relative path and four before an absolute one (sqlite:///labloom.db, "
            "sqlite:////home/me/labloom.db)"
        )
    return Path(url[len(PREFIX):]).expanduser()


def absolute(url: str) -> str:
    """``url`` with its path made absolute: for processes that start elsewhere (the runs
    ``labloom serve`` starts work in their schedules' folders)."""
    return PREFIX + os.path.abspath(sqlite_path(url))
