"""What the cell's Experiments view costs the kernel for each page it asks of a big run
(session 48): a map of ``-n`` children logging a param and a metric, ended, its widget's view
(``RunView``) asked the first page (1,000 rows, as the view asks first) and then ``--pages``
pages of 200 rows one after another, as a scroll asks them, for the view's own order
(``index_order``), a metric's (``score``) and a filter. Before session 48's lead change each
question copied, filtered and sorted every row; now the order of the first is kept for the
next ones while no event arrives. Each tree in a fresh process, trees alternating, best of
``--repeat``; milliseconds, the first page's and the median of the next ones'.

    python3 benchmarks/cell_pages.py --src /tmp/base48/src src -n 100000

``--live`` (session 49): a run still going. One real run of ``-n`` + ``--batches`` x
``--batch`` children is recorded (its events); each tree's view is handed its first ``-n``
rows' events, then ``--batch`` more rows' at a time, and after each batch reloads as the
cell's view does while the run is live: its first page (1,000 rows) and its best row (by
``score``, highest: the view's default), one reload per question kind below. Before session
49 each reload copied, filtered and sorted every row; now the orders kept take the rows
touched. Milliseconds: the first reload (fresh process: the orders made), the median of the
next ones (warm), and the median time to fold a batch into the view (what each event costs
the kernel's thread of events). With ``--memory``, instead: the megabytes the first reload
keeps (the orders) and its peak (tracemalloc).

    python3 benchmarks/cell_pages.py --live --src /tmp/base49/src src -n 100000
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[1] / "src"
ORDERS = {"index_order": {"sort": "index_order"}, "by score": {"sort": "score", "desc": True},
          "filtered": {"sort": "score", "filter": "group=1"}}


def scored_run(n: int) -> Any:
    """A real run of a map of ``n`` children, each logging a param and a metric."""
    from labloom import flow, log_metrics, log_params, task

    @task
    def scored(i: int) -> None:
        log_params(group=i % 3)
        log_metrics(score=(i * 7919) % 1000)

    @flow(executor="local")
    def scored_map(n: int) -> None:
        scored.map(range(n))

    return scored_map.run(n=n)


def child(n: int, pages: int) -> None:
    from labloom.notebook.widget.view import RunView

    run = scored_run(n)
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


# A live view's reload: its first page, then its best row unless the page is sorted by it.
RELOADS = {"index_order": [{"sort": "index_order"}, {"sort": "score", "desc": True, "limit": 1}],
           "by score": [{"sort": "score", "desc": True}],
           "filtered": [{"sort": "index_order", "filter": "group=1"},
                        {"sort": "score", "desc": True, "limit": 1, "filter": "group=1"}]}


def record(n: int, path: str) -> None:
    """One real run of ``n`` children, its events pickled to ``path``."""
    import pickle

    events: list[Any] = []
    scored_run(n).subscribe(events.extend, replay=True)
    with open(path, "wb") as out:
        pickle.dump(events, out)


def live(path: str, n: int, batch: int) -> None:
    import pickle

    from labloom.core.events import (
        EventBus,
        ExperimentCalls,
        ExperimentValues,
        RunFinished,
        RunStateChanged,
    )
    from labloom.notebook.widget.view import RunView

    with open(path, "rb") as read:
        recorded = [e for e in pickle.load(read)
                    if not isinstance(e, (RunFinished, RunStateChanged))]  # it is still going
    cuts: list[int] = []  # where each batch of rows ends
    logged: set[str] = set()
    for at, event in enumerate(recorded):
        if isinstance(event, ExperimentCalls):
            logged.update(event.task_run_ids)
        elif isinstance(event, ExperimentValues):
            logged.add(event.task_run_id)
        while len(logged) >= n + batch * len(cuts):
            cuts.append(at + 1)
    cuts.append(len(recorded))

    class Going:  # the run's handle, as the view reads it (RunHandle)
        bus = EventBus()

        def subscribe(self, callback: Any, replay: bool = True) -> Any:
            return self.bus.subscribe(callback, replay=replay)

        def cancel(self) -> None: ...

        def retry(self) -> None: ...

    going = Going()
    going.bus.emit_all(recorded[:cuts[0]])
    answers: list[dict[str, Any]] = []
    view = RunView(going, lambda _payload: None, answers.append, layout_engine="builtin",
                   schedule=lambda _delay, _fn: (lambda: None))  # no frames: pages only
    view.start()
    node = view.read(lambda g: next(v.id for v in g.nodes.values() if v.name == "scored"))
    label = sys.argv[sys.argv.index("--scenario") + 1]
    if "--memory" in sys.argv:  # what the first reload keeps, and its peak (no timing)
        import gc
        import tracemalloc

        gc.collect()
        tracemalloc.start()
        for asked in RELOADS[label]:
            view.handle({"event": "experiments", "node": node, "offset": 0, "limit": 1000,
                         **asked})
        answers.clear()
        gc.collect()
        kept, peak = tracemalloc.get_traced_memory()
        print(json.dumps({f"{label} kept MB": kept / 1e6, f"{label} peak MB": peak / 1e6}))
        return
    reloads, folds, version = [], [], None
    for start, end in itertools.pairwise(cuts):
        began = time.perf_counter()
        for i, asked in enumerate(RELOADS[label]):
            known = {"known": version} if i == 0 else {}  # the page says which it holds
            view.handle({"event": "experiments", "node": node, "offset": 0, "limit": 1000,
                         **known, **asked})
            assert "error" not in answers[-1] and not answers[-1].get("unchanged"), answers[-1]
            version = answers[-1]["version"] if i == 0 else version
        reloads.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        going.bus.emit_all(recorded[start:end])
        going.bus.flush()
        folds.append((time.perf_counter() - began) * 1000)
    view.close()
    print(json.dumps({f"{label} first ms": reloads[0],
                      f"{label} warm ms": statistics.median(reloads[1:]),
                      f"{label} fold ms": statistics.median(folds)}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", nargs="+", default=[str(SRC)])
    parser.add_argument("-n", type=int, default=100_000)
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--live", action="store_true")
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--events")
    parser.add_argument("--scenario")
    parser.add_argument("--memory", action="store_true")
    args = parser.parse_args()
    if args.child and args.live:
        live(args.events, args.n, args.batch)
        return
    if args.child:
        child(args.n, args.pages)
        return
    from big_parameter import best_of_fresh_trees  # (this folder: the script's own)

    if not args.live:
        child_args = ["-n", str(args.n), "--pages", str(args.pages)]
        for src, figures in best_of_fresh_trees(__file__, child_args, args.src,
                                                args.repeat).items():
            print(src, json.dumps({k: round(v, 1) for k, v in figures.items()}))
        return
    with tempfile.TemporaryDirectory() as home:
        events = str(Path(home) / "events.pickle")
        subprocess.run([sys.executable, "-c", f"import sys; sys.path[:0] = [{args.src[-1]!r}, "
                        f"{str(Path(__file__).parent)!r}]; import cell_pages; "
                        f"cell_pages.record({args.n + args.batches * args.batch}, {events!r})"],
                       env={**os.environ, "LABLOOM_HOME": home, "LABLOOM_PROGRESS": "0"},
                       check=True)
        figures: dict[str, dict[str, float]] = {src: {} for src in args.src}
        for label in RELOADS:
            child_args = ["--live", "--events", events, "--scenario", label, "-n", str(args.n),
                          "--batch", str(args.batch), *(["--memory"] if args.memory else [])]
            for src, got in best_of_fresh_trees(__file__, child_args, args.src,
                                                args.repeat).items():
                figures[src].update(got)
    for src, got in figures.items():
        print(src, json.dumps({k: round(v, 1) for k, v in got.items()}))
    if len(args.src) == 2:
        base, now = (figures[src] for src in args.src)
        print("base / now", json.dumps({k: round(base[k] / now[k], 1) for k in now}))


if __name__ == "__main__":
    main()
