"""The store's schema and its migrations, one list for both backends (see ``db.py``).

Each entry of ``MIGRATIONS`` upgrades version i to i + 1; it is written in SQLite's SQL and
``ddl.translate_ddl`` maps it for PostgreSQL (``REAL`` to DOUBLE PRECISION, ``BLOB`` to BYTEA).
The version is SQLite's ``PRAGMA user_version``, or the one row of ``labloom_schema`` on
PostgreSQL. An older store is upgraded inside one write transaction (``BEGIN IMMEDIATE``; an
advisory lock on PostgreSQL), so two processes opening it at once cannot both migrate; a store
written by a newer labloom is refused (``StoreVersionError``) rather than misread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.errors import StoreUnavailableError, StoreVersionError
from .ddl import migration_statements

if TYPE_CHECKING:
    from .db import Conn

# Version 1: the first schema.
_V1 = """
CREATE TABLE flows (
    name TEXT NOT NULL, source_hash TEXT NOT NULL, first_seen REAL, last_seen REAL,
    PRIMARY KEY (name, source_hash)
);
CREATE TABLE flow_runs (
    id TEXT PRIMARY KEY, flow_name TEXT NOT NULL, source_hash TEXT, parameters TEXT,
    state TEXT NOT NULL, message TEXT NOT NULL DEFAULT '', created REAL, started REAL,
    ended REAL, host TEXT, pid INTEGER, executor TEXT, origin TEXT, metadata TEXT
);
CREATE INDEX flow_runs_by_created ON flow_runs (created);
CREATE INDEX flow_runs_by_flow ON flow_runs (flow_name, created);
CREATE TABLE task_runs (
    id TEXT PRIMARY KEY, run_id TEXT NOT NULL, node_id TEXT, task_name TEXT NOT NULL,
    map_index INTEGER, upstream TEXT, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    created REAL, started REAL, ended REAL, message TEXT NOT NULL DEFAULT '',
    traceback TEXT NOT NULL DEFAULT ''
);
CREATE INDEX task_runs_by_run ON task_runs (run_id);
CREATE TABLE task_states (
    task_run_id TEXT NOT NULL, run_id TEXT NOT NULL, state TEXT NOT NULL, time REAL,
    message TEXT NOT NULL DEFAULT '', attempt INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX task_states_by_task_run ON task_states (task_run_id);
CREATE TABLE logs (
    id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, task_run_id TEXT, level INTEGER,
    time REAL, text TEXT
);
CREATE INDEX logs_by_run ON logs (run_id, task_run_id);
"""

# Version 2: crash detection (heartbeat), retry from another process (target, retry_of),
# cached and persisted results, and the note of log lines cut per task run.
_V2 = """
ALTER TABLE flow_runs ADD COLUMN heartbeat REAL;
ALTER TABLE flow_runs ADD COLUMN target TEXT;
ALTER TABLE flow_runs ADD COLUMN retry_of TEXT;
ALTER TABLE task_runs ADD COLUMN cache_key TEXT;
ALTER TABLE task_runs ADD COLUMN result_path TEXT;
CREATE TABLE log_cuts (
    run_id TEXT NOT NULL, task_run_id TEXT NOT NULL, kept INTEGER NOT NULL,
    cut INTEGER NOT NULL, PRIMARY KEY (run_id, task_run_id)
);
UPDATE flow_runs SET heartbeat = COALESCE(ended, started, created);
"""

# Version 3: schedules, their claimed slots (the primary key is what stops two schedulers
# from running one slot) and the schedulers' heartbeats. IF NOT EXISTS: stores written while
# schedules created their own tables upgrade cleanly.
_V3 = """
CREATE TABLE IF NOT EXISTS schedules (
    name TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    workdir TEXT NOT NULL,
    cron TEXT,
    every REAL,
    timezone TEXT,
    params TEXT NOT NULL DEFAULT '{}',
    notify TEXT,
    executor TEXT,
    address TEXT,
    catchup TEXT NOT NULL DEFAULT 'once',
    overlap INTEGER NOT NULL DEFAULT 0,
    paused INTEGER NOT NULL DEFAULT 0,
    anchor REAL NOT NULL,
    not_before REAL NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS schedule_slots (
    schedule TEXT NOT NULL,
    slot_time REAL NOT NULL,
    status TEXT NOT NULL,
    scheduler TEXT,
    claimed REAL,
    started REAL,
    ended REAL,
    run_id TEXT,
    exit_code INTEGER,
    note TEXT,
    PRIMARY KEY (schedule, slot_time)
);
CREATE TABLE IF NOT EXISTS schedulers (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started REAL NOT NULL,
    beat REAL NOT NULL
);
"""

# Version 4: concurrency limits by tag, and the slots held now (by host, process and task run)
# so that local and thread runs in several processes share one limit.
_V4 = """
CREATE TABLE IF NOT EXISTS concurrency_limits (
    tag TEXT PRIMARY KEY,
    slots INTEGER NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS concurrency_slots (
    tag TEXT NOT NULL,
    holder TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    acquired REAL NOT NULL,
    PRIMARY KEY (tag, holder)
);
"""

# Version 5: cancel requests, so a run can be cancelled from another process (the Flows panel,
# another terminal): the run's own process polls for them while it has live runs. And the run's
# graph nodes (a task call or a map, with upstream nodes), so views of a stored run draw the
# same DAG as the live widget (a map's children do not list the map's inputs).
_V5 = """
CREATE TABLE IF NOT EXISTS cancel_requests (
    run_id TEXT PRIMARY KEY,
    requested REAL NOT NULL,
    reason TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS run_nodes (
    run_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    upstream TEXT NOT NULL DEFAULT '[]',
    created REAL,
    PRIMARY KEY (run_id, node_id)
);
"""

# Version 6: a team's store. Each run and schedule records its user; limit slots and waiters
# beat a heartbeat (pids mean nothing across hosts) and waiters queue in arrival order (seq).
_V6 = """
ALTER TABLE flow_runs ADD COLUMN username TEXT;
ALTER TABLE schedules ADD COLUMN owner TEXT;
ALTER TABLE concurrency_slots ADD COLUMN beat REAL;
CREATE TABLE concurrency_waiters (
    seq INTEGER PRIMARY KEY,
    tag TEXT NOT NULL,
    holder TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    beat REAL NOT NULL
);
CREATE INDEX concurrency_waiters_by_tag ON concurrency_waiters (tag, seq);
CREATE INDEX flow_runs_by_state ON flow_runs (state)
"""

# Version 7: a schedule may run on a named cluster profile (`schedule add --cluster k8s`); the
# name is stored, not the profile, so each run uses the profile as it is then.
_V7 = """
ALTER TABLE schedules ADD COLUMN cluster TEXT
"""

# Version 8: a run's task-run states read by cursor (``follow.py``: one run's rows after a
# rowid, at each look at a running run). On PostgreSQL ``rowid`` is a column, and without this
# index each of those reads scanned the whole table. SQLite reads a range of the table's own
# b-tree (its key is the rowid) and an index there would only cost the writer: PostgreSQL only.
_V8 = """
POSTGRESQL ONLY: CREATE INDEX IF NOT EXISTS task_states_by_run ON task_states (run_id, rowid)
"""

# Version 9: where each task run ran (a thread, a Dask worker and thread), the lanes of a run's
# timeline (`GET runs/{id}/timeline`); NULL for task runs written before.
_V9 = """
ALTER TABLE task_runs ADD COLUMN worker TEXT
"""

# Version 10: params and metrics task runs logged (log_params, log_metrics): one row per logging
# call, in the order logged (id), its values a JSON object by name; see ``experiments.py``.
_V10 = """
CREATE TABLE experiment_values (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    task_run_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    step INTEGER,
    time REAL,
    data TEXT NOT NULL
);
CREATE INDEX experiment_values_by_run ON experiment_values (run_id)
"""

# Version 11: experiment_values rows of kind "calls", a batch's logging calls of one run in one
# row (``experiments.py``). No table changes: the version keeps an older labloom, which would
# misread them, from reading this store.
_V11 = ""

# Version 12: with each task-run state, the task run's graph node and its state before (NULL
# for its first), so that a view following a run counts what moved by node over a range of
# rows, with no read per task run (``follow.node_moves``). NULL in rows written before, and
# where the writer does not know them: those are read the old way.
_V12 = """
ALTER TABLE task_states ADD COLUMN node_id TEXT;
ALTER TABLE task_states ADD COLUMN before_state TEXT
"""

# Version 13: an ended run's experiment rows folded once, so a page of a 100,000-row run sorted
# and filtered on any column answers in milliseconds from any server, fresh or not (``experiment_snapshot.py``): one row per task run that logged (its
# values as the page shows them), one per column (its values in the rows' order, to sort and
# filter), the row of column '' saying what the snapshot is of. Written by the server that
# first reads the ended run whole; the logged values stay where they are, the source.
_V13 = """
CREATE TABLE experiment_rows (
    run_id TEXT NOT NULL,
    pos INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, pos)
);
CREATE TABLE experiment_columns (
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, name)
)
"""

# Version 14: a concurrency limit's slots and places in line looked up by holder (a grant, a
# slot given back, a waiter's own place, a heartbeat): without these each scanned the whole line,
# so a map of n task runs behind a small limit cost O(n) per task run (``concurrency_slots.py``).
_V14 = """
CREATE INDEX concurrency_waiters_by_holder ON concurrency_waiters (holder, tag);
CREATE INDEX concurrency_slots_by_holder ON concurrency_slots (holder)
"""

# Version 15: experiment_values rows of kind "packed", a batch's logging calls by column as one
# msgpack array in the new ``packed`` column (BLOB, BYTEA on PostgreSQL), ``data`` empty:
# writing JSON text was the writer's largest cost per logged metric (``logged_calls.py``). Rows
# written before stay as they are and read alongside; the version keeps an older labloom, which
# would read a packed row's empty ``data``, from reading this store.
_V15 = """
ALTER TABLE experiment_values ADD COLUMN packed BLOB
"""

# Version 16: logging calls of kind "reset" (``experiments.RESET``), a task run starting over
# (a retry, a rerun): readers drop what it logged before. No table changes: the version keeps an
# older labloom, which would read one as an empty metric call (a row for a task run that logged
# nothing in its last attempt, the failed attempt's values with it), from reading this store.
_V16 = ""

# Version 17: the ids of the runs deleted from this store (``labloom delete``, prune, the
# Lab), so that ``labloom db copy`` from the laptop they came from does not bring them back.
_V17 = """
CREATE TABLE deleted_runs (id TEXT PRIMARY KEY, deleted REAL NOT NULL)
"""

# Version 18: `labloom serve`'s failure alerts kept until a webhook takes them
# (``schedule/alert_outbox.py``): a serve killed or a machine restarted before then lost them.
# A pending alert names its schedule, whose row keeps the URL (a secret, kept once), and the
# scheduler sending it now (``sender``, a claim that counts while it lives); an alert whose
# retries are spent leaves one row per schedule saying when and why, until one is delivered.
_V18 = """
CREATE TABLE pending_alerts (
    id INTEGER PRIMARY KEY,
    schedule TEXT NOT NULL,
    run_id TEXT,
    body TEXT NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL,
    sender TEXT,
    last_error TEXT
);
CREATE INDEX pending_alerts_by_next_try ON pending_alerts (next_try);
CREATE TABLE undelivered_alerts (
    schedule TEXT PRIMARY KEY,
    run_id TEXT,
    state TEXT,
    given_up REAL NOT NULL,
    first_given_up REAL NOT NULL,
    alerts INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    reason TEXT NOT NULL
)
"""

# Version 19: `labloom run --notify`'s alerts kept in the same outbox (``run_alerts.py``): a
# pending alert of no schedule (``schedule`` '') keeps its URL in its own row, dropped with it;
# what became of a run's alert, once it left the outbox (delivered, or given up and why), is one
# row per run, shown by `labloom show`.
_V19 = """
ALTER TABLE pending_alerts ADD COLUMN url TEXT;
CREATE TABLE run_alerts (
    run_id TEXT PRIMARY KEY,
    outcome TEXT NOT NULL,
    at REAL NOT NULL,
    attempts INTEGER NOT NULL,
    reason TEXT NOT NULL DEFAULT ''
)
"""

# Version 20: `labloom run --notify`'s wish for an alert, kept from the run's start: a command
# killed before it kept its alert (-9 mid-run, a reboot) leaves it to a `labloom serve`, which
# composes it from the run's record (``dead_run_alerts``). ``holder``: run:PID@HOST.
_V20 = """
CREATE TABLE run_alert_wishes (run_id TEXT PRIMARY KEY, flow TEXT NOT NULL, url TEXT NOT NULL,
                               holder TEXT NOT NULL, created REAL NOT NULL)
"""

# Version 21: why a map's child left its map (``TaskRunLeftMap``), NULL for the others; and a
# task_states row of state 'Left' then (``left_maps.LEFT``): views count it out of the map.
_V21 = "ALTER TABLE task_runs ADD COLUMN left_map TEXT"

# Version 22: the schedules a `labloom serve` refuses to run, and why (``schedule/refusals.py``):
# shown while its row in schedulers is live (``liveness.STALE_AFTER``), dropped with it.
_V22 = ("CREATE TABLE schedule_refusals (scheduler TEXT NOT NULL, schedule TEXT NOT NULL, "
        "reason TEXT NOT NULL, since REAL NOT NULL, PRIMARY KEY (scheduler, schedule))")

MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8, _V9, _V10, _V11,
                               _V12, _V13, _V14, _V15, _V16, _V17, _V18, _V19, _V20, _V21, _V22)
SCHEMA_VERSION = len(MIGRATIONS)


def version_of(conn: Conn) -> int:
    if conn.kind == "sqlite":
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    if conn.execute("SELECT to_regclass('labloom_schema')").fetchone()[0] is None:
        return 0
    row = conn.execute("SELECT version FROM labloom_schema").fetchone()
    return int(row[0]) if row else 0


def _set_version(conn: Conn, version: int) -> None:
    if conn.kind == "sqlite":
        conn.execute(f"PRAGMA user_version = {int(version)}")
    else:
        conn.execute("DELETE FROM labloom_schema")
        conn.execute("INSERT INTO labloom_schema (version) VALUES (?)", (version,))


def refuse_foreign(conn: Conn, current: int, where: str = "", fix: str = "") -> None:
    """Refuse a SQLite file that another program made (``--database-url`` or ``LABLOOM_HOME``
    pointing at a data set's database): labloom would write its tables into it, or misread
    its ``user_version`` as a schema version. A store has ``flow_runs`` from version 1 on; an
    empty file (version 0, no tables) becomes a new store."""
    if conn.kind != "sqlite" or current == SCHEMA_VERSION:
        return
    tables = [row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY name")]
    if "flow_runs" in tables or not (tables or current):
        return
    held = f"its tables {', '.join(tables[:5])}{' ...' if len(tables) > 5 else ''}" if tables \
        else f"no tables but user_version {current}"
    raise StoreUnavailableError(
        f"[labloom] {where or 'the file'} is not a labloom store but another program's SQLite "
        f"database ({held}); labloom leaves it untouched. "
        + (fix or "Point --database-url or LABLOOM_DATABASE_URL at a file of labloom's own (a "
           "new path makes a new store), or unset them to use LABLOOM_HOME/labloom.db")
    )


def check_schema(conn: Conn, where: str = "") -> int:
    """The store's version, refused unless it is this labloom's (no upgrade attempted)."""
    current = version_of(conn)
    refuse_foreign(conn, current, where)
    if current > SCHEMA_VERSION:
        raise _too_new(current, where)
    if current < SCHEMA_VERSION:
        raise StoreVersionError(
            f"[labloom] the store {where or 'file'} has schema version {current}, older than "
            f"this labloom's ({SCHEMA_VERSION}), and LABLOOM_AUTO_MIGRATE=0 forbids upgrading "
            "it on first use: run `labloom db upgrade`"
        )
    return current


def ensure_schema(conn: Conn, target: int = SCHEMA_VERSION, where: str = "") -> int:
    """Bring the store up to ``target`` (the current schema unless a test asks otherwise)."""
    current = version_of(conn)
    if current == target:
        return current
    refuse_foreign(conn, current, where)
    if current > SCHEMA_VERSION:
        raise _too_new(current, where)
    with conn.transaction():
        if conn.kind == "postgresql":
            conn.lock("labloom-schema")
            conn.execute("CREATE TABLE IF NOT EXISTS labloom_schema (version INTEGER NOT NULL)")
        current = version_of(conn)  # another process may have migrated meanwhile
        if current > SCHEMA_VERSION:
            raise _too_new(current, where)
        for version in range(current, target):
            for statement in migration_statements(MIGRATIONS[version], conn.kind):
                conn.execute(statement)
            _set_version(conn, version + 1)
    return target


def _too_new(version: int, where: str) -> StoreVersionError:
    return StoreVersionError(
        f"[labloom] the store {where or 'file'} has schema version {version}, newer than this "
        f"labloom understands (up to {SCHEMA_VERSION}); it was written by a newer labloom. "
        "Upgrade labloom (pip install -U labloom), or point LABLOOM_HOME / "
        "LABLOOM_DATABASE_URL at another store"
    )
