"""A PostgreSQL write whose COMMIT went unanswered is written again only if it did not land.

The connection can go between the server's commit and its answer (the server crashed or
restarted, a network cut): the writer, seeing only a broken connection, wrote the batch again,
and its log lines, state changes and logged values, in tables that only append, were stored
twice (``labloom logs`` showed lines twice, and more of them than the task printed). So a write
that appends first takes a ``Ticket``: its transaction id (``txid_current()``, with its epoch),
its server process, and one row it appends (table and run). When it fails on a broken
connection, the next attempt, on a new one, asks the server (``landed``):
- committed (``txid_status``), and that row is there (its ``xmin`` is the id): it landed and is
  not written again. The row is asked for as well because a crash that lost the whole
  transaction (none of its WAL on disk) gives its id again to the server's next one (a row
  written in a savepoint would bear the savepoint's id: the writer's are written in none);
- aborted, or an id not given yet (that same crash): it is written again;
- in progress (the server has not yet noticed that the connection went): that server process is
  ended (``pg_terminate_backend``: one's own role's are allowed) and the question asked again
  after the writer's backoff.
The rest of a write is idempotent (upserts, updates of the same values): only appending
writes take a ticket; written one by one (``Rows.write_one_by_one``), each appending row.
It costs a round trip a transaction (``benchmarks/pg_commit_ticket.py``: about 0.5 ms).
A command's single change (a schedule added or removed, a limit set) is made the same way by
``written_once``, asked about with what it wrote (``there``).

SQLite needs none: it commits in the process that writes, and the call that commits returns
its outcome there; a failed COMMIT (busy, full disk, I/O error) leaves nothing committed, and
a process that dies mid-commit leaves no one to write again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, NamedTuple, TypeVar

from ..core.errors import StoreChangeUnknownError, StoreUnreachableError

if TYPE_CHECKING:
    from .db import Conn
    from .row_tables import Table
    from .rows import Rows

_XID = 2**32  # ``xmin`` holds the id without its epoch
_ASKED_AGAIN = (0.1, 0.3, 0.9, 2.7)  # seconds after ending a transaction left open
T = TypeVar("T")


class Ticket(NamedTuple):
    xid: int  # with its epoch: unique while the server's history holds it
    backend: int  # the server process that ran the transaction
    table: str  # a table the transaction appends a row of run ``run_id`` to
    run_id: str
    row: Table | None  # written one by one: the table of the row it wrote (``Table.done``)


def appended_row(rows: Rows) -> tuple[str, str] | None:
    """A table ``rows`` append to and the run of such a row; None when they only upsert."""
    for table, name in ((rows.states, "task_states"), (rows.logs, "logs"),
                        (rows.values, "experiment_values")):
        if table.runs:
            return name, table.runs[0]
    return noted_row(rows)


def noted_row(rows: Rows) -> tuple[str, str] | None:
    """The same for the notes of lines not stored for want of room (``room.py``)."""
    return ("logs", rows.notes[0][0]) if rows.notes else None


@contextmanager
def transaction(conn: Conn, rows: Rows, appends: tuple[str, str] | None,
                row: Table | None = None) -> Iterator[None]:
    """``conn.transaction()`` writing ``rows`` (or the next row of ``row``, one by one),
    with a ticket when it appends on PostgreSQL. A failure the server answered (the
    connection still works) drops it: nothing was committed. A failed COMMIT keeps it, even
    answered: ``landed`` then says aborted. Committed and answered, it goes: written one by
    one, a row after it that takes none must not be taken for the row it was of."""
    rows.ticket = None
    with conn.transaction():
        if appends is not None and conn.kind == "postgresql":
            xid, backend = conn.execute("SELECT txid_current(), pg_backend_pid()").fetchone()
            rows.ticket = Ticket(int(xid), int(backend), *appends, row)
        try:
            yield
        except BaseException:
            if not conn.broken:
                rows.ticket = None
            raise
    rows.ticket = None


def one_row(conn: Conn, rows: Rows, table: Table) -> AbstractContextManager[None]:
    """``transaction`` for the next row of ``table`` alone (``Rows.write_one_by_one``)."""
    appends = None
    if table.sql.startswith("INSERT INTO ") and "ON CONFLICT" not in table.sql:
        appends = (table.sql.split()[2], table.runs[table.done])
    return transaction(conn, rows, appends, table)


def landed_before(conn: Conn, rows: Rows) -> bool:
    """Whether an earlier attempt at ``rows`` landed although its commit went unanswered
    (asked on a new connection): then nothing is left to write. Its ticket is kept until the
    server can tell. A row of those written one by one that landed is counted written."""
    ticket = rows.ticket
    if ticket is None or not landed(conn, ticket):  # (raised: kept, asked again)
        rows.ticket = None
        return False
    rows.ticket = None
    if ticket.row is None:
        return True
    ticket.row.done += 1
    return False


def landed(conn: Conn, ticket: Ticket) -> bool:
    """Whether the transaction of ``ticket`` committed (asked on another connection)."""
    if not committed(conn, ticket.xid, ticket.backend):
        return False
    return bool(conn.execute(
        f"SELECT EXISTS (SELECT 1 FROM {ticket.table} WHERE run_id = ? "
        "AND xmin = ?::text::xid)", (ticket.run_id, ticket.xid % _XID)).fetchone()[0])


def committed(conn: Conn, xid: int, backend: int) -> bool:
    """Whether transaction ``xid`` (``txid_current()``) of server process ``backend``
    committed; one still in progress (its client gone unnoticed) is ended, and
    ``StoreUnreachableError`` raised: ask again."""
    status = conn.execute(
        "SELECT CASE WHEN ?::bigint < txid_current() THEN txid_status(?::bigint) END",
        (xid, xid)).fetchone()[0]
    if status == "in progress":
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE pid = ? AND backend_xid = ?::text::xid", (backend, xid % _XID))
        raise StoreUnreachableError(
            "[labloom] a write whose commit went unanswered is still open on the server; "
            "its outcome is asked again")
    return bool(status == "committed")  # else aborted, or never known to the server now (a crash)


def written_once(conn: Conn, write: Callable[[Conn], T], there: Callable[[Conn, int], bool],
                 named_rows: bool = False) -> T:
    """``write(conn)`` in one transaction, its outcome known even when its COMMIT goes
    unanswered (a command's: ``labloom schedule add``, ``limit set``): on PostgreSQL it takes
    a ticket first; when the connection breaks, a new one (with ``named_rows``) asks whether
    it committed and ``there(new, xid)`` finds its effect in (an id lost in a crash is given
    again), else it is written again there. ``write``'s value is what it returned before the
    COMMIT. Before, the command said the store's error though its change was made (``add``
    again: "a schedule named ... exists"). ``conn`` is broken after that: not used again.
    A server still away after the connection wait cannot be asked: a change whose COMMIT was
    sent raises ``StoreChangeUnknownError`` (it may have landed), one cut before it a
    ``StoreUnreachableError`` saying it was not made (it cannot have)."""
    if conn.kind != "postgresql":
        with conn.transaction():
            return write(conn)
    xid: int | None = None
    backend = 0
    sent = False  # the COMMIT went: only the server can tell its outcome
    try:
        with conn.transaction():
            row = conn.execute("SELECT txid_current(), pg_backend_pid()").fetchone()
            xid, backend = int(row[0]), int(row[1])
            value = write(conn)
            sent = True
        return value
    except Exception as exc:
        if not conn.broken:
            raise  # answered: nothing committed
        cut: Exception = exc
    for delay in _ASKED_AGAIN:
        try:
            again = conn.database.connect(named_rows=named_rows)
        except Exception as exc:
            raise _unasked(exc, sent) from exc
        with again:
            try:
                landed = xid is not None and committed(again, xid, backend) and there(again,
                                                                                      xid)
            except StoreUnreachableError as exc:
                if again.broken:
                    raise _unasked(exc, sent) from exc
                time.sleep(delay)  # still open: ended, asked again
                continue
            except Exception as exc:
                if not again.broken:
                    raise
                raise _unasked(exc, sent) from exc
            if landed:
                return value
            return written_once(again, write, there, named_rows)  # not landed: made again
    raise _unasked(cut, sent)


def _unasked(exc: BaseException, sent: bool) -> StoreUnreachableError:
    """The error of a change whose server could not be asked about it (away past the wait)."""
    why = " ".join(str(exc).removeprefix("[labloom]").split())
    if sent:
        return StoreChangeUnknownError(
            "[labloom] the change may or may not have been made: the store's server never "
            "answered its COMMIT, and could not be asked since whether it landed "
            f"({why}); once the server is back, look whether it was made before making it "
            "again")
    return StoreUnreachableError(
        "[labloom] the change was not made: the connection to the store's server went before "
        f"it was committed, and the server is still away ({why}); make it again once the "
        "server is back")


def has_row(conn: Conn, table: str, column: str, value: object, xid: int) -> bool:
    """Whether ``table`` has a row whose ``column`` is ``value`` written by transaction
    ``xid``: ``written_once``'s ``there`` of an insert or an upsert."""
    return bool(conn.execute(
        f"SELECT EXISTS (SELECT 1 FROM {table} WHERE {column} = ? AND xmin = ?::text::xid)",
        (value, xid % _XID)).fetchone()[0])


