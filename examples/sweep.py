"""A hyperparameter sweep: 350 gradient-boosting experiments on the breast-cancer data,
3-fold cross-validated ROC AUC each, mapped over an embedded Dask cluster.

    labloom run examples/sweep.py:sweep
    labloom experiments RUN_ID --sort auc --desc --top 10   # the best settings, from the store

Each experiment records its params (the grid's dict) and its AUC (``params=True,
metrics=["auc"]``); ``run.experiments()`` gives them as a DataFrame.

An experiment that fails (a setting the model refuses, a worker lost) is one Failed row, not
the end of the sweep, as in sweep.ipynb: ``allow_failure`` hands its error to ``best``, which
picks among the others, so the run completes (exit status 0) and says how many failed. Only a
sweep where every experiment failed fails.
"""

from __future__ import annotations

import itertools

from labloom import allow_failure, flow, task, unmapped


@task
def load_data() -> tuple[object, object]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    return data.data, data.target


@task(retries=1, params=True, metrics=["auc"])  # compared in `labloom experiments`
def evaluate(params: dict[str, float], data: tuple[object, object]) -> dict[str, float]:
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.model_selection import cross_val_score

    features, target = data
    model = GradientBoostingClassifier(random_state=0, **params)  # type: ignore[arg-type]
    auc = cross_val_score(model, features, target, cv=3, scoring="roc_auc").mean()
    return {**params, "auc": float(auc)}


@task
def best(results: list[dict[str, float] | BaseException]) -> dict[str, float]:
    """The best of the experiments that succeeded (a failed one's error stands in its place)."""
    done = [r for r in results if not isinstance(r, BaseException)]
    failed = len(results) - len(done)
    if not done:
        raise RuntimeError(f"all {failed} experiments failed: nothing to pick from")
    winner = max(done, key=lambda r: r["auc"])
    also = f" ({failed} failed)" if failed else ""
    print(f"best of {len(done)} experiments{also}: AUC {winner['auc']:.4f} with {winner}")
    return winner


def make_grid() -> list[dict[str, float]]:
    """350 combinations: 7 learning rates x 5 depths x 10 tree counts (a few tenths of a
    second per experiment on one core)."""
    rates = [0.01, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5]
    depths = [1, 2, 3, 4, 5]
    trees = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    return [
        {"learning_rate": r, "max_depth": d, "n_estimators": n}
        for r, d, n in itertools.product(rates, depths, trees)
    ]


@flow(executor="dask")
def sweep(size: int = 350) -> dict[str, float]:
    data = load_data()
    results = evaluate.map(make_grid()[:size], data=unmapped(data))
    return best(allow_failure(results))  # one failed experiment does not fail the sweep


if __name__ == "__main__":
    run = sweep.run()
    print(run.result())
    print(run.experiments(sort="auc", desc=True)[:10])  # the ten best, from what was logged
