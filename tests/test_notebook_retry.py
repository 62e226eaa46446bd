"""A %%flow cell's run is retried in another process from the notebook it ran in: the kernel
records the notebook (Jupyter tells it through JPY_SESSION_NAME), and `labloom retry` or the
Flows panel export the flow from that file afresh."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from cli_helpers import labloom
from labloom.store import open_store


def flow_notebook(folder: Path) -> tuple[Path, Path, list[str]]:
    """A notebook whose flow fails until the file ``fixed`` exists; its cells' sources."""
    fixed = folder / "fixed"
    cells = [
        "%%tasks\nfrom pathlib import Path\n\ndef step(x):\n"
        f"    if not Path({str(fixed)!r}).exists():\n"
        "        raise RuntimeError('not fixed yet')\n    return x * 2",
        "%%flow nbflow\nout = step(3)",
    ]
    path = folder / "analysis.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell(c) for c in cells]), str(path))
    return path, fixed, cells


def run_in_kernel(ip: Any, monkeypatch: pytest.MonkeyPatch, folder: Path) -> tuple[str, Path]:
    """Run the notebook's cells in the shell as its kernel would; the failed run's id."""
    notebook, fixed, cells = flow_notebook(folder)
    monkeypatch.setenv("JPY_SESSION_NAME", str(notebook))
    for cell in cells:
        ip.run_cell(cell)
    with open_store() as store:
        [run] = store.list_runs(flow="nbflow")
    assert run.state == "Failed"
    assert run.target is not None and run.target["notebook"] == str(notebook)
    fixed.write_text("yes")
    return run.id, notebook


def test_labloom_retry_reruns_a_flow_cell_from_its_notebook(
    ip: Any, monkeypatch: pytest.MonkeyPatch, labloom_home: Path, tmp_path: Path
) -> None:
    run_id, notebook = run_in_kernel(ip, monkeypatch, tmp_path)
    done = labloom(labloom_home, "retry", run_id, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Completed" in done.stdout
    notebook.unlink()
    gone = labloom(labloom_home, "retry", run_id, cwd=tmp_path)
    assert gone.returncode == 1 and "its notebook" in gone.stderr and "is gone" in gone.stderr


def test_a_flow_cell_outside_jupyter_still_says_what_to_do(
    ip: Any, monkeypatch: pytest.MonkeyPatch, labloom_home: Path, tmp_path: Path
) -> None:
    _, _, cells = flow_notebook(tmp_path)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)  # a console: no notebook file
    for cell in cells:
        ip.run_cell(cell)
    with open_store() as store:
        [run] = store.list_runs(flow="nbflow")
    done = labloom(labloom_home, "retry", run.id, cwd=tmp_path)
    assert done.returncode == 1 and "run.retry()" in done.stderr


def test_a_retry_of_a_flow_cell_s_run_is_retried_from_its_notebook_too(
    ip: Any, monkeypatch: pytest.MonkeyPatch, labloom_home: Path, tmp_path: Path
) -> None:
    """A sweep retried that fails again is retried again (from the Flows panel, or here): the
    retry's run had recorded the temporary module its notebook was exported to, deleted as
    `labloom retry` ended, so the next Retry failed ("the flow's file
    /tmp/labloom-export-.../analysis.py is gone") and the launch form listed that file."""
    run_id, notebook = run_in_kernel(ip, monkeypatch, tmp_path)
    (tmp_path / "fixed").unlink()  # not fixed after all
    assert labloom(labloom_home, "retry", run_id, cwd=tmp_path).returncode == 1
    with open_store() as store:
        [retry] = [r for r in store.list_runs(flow="nbflow") if r.retry_of == run_id]
    assert retry.target is not None and retry.target["notebook"] == str(notebook)
    (tmp_path / "fixed").write_text("yes")
    done = labloom(labloom_home, "retry", retry.id, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
