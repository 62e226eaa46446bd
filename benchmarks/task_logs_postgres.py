"""``task_logs.py``'s reads on PostgreSQL (session 48): a real server started as the tests
start it (``tests/pg_server.py``), one run of a map of ``-n`` children logging ``--lines`` lines
each written by the first tree, then each read as ``python -m labloom logs RUN ...`` in a fresh
process per tree (trees alternating, ``--repeat`` rounds, each printed), and ``show RUN --json``.

    python3 benchmarks/task_logs_postgres.py --src /work/main/src src -n 20000 --lines 5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from task_logs import CASES, SRC  # (this folder: the script's own, on the path above)


def main() -> None:
    import pg_server

    parser = argparse.ArgumentParser()
    parser.add_argument("--src", nargs="+", default=[str(SRC)])
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("--lines", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    server = pg_server.PostgresServer()
    try:
        env = {**os.environ, "LABLOOM_DATABASE_URL": server.url(server.new_database()),
               "LABLOOM_PROGRESS": "0"}
        made = subprocess.run(
            [sys.executable, "-c", "import sys; sys.path[:0] = [sys.argv[1]]; import task_logs; "
             "print(task_logs.make_run(int(sys.argv[2]), int(sys.argv[3])))",
             str(HERE), str(args.n), str(args.lines)],
            env={**env, "PYTHONPATH": args.src[0]}, capture_output=True, text=True, check=True)
        run_id = made.stdout.strip().splitlines()[-1]
        for _ in range(args.repeat):
            for src in args.src:
                figures = {}
                for label, extra in [*CASES, ("show --json", None)]:
                    cli = ["show", run_id, "--json"] if extra is None else ["logs", run_id, *extra]
                    start = time.perf_counter()
                    subprocess.run([sys.executable, "-m", "labloom", *cli], check=True,
                                   env={**env, "PYTHONPATH": src}, stdout=subprocess.DEVNULL)
                    figures[f"{label} fresh s"] = round(time.perf_counter() - start, 3)
                print(src, json.dumps(figures), flush=True)
    finally:
        server.close()


if __name__ == "__main__":
    main()
