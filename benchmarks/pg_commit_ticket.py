"""What the ticket of a PostgreSQL write (``store/unanswered_commits.py``, session 52) costs
the store writer: its transactions, as the writer writes a batch of log lines, with and
without the ticket (``SELECT txid_current(), pg_backend_pid()`` in the transaction, one round
trip), alternating, on a real server started as the tests start it (``tests/pg_server.py``,
the server's default durability: a commit waits for its flush), over a unix socket; medians.

    python3 benchmarks/pg_commit_ticket.py --rounds 2000 --lines 100
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "src"), str(HERE.parent / "tests")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--lines", type=int, default=100, help="log lines a transaction")
    args = parser.parse_args()

    import pg_server
    from labloom.store import db, unanswered_commits
    from labloom.store.rows import Rows

    server = pg_server.PostgresServer(fast=False)
    try:
        url = server.url(server.new_database())
        database = db.get_database(url)
        conn = database.connect()
        rows = Rows()
        lines = [("r", "r.0", 20, 1.0, f"line {i}") for i in range(args.lines)]
        for line in lines:
            rows.logs.add("r", line)
        times: dict[bool, list[float]] = {False: [], True: []}
        for i in range(args.rounds):
            ticket = bool(i % 2)
            began = time.perf_counter()
            with (unanswered_commits.transaction(conn, rows, ("logs", "r")) if ticket
                  else conn.transaction()):
                conn.insert_rows("logs", ("run_id", "task_run_id", "level", "time", "text"),
                                 lines)
            times[ticket].append(time.perf_counter() - began)
        conn.close()
        db.forget(url)
    finally:
        server.close()
    plain, ticketed = (statistics.median(times[k]) * 1e6 for k in (False, True))
    print(f"{args.lines} lines a transaction, {args.rounds // 2} of each, medians:")
    print(f"  without a ticket: {plain:8.0f} us")
    print(f"  with a ticket:    {ticketed:8.0f} us  (+{ticketed - plain:.0f} us)")


if __name__ == "__main__":
    main()