ORPHANED = 30  # seconds a short transaction may sit idle before the server ends it
_ENDED_IDLE = "set_config('idle_in_transaction_session_timeout', %s, true)"


def lock_briefly(conn: Conn, *keys: str) -> None:
    """``conn.lock(*keys)`` in a transaction that never waits on its client (a slot taken, an
    alert claimed): on PostgreSQL the server also ends it once idle ``ORPHANED`` seconds. Its
    client gone unnoticed (a network cut as it sent the COMMIT), it held its locks as long as
    the server took to notice (TCP keepalive: two hours), and every other locker waited that
    long: a concurrency limit's every task run. In the first lock's statement: no round trip
    more."""
    names = sorted(set(keys))
    if conn.kind != "postgresql" or not names:
        conn.lock(*names)
        return
    conn.raw.execute(f"SELECT {_ENDED_IDLE}, pg_advisory_xact_lock(hashtext(%s))",
                     (f"{ORPHANED}s", names[0]))
    conn.lock(*names[1:])  # the rest in order: every locker takes them sorted


def brief(conn: Conn) -> None:
    """The same, first in a transaction that takes row locks (a schedule's slot claimed)."""
    if conn.kind == "postgresql":
        conn.raw.execute(f"SELECT {_ENDED_IDLE}", (f"{ORPHANED}s",))
