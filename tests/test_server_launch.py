"""Launching a flow with parameters from the Flows panel (``flows``, ``flows/params``,
``flows/run``), on a real Jupyter server, the real CLI in subprocesses and a real SQLite store."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

import test_server_api as api
from cli_helpers import labloom, write

pytest_plugins = ["pytest_jupyter.jupyter_server"]

SECRET = "hunter2-lab-launch-secret"
FLOW_FILE = '''
from typing import Literal, Optional
from labloom import flow, task, Secret

@task
def size(rows: list, n: int, label: str, token) -> str:
    return f"{label}:{n}:{len(rows)}:{'token' if token else 'none'}"

@flow(executor="local")
def tables(n: int, label: str = "daily", mode: Literal["fast", "full"] = "fast",
           rows: list[int] = [1, 2], token: Optional[Secret] = None, ratio: float = 0.5,
           dry: bool = False):
    return size(rows, n, label, token)
'''


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {"labloom": True},
                          "allow_unauthenticated_access": False}}


@pytest.fixture(autouse=True)
def child_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        filter(None, [str(api.SRC), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("LABLOOM_PROGRESS", "0")


async def launch(jp_fetch: Any, body: Any) -> tuple[int, Any]:
    try:
        response = await jp_fetch("labloom", "api", "flows", "run", method="POST",
                                  body=json.dumps(body).encode())
    except HTTPClientError as exc:
        assert exc.response is not None
        return exc.code, json.loads(exc.response.body)
    return response.code, json.loads(response.body)


async def test_launch_a_recorded_flow_with_checked_parameters(
    jp_fetch: Any, labloom_home: Path, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    write(work / "etl.py", FLOW_FILE)
    first = labloom(labloom_home, "run", f"{work / 'etl.py'}:tables", "-p", "n=1", cwd=work)
    assert first.returncode == 0, first.stderr
    added = labloom(labloom_home, "schedule", "add", f"{work / 'etl.py'}:tables", "-p", "n=7",
                    "--every", "1h", "--name", "nightly", cwd=work)
    assert added.returncode == 0, added.stderr

    flows = (await api.get(jp_fetch, "flows"))["flows"]
    target = f"{work.resolve() / 'etl.py'}:tables"
    # The schedule's flow and the recorded run's are one flow: listed once, as the schedule.
    assert [(f["target"], f["flow"], f["schedule"]) for f in flows] == [
        (target, "tables", "nightly")]

    form = await api.get(jp_fetch, "flows", "params", target=target)
    fields = {f["name"]: f for f in form["params"]}
    assert form["flow"] == "tables" and list(fields) == [
        "n", "label", "mode", "rows", "token", "ratio", "dry"]
    assert fields["n"] == {"name": "n", "kind": "int", "type": "int", "required": True,
                           "optional": False, "default": None}
    assert fields["label"]["default"] == "daily" and fields["label"]["kind"] == "str"
    assert fields["mode"]["kind"] == "choice" and fields["mode"]["choices"] == ["fast", "full"]
    assert fields["rows"]["kind"] == "json" and fields["rows"]["default"] == "[1, 2]"
    assert fields["token"]["kind"] == "secret" and fields["token"]["optional"] is True
    assert (fields["ratio"]["kind"], fields["dry"]["kind"]) == ("float", "bool")
    scheduled = await api.get(jp_fetch, "flows", "params", schedule="nightly")
    assert {f["name"]: f["default"] for f in scheduled["params"]}["n"] == "7"

    # Bad values are refused by the CLI's own rules, with its message; no run is made.
    for params, says in [
        ({"n": "abc"}, "takes n: int, and 'abc' is not one (e.g. 3)"),
        # the example in the form's words: the field's value, not a shell's -p 'rows=[1, 2]'
        ({"n": "2", "rows": "x"}, "takes rows: list[int], and 'x' is not one (e.g. [1, 2])"),
        ({"n": "2", "mode": "slow"}, "mode"),
        ({"label": "x"}, "missing parameter(s) n"),
        ({"n": "2", "bogus": "1"}, "unknown parameter(s) bogus"),
    ]:
        code, answer = await launch(jp_fetch, {"target": target, "params": params})
        assert code == 400 and says in answer["message"], (params, answer)
    assert len((await api.get(jp_fetch, "runs"))["runs"]) == 1
    for body, code_wanted, says in [
        ({"target": str(work / "other.py")}, 404, "no flow"),
        ({"schedule": "nope"}, 404, "no such schedule"),
        ({"target": target, "params": ["n=1"]}, 400, "params must be an object"),
        ({}, 400, "give the flow to run"),
    ]:
        code, answer = await launch(jp_fetch, body)
        assert code == code_wanted and says in answer["message"], (body, answer)

    code, answer = await launch(jp_fetch, {"target": target, "params": {
        "n": "3", "label": "2024", "rows": "[5, 6, 7]", "token": SECRET, "dry": True}})
    assert code == 202, answer
    # In the store when the answer comes: the panel shows it at once.
    shown = await api.get(jp_fetch, "runs", answer["run_id"])
    assert shown["origin"] == "lab"

    async def ended() -> Any:
        run = await api.get(jp_fetch, "runs", answer["run_id"])
        return run["ended"] and run

    run = await api.until(ended)
    assert run["state"] == "Completed", run
    params = run["parameters"]
    assert params["n"] == 3 and params["label"] == "2024" and params["rows"] == [5, 6, 7]
    assert params["token"] == "***" and params["dry"] is True
    logs = "".join(p.read_text() for p in (labloom_home / "logs").glob("lab-*.log"))
    assert SECRET not in logs and SECRET not in json.dumps(run)

    code, answer = await launch(jp_fetch, {"schedule": "nightly", "params": {"n": "4"}})
    assert code == 202, answer
    run = await api.until(ended)
    assert run["origin"] == "lab" and run["parameters"]["n"] == 4


async def test_a_notebook_flows_parameters_are_typed_in_the_form_and_checked(
    jp_fetch: Any, labloom_home: Path, tmp_path: Path
) -> None:
    # Before, an exported notebook's parameters had no types: "Run with..." tables=Orders for a
    # list default started a run whose flow body failed on the string.
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    work = tmp_path / "work"
    work.mkdir()
    cells = ["from labloom import task", 'tables = ["Orders"]',
             "@task\ndef count(t):\n    return len(t)", "%%flow etl -p tables\nn = count(tables)"]
    nbformat.write(new_notebook(cells=[new_code_cell(c) for c in cells]), work / "orders.ipynb")
    added = labloom(labloom_home, "schedule", "add", "orders.ipynb:etl", "--every", "1d",
                    "--executor", "local", cwd=work)
    assert added.returncode == 0, added.stderr

    form = await api.get(jp_fetch, "flows", "params", schedule="etl")
    (field,) = form["params"]
    assert (field["name"], field["type"], field["kind"], field["default"]) == (
        "tables", "list", "json", '["Orders"]')
    code, answer = await launch(jp_fetch, {"schedule": "etl", "params": {"tables": "Orders"}})
    assert code == 400, answer
    assert answer["message"] == (
        """tables=Orders: flow 'etl' takes tables: list, and 'Orders' is not one """
        """(e.g. ["Orders"])""")
    assert (await api.get(jp_fetch, "runs"))["runs"] == []


async def test_a_bad_launch_wait_answers_500_naming_the_fix_and_starts_nothing(
    jp_fetch: Any, labloom_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """LABLOOM_LAUNCH_WAIT is read at each launch (flows/params, flows/run), before any process
    starts: through a real Jupyter server, a bad value answers 500 with the line naming the
    fix, and the extension still serves everything else. Session 54 tested only the reader."""
    work = tmp_path / "work"
    write(work / "etl.py", FLOW_FILE)
    first = labloom(labloom_home, "run", f"{work / 'etl.py'}:tables", "-p", "n=1", cwd=work)
    assert first.returncode == 0, first.stderr  # a flow the panel may launch
    target = f"{work.resolve() / 'etl.py'}:tables"
    monkeypatch.setenv("LABLOOM_LAUNCH_WAIT", "a minute")
    said = ("[labloom] LABLOOM_LAUNCH_WAIT must be a number of seconds above 0 (how long a "
            "launch waits for the flow's process), got 'a minute': set it to one, or unset it "
            "for the default (60)")
    code, answer = await launch(jp_fetch, {"target": target, "params": {"n": "1"}})
    assert code == 500 and answer["message"] == said, answer
    with pytest.raises(HTTPClientError) as form:
        await jp_fetch("labloom", "api", "flows", "params", params={"target": target})
    assert form.value.code == 500 and form.value.response is not None
    assert json.loads(form.value.response.body)["message"] == said
    assert len((await api.get(jp_fetch, "runs"))["runs"]) == 1  # nothing was launched
    monkeypatch.setenv("LABLOOM_LAUNCH_WAIT", "90")  # mended: launches again, no restart
    code, answer = await launch(jp_fetch, {"target": target, "params": {"n": "1"}})
    assert code == 202, answer

    async def ended() -> Any:
        run = await api.get(jp_fetch, "runs", answer["run_id"])
        return run["ended"] and run

    assert (await api.until(ended))["state"] == "Completed"
