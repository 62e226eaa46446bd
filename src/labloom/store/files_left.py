"""Result files of deleted runs that a delete could not free: the store's server went away
after the runs' rows were deleted and before it said whether runs left in the store name the
files (``unreferenced_results.still_named``). Nothing in the store names them any more, so no
later delete would find them: they are remembered in ``LABLOOM_HOME/files-left/`` (a file per
delete, naming its store) and freed by the next delete of that store from this home
(``labloom delete --files-left`` alone). Before, they stayed on disk for good, and the delete
said only that the store could not be used (the CLI) or was run again and found no runs (the
Flows panel)."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from .db import is_transient, short_error
from .home import home_path
from .unreferenced_results import FilesFreed, delete_unnamed

if TYPE_CHECKING:
    from .reader import RunStore


def free(store: RunStore, ends: dict[str, float], leaving: set[str],
         dry_run: bool = False) -> FilesFreed:
    """``delete_unnamed`` of ``ends`` and of the files earlier deletes of this store left;
    the server away meanwhile: ``ends`` remembered, and said in ``errors`` (and ``left``)."""
    where = store.database.display
    earlier = _left(where)
    merged = dict(ends)
    for _, files in earlier:
        for path, ended in files.items():
            merged[path] = max(merged.get(path, 0.0), ended)
    if not merged:
        return FilesFreed()
    try:
        reconnected(store)
        freed = delete_unnamed(store.conn, merged, leaving, dry_run)
    except Exception as exc:
        if dry_run or not is_transient(exc):
            raise
        if ends:  # the earlier ones stay remembered where they are
            _remember(where, ends)
        left = (f"{len(merged)} result file(s) of the deleted runs not deleted: the store's "
                f"server went away before it said whether runs left in it name them "
                f"({short_error(exc)}); `labloom delete --files-left` deletes those no run "
                f"names once the server is back (remembered in {_folder()})")
        return FilesFreed(errors=[left], left=left)
    if not dry_run:
        for file, _ in earlier:
            file.unlink(missing_ok=True)  # freed by another delete meanwhile: gone already
    return freed


def reconnected(store: RunStore) -> None:
    """The store's connection made again if its server dropped it (a cut, a restart)."""
    if store.conn.broken:
        store.conn.close()
        store.conn = store.database.connect()


def _folder() -> Path:
    return home_path() / "files-left"


def _left(where: str) -> list[tuple[Path, dict[str, float]]]:
    """The files earlier deletes of the store ``where`` left, each list with its file."""
    found = []
    for file in sorted(_folder().glob("*.json")):
        try:
            said = json.loads(file.read_text())
            if said["store"] == where:
                found.append((file, {str(p): float(e) for p, e in said["files"].items()}))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # freed by another delete meanwhile, or not one of ours
    return found


def _remember(where: str, ends: dict[str, float]) -> None:
    folder = _folder()
    folder.mkdir(parents=True, exist_ok=True)
    name = uuid.uuid4().hex
    part = folder / f"{name}.part"
    part.write_text(json.dumps({"store": where, "files": ends}))
    os.replace(part, folder / f"{name}.json")  # whole or not there for a reader
