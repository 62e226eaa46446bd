"""Writes the example notebooks from the cells below (outputs stay out of git).

Run ``python examples/make_notebooks.py`` after editing; the tests execute the .ipynb files.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent


def md(text: str) -> nbformat.NotebookNode:
    return new_markdown_cell(text.strip())


def code(text: str, tags: tuple[str, ...] = ()) -> nbformat.NotebookNode:
    cell = new_code_cell(text.strip())
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


QUICKSTART = [
    md(
        """
# labloom quickstart: your first flow in five minutes

Plain functions become **tasks**; a `%%flow` cell wires them into a **flow** and shows the
live DAG. Click a node to see its logs.
"""
    ),
    code("%load_ext labloom"),
    md("`%%tasks` turns every function the cell defines into a task (options: retries, tags...)."),
    code(
        '''
%%tasks --retries 1
import time

def square(x: int) -> int:
    print(f"squaring {x}")
    time.sleep(0.05)
    return x * x

def total(values: list[int]) -> int:
    print(f"adding {len(values)} values")
    return sum(values)
'''
    ),
    md("Outside a flow, a task is still the plain function, easy to test:"),
    code("square(7)"),
    code("numbers = list(range(12))"),
    md(
        """
`-p numbers` makes the notebook variable `numbers` the flow's parameter. The map is one node
in the DAG with a progress bar; afterwards `squares` and `result` hold plain values.
"""
    ),
    code(
        """
%%flow first -p numbers
squares = square.map(numbers)
result = total(squares)
"""
    ),
    code("result, squares[:4]"),
    md("`first` is now a `Flow`: run it again with other parameters."),
    code("first(numbers=[1, 2, 3])"),
    md("Every run of this kernel:"),
    code("%flow_runs"),
]


SWEEP = [
    md(
        """
# A hyperparameter sweep: 350 experiments on the breast-cancer data

Each experiment trains a small random forest, scores its ROC AUC on a held-out split and logs
its params and its AUC (`labloom.log_params`, `labloom.log_metrics`); the map runs on the
embedded Dask cluster (started on first use, reused by later runs; the Dask side panel's
dashboard link is in the DAG's header). The store keeps what was logged, so the results are
compared with `run.experiments()` (a DataFrame), the map node's Experiments view, the run's
tab in Lab or `labloom experiments RUN --sort auc --desc`. A concurrency limit keeps the
writers of a shared SQLite file (a table another tool reads) to one at a time.

An experiment that fails (a setting the model refuses, a worker lost) is one Failed row, not
the end of the sweep: `allow_failure` hands its error to its `save`, which writes nothing for
it, so the run completes and "Run All" goes on to the analysis of the others.
"""
    ),
    code(
        """
%load_ext labloom
import itertools
from pathlib import Path

import labloom

# What the examples write goes to labloom-output/, which git ignores.
DB = str(Path("labloom-output/sweep_results.db").resolve())
labloom.limits.set("sqlite", 1)  # one writer at a time
"""
    ),
    code(
        '''
%%tasks --tags cpu
import sqlite3

import labloom

def train(params: dict) -> dict:
    """Fit a small random forest; log its params and test AUC, and return them."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    labloom.log_params(params)  # what to compare runs by
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, random_state=params["seed"], stratify=y
    )
    model = RandomForestClassifier(
        n_estimators=8,
        max_depth=params["max_depth"],
        min_samples_leaf=params["min_samples_leaf"],
        random_state=params["seed"],
        n_jobs=1,
    ).fit(X_train, y_train)
    auc = float(roc_auc_score(y_test, model.predict_proba(X_test)[:, 1]))
    labloom.log_metrics(auc=auc)
    return {**params, "auc": auc}
'''
    ),
    code(
        '''
from pathlib import Path

import labloom

