"""What the Flows panel's actions on one run read before they act (session 48): REST ``DELETE
runs/{id}`` (``deleting.delete_one``, the run deleted for real) and ``POST runs/{id}/retry``
(``control.retry``: its read of the run and the check of its parameters, ``replay_refusal``,
timed up to the new process it would start, which is not started); the delete's read of the
run alone (``exact_run``) is timed first. The run: a map of ``-n`` children (one
failed, so it may be retried) and a parameter of ``--ints`` ints stored whole as a labloom
before session 45 did (``LABLOOM_PARAMETER_BYTES`` raised while it ran). Each tree in a fresh
process with its own SQLite store, trees alternating, best of ``--repeat``; each read once
warm (the run just written) in that process.

    python3 benchmarks/run_actions.py --src /work/main/src src -n 20000 --ints 10000000
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[1] / "src"


def child(n: int, ints: int) -> None:
    from labloom import ThreadExecutor, flow, task
    from labloom.export.retry import replay_refusal
    from labloom.server_extension.deleting import delete_one
    from labloom.server_extension.queries import StoreAccess, exact_run
    from labloom.store import open_store

    @task
    def noop(i: int) -> int:
        if i == 7:
            raise ValueError("one child fails, so the run may be retried")
        return i

    @flow(executor=ThreadExecutor(4))
    def wide(xs: list[int], n: int) -> None:
        noop.map(range(n))

    os.environ["LABLOOM_PARAMETER_BYTES"] = "1000000000"
    run = wide.run(xs=list(range(ints)), n=n)
    del os.environ["LABLOOM_PARAMETER_BYTES"]
    assert run.state.value == "Failed", run.state
    figures: dict[str, float] = {}
    with open_store() as store:
        start = time.perf_counter()
        record = _exact(exact_run, store, run.id, parameters=True)
        assert record is not None and replay_refusal(record, store.parameters_escaped(run.id)) is None
        figures["POST retry's read s"] = time.perf_counter() - start
        start = time.perf_counter()
        assert _exact(exact_run, store, run.id, parameters=False) is not None
        figures["DELETE's read s"] = time.perf_counter() - start
        access = StoreAccess(workers=1)
        try:
            start = time.perf_counter()
            assert delete_one(access, store, run.id)["deleted"]
            figures["DELETE runs/{id} s"] = time.perf_counter() - start
        finally:
            access.close()
    print(json.dumps(figures))


def _exact(exact_run: Any, store: Any, run_id: str, parameters: bool) -> Any:
    try:
        return exact_run(store, run_id, parameters=parameters)
    except TypeError:  # a tree from before session 48: one read for every action
        return exact_run(store, run_id)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", nargs="+", default=[str(SRC)])
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("--ints", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args.n, args.ints)
        return
    from big_parameter import best_of_fresh_trees  # (this folder: the script's own)

    child_args = ["-n", str(args.n), "--ints", str(args.ints)]
    for src, figures in best_of_fresh_trees(__file__, child_args, args.src, args.repeat).items():
        print(src, json.dumps(figures))


if __name__ == "__main__":
    main()
