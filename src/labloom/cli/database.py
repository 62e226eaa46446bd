"""`labloom db upgrade`, `labloom db check` and `labloom db copy`: the store's schema and health,
for the person who runs a team's PostgreSQL (or anyone curious about their SQLite file), and a
history brought along to a new store (``store/copying.py``). The URL is shown with its password
masked."""

from __future__ import annotations

import argparse
import json
import shlex
import time
from typing import Any

# Hosts compare each other's heartbeats: a clock this far off the database's makes a live run
# look dead (or a dead one alive) sooner than the heartbeat timeout says.
SKEW_WARNING = 2.0
PROGRESS_EVERY = 2.0  # seconds between a long copy's lines of progress


def register(subparsers: Any) -> None:
    """Add this module's subcommands to the parser."""
    db = subparsers.add_parser(
        "db", help="the store's database: upgrade its schema, check it, copy another into it",
        description="The store is LABLOOM_HOME/labloom.db (SQLite) or the database that "
        "--database-url / LABLOOM_DATABASE_URL names (postgresql://user@host/dbname).",
    )
    actions = db.add_subparsers(dest="action", metavar="ACTION", required=True)
    upgrade = actions.add_parser("upgrade", help="bring the schema up to this labloom's version")
    upgrade.set_defaults(handler=upgrade_command)
    check = actions.add_parser(
        "check", help="connect, compare schema versions, measure this host's clock skew"
    )
    check.add_argument("--json", action="store_true", help="print JSON")
    check.set_defaults(handler=check_command)
    copy = actions.add_parser(
        "copy", help="copy another store's runs, logs, schedules and limits into this one",
        description="Copy every ended run (task runs, states, logs, params and metrics, graph "
        "nodes, ids kept), the schedules and the concurrency limits of the store FROM into "
        "the store in force (or --to). Runs the target has are skipped (replaced when they changed "
        "since: retried, or ended): run it again after an interruption, or once runs still "
        "going have ended. Runs deleted from the target are not copied again. Result files "
        "are not copied.",
    )
    copy.add_argument("--from", dest="source", required=True, metavar="PATH_OR_URL",
                      help="the store to copy from: a labloom.db file, sqlite:///PATH or "
                      "postgresql://user@host/dbname")
    copy.add_argument("--to", dest="target", metavar="URL",
                      help="the store to copy into (default: the store in force, as "
                      "--database-url / LABLOOM_DATABASE_URL name it)")
    copy.add_argument("--include-deleted", action="store_true",
                      help="copy again the runs deleted from the target since an earlier copy "
                      "(by default a run deleted there stays deleted)")
    copy.add_argument("--json", action="store_true", help="print JSON")
    copy.set_defaults(handler=copy_command)


def _database() -> Any:
    from ..store.db import get_database

    return get_database()


def upgrade_command(args: argparse.Namespace) -> int:
    from ..store.db import settle_schema
    from ..store.schema import SCHEMA_VERSION, refuse_foreign, version_of
    from . import CLIError

    database = _database()
    with _connected(database) as conn:
        before = version_of(conn)
        refuse_foreign(conn, before, database.display)
        if before > SCHEMA_VERSION:
            raise CLIError(
                f"the store {database.display} has schema version {before}, newer than this "
                f"labloom's ({SCHEMA_VERSION}): upgrade labloom instead"
            )
        settle_schema(conn)  # a refusal is one line naming the fix (main says it)
    if before == SCHEMA_VERSION:
        print(f"store {database.display}: schema version {SCHEMA_VERSION}, already current")
    else:
        print(f"store {database.display}: schema upgraded from version {before} to "
              f"{SCHEMA_VERSION}")
    return 0