@labloom.task(tags=["sqlite"], retries=2, retry_delay=0.5)
def save(result: dict | Exception, db: str) -> int:
    """Write one experiment row; the "sqlite" limit keeps writers to one at a time. A failed
    experiment's error (see the flow's allow_failure) writes nothing."""
    if isinstance(result, Exception):
        return 0
    Path(db).parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(db, timeout=30) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS experiments"
            " (max_depth INTEGER, min_samples_leaf INTEGER, seed INTEGER, auc REAL)"
        )
        conn.execute(
            "INSERT INTO experiments VALUES (?, ?, ?, ?)",
            (result["max_depth"], result["min_samples_leaf"], result["seed"], result["auc"]),
        )
    return 1
'''
    ),
    code(
        """
depths = [1, 2, 3, 4, 5, 6, 8]
leaves = [1, 2, 4, 8, 16]
seeds = range(10)
grid = [
    {"max_depth": d, "min_samples_leaf": m, "seed": s}
    for d, m, s in itertools.product(depths, leaves, seeds)
]
Path(DB).unlink(missing_ok=True)
len(grid)
"""
    ),
    code(
        """
%%flow sweep -p grid -p DB --executor dask
# A failed experiment is allowed: its save gets its error, and `results` holds the error in
# its place, so the sweep completes and the analysis below runs on the others.
results = labloom.allow_failure(train.map(grid))
saved = save.map(results, labloom.unmapped(DB))
"""
    ),
    md(
        """
What the experiments logged, one row per experiment (the run's map index, state and
duration, then its params and AUC), best first (a failed one, without an AUC, last):
"""
    ),
    code(
        """
runs = %flow_runs sweep
run = next(iter(runs))  # the newest run of this flow in this kernel
experiments = run.experiments(sort="auc", desc=True)
best = experiments.iloc[0]
failed = int((experiments.state != "Completed").sum())
print(f"{len(experiments)} experiments ({failed} failed); best AUC {best.auc:.4f} with max_depth="
      f"{best.max_depth}, min_samples_leaf={best.min_samples_leaf}, seed={best.seed}")
experiments[["map_index", "max_depth", "min_samples_leaf", "seed", "auc", "duration"]].head()
"""
    ),
    md("Seeds apart, which settings are best? The mean and spread of the AUC over the seeds:"),
    code(
        """
by_setting = experiments.groupby(["max_depth", "min_samples_leaf"])["auc"]
by_setting.agg(["mean", "std", "min", "max", "count"]).sort_values("mean", ascending=False).head()
"""
    ),
    md("The limit held: the `save` task runs wrote one at a time, whatever the cluster's size."),
    code(
        """
spans = sorted((t.started, t.ended) for t in run.tasks if t.name.startswith("save["))
overlapping, last_end = 0, 0.0
for start, end in spans:
    overlapping += start < last_end  # began before an earlier write had ended
    last_end = max(last_end, end)
print(f"{sum(saved)} rows saved to {Path(DB).name}; writes that overlapped another: {overlapping}")
"""
    ),
]


ETL = [
    md(
        """
# A parameterized ETL: production database to data lake

A SQLite "production" database stands in for the real one; the flow creates it when it is
missing, so the exported flow runs on a fresh checkout. The flow reads a list of tables,
cleans each one and writes it to a "lake" folder as JSON lines. `tables` and `lake` are the
flow's parameters, so the same flow reruns for one table or another lake. Everything the
example writes goes under `labloom-output/`, which git ignores.

`labloom export etl.ipynb` turns this notebook into a module, `labloom run etl.ipynb --param
tables='["Orders"]'` runs it from a terminal, and `labloom schedule add etl.ipynb --cron
"0 2 * * *"` runs it nightly.
"""
    ),
    code(
        """
%load_ext labloom
from pathlib import Path

import labloom

PRODUCTION = str(Path("labloom-output/production.db").resolve())
"""
    ),
    md(
        """
The demo "production" database, made on first use. A real flow would connect to the real
database here instead.
"""
    ),
    code(
        '''
import random
import sqlite3

