"""How far the store is behind a busy run: a flow of N no-op task runs (``one.map(range(N))``
on ``ThreadExecutor(4)``, the flow of ``api_load.py`` and ``lab_push.py``) runs in a child
process while this one reads ``MAX(rowid)`` of ``task_states`` every 20 ms (as a watcher
would). Afterwards each state change's lag is when its row was first seen committed minus its
``time`` (when the engine made the change; one machine, one clock). Printed per round: the
flow's time and the lags' p50 / p99 / max, for the Running and final rows (not the map's
Pending announcements); with ``--by-second``, the worst lag per second of the run.

    python3 benchmarks/store_lag.py [--tasks 100000] [--rounds 2]

Each round uses its own temporary LABLOOM_HOME; progress output is off.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from api_load import CHILD


def one_round(n: int, by_second: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, LABLOOM_HOME=home, LABLOOM_PROGRESS="0",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "src"),
                                                            os.environ.get("PYTHONPATH")])))
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(n)], env=env,
                                stdout=subprocess.PIPE, text=True)
        db = Path(home) / "labloom.db"
        seen: list[tuple[int, float]] = []  # (max rowid, first seen at), rising
        conn = None
        while proc.poll() is None:
            if conn is None and db.exists():
                conn = sqlite3.connect(db)
            if conn is not None:
                try:
                    top = conn.execute("SELECT MAX(rowid) FROM task_states").fetchone()[0]
                except sqlite3.OperationalError:  # the schema is not there yet
                    top = None
                if top is not None and (not seen or top > seen[-1][0]):
                    seen.append((top, time.time()))
            time.sleep(0.02)
        out, _ = proc.communicate()
        result = json.loads(out.strip().splitlines()[-1])
        assert conn is not None, "the store never appeared"
        rows = conn.execute("SELECT rowid, time FROM task_states WHERE state != 'Pending' "
                            "ORDER BY rowid").fetchall()
        conn.close()
    tops = [top for top, _ in seen]
    lags, worst = [], {}
    for rowid, at in rows:
        i = bisect.bisect_left(tops, rowid)
        if i < len(seen):  # committed after the last read: not counted
            lags.append(seen[i][1] - at)
            second = int(at - rows[0][1])
            worst[second] = max(worst.get(second, 0.0), lags[-1])
    lags.sort()
    pick = lambda q: lags[min(len(lags) - 1, int(len(lags) * q))]  # noqa: E731
    if by_second:
        print(" ".join(f"{s}:{v:.1f}" for s, v in sorted(worst.items())))
    return {"seconds": result["seconds"], "p50": pick(0.5), "p99": pick(0.99), "max": lags[-1],
            "counted": len(lags), "rows": len(rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--by-second", action="store_true")
    args = parser.parse_args()
    for r in range(args.rounds):
        x = one_round(args.tasks, args.by_second)
        print(f"round {r + 1}: flow {x['seconds']:.2f}s; state change to committed p50 "
              f"{x['p50']:.3f}s p99 {x['p99']:.3f}s max {x['max']:.3f}s "
              f"({x['counted']} of {x['rows']} rows; load {os.getloadavg()[0]:.1f})", flush=True)


if __name__ == "__main__":
    main()
