"""The DAG drawn as a static SVG in the HTML summary: what an exported notebook and a front end
without labloom's Lab extension show of a run, from the payload the live widget draws."""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from labloom.core.bidi import BIDI
from labloom.core.states import State
from labloom.notebook.widget import widget_for
from labloom.notebook.widget.drawing import dag_svg
from labloom.notebook.widget.palette import light_marks
from widget_helpers import FakeRun, ManualClock, map_events, node, small_flow, state, task_run

SVG = "{http://www.w3.org/2000/svg}"


def drawing_of(html: str) -> ET.Element:
    [svg] = re.findall(r'<svg class="labloom-dag-static".*?</svg>', html, re.DOTALL)
    return ET.fromstring(svg)  # well-formed XML: an SVG any page (or file) can hold


def test_the_summary_draws_each_node_in_its_state_and_each_edge() -> None:
    run, clock = FakeRun(), ManualClock()
    run.emit(*small_flow())
    widget = widget_for(run, clock=clock, schedule=clock.schedule, layout_engine="builtin")
    data, _metadata = widget._repr_mimebundle_()
    widget.close()
    svg = drawing_of(data["text/html"])
    nodes = {g.get("data-node-id"): g for g in svg.iter(f"{SVG}g")}
    assert list(nodes) == ["n-load", "n-train", "n-best"]
    assert [g.get("data-state") for g in nodes.values()] == ["Completed", "Running", "Pending"]
    marks = light_marks()
    for g in nodes.values():
        rect = g.find(f"{SVG}rect")
        assert rect is not None and rect.get("stroke") == marks[State(g.get("data-state"))]
    texts = [[t.text for t in g.iter(f"{SVG}text")] for g in nodes.values()]
    assert texts == [["load", "Completed"], ["train", "2/3 · Running"], ["best", "Pending"]]
    assert len(list(svg.iter(f"{SVG}path"))) == 2  # load -> train -> best
    assert len(list(svg.iter(f"{SVG}polygon"))) == 2  # their arrow heads
    # The drawing sits above the table, in one output.
    assert data["text/html"].index("<svg") < data["text/html"].index("<table>")


def test_names_are_escaped_and_clipped_as_the_live_widget_clips_them() -> None:
    run = FakeRun()
    run.emit(*small_flow()[:2], *map_events("n-x", "<script>alert(1)</script>" * 2, 2))
    widget = widget_for(run, layout_engine="builtin")
    html = widget.summary_html()
    widget.close()
    assert "<script>" not in html
    [g] = drawing_of(html).iter(f"{SVG}g")
    title, name = g.find(f"{SVG}title"), g.find(f"{SVG}text")
    assert title is not None and title.text == "<script>alert(1)</script>" * 2
    assert name is not None and name.text == "<script>alert(1)</scr…"


def test_bidirectional_controls_are_shown_escaped_as_the_live_widget_shows_them() -> None:
    """"Trojan Source": a name holding U+202E reads reversed from there on (a state spoofed,
    "total: \u202e0001" read as 1000). The summary and its drawing show the escape, as
    js/src/dag.js (js/src/bidi.js) and the CLI do."""
    created, *events = small_flow()
    run = FakeRun()
    run.emit(dataclasses.replace(created, flow_name="odd\u202e-name"), *events,
             node("n-evil", "save\u2066detelpmoC", upstream=("n-best",)),
             task_run("t-evil", "n-evil", "save\u2066detelpmoC"))
    widget = widget_for(run, layout_engine="builtin")
    html = widget.summary_html()
    widget.close()
    assert not re.search(f"[{BIDI}]", html), "a bidirectional control reached the page"
    assert "<strong>odd\\u202e-name</strong>" in html
    assert "<td>save\\u2066detelpmoC</td>" in html
    g = {g.get("data-node-id"): g for g in drawing_of(html).iter(f"{SVG}g")}["n-evil"]
    title, name = g.find(f"{SVG}title"), g.find(f"{SVG}text")
    assert title is not None and title.text == "save\\u2066detelpmoC"
    assert name is not None and name.text == "save\\u2066detelpmoC"


def test_python_escapes_the_bidirectional_controls_the_browser_escapes() -> None:
    js = (Path(__file__).resolve().parents[1] / "js" / "src" / "bidi.js").read_text()
    [chars] = re.findall(r"const BIDI = /\[(.*?)\]/g;", js)
    assert chars.encode().decode("unicode_escape") == BIDI


def test_nothing_is_drawn_before_a_layout() -> None:
    assert dag_svg({}, {}) == ""
    assert dag_svg({"nodes": [], "edges": []}, {}) == ""


def test_a_map_that_ended_with_some_children_failed_counts_them() -> None:
    """Its red box said "3/3 · Failed", read as all three failed, when one of three had:
    the live widget's line (dag.js) and this one say "3/3 · 1 failed"."""
    events = small_flow()
    run = FakeRun()
    run.emit(*events[:-2], state("n-train-1", State.COMPLETED))
    widget = widget_for(run, layout_engine="builtin")
    html = widget.summary_html()
    widget.close()
    nodes = {g.get("data-node-id"): g for g in drawing_of(html).iter(f"{SVG}g")}
    assert nodes["n-train"].get("data-state") == "Failed"
    assert [t.text for t in nodes["n-train"].iter(f"{SVG}text")] == ["train", "3/3 · 1 failed"]
