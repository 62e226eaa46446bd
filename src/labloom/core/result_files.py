"""Where result files live: a local folder, or any fsspec URL (``s3://bucket/labloom``,
``gs://...``, ``file:///shared/labloom``, ``memory://...``), so that the worker that computed a
value writes it and any host that runs ``labloom retry`` or hits the cache reads it. Task data
never passes through the store: it records only the path.

fsspec is imported only for a URL; a local folder keeps plain files written atomically.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from pathlib import Path
from typing import Any


def is_url(location: str) -> bool:
    return "://" in location and not location.startswith("file://")


def local_path(location: str) -> str:
    """``file:///x`` is the local path ``/x``; anything else is unchanged."""
    return location[len("file://"):] if location.startswith("file://") else location


def join(folder: str, *parts: str) -> str:
    return posixpath.join(folder, *parts) if is_url(folder) else os.path.join(folder, *parts)


def _fs(url: str) -> tuple[Any, str]:
    try:
        from fsspec.core import url_to_fs
    except ImportError:  # pragma: no cover - fsspec comes with dask
        raise RuntimeError(
            f"[labloom] results at {url} need fsspec: pip install fsspec (and the "
            "filesystem's package, such as s3fs or gcsfs)"
        ) from None
    return url_to_fs(url)  # type: ignore[no-any-return]


def write_bytes(location: str, data: bytes) -> None:
    """Write whole or not at all: a temp file renamed locally; one put on object stores."""
    if is_url(location):
        fs, path = _fs(location)
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
        fs.pipe_file(path, data)
        return
    target = Path(local_path(location))
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".pkl")
    except FileNotFoundError:
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".pkl")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_bytes(location: str) -> bytes:
    if is_url(location):
        fs, path = _fs(location)
        return fs.cat_file(path)  # type: ignore[no-any-return]
    with open(local_path(location), "rb") as handle:
        return handle.read()


def exists(location: str) -> bool:
    if is_url(location):
        fs, path = _fs(location)
        return bool(fs.exists(path))
    return os.path.exists(local_path(location))


def modified(location: str) -> float | None:
    """The file's modification time (seconds since the epoch), None when it is missing."""
    if is_url(location):
        fs, path = _fs(location)
        try:
            return float(fs.modified(path).timestamp())
        except (FileNotFoundError, NotImplementedError, OSError):
            return None
    try:
        return os.stat(local_path(location)).st_mtime
    except OSError:
        return None