def check_command(args: argparse.Namespace) -> int:
    from ..store import room
    from ..store.schema import SCHEMA_VERSION, refuse_foreign, version_of

    database = _database()
    with _connected(database) as conn:
        version = version_of(conn)
        refuse_foreign(conn, version, database.display)  # not "run db upgrade" on it
        skew, round_trip = _clock_skew(conn)
        left = _left_behind(database, conn if version == SCHEMA_VERSION else None)
        reserve, reserve_at, no_reserve, reserve_wrong = room.kept(database, conn)
    report: dict[str, Any] = {
        "store": database.display, "backend": database.kind, "connected": True,
        "schema_version": version, "labloom_schema_version": SCHEMA_VERSION,
        "clock_skew_seconds": None if skew is None else round(skew, 3),
        # The skew is read within this round trip: it is off by at most half of it.
        "clock_round_trip_seconds": None if round_trip is None else round(round_trip, 3),
        # Room for the runs' states should the store's disk fill (store/room.py).
        "reserve_bytes": reserve, "reserve_at": reserve_at, "reserve_note": no_reserve,
    }
    problems = []
    if version < SCHEMA_VERSION:
        problems.append(f"schema version {version} is older than this labloom's "
                        f"{SCHEMA_VERSION}: run `labloom db upgrade`")
    elif version > SCHEMA_VERSION:
        problems.append(f"schema version {version} is newer than this labloom's "
                        f"{SCHEMA_VERSION}: upgrade labloom")
    # Read from the midpoint of its round trip, the skew is off by up to half of it (an answer
    # slow on its way back reads as this clock ahead): a problem only when surely past.
    if skew is not None and round_trip is not None and abs(skew) - round_trip / 2 > SKEW_WARNING:
        problems.append(f"this host's clock is {skew:+.1f}s off the database server's: "
                        "times shown (a run's start, its logs) are this clock's, so sync it "
                        "(NTP); heartbeats and schedules go by the server's")
    if reserve_wrong:
        problems.append(reserve_wrong)
    report["left_behind"] = left
    report["ok"] = not problems
    report["problems"] = problems
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"store {database.display} ({database.kind}): connected")
        print(f"schema version {version} (this labloom: {SCHEMA_VERSION})")
        print("clock skew: none (a local file)" if skew is None
              else f"clock skew to the database server: {skew:+.3f}s (read in a "
              f"{round_trip:.3f}s round trip: off by at most half of it)")
        said = (f"{reserve / 2**20:.1f} MB ({reserve_at})" if reserve else
                "none" if no_reserve else "none yet (made at a run's first write)")
        print(f"room kept for the runs' states should the disk fill: {said}")
        if no_reserve:
            print(f"note: no room is kept for the runs' states: {no_reserve}")
        if left:
            local = shlex.quote(left["store"])
            print(f"note: {left['store']} holds {left['runs']} run(s) of this user's history "
                  f"that this store lacks. Bring them here with `labloom db copy --from {local}`"
                  ", or read them there with `labloom --database-url "
                  f"{shlex.quote('sqlite:///' + left['store'])} runs`")
        for problem in problems:
            print(f"problem: {problem}")
    return 0 if not problems else 1


def copy_command(args: argparse.Namespace) -> int:
    import sys

    from ..store.copying import (
        CopyReport,
        copy_store,
        count_committed,
        may_write,
        open_source,
        open_target,
        rows_in_order,
    )
    from ..store.db import database_url, is_transient, short_error
    from . import CLIError

    source, target = _copy_ends(args.source, args.target or database_url())
    report = CopyReport(source.display, target.display, include_deleted=args.include_deleted)

    said = [time.monotonic()]

    def progress(report: CopyReport) -> None:  # a page of runs committed: a long copy moves
        if not args.json and time.monotonic() - said[0] >= PROGRESS_EVERY:
            said[0] = time.monotonic()
            print(f"... {report.rows['flow_runs']} run(s) copied, {report.runs_present} "
                  "already there", file=sys.stderr, flush=True)

    opened: list[Any] = []  # refusals (a schema, a server away) reach main() as one line
    try:
        opened.append(open_source(source))
        target_conn, report.created = open_target(target)
        opened.append(target_conn)
    except BaseException:
        for conn in opened:
            conn.close()
        source.close()
        target.close()
        raise
    try:
        if source.path is None or may_write(source.path):  # else it is read as it is
            _settle_dead_runs(source.url)
        copy_store(opened[0], target_conn, report, progress)
    except (Exception, KeyboardInterrupt) as exc:
        if not isinstance(exc, KeyboardInterrupt) and not is_transient(exc):
            raise
        # A server restarting, Ctrl-C: what went in is whole runs, and the next copy skips them.
        why = "interrupted" if isinstance(exc, KeyboardInterrupt) else short_error(exc)
        count_committed(report, target)
        raise CLIError(f"the copy stopped after {report.rows['flow_runs']} run(s) ({why}); the "
                       "runs copied went in whole: run the same command again, it goes on "
                       "from there and copies nothing twice",
                       130 if isinstance(exc, KeyboardInterrupt) else 2) from None
    finally:
        for conn in opened:
            conn.close()
        source.close()
        target.close()
    if args.json:
        print(json.dumps(report.as_dict(), indent=1))
        return 0
    made = " (its schema made now)" if report.created else ""
    print(f"copied {source.display} into {target.display}{made}:")
    updated = (f"{len(report.runs_updated)} updated (changed since copied: retried, or ended "
               "after being marked Crashed), " if report.runs_updated else "")
    print(f"  runs: {report.rows['flow_runs']} copied, {updated}{report.runs_present} already "
          "there (skipped)")
    if report.deleted_in_target:
        print(f"  {report.deleted_in_target} run(s) deleted in the target: not copied again "
              "(--include-deleted copies them back)")
    if report.not_ended:
        print(f"  {len(report.not_ended)} run(s) not ended, not copied (their processes still "
              f"write to {source.display}): copy again once they end: "
              + " ".join(report.not_ended[:10]) + (" ..." if len(report.not_ended) > 10 else ""))
    rows = ", ".join(f"{table} {count}" for table, count in rows_in_order(report.rows))
    print(f"  rows: {rows or 'none'}")
    _print_schedules_and_limits(report, shlex.quote(target.display))
    print("Result files were not copied: the runs name them where they are, for `labloom "
          "retry` from this host; copy them into the result folder in force (the same "
          "KEY[:2]/KEY.pkl layout) to keep their cache hits.")
    return 0


