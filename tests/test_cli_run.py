"""`labloom run` and `labloom export` through the real command line."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from cli_helpers import labloom, start_labloom, stop, write

FLOWS = """
    from labloom import flow, task

    @task
    def add(x, y):
        return x + y

    @task
    def boom(x):
        raise ValueError(f"patient {x} is bad data")

    @flow
    def adder(a: int, b: int = 2, fail: bool = False, label: str = "x"):
        s = add(a, b)
        if fail:
            boom(s)
        return s
"""


def test_run_with_parameters(tmp_path: Path) -> None:
    write(tmp_path / "flows.py", FLOWS)
    out = labloom(tmp_path, "run", "flows.py:adder", "--param", "a=40", "-p", "b=2",
                  "-p", "label=hello world", "--executor", "local")
    assert out.returncode == 0, out.stderr
    assert "Completed" in out.stderr  # progress goes to stderr: stdout stays pipeable
    # the flow is the only one in the file: its name may be left out
    assert labloom(tmp_path, "run", str(tmp_path / "flows.py"), "-p", "a=1").returncode == 0


def test_json_values_and_report(tmp_path: Path) -> None:
    write(tmp_path / "flows.py", """
        from labloom import flow, task

        @task
        def describe(v):
            return type(v).__name__

        @flow
        def kinds(n, items, word, flag):
            return [describe(n), describe(items), describe(word), describe(flag)]
    """)
    report = tmp_path / "report.json"
    out = labloom(tmp_path, "run", "flows.py:kinds", "-p", "n=3", "-p", "items=[1, 2]",
                  "-p", "word=plain", "-p", "flag=false", "--report", str(report))
    assert out.returncode == 0, out.stderr
    data = json.loads(report.read_text())
    assert data["state"] == "Completed" and data["flow"] == "kinds" and data["failed_tasks"] == []


def test_failed_run_exits_one(tmp_path: Path) -> None:
    write(tmp_path / "flows.py", FLOWS)
    report = tmp_path / "report.json"
    out = labloom(tmp_path, "run", "flows.py:adder", "-p", "a=1", "-p", "fail=true",
                  "--report", str(report))
    assert out.returncode == 1
    assert "Failed" in out.stderr
    data = json.loads(report.read_text())
    assert data["failed_tasks"] == [["boom", "ValueError"]]
    assert "patient" not in data["error"]  # exception messages can hold data


def test_unknown_and_missing_parameters(tmp_path: Path) -> None:
    write(tmp_path / "flows.py", FLOWS)
    out = labloom(tmp_path, "run", "flows.py:adder", "-p", "a=1", "-p", "colour=red")
    assert out.returncode == 2
    assert "unknown parameter(s) colour" in out.stderr
    assert "a (required), b=2, fail=False, label='x'" in out.stderr
    assert "Traceback" not in out.stderr
    out = labloom(tmp_path, "run", "flows.py:adder")
    assert out.returncode == 2 and "missing parameter(s) a" in out.stderr
    out = labloom(tmp_path, "run", "flows.py:adder", "-p", "a")
    assert out.returncode == 2 and "NAME=VALUE" in out.stderr


def test_bad_targets(tmp_path: Path) -> None:
    write(tmp_path / "flows.py", FLOWS)
    out = labloom(tmp_path, "run", "missing.py:adder")
    assert out.returncode == 2 and "no such file" in out.stderr
    out = labloom(tmp_path, "run", "flows.py:nope")
    assert out.returncode == 2 and "no flow 'nope'; its flows are adder" in out.stderr
    out = labloom(tmp_path, "run", "flows.py:adder", "-p", "a=1", "--executor", "spark")
    assert out.returncode == 2 and "unknown executor 'spark'" in out.stderr
    write(tmp_path / "two.py", FLOWS + "\n    other = adder.__class__(adder.fn, name='other')\n")
    out = labloom(tmp_path, "run", "two.py")
    assert out.returncode == 2 and "name one" in out.stderr
    write(tmp_path / "broken.py", "import no_such_module_here\n")
    out = labloom(tmp_path, "run", "broken.py")
    assert out.returncode == 2 and "ModuleNotFoundError" in out.stderr


def test_sigterm_cancels_the_run(tmp_path: Path) -> None:
    write(tmp_path / "slow.py", """
        import time
        from labloom import flow, task

        @task
        def nap(s, mark):
            open(mark, "w").close()
            time.sleep(s)

        @flow
        def slow(mark: str, s: float = 60):
            nap(s, mark)
    """)
    report = tmp_path / "report.json"
    mark = tmp_path / "started"
    proc = start_labloom(tmp_path, "run", str(tmp_path / "slow.py"), "-p", f"mark={mark}",
                         "--report", str(report))
    try:
        deadline = time.monotonic() + 30
        while not mark.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert mark.exists()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    finally:
        stop(proc)
    assert proc.returncode == 130
    assert json.loads(report.read_text())["state"] == "Cancelled"


def _notebook(path: Path) -> Path:
    cells = [
        new_code_cell("%load_ext labloom"),
        new_code_cell("%%tasks\ndef double(x):\n    return 2 * x"),
        new_code_cell("n = 4"),
        new_code_cell("%%flow twice -p n\nresult = double(n)"),
        new_code_cell("result"),
    ]
    nbformat.write(new_notebook(cells=cells), str(path))
    return path


def test_run_a_notebook(tmp_path: Path) -> None:
    _notebook(tmp_path / "nb.ipynb")
    out = labloom(tmp_path, "run", "nb.ipynb", "-p", "n=5")
    assert out.returncode == 0, out.stderr
    assert "Completed" in out.stderr  # progress goes to stderr: stdout stays pipeable
    out = labloom(tmp_path, "run", "nb.ipynb:twice", "-p", "m=5")
    assert out.returncode == 2 and "unknown parameter(s) m" in out.stderr


def test_export_command(tmp_path: Path) -> None:
    _notebook(tmp_path / "nb.ipynb")
    out = labloom(tmp_path, "export", "nb.ipynb", "-o", "flows/nb_flows.py")
    assert out.returncode == 0, out.stderr
    assert "wrote flows/nb_flows.py" in out.stdout
    assert "left out" in out.stdout
    assert (tmp_path / "flows" / "nb_flows.py").is_file()
    out = labloom(tmp_path, "export", "nb.ipynb", "-o", "j.py", "--json")
    data = json.loads(out.stdout)
    assert [f["name"] for f in data["flows"]] == ["twice"] and data["left_out"]
    run = labloom(tmp_path, "run", "flows/nb_flows.py:twice")
    assert run.returncode == 0, run.stderr
    missing = labloom(tmp_path, "export", "none.ipynb")
    assert missing.returncode == 2 and "no such notebook" in missing.stderr
