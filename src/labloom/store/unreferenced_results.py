"""Result files that deleted runs leave behind, deleted when no run in the store still names them.

A task run's result file is named by its key (``results/<key[:2]>/<key>.pkl``), and every run
whose task had that key names the same file: a cache hit names the file it loaded, a later run
that computed the same key again names (and rewrote) it too. So a file may go only when none of
the runs left in the store names it. A file modified after the deleted runs that named it ended
was written by someone the store does not know of yet (a run going on, whose row lags its
write by a fraction of a second): it stays too.

What this cannot know: a run recorded with the store off (``LABLOOM_STORE=0``) names nothing,
and its next cache lookup of a deleted file computes the value again (a miss, never an error).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..core import result_files
from .multirow import rows_in
from .settings import heartbeat_interval

if TYPE_CHECKING:
    from .db import Conn

# Paths per query. No index holds result paths, so each query scans ``task_runs`` once (about
# 0.1 s for 320,000 rows on a shared 2-core VM): the fewer queries the better, 20,000 paths
# in 40 queries of 500 took 2.4-4.6 s, in 2 of 10,000 0.2-0.34 s. SQLite before 3.32 binds
# 999 at most.
_CHUNK = 10_000 if sqlite3.sqlite_version_info >= (3, 32) else 999


@dataclass
class FilesFreed:
    """What deleting runs did to their result files."""

    deleted: int = 0
    freed: int = 0  # bytes
    shared: int = 0  # kept: a remaining run names them
    errors: list[str] = field(default_factory=list)
    left: str = ""  # the store's server away: why none went, and how to free them later


def named_by(conn: Conn, run_ids: list[str]) -> dict[str, float]:
    """The result files ``run_ids``' task runs name, each with the latest end of those runs."""
    ends: dict[str, float] = {}
    for path, ended in rows_in(
        conn, "SELECT DISTINCT t.result_path, f.ended FROM task_runs t JOIN flow_runs f ON "
        "f.id = t.run_id WHERE t.run_id IN ({marks}) AND t.result_path IS NOT NULL", run_ids
    ):
        ends[path] = max(ends.get(path, 0.0), float(ended or 0.0))
    return ends


def still_named(conn: Conn, paths: Iterable[str], leaving: set[str]) -> set[str]:
    """Those of ``paths`` that a task run of a run not in ``leaving`` names."""
    return {path for path, run_id in rows_in(
        conn, "SELECT result_path, run_id FROM task_runs WHERE result_path IN ({marks})",
        list(paths), _CHUNK) if run_id not in leaving}


def delete_unnamed(conn: Conn, ends: dict[str, float], leaving: set[str],
                   dry_run: bool = False) -> FilesFreed:
    """Delete the files of ``ends`` (path -> the deleted runs' latest end) that no run outside
    ``leaving`` names and nobody rewrote since; ``dry_run``: count them only."""
    result = FilesFreed()
    named = still_named(conn, ends, leaving)
    result.shared = len(named)
    # A crashed run's end is its last beat: files it wrote until it died are a beat later.
    slack = heartbeat_interval() + 1.0
    for path, ended in ends.items():
        if path in named:
            continue
        try:
            modified = result_files.modified(path)
            if modified is None:
                continue  # gone already
            if modified > ended + slack:
                result.shared += 1  # rewritten after those runs: a run the store lags behind
                continue
            if dry_run:
                result.deleted += 1
                continue
            freed = result_files.remove(path)
        # The rows are gone already: a file that cannot go is said, not raised. Object stores
        # refuse with their own errors (gcsfs' HttpError, botocore's ClientError), not OSError.
        except Exception as exc:
            result.errors.append(f"{path}: {type(exc).__name__}: {exc}")
            continue
        result.deleted += 1
        result.freed += freed
    return result
