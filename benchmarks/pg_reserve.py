"""What the PostgreSQL store's reserve (``store/pg_reserve.py``, session 50) costs a
`labloom run`: on a real server started as the tests start it (``tests/pg_server.py``, the
server's default durability), a run of a 10-child map as a fresh `labloom run` process on a new
database (the first writer makes the ``labloom_reserve`` table: since session 51 unlogged, of a
WAL segment and 1 MB, 17 MB, by default) and then again on the same database (the table there:
each writer's check of its size), with ``LABLOOM_STORE_RESERVE`` unset (the default) and 0 (no
reserve), alternating, ``--rounds`` times; medians.

    python3 benchmarks/pg_reserve.py --rounds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests")]

FLOW = """
from labloom import flow, task

@task
def step(i):
    return i

@flow(executor="local")
def tiny(n: int = 10):
    return step.map(range(n))
"""


def reserve_size(url: str) -> int:
    """Bytes of ``labloom_reserve`` in the database at ``url`` (0 when there is none)."""
    import psycopg

    with psycopg.connect(url) as conn:
        size = conn.execute("SELECT pg_relation_size(to_regclass('labloom_reserve'))").fetchone()
    return int(size[0] or 0) if size else 0


def main() -> None:
    import pg_server

    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--src", default=str(HERE.parent / "src"))
    args = parser.parse_args()
    server = pg_server.PostgresServer(fast=False)
    figures: dict[str, list[float]] = {}
    try:
        with tempfile.TemporaryDirectory() as work:
            Path(work, "flows.py").write_text(FLOW)
            for _ in range(args.rounds):
                for reserve in ("default", "0"):
                    url = server.url(server.new_database())
                    env = {**os.environ, "LABLOOM_DATABASE_URL": url,
                           "LABLOOM_PROGRESS": "0", "LABLOOM_HOME": work,
                           "LABLOOM_STORE_RESERVE": reserve, "PYTHONPATH": args.src}
                    if reserve == "default":
                        del env["LABLOOM_STORE_RESERVE"]
                    for which in ("new database", "again"):
                        start = time.perf_counter()
                        subprocess.run([sys.executable, "-m", "labloom", "run", "flows.py:tiny"],
                                       env=env, cwd=work, check=True, capture_output=True)
                        seconds = time.perf_counter() - start
                        figures.setdefault(f"reserve {reserve}, {which}", []).append(seconds)
                    made = reserve_size(url)
                    # The default: a WAL segment (16 MB unless initdb said otherwise) and 1 MB.
                    assert (made >= 9 << 20) if reserve == "default" else not made, (reserve, made)
            for label, values in figures.items():
                print(f"{label}: median {statistics.median(values):.3f} s "
                      f"({' '.join(f'{v:.3f}' for v in values)})", flush=True)
    finally:
        server.close()


if __name__ == "__main__":
    main()
