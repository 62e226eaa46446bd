"""`labloom db upgrade` and `labloom db check`: the store's schema and health, for the person who
runs a team's PostgreSQL (or anyone curious about their SQLite file). The URL is shown with its
password masked."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

# Hosts compare each other's heartbeats: a clock this far off the database's makes a live run
# look dead (or a dead one alive) sooner than the heartbeat timeout says.
SKEW_WARNING = 2.0


def register(subparsers: Any) -> None:
    """Add this module's subcommands to the parser."""
    db = subparsers.add_parser(
        "db", help="the store's database: upgrade its schema, check it",
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


def _database() -> Any:
    from ..store.db import get_database

    return get_database()


def upgrade_command(args: argparse.Namespace) -> int:
    from ..store.schema import SCHEMA_VERSION, ensure_schema, version_of
    from . import CLIError

    database = _database()
    with _connected(database) as conn:
        before = version_of(conn)
        if before > SCHEMA_VERSION:
            raise CLIError(
                f"the store {database.display} has schema version {before}, newer than this "
                f"labloom's ({SCHEMA_VERSION}): upgrade labloom instead"
            )
        ensure_schema(conn, where=database.display)
    if before == SCHEMA_VERSION:
        print(f"store {database.display}: schema version {SCHEMA_VERSION}, already current")
    else:
        print(f"store {database.display}: schema upgraded from version {before} to "
              f"{SCHEMA_VERSION}")
    return 0


def check_command(args: argparse.Namespace) -> int:
    from ..store.schema import SCHEMA_VERSION, version_of

    database = _database()
    with _connected(database) as conn:
        version = version_of(conn)
        skew = _clock_skew(conn)
    report: dict[str, Any] = {
        "store": database.display, "backend": database.kind, "connected": True,
        "schema_version": version, "labloom_schema_version": SCHEMA_VERSION,
        "clock_skew_seconds": None if skew is None else round(skew, 3),
    }
    problems = []
    if version < SCHEMA_VERSION:
        problems.append(f"schema version {version} is older than this labloom's "
                        f"{SCHEMA_VERSION}: run `labloom db upgrade`")
    elif version > SCHEMA_VERSION:
        problems.append(f"schema version {version} is newer than this labloom's "
                        f"{SCHEMA_VERSION}: upgrade labloom")
    if skew is not None and abs(skew) > SKEW_WARNING:
        problems.append(f"this host's clock is {skew:+.1f}s off the database server's: "
                        "times shown and the times schedules fire at are this clock's, so sync it "
                        "(NTP)")
    left = report["left_behind"] = _left_behind(database)
    report["ok"] = not problems
    report["problems"] = problems
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"store {database.display} ({database.kind}): connected")
        print(f"schema version {version} (this labloom: {SCHEMA_VERSION})")
        print("clock skew: none (a local file)" if skew is None
              else f"clock skew to the database server: {skew:+.3f}s")
        if left:
            print(f"note: {left['store']} holds {left['runs']} run(s) of this user's history "
                  "before this store; labloom does not copy them here. Read them with "
                  f"`labloom --database-url sqlite:///{left['store']} runs`")
        for problem in problems:
            print(f"problem: {problem}")
    return 0 if not problems else 1


def _left_behind(database: Any) -> dict[str, Any] | None:
    """The runs a team store's user left in LABLOOM_HOME/labloom.db (SQLite) when moving to it:
    not copied, so they seem gone; read only, and never created here."""
    import sqlite3
    from contextlib import closing

    from ..store.home import home_path

    local = home_path() / "labloom.db"
    if database.kind == "sqlite" or not local.exists():
        return None
    try:
        with closing(sqlite3.connect(f"{local.as_uri()}?mode=ro", uri=True, timeout=5)) as conn:
            (runs,) = conn.execute("SELECT COUNT(*) FROM flow_runs").fetchone()
    except sqlite3.Error:
        return None  # not a store, damaged, or an empty file: nothing to say
    return {"store": str(local), "runs": runs} if runs else None


def _clock_skew(conn: Any) -> float | None:
    """This host's clock minus the database server's (None for SQLite: same machine)."""
    if conn.kind == "sqlite":
        return None
    before = time.time()
    (server,) = conn.execute("SELECT extract(epoch from clock_timestamp())").fetchone()
    after = time.time()
    return (before + after) / 2 - float(server)


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
