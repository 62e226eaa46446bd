""""Trojan Source" in the notebook's other views: a task's print or a flow's name holding a
bidirectional control (U+202E) reads reversed from there on ("total: \\u202e0001 EUR" read as
"total: 1000"). The prints under a %%flow cell's DAG, the %flow_runs table and the launch form
(``Flow.launcher()``) show it escaped, as the live widget's log pane, the run summary and the
CLI do (core/bidi.py). A real IPython, and a real kernel for the prints (they reach the cell
through the kernel's output)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from kernel_helpers import kernel
from labloom.core.bidi import BIDI

PRINTS = '''%%tasks
def pay(x):
    print("total: \\u202e0001 EUR")
    return x
'''


def test_the_prints_under_the_dag_show_bidirectional_controls_escaped(tmp_path: Path) -> None:
    with kernel(tmp_path, tmp_path / "home") as k:
        k.ok("%load_ext labloom")
        k.ok(PRINTS)
        messages = k.ok("%%flow payments\npaid = pay.map(range(2))")
    tails = [m["content"]["data"] for m in messages if m["msg_type"] == "update_display_data"
             and "labloom-prints" in m["content"]["data"].get("text/html", "")]
    assert tails, [m["msg_type"] for m in messages]
    final = tails[-1]
    for shown in (final["text/plain"], final["text/html"]):
        assert not re.search(f"[{BIDI}]", shown), "a bidirectional control reached the cell"
        assert "total: \\u202e0001 EUR" in shown


def test_flow_runs_shows_a_flows_name_with_its_bidirectional_controls_escaped(ip: Any) -> None:
    result = ip.run_cell(
        "from labloom import flow, task\n"
        "@task\ndef one():\n    return 1\n"
        "@flow(name='odd\\u202e-name')\ndef odd():\n    return one()\n"
        "odd()"
    )
    assert result.success, result.error_in_exec
    table = ip.run_line_magic("flow_runs", "")
    assert any(run.flow_name == "odd\u202e-name" for run in table)  # the store keeps it as is
    for shown in (repr(table), table._repr_html_()):
        assert not re.search(f"[{BIDI}]", shown), "a bidirectional control reached the cell"
        assert "odd\\u202e-name" in shown


def test_the_launch_form_shows_a_flows_name_with_its_bidirectional_controls_escaped() -> None:
    from labloom import flow

    @flow(name="odd\u202e-name", description="pays \u202e0001 EUR")
    def odd(x: int = 1) -> int:
        return x

    form = odd.launcher()
    title = form.children[0].value
    for shown in (title, form.button.description):
        assert not re.search(f"[{BIDI}]", shown), "a bidirectional control reached the form"
        assert "odd\\u202e-name" in shown
    assert "pays \\u202e0001 EUR" in title
    form.close()
