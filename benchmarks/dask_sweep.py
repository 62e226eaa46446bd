"""The sweep: the 350 experiments of examples/sweep.py (gradient boosting on the breast-cancer
data, 3-fold cross-validated ROC AUC each), sequential vs labloom on
LocalCluster(n_workers=2, threads_per_worker=1); prints the parallel efficiency and both best
AUCs.

    python benchmarks/dask_sweep.py [--experiments 350] [--rounds 1] [--no-sequential]

Also raw Dask on the same cluster (``client.map`` of the same function + ``gather``),
alternating with labloom; prints labloom's ratio to it, and how many Dask tasks labloom's map
used (no option is set, so chunking is automatic: one per experiment is expected).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path[:0] = [os.path.join(ROOT, "src"), os.path.join(ROOT, "examples")]
os.environ.setdefault("LABLOOM_HOME", tempfile.mkdtemp(prefix="labloom-bench-"))
os.environ.setdefault("LABLOOM_PROGRESS", "0")

from distributed import Client, LocalCluster
from sweep import evaluate, load_data, make_grid, sweep  # the example itself, not a copy
from threadpoolctl import threadpool_limits

from labloom import DaskExecutor


def settle(client: Client) -> None:
    """Let the cluster forget one side before the other starts: without it the second side of
    a round paid for the first's release and collection (about 2% slower, either side)."""
    import gc

    deadline = time.monotonic() + 30
    while held := client.run_on_scheduler(_task_count):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the scheduler still holds {held} tasks 30 s after a side ended: "
                               "the next side would pay for their release")
        time.sleep(0.1)
    client.run(gc.collect)
    gc.collect()
    time.sleep(1)


def _task_count(dask_scheduler: object) -> int:
    return len(dask_scheduler.tasks)  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--experiments", type=int, default=350)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--no-sequential", action="store_true")
    args = parser.parse_args()
    grid = make_grid()[: args.experiments]
    data = load_data()  # outside a flow a task is the plain function
    # One thread for the sequential baseline, as each Dask worker has: efficiency compares
    # the same single-core work, not numpy's extra threads.
    sequential: dict[str, float] = {"auc": float("nan")}
    t_seq = float("nan")
    if not args.no_sequential:
        with threadpool_limits(1):
            start = time.perf_counter()
            sequential = max((evaluate(params, data) for params in grid), key=lambda r: r["auc"])
            t_seq = time.perf_counter() - start

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0")
    client = Client(cluster)
    executor = DaskExecutor(client=client)
    sweep.run(size=4, executor=executor).result()  # warm up: workers import scikit-learn
    settle(client)
    raws, times = [], []
    for round_ in range(args.rounds):
        # Alternate which side goes first: a round's second half may find the machine warmer
        # (or busier) than its first.
        sides = ["raw", "labloom"] if round_ % 2 == 0 else ["labloom", "raw"]
        cpu: dict[str, float] = {}
        for side in sides:
            cpu_start, start = time.process_time(), time.perf_counter()
            if side == "raw":
                remote = client.scatter(data, broadcast=True, hash=False)  # fresh keys each round
                futures = client.map(evaluate.fn, grid, data=remote, pure=False)
                raw_best = max(client.gather(futures), key=lambda r: r["auc"])
                raws.append(time.perf_counter() - start)
                del futures, remote
            else:
                run = sweep.run(size=args.experiments, executor=executor)
                ours = run.result()
                times.append(time.perf_counter() - start)
                # No option set, so chunking is automatic: say how many Dask tasks it used.
                handles = [tr.handle for tr in run.tasks if tr.task.name == "evaluate"]
                dask_tasks = len({id(h.future) for h in handles if h is not None})
                del run, handles  # a run held keeps its results on the cluster
            cpu[side] = time.process_time() - cpu_start
            settle(client)
        print(f"  round {round_ + 1} ({sides[0]} first): raw Dask {raws[-1]:.1f}s, labloom "
              f"{times[-1]:.1f}s, ratio {times[-1] / raws[-1]:.3f}; this process's CPU (the "
              f"scheduler, and labloom's engine) raw {cpu['raw']:.1f}s, labloom "
              f"{cpu['labloom']:.1f}s; labloom's {len(grid)} experiments ran as {dask_tasks} "
              "Dask tasks", flush=True)
    t_ours, t_raw = statistics.median(times), statistics.median(raws)
    # A round's two sides run back to back, so its ratio is the paired measure; the machine's
    # speed drifts between rounds by more than the difference measured.
    paired = statistics.median(ours_ / raw for ours_, raw in zip(times, raws, strict=True))
    print(f"labloom / raw Dask: median of the rounds' ratios {paired:.3f}, median labloom / "
          f"median raw {t_ours / t_raw:.3f} (target <= 1.02); best AUC raw "
          f"{raw_best['auc']:.4f}, labloom {ours['auc']:.4f}, same: {raw_best['auc'] == ours['auc']}")
    workers = 2
    if args.no_sequential:
        client.close()
        cluster.close()
        return
    print(
        f"{len(grid)} experiments ({t_seq / len(grid):.2f}s each): sequential {t_seq:.1f}s, "
        f"labloom on {workers} workers {t_ours:.1f}s, parallel efficiency "
        f"{t_seq / (workers * t_ours):.2f} (target >= 0.9); best AUC sequential "
        f"{sequential['auc']:.4f}, labloom {ours['auc']:.4f}, same: "
        f"{sequential['auc'] == ours['auc']}"
    )
    client.close()
    cluster.close()


if __name__ == "__main__":
    main()
