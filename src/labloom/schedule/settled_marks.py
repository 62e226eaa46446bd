"""What a `labloom run --notify` did with its run's alert when the store could not be told:
one small file per run under ``$LABLOOM_HOME/run-alerts-settled/``, on this host's disk.

The command deletes its wish (``run_alerts``) when the run completes or as it keeps its alert.
With the store away at that moment (a PostgreSQL server restarting, a SQLite file locked or
unwritable) the wish stays; the command completes its part from memory (the alert delivered, or
none due) and leaves this mark, so that the next ``labloom serve`` of the same home drops the
wish rather than send a second alert, or an alert of a run that completed and whose end the
store missed (``dead_run_alerts``). An alert the command could not deliver is left to that
serve, marked with why, which its alert then says (not that the command died). The store was
away, the disk was not. The command then tells the store once it is back, while it waits for it
at exit (``run_alerts._told_when_back``), and drops the mark: a serve with another home
(another host sharing a PostgreSQL store) sees it there. A store away for longer than that
leaves the mark alone: such a serve does not see it, and sends a second alert.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..store.home import home_path, make_folder

log = logging.getLogger("labloom")

FOLDER = "run-alerts-settled"
DELIVERED = "delivered"  # the command posted the alert, and it was taken
COMPLETED = "completed"  # the run completed: no alert is due
UNDELIVERED = "undelivered"  # refused: the serve sends it, saying why (not that the command died)
STALE = 86400.0  # seconds after which a mark whose wish is gone is dropped


@dataclass(frozen=True)
class Mark:
    outcome: str
    at: float  # this host's clock, when the command settled it
    attempts: int
    reason: str = ""  # why the last post failed (UNDELIVERED)

    def not_sent(self) -> str:
        """Why a serve sends the alert of a command that could not deliver it (UNDELIVERED)."""
        return (f"its `labloom run` could not deliver it ({self.reason}; {self.attempts} "
                "attempt(s)) nor keep it in the store")


def _path(run_id: str) -> Path | None:
    # A run id is 12 hex digits; anything else (read from a store) names no file of ours.
    if not run_id or not run_id.isalnum():
        return None
    return home_path() / FOLDER / run_id


def leave(run_id: str, outcome: str, attempts: int = 0, reason: str = "") -> bool:
    """Write the mark (whole or not at all); whether it was, said when not."""
    path = _path(run_id)
    if path is None:
        return False
    try:
        make_folder(path.parent)
        part = path.with_name(f".{run_id}.{os.getpid()}")
        part.write_text(json.dumps({"outcome": outcome, "at": time.time(),
                                    "attempts": attempts, "reason": reason}), encoding="utf-8")
        os.replace(part, path)
        return True
    except Exception as exc:  # a full disk, a folder not ours: said, the command goes on
        log.error("[labloom] the store could not be told what became of run %s's alert, nor "
                  "could %s (%s): a `labloom serve` may alert for it again", run_id,
                  path.parent, type(exc).__name__)
        return False


def read(run_id: str) -> Mark | None:
    path = _path(run_id)
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Mark(str(data["outcome"]), float(data["at"]), int(data["attempts"]),
                    str(data.get("reason", "")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:  # cut short: says nothing
        log.debug("[labloom] unreadable mark %s: %r", path, exc)
        return None


def drop(run_id: str) -> None:
    path = _path(run_id)
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


def sweep(wished: set[str]) -> None:
    """Drop the marks of runs with no wish left in this store (deleted once the store was
    back, or with the run), a day old: nothing reads them any more. Not younger ones: a home
    may serve another store too (LABLOOM_DATABASE_URL changed), whose wish this one lacks."""
    folder = home_path() / FOLDER
    old = time.time() - STALE
    try:
        names = [entry.name for entry in os.scandir(folder)
                 if entry.name not in wished and entry.stat().st_mtime < old]
    except OSError:  # no folder: no marks, the usual case
        return
    for name in names:
        with contextlib.suppress(OSError):
            (folder / name).unlink(missing_ok=True)
