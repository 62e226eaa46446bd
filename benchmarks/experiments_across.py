"""Pages across runs (``GET experiments``, the compare tab of several runs of one flow): the
handler's function, ``server_extension.experiments.across_page``, on a fresh ``StoreAccess``:
its first page, then the next pages a scroll asks (sorted by a metric, descending, 200 rows
a page), each the median of ``--rounds``.

Fills one SQLite store with ``--runs`` runs of a flow whose ``--children`` map children each
log 3 params, 3 metrics and a 5-step curve (the local executor), then times each source tree
given (``--src``, repeat to compare) in its own fresh interpreter, one after the other.

    python3 benchmarks/experiments_across.py --src /work/main/src --src src
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

FILL = r"""
import random, sys
import labloom
from labloom import flow, task

@task(params=True)
def train(depth, seed):
    labloom.log_params(criterion="gini")
    for epoch in range(5):
        labloom.log_metric("loss", 1 / (epoch + depth + 1), step=epoch)
    labloom.log_metrics(auc=random.random(), acc=random.random(), f1=random.random())

@flow
def nightly(children):
    return train.map([i % 35 for i in range(children)], [i // 35 for i in range(children)])

for _ in range(int(sys.argv[1])):
    nightly.run(children=int(sys.argv[2]), executor="local")
"""

TIME = r"""
import json, statistics, sys, time
from labloom.server_extension.experiments import across_page
from labloom.server_extension.queries import StoreAccess
from labloom.store.reader import RunStore

runs, pages, rounds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
access = StoreAccess()
times = []
with RunStore() as store:
    for page in range(pages):
        took = []
        for _ in range(rounds if page else 1):
            started = time.perf_counter()
            answer = across_page(access, store, "nightly", None, [], runs, "auc", True, 200,
                                 page * 200)
            took.append(time.perf_counter() - started)
        times.append(statistics.median(took))
access.close()
print(json.dumps({"total": answer["total"], "times": times}))
"""

SRC = Path(__file__).resolve().parents[1] / "src"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--children", type=int, default=350)
    parser.add_argument("--pages", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--src", type=Path, action="append")
    args = parser.parse_args()
    trees = [tree.resolve() for tree in args.src or [SRC]]
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, LABLOOM_HOME=home, LABLOOM_PROGRESS="0")
        subprocess.run([sys.executable, "-c", FILL, str(args.runs), str(args.children)],
                       env=dict(env, PYTHONPATH=str(trees[0])), check=True,
                       capture_output=True)
        print(f"{args.runs} runs of {args.children} children; a page of 200 rows sorted by "
              "auc, descending: the first page on a fresh StoreAccess, then pages 2.. (median "
              f"of {args.rounds})")
        for tree in trees:
            out = subprocess.run(
                [sys.executable, "-c", TIME, str(args.runs), str(args.pages), str(args.rounds)],
                env=dict(env, PYTHONPATH=str(tree)), check=True, capture_output=True, text=True)
            result = json.loads(out.stdout.splitlines()[-1])
            times = result["times"]
            print(f"{tree}: {result['total']:,} rows; first {times[0]:.3f} s, next "
                  + " ".join(f"{t:.3f}" for t in times[1:])
                  + f" s (median {statistics.median(times[1:]):.3f})")


if __name__ == "__main__":
    main()
