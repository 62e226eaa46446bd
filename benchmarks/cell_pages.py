"""What the cell's Experiments view costs the kernel for each page it asks of a big run
(session 48): a map of ``-n`` children logging a param and a metric, ended, its widget's view
(``RunView``) asked the first page (1,000 rows, as the view asks first) and then ``--pages``
pages of 200 rows one after another, as a scroll asks them, for the view's own order
(``index_order``), a metric's (``score``) and a filter. Before session 48's lead change each
question copied, filtered and sorted every row; now the order of the first is kept for the
next ones while no event arrives. Each tree in a fresh process, trees alternating, best of
``--repeat``; milliseconds, the first page's and the median of the next ones'.

    python3 benchmarks/cell_pages.py --src /tmp/base48/src src -n 100000
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[1] / "src"
ORDERS = {"index_order": {"sort": "index_order"}, "by score": {"sort": "score", "desc": True},
          "filtered": {"sort": "score", "filter": "group=1"}}


def child(n: int, pages: int) -> None:
    from labloom import flow, log_metrics, log_params, task
    from labloom.notebook.widget.view import RunView

    @task
    def scored(i: int) -> None:
        log_params(group=i % 3)
        log_metrics(score=(i * 7919) % 1000)

    @flow(executor="local")
    def scored_map(n: int) -> None:
        scored.map(range(n))

    run = scored_map.run(n=n)
    answers: list[dict[str, Any]] = []
    view = RunView(run, lambda _payload: None, answers.append, layout_engine="builtin")
    view.start()
    figures: dict[str, float] = {}
    try:
        node = view.read(lambda g: next(v.id for v in g.nodes.values() if v.name == "scored"))
        for label, asked in ORDERS.items():
            times = []
            for i in range(pages + 1):
                offset, limit = (0, 1000) if i == 0 else (1000 + 200 * (i - 1), 200)
                start = time.perf_counter()
                view.handle({"event": "experiments", "node": node, "offset": offset,
                             "limit": limit, **asked})
                times.append((time.perf_counter() - start) * 1000)
                assert "error" not in answers[-1], answers[-1]
            figures[f"{label} first ms"] = times[0]
            figures[f"{label} next ms"] = statistics.median(times[1:])
    finally:
        view.close()
    print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", nargs="+", default=[str(SRC)])
    parser.add_argument("-n", type=int, default=100_000)
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args.n, args.pages)
        return
    from big_parameter import best_of_fresh_trees  # (this folder: the script's own)

    child_args = ["-n", str(args.n), "--pages", str(args.pages)]
    for src, figures in best_of_fresh_trees(__file__, child_args, args.src, args.repeat).items():
        print(src, json.dumps({k: round(v, 1) for k, v in figures.items()}))


if __name__ == "__main__":
    main()