def _print_schedules_and_limits(report: Any, target: str) -> None:
    """The schedules and limits the copy left as the target has them, and why; those it
    copied paused and how to resume them."""
    for what, names in (("schedule", report.schedules_present),
                        ("limit", report.limits_present)):
        if names:
            print(f"  {what}(s) {', '.join(names)} already in the target, the same: kept")
    for name in report.schedules_differing:
        print(f"  schedule '{name}' differs in the target (another's of the same name): kept "
              "the target's; to bring yours, add it there under another name (`labloom "
              f"--database-url {target} schedule add FILE.py:FLOW --name OTHER ...`, its "
              "times as `labloom schedule list` shows them here)")
    for tag, ours, theirs in report.limits_differing:
        print(f"  limit '{tag}' is {ours} in the source and {theirs} in the target: kept the "
              f"target's; if yours should win: `labloom --database-url {target} limit set "
              f"{shlex.quote(tag)} {ours}`")
    if report.schedules_paused:
        names = " ".join(shlex.quote(name) for name in report.schedules_paused)
        print(f"  schedule(s) {', '.join(report.schedules_paused)} copied PAUSED: the team's "
              "`labloom serve` may run on another host, without this host's files; resume on "
              "the host that has them, with its `labloom serve` running: `labloom "
              f"--database-url {target} schedule resume NAME` ({names})")


def _settle_dead_runs(url: str) -> None:
    """Runs of the source whose process died are marked Crashed first, as any read of that
    store marks them: left Running (a kernel killed, the store not read since), a run was
    'not ended, copy again once it ends' at every copy, for good."""
    from ..store import open_store

    with open_store(url=url) as store:
        store.reconcile()


def _copy_ends(source_text: str, target_url: str) -> tuple[Any, Any]:
    """The two stores of a copy: FROM as a path or URL, refused when missing or the same."""
    from pathlib import Path

    from ..core.errors import DatabaseURLError
    from ..store.db import Database
    from . import CLIError

    if "://" not in source_text:
        path = Path(source_text).expanduser().resolve()
        if not path.is_file():
            raise CLIError(f"--from {source_text}: no such file (give a labloom.db file, or a "
                           "sqlite:///PATH or postgresql://... URL)")
        with path.open("rb") as handle:
            if handle.read(16) != b"SQLite format 3\x00":
                raise CLIError(f"--from {source_text} is not a SQLite file: give the labloom.db "
                               "of a LABLOOM_HOME, or a sqlite:///PATH or postgresql://... URL")
        source_text = f"sqlite:///{path}"
    try:
        source, target = Database(source_text), Database(target_url)
    except DatabaseURLError as exc:
        raise CLIError(str(exc).removeprefix("[labloom] ")) from None
    if source.path is not None and not source.path.is_file():
        raise CLIError(f"--from {source.display}: no such file")
    same = (source.path.resolve() == target.path.resolve() if source.path and target.path
            else source.url == target.url)
    if same:
        raise CLIError(f"--from {source.display} is the store to copy into: name the other "
                       "store with --to, or set --database-url / LABLOOM_DATABASE_URL to it")
    return source, target


def _left_behind(database: Any, conn: Any) -> dict[str, Any] | None:
    """The runs a team store's user left in LABLOOM_HOME/labloom.db (SQLite) when moving to it
    and has not copied (``labloom db copy``) into it (``conn``; None: it has no runs table
    yet), so they seem gone; read only, and never created here."""
    import sqlite3
    from contextlib import closing

    from ..core.errors import StoreUnavailableError
    from ..store.copying import present_keys, read_only_sqlite
    from ..store.home import home_path

    local = home_path() / "labloom.db"
    if database.kind == "sqlite" or not local.exists():
        return None
    try:  # immutable in a folder this user may not write (mode=ro would need its -shm)
        raw = read_only_sqlite(local) or sqlite3.connect(f"{local.as_uri()}?mode=ro", uri=True,
                                                         timeout=5)
        with closing(raw) as ro:
            ids = [row[0] for row in ro.execute("SELECT id FROM flow_runs")]
    except (sqlite3.Error, StoreUnavailableError):
        return None  # not a store, damaged, or an empty file: nothing to say
    runs = len(ids) - (len(present_keys(conn, "flow_runs", "id", ids)) if conn else 0)
    return {"store": str(local), "runs": runs} if runs else None


def _clock_skew(conn: Any) -> tuple[float | None, float | None]:
    """This host's clock minus the database server's, and the round trip it was measured in
    (None, None for SQLite: same machine)."""
    from ..store import store_clock

    if conn.kind == "sqlite":
        return None, None
    started = time.monotonic()
    skew = store_clock.measure(conn)
    return skew, time.monotonic() - started


class _connected:
    """A connection without the automatic upgrade, its failures as one-line CLI errors."""

    def __init__(self, database: Any) -> None:
        self.database = database
        self.conn: Any = None

    def __enter__(self) -> Any:
        from ..core.errors import LabloomError
        from . import CLIError

        try:
            self.conn = self.database.connect(migrate=False)
        except LabloomError as exc:
            raise CLIError(str(exc).removeprefix("[labloom] ")) from None
        return self.conn

    def __exit__(self, *exc: Any) -> None:
        self.conn.close()
