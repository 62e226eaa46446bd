"""What a flow parameter of ``-n`` ints costs a run's record and its views (session 45): the
bytes the store keeps of it, the run's wall time (a no-op task; the record written), and
reading the run back as ``labloom show`` and the run tab do (``RunStore.get_run``, then the
view's JSON). Each tree in a fresh process with its own SQLite store, trees alternating, best
of ``--repeat``.

    python3 benchmarks/big_parameter.py --src /work/main/src src -n 10000000

``--older`` (session 46): the run recorded as an older labloom did, the list kept whole (a limit
of 1e9 bytes while it runs, the default after), and the lists read with five small runs
beside it: ``list_runs`` and each run's ``to_json`` (``labloom runs --json``, ``%flow_runs``),
and the REST runs list's read (``counts=False``, and no parameters where the tree has that).

    python3 benchmarks/big_parameter.py --src /work/main/src src -n 10000000 --older

With ``--older`` (session 47) it also opens that run as its views do: ``labloom show RUN``
(``get_run``, the shown parameters), ``labloom show RUN --json`` (``to_json``), the run tab's
first read (REST ``GET runs/{id}``: ``queries.run_detail``) and one of its polls (``since``),
and ``labloom retry``'s read of the parameters it replays (``get_run`` then ``.parameters``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[1] / "src"


def child(n: int, older: bool) -> None:
    import time

    from labloom import flow, task
    from labloom.store import open_store

    if older:
        os.environ["LABLOOM_PARAMETER_BYTES"] = "1000000000"

    @task
    def size(values: object) -> int:
        return len(values)  # type: ignore[arg-type]

    @flow(executor="local")
    def sweep(xs: list[int]) -> int:
        return size(len(xs))  # type: ignore[return-value]

    xs = list(range(n))
    start = time.perf_counter()
    run = sweep.run(xs=xs)
    ran = time.perf_counter() - start
    if older:
        del os.environ["LABLOOM_PARAMETER_BYTES"]
        for i in range(5):
            sweep.run(xs=[i])
        with open_store() as store:
            start = time.perf_counter()
            listed = json.dumps([record.to_json() for record in store.list_runs()])
            cli = time.perf_counter() - start
            start = time.perf_counter()
            try:
                store.list_runs(limit=51, counts=False, parameters=False)
            except TypeError:  # a tree from before session 46
                store.list_runs(limit=51, counts=False)
            rest = time.perf_counter() - start
            opened = _open_one(store, run.id, n)
        print(json.dumps({"runs --json s": cli, "its bytes": len(listed), "REST list read s": rest,
                          **opened}))
        return
    with open_store() as store:
        start = time.perf_counter()
        record = store.get_run(run.id)
        assert record is not None
        shown = json.dumps(record.to_json())
        read = time.perf_counter() - start
        with store.database.connect() as conn:
            stored = conn.execute("SELECT length(parameters) FROM flow_runs WHERE id = ?",
                                  (run.id,)).fetchone()[0]
    print(json.dumps({"stored bytes": stored, "run s": ran, "read and show s": read,
                      "shown bytes": len(shown)}))


def _open_one(store: Any, run_id: str, n: int) -> dict[str, float]:
    """Seconds to open the older run as each view does (each read in full, in turn)."""
    import time

    from labloom.core.kept_parameters import shown_parameters
    from labloom.server_extension.graphs import Cursor
    from labloom.server_extension.queries import StoreAccess, run_detail

    def shown(record: Any) -> Any:
        way = getattr(record, "shown_parameters", None)  # session 47 and later
        return way() if callable(way) else shown_parameters(record.parameters)

    figures: dict[str, float] = {}
    start = time.perf_counter()
    assert shown(store.get_run(run_id))["xs"]["__len__"] == n
    figures["show s"] = time.perf_counter() - start
    start = time.perf_counter()
    json.dumps(store.get_run(run_id).to_json())
    figures["show --json s"] = time.perf_counter() - start
    access = StoreAccess(workers=1)
    try:
        start = time.perf_counter()
        detail = run_detail(access, store, run_id, True)
        assert detail is not None and detail["parameters"]["xs"]["__len__"] == n
        figures["GET runs/{id} s"] = time.perf_counter() - start
        start = time.perf_counter()
        run_detail(access, store, run_id, True, Cursor.parse(detail["cursor"]))
        figures["its poll s"] = time.perf_counter() - start
    finally:
        access.close()
    start = time.perf_counter()
    assert len(store.get_run(run_id).parameters["xs"]) == n
    figures["retry's read s"] = time.perf_counter() - start
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", nargs="+", default=[str(SRC)])
    parser.add_argument("-n", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--older", action="store_true", help="a run stored whole, then lists")
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args.n, args.older)
        return
    older = ["--older"] if args.older else []
    for src, figures in best_of_fresh_trees(__file__, ["-n", str(args.n), *older], args.src,
                                            args.repeat).items():
        print(src, json.dumps(figures))


def best_of_fresh_trees(script: str, child_args: list[str], srcs: list[str],
                        repeat: int) -> dict[str, dict[str, float]]:
    """``script --child child_args`` for each source tree in turn, ``repeat`` times, each in a
    fresh process with its own SQLite store: the least of each figure (its last line's JSON)."""
    best: dict[str, dict[str, float]] = {}
    for _ in range(repeat):
        for src in srcs:
            with tempfile.TemporaryDirectory() as home:
                env = {**os.environ, "PYTHONPATH": src, "LABLOOM_HOME": home,
                       "LABLOOM_PROGRESS": "0"}
                env.pop("LABLOOM_DATABASE_URL", None)
                out = subprocess.run([sys.executable, script, "--child", *child_args],
                                     env=env, capture_output=True, text=True, check=True)
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            kept = best.setdefault(src, figures)
            for name, value in figures.items():
                kept[name] = min(kept[name], value)
    return best

if __name__ == "__main__":
    main()
