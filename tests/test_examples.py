"""The example notebooks run top to bottom in a real kernel (nbclient), as in CI."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def execute(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
            edit: Callable[[Any], None] | None = None) -> Any:
    # The kernel inherits this environment: labloom from this checkout, state in tmp.
    path = [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(path))
    monkeypatch.setenv("LABLOOM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    shutil.copy(EXAMPLES / name, tmp_path / name)
    nb = nbformat.read(tmp_path / name, as_version=4)
    if edit is not None:
        edit(nb)  # as a user would change it before "Run All"
    client = NotebookClient(
        nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    return nb


def outputs(nb: Any) -> str:
    text = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text.append(out.get("text", ""))
            text.append(str(out.get("data", {}).get("text/plain", "")))
    return "\n".join(text)


def test_notebooks_are_committed_without_outputs() -> None:
    for path in EXAMPLES.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, path.name


def test_quickstart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nb = execute("quickstart.ipynb", tmp_path, monkeypatch)
    text = outputs(nb)
    assert "(506, [0, 1, 4, 9])" in text  # sum of squares below 12
    assert "{'squares': [1, 4, 9], 'result': 14}" in text
    flow_cell = next(c for c in nb.cells if c.source.startswith("%%flow first"))
    html = "".join(o.get("data", {}).get("text/html", "") for o in flow_cell.outputs)
    assert "Completed" in html  # the saved widget output is the final summary


def written_outside_the_output_folder(tmp_path: Path, notebook: str) -> list[str]:
    """What running the notebook left beside it, other than labloom-output/ (git-ignored)."""
    ignored = subprocess.run(["git", "check-ignore", "-q", "examples/labloom-output/x"],
                             cwd=ROOT, timeout=30)
    assert ignored.returncode == 0, "labloom-output/ must be ignored by git"
    return sorted(
        str(p.relative_to(tmp_path)) for p in tmp_path.iterdir()
        if p.name not in (notebook, "home", "labloom-output")
    )


def test_sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nb = execute("sweep.ipynb", tmp_path, monkeypatch)
    text = outputs(nb)
    assert written_outside_the_output_folder(tmp_path, "sweep.ipynb") == []
    with sqlite3.connect(tmp_path / "labloom-output" / "sweep_results.db") as conn:
        (rows, best_auc) = conn.execute("SELECT COUNT(*), MAX(auc) FROM experiments").fetchone()
    assert rows == 350
    # The analysis is the run's logged experiments (a DataFrame), and agrees with the table.
    assert f"350 experiments (0 failed); best AUC {best_auc:.4f} with max_depth=" in text
    assert "max_depth  min_samples_leaf" in text  # the table of the best, then by setting
    assert "350 rows saved to sweep_results.db; writes that overlapped another: 0" in text


def test_sweep_analyses_what_succeeded_when_an_experiment_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # One failed experiment (a setting the model refuses) failed the %%flow cell, and "Run
    # All" stopped there: none of the analysis ran on the experiments that succeeded.
    def one_bad_setting(nb: Any) -> None:
        cell = next(c for c in nb.cells if c.source.startswith("depths = "))
        unlink = "Path(DB).unlink(missing_ok=True)"
        assert unlink in cell.source
        cell.source = cell.source.replace(unlink, "grid = grid[:20] + [{'max_depth': 0, "
                                          "'min_samples_leaf': 1, 'seed': 0}]\n" + unlink)

    nb = execute("sweep.ipynb", tmp_path, monkeypatch, edit=one_bad_setting)
    text = outputs(nb)
    assert "21 experiments (1 failed); best AUC" in text
    assert "20 rows saved to sweep_results.db; writes that overlapped another: 0" in text
    with sqlite3.connect(tmp_path / "labloom-output" / "sweep_results.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM experiments").fetchone() == (20,)


def test_etl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nb = execute("etl.ipynb", tmp_path, monkeypatch)
    assert written_outside_the_output_folder(tmp_path, "etl.ipynb") == []
    lake = tmp_path / "labloom-output" / "lake"
    assert sorted(p.name for p in lake.iterdir()) == ["customers", "orders", "products"]
    customers = (lake / "customers" / "part-0.jsonl").read_text().splitlines()
    assert len(customers) == 200 and '"name": "customer 0"' in customers[0]
    assert (tmp_path / "labloom-output" / "lake-2" / "orders" / "part-0.jsonl").exists()
    assert not (tmp_path / "labloom-output" / "lake-2" / "customers").exists()
    assert "rows" in outputs(nb)


def test_sweep_script_as_its_docstring_says(tmp_path: Path) -> None:
    # `labloom run examples/sweep.py:sweep`, then `labloom experiments RUN --sort auc --desc
    # --top 10`: the best settings from the store are those the flow's `best` task chose.
    from store_helpers import cli

    home = tmp_path / "home"
    ran = cli(home, "run", f"{EXAMPLES / 'sweep.py'}:sweep", "--param", "size=12")
    assert ran.returncode == 0, ran.stderr
    [run] = json.loads(cli(home, "runs", "--json").stdout)
    shown = cli(home, "experiments", run["id"], "--sort", "auc", "--desc", "--top", "10",
                "--json")
    assert shown.returncode == 0, shown.stderr
    answer = json.loads(shown.stdout)
    assert answer["total"] == 12 and len(answer["rows"]) == 10
    top = answer["rows"][0]
    assert set(top["params"]) == {"learning_rate", "max_depth", "n_estimators"}
    aucs = [row["metrics"]["auc"] for row in answer["rows"]]
    assert aucs == sorted(aucs, reverse=True)
    best = {**top["params"], "auc": top["metrics"]["auc"]}
    assert f"best of 12 experiments: AUC {best['auc']:.4f} with {best}" in ran.stdout + ran.stderr


def test_sweep_script_picks_the_best_when_an_experiment_fails(tmp_path: Path) -> None:
    # As the notebook does (allow_failure): one experiment of the README's first command that
    # fails (a setting the model refuses) is one Failed row, and the job still picks the best
    # of the others and exits 0. It exited 1, with no best, where the notebook went on.
    from store_helpers import cli

    script = (EXAMPLES / "sweep.py").read_text()
    grid = "make_grid()[:size]"
    assert grid in script
    bad = "{'learning_rate': 0.1, 'max_depth': 0, 'n_estimators': 10}"
    (tmp_path / "sweep.py").write_text(script.replace(grid, f"{grid} + [{bad}]"))
    home = tmp_path / "home"
    ran = cli(home, "run", f"{tmp_path / 'sweep.py'}:sweep", "--param", "size=6")
    assert ran.returncode == 0, ran.stderr
    said = ran.stdout + ran.stderr
    assert "best of 6 experiments (1 failed): AUC " in said, said
    [run] = json.loads(cli(home, "runs", "--json").stdout)
    assert run["state"] == "Completed"
    shown = json.loads(cli(home, "show", run["id"], "--json").stdout)
    states = sorted(tr["state"] for tr in shown["task_runs"] if tr["task_name"] == "evaluate")
    assert states == ["Completed"] * 6 + ["Failed"], states