@labloom.task
def production_database(path: str) -> str:
    """The demo database at ``path``, created (with a fixed seed) when it is missing."""
    if Path(path).exists():
        return path
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    building = path + ".building"  # renamed when complete: readers never see half of it
    Path(building).unlink(missing_ok=True)
    with sqlite3.connect(building) as conn:
        conn.execute("CREATE TABLE Customers (Id INTEGER, Name TEXT, Country TEXT)")
        conn.execute("CREATE TABLE Orders (Id INTEGER, CustomerId INTEGER, Amount REAL)")
        conn.execute("CREATE TABLE Products (Id INTEGER, Title TEXT, Price REAL)")
        conn.executemany(
            "INSERT INTO Customers VALUES (?, ?, ?)",
            [(i, f"  customer {i} ", rng.choice(["NL", "DE", "FR", None])) for i in range(200)],
        )
        conn.executemany(
            "INSERT INTO Orders VALUES (?, ?, ?)",
            [(i, rng.randrange(200), round(rng.uniform(-5, 500), 2)) for i in range(1000)],
        )
        conn.executemany(
            "INSERT INTO Products VALUES (?, ?, ?)",
            [(i, f"product {i}", round(rng.uniform(1, 99), 2)) for i in range(50)],
        )
    conn.close()
    Path(building).replace(path)
    print(f"created the demo database {path}")
    return path
'''
    ),
    md(
        """
The flow's parameters, in a cell tagged `parameters` (as for papermill): these values are the
exported flow's defaults. A relative `lake` is taken from the folder the flow runs in.
"""
    ),
    code(
        """
tables = ["Customers", "Orders", "Products"]
lake = "labloom-output/lake"
""",
        tags=("parameters",),
    ),
    code(
        '''
%%tasks --retries 2 --retry-delay 0.2 --tags production
import json
import sqlite3
import time
from pathlib import Path

def extract(table: str, database: str) -> list[dict]:
    """Read a whole table (names come from sqlite_master, not from users)."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        conn.row_factory = sqlite3.Row
        rows = [dict(row) for row in conn.execute(f'SELECT * FROM "{table}"')]
    print(f"{table}: {len(rows)} rows")
    return rows

def transform(rows: list[dict], table: str) -> list[dict]:
    """snake_case columns, trimmed text, no negative amounts, a load timestamp."""
    clean = []
    for row in rows:
        out = {key.lower(): (value.strip() if isinstance(value, str) else value)
               for key, value in row.items()}
        if out.get("amount") is not None and out["amount"] < 0:
            continue
        out["loaded_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        clean.append(out)
    print(f"{table}: kept {len(clean)} of {len(rows)}")
    return clean

def load(rows: list[dict], table: str, lake: str) -> str:
    folder = Path(lake) / table.lower()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "part-0.jsonl"
    with path.open("w") as out:
        for row in rows:
            out.write(json.dumps(row) + "\\n")
    return str(path)
'''
    ),
    code(
        """
%%flow etl -p tables -p lake
database = production_database(PRODUCTION)
raw = extract.map(tables, labloom.unmapped(database))
clean = transform.map(raw, tables)
written = load.map(clean, tables, labloom.unmapped(lake))
"""
    ),
    code(
        """
for path in written:
    print(path, sum(1 for _ in open(path)), "rows")
"""
    ),
    md("Rerun the same flow for one table into another lake:"),
    code(
        """
again = etl(tables=["Orders"], lake="labloom-output/lake-2")
again["written"]
"""
    ),
]


def write(name: str, cells: list[nbformat.NotebookNode]) -> None:
    for number, cell in enumerate(cells, start=1):
        cell.id = f"{Path(name).stem}-{number}"  # stable: regenerating changes no ids
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.validate(nb)
    nbformat.write(nb, HERE / name)


if __name__ == "__main__":
    write("quickstart.ipynb", QUICKSTART)
    write("sweep.ipynb", SWEEP)
    write("etl.ipynb", ETL)
