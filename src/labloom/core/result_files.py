"""Result files: how a value becomes one (``save_result``, ``load_result``, ``result_path``)
and where they live: a local folder, or any fsspec URL (``s3://bucket/labloom``, ``gs://...``,
``file:///shared/labloom``, ``memory://...``), so that the worker that computed a value writes
it and any host that runs ``labloom retry`` or hits the cache reads it. Task data
never passes through the store: it records only the path.

fsspec is imported only for a URL; a local folder keeps plain files written atomically.
"""

from __future__ import annotations

import io
import logging
import os
import posixpath
import secrets
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from .hooks import hooks


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


def write_with(location: str, write: Callable[[BinaryIO], None]) -> None:
    """Write whole or not at all what ``write`` writes to the file it is given: a temp file
    renamed locally, written as it goes (a value's pickle is never whole in memory beside
    the value); one put on object stores."""
    if is_url(location):
        fs, path = _fs(location)
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
        buffer = io.BytesIO()
        write(buffer)
        fs.pipe_file(path, buffer.getvalue())
        return
    target = Path(local_path(location))
    try:
        fd, tmp = _new_temp_file(target.parent)
    except FileNotFoundError:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _new_temp_file(target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _new_temp_file(folder: Path) -> tuple[int, str]:
    """A new file for writing, with the modes the umask gives (unlike mkstemp's 0600): a team's
    shared folder is shared as its owners set it up; LABLOOM_HOME/results is private by its
    own 0700 mode."""
    while True:
        tmp = str(folder / f".tmp-{secrets.token_hex(8)}.pkl")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def open_to_read(location: str) -> BinaryIO:
    if is_url(location):
        fs, path = _fs(location)
        return fs.open(path, "rb")  # type: ignore[no-any-return]
    return open(local_path(location), "rb")


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


def remove(location: str) -> int:
    """Delete a result file; the bytes it held (0 when it was gone already)."""
    if is_url(location):
        fs, path = _fs(location)
        try:
            size = int(fs.size(path) or 0)
            fs.rm_file(path)
        except FileNotFoundError:
            return 0
        return size
    path = local_path(location)
    try:
        size = os.stat(path).st_size
        os.remove(path)
    except FileNotFoundError:
        return 0
    return size


class CacheMissError(Exception):
    """A result file could not be read (gone, truncated, unpicklable): compute instead."""


def save_result(path: str, value: Any, calls: list[Any] | None = None) -> None:
    """Write ``value`` atomically (temp file, rename). A value that does not pickle, or a file
    that cannot be written, is logged (in the task run's logs, as this runs inside the task)
    and otherwise ignored.

    ``calls``: the params and metrics the task run logged computing it, written after the
    value, so that a task run answered from this file shows them too (``load_cached``).
    ``pickle.loads`` ignores what follows the value: a file with calls reads as the value."""
    import cloudpickle

    def write(handle: BinaryIO) -> None:
        try:
            cloudpickle.dump(value, handle)
            if calls:
                cloudpickle.dump(calls, handle)
        except OSError:
            raise
        except Exception as exc:
            raise _NotPickled(exc) from exc

    try:
        write_with(path, write)
    except _NotPickled as not_pickled:
        exc, why = not_pickled.args[0], "it does not pickle"
    except OSError as exc_:
        # A full disk, a read-only mount, a Dask worker on a host without the kernel's
        # LABLOOM_HOME: the task did its work; its run must not fail for the copy.
        exc, why = exc_, (f"cannot write {path} on host {socket.gethostname()}; set "
                          "LABLOOM_RESULTS_URL to a folder every host running tasks can write "
                          "(Dask workers too) and the kernel can read")
    else:
        return
    logging.getLogger("labloom.cache").warning(
        "[labloom] result not persisted: %s (%s: %s); the run goes on, but a later retry or "
        "cache lookup will compute this task again", why, type(exc).__name__, exc)


class _NotPickled(Exception):
    """The value's pickling failed (not the file's writing): said, and the run goes on."""


def load_result(path: str) -> Any:
    """Read a result file; anything wrong with it raises ``CacheMissError``."""
    return load_with_calls(path)[0]


def load_with_calls(path: str) -> tuple[Any, list[Any]]:
    """A result file's value and the logging calls saved with it (``save_result``); anything
    wrong with it raises ``CacheMissError``."""
    import pickle

    try:
        # Read as it is unpickled: the file's bytes whole beside the value doubled the memory
        # a large cached value took to load.
        with open_to_read(path) as stream:
            value = pickle.load(stream)
            try:
                calls = pickle.load(stream)
            except EOFError:  # nothing after the value: no calls
                calls = []
    except Exception as exc:
        raise CacheMissError(
            f"cannot read the stored result {path} ({type(exc).__name__}: {exc})"
        ) from None
    return value, calls


def result_path(key: str, folder: str | None = None) -> str:
    if folder is None:
        folder = hooks.results_folder()
    return join(folder, key[:2], f"{key}.pkl")


def load_cached(path: str) -> Any:
    """Runs where a cached task would have run: the value never passes through the kernel.
    The params and metrics logged computing it are logged again, for this task run's row."""
    value, calls = load_with_calls(path)
    if calls:
        from .experiment_values import replay

        replay(calls)
    return value
