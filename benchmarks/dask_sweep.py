"""The sweep: N gradient-boosting experiments on scikit-learn's breast-cancer data (3-fold
cross-validated ROC AUC), sequential vs labloom on LocalCluster(n_workers=2,
threads_per_worker=1). Prints the parallel efficiency and both best AUCs.

    python benchmarks/dask_sweep.py [--experiments 350]
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
os.environ.setdefault("LABLOOM_HOME", tempfile.mkdtemp(prefix="labloom-bench-"))

from distributed import Client, LocalCluster

from labloom import DaskExecutor, flow, task, unmapped


def grid(n: int) -> list[dict[str, float]]:
    combos = itertools.product(
        [10, 20, 30, 40, 50], [1, 2, 3], [0.05, 0.1, 0.2, 0.3], [0.6, 0.8, 1.0], [1, 3, 5, 7, 9, 11]
    )
    return [
        {"n_estimators": e, "max_depth": d, "learning_rate": lr, "subsample": s,
         "random_state": seed}
        for e, d, lr, s, seed in itertools.islice(combos, n)
    ]


def experiment(params: dict[str, float], data: tuple) -> tuple[float, dict[str, float]]:
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.model_selection import cross_val_score

    X, y = data
    model = GradientBoostingClassifier(**params)
    return float(cross_val_score(model, X, y, cv=3, scoring="roc_auc").mean()), params


experiment_task = task(experiment, name="experiment")


@task
def best(results: list[tuple[float, dict[str, float]]]) -> tuple[float, dict[str, float]]:
    return max(results, key=lambda r: r[0])


@flow(name="sweep")
def sweep(params: list[dict[str, float]], data: tuple) -> tuple[float, dict[str, float]]:
    return best(experiment_task.map(params, unmapped(data)))


def main() -> None:
    from sklearn.datasets import load_breast_cancer

    parser = argparse.ArgumentParser()
    parser.add_argument("--experiments", type=int, default=350)
    args = parser.parse_args()
    data = load_breast_cancer(return_X_y=True)
    params = grid(args.experiments)
    start = time.perf_counter()
    sequential = max((experiment(p, data) for p in params), key=lambda r: r[0])
    t_seq = time.perf_counter() - start
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0")
    client = Client(cluster)
    executor = DaskExecutor(client=client)
    sweep.run(params=params[:4], data=data, executor=executor).result()  # warm up
    start = time.perf_counter()
    ours = sweep.run(params=params, data=data, executor=executor).result()
    t_ours = time.perf_counter() - start
    workers = 2
    print(f"{len(params)} experiments ({t_seq / len(params):.2f}s each): sequential {t_seq:.1f}s, "
          f"labloom on {workers} workers {t_ours:.1f}s, parallel efficiency "
          f"{t_seq / (workers * t_ours):.2f} (target >= 0.9); best AUC sequential "
          f"{sequential[0]:.4f}, labloom {ours[0]:.4f}, same: {sequential[0] == ours[0]}")
    client.close()
    cluster.close()


if __name__ == "__main__":
    main()
