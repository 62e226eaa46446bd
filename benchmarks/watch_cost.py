"""What the Lab server's push watcher costs per flow, without Lab or a browser (issue 20).

Runs the flow of ``api_load.py`` (``one.map(range(N))`` on ``ThreadExecutor(4)``) in another
process writing a fresh SQLite store, while this process does what the server's watcher does
(``server_extension.push.StoreFollower.look`` and the event's deep copy and JSON, every
``--tick`` seconds after a look that found changes, ``push.TICK`` after one that did not), and
prints the looks' own CPU time (this thread's), how many there were and how many found
changes. Compare checkouts with ``--src``.

    python3 benchmarks/watch_cost.py [--tasks 100000] [--tick 0.1] [--src path/to/src]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--tick", type=float, default=0.1)
    parser.add_argument("--src", default=str(ROOT / "src"))
    args = parser.parse_args()
    sys.path.insert(0, args.src)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    home = tempfile.mkdtemp(prefix="labloom-watch-")
    os.environ.update(LABLOOM_HOME=home, LABLOOM_PROGRESS="0")
    from api_load import CHILD

    from labloom.server_extension import push
    from labloom.server_extension.queries import StoreAccess
    from labloom.store import open_store

    env = dict(os.environ, PYTHONPATH=args.src)
    subprocess.run([sys.executable, "-c", CHILD, "10"], env=env, check=True, capture_output=True)
    follower, access = push.StoreFollower(), StoreAccess()
    cpu, looks, events = 0.0, 0, 0
    with open_store() as store:
        follower.look(access, store)
        flow = subprocess.Popen([sys.executable, "-c", CHILD, str(args.tasks)], env=env,
                                stdout=subprocess.PIPE, text=True)
        while flow.poll() is None:
            began = time.thread_time()
            data = follower.look(access, store)
            if data is not None:
                json.dumps(copy.deepcopy(data))  # as emitting it does
            cpu += time.thread_time() - began
            looks += 1
            events += data is not None
            time.sleep(args.tick if data is not None else push.TICK)
        out, _ = flow.communicate()
    access.close()
    shutil.rmtree(home, ignore_errors=True)
    seconds = json.loads(out.strip().splitlines()[-1])["seconds"]
    print(f"flow of {args.tasks} task runs: {seconds:.2f} s; {looks} looks ({events} found "
          f"changes): {cpu:.2f} s of CPU, {100 * cpu / seconds:.1f}% of a core, "
          f"{1000 * cpu / looks:.2f} ms per look")


if __name__ == "__main__":
    main()
