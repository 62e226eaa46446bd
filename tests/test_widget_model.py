"""The graph model: events in, bounded JSON out."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from labloom.core.states import State
from labloom.core.states import overall_state as aggregate_state
from labloom.dag.model import MAX_LOG_LINES, ViewGraph
from widget_helpers import (
    finished,
    log,
    map_events,
    node,
    run_created,
    run_state,
    small_flow,
    state,
    task_run,
)


def build(events: list) -> ViewGraph:  # type: ignore[type-arg]
    graph = ViewGraph()
    graph.apply(events)
    return graph


def test_nodes_edges_and_aggregated_states() -> None:
    graph = build(small_flow())
    assert [(n.id, n.kind) for n in graph.nodes.values()] == [
        ("n-load", "task"),
        ("n-train", "map"),
        ("n-best", "task"),
    ]
    assert graph.edges() == [("n-load", "n-train"), ("n-train", "n-best")]
    states = graph.states_json()
    assert states["n-load"] == {"state": "Completed", "counts": {"Completed": 1}, "total": 1}
    assert states["n-train"] == {
        "state": "Running",
        "counts": {"Completed": 1, "Running": 1, "Failed": 1},
        "total": 3,
    }
    assert states["n-best"]["state"] == "Pending"


def test_header_carries_run_state_times_counts_and_dashboard() -> None:
    graph = build(small_flow())
    head = graph.header_json(now=130.0)
    assert head["flow"] == "sweep" and head["run_id"] == "run-1"
    assert head["state"] == "Running"
    assert head["elapsed"] == 30.0 and head["end"] is None
    assert head["counts"] == {"Completed": 2, "Running": 1, "Failed": 1, "Pending": 1}
    assert head["total"] == 5 and head["nodes"] == 3
    assert head["dashboard"] == "http://127.0.0.1:8787/status"
    graph.apply([finished(State.FAILED, 112.5)])
    head = graph.header_json(now=500.0)
    assert head["state"] == "Failed" and head["elapsed"] == 12.5


@pytest.mark.parametrize(
    ("link", "shown"),
    [
        ("http://127.0.0.1:8787/status", True),
        ("HTTPS://dask.example.org/status", True),
        ("/user/ada/proxy/8787/status", True),  # JupyterHub's proxy: a path on this server
        ("javascript:alert(document.cookie)", False),
        ("JavaScript:alert(1)", False),
        (" javascript:alert(1)", False),
        ("java\tscript:alert(1)", False),
        ("data:text/html,<script>alert(1)</script>", False),
        ("vbscript:msgbox(1)", False),
        ("file:///etc/passwd", False),
        ("status", False),
        (42, False),
    ],
)
def test_the_dashboard_link_is_a_web_page_or_nothing(link: object, shown: bool) -> None:
    from labloom.notebook.widget.html import summary_html

    graph = build([run_created(dashboard=link), run_state(State.RUNNING)])
    assert graph.header_json(now=130.0)["dashboard"] == (link if shown else None)
    html = summary_html(graph, now=130.0)
    assert ("Dask dashboard" in html) is shown
    assert "script:" not in html.lower() and "data:" not in html


@pytest.mark.parametrize(
    ("counts", "total", "expected"),
    [
        ({}, 0, State.PENDING),
        ({State.PENDING: 3}, 3, State.PENDING),
        ({State.PENDING: 2, State.COMPLETED: 1}, 3, State.RUNNING),
        ({State.RETRYING: 1, State.COMPLETED: 2}, 3, State.RETRYING),
        ({State.RUNNING: 1, State.FAILED: 2}, 3, State.RUNNING),
        ({State.FAILED: 1, State.UPSTREAM_FAILED: 1, State.COMPLETED: 1}, 3, State.FAILED),
        ({State.UPSTREAM_FAILED: 2}, 2, State.UPSTREAM_FAILED),
        ({State.CACHED: 2}, 2, State.CACHED),
        ({State.CACHED: 1, State.COMPLETED: 1}, 2, State.COMPLETED),
    ],
)
def test_aggregate_state(counts: dict[State, int], total: int, expected: State) -> None:
    assert aggregate_state(Counter(counts), total) is expected


def test_rerun_of_a_child_replaces_it_in_the_counts() -> None:
    graph = build(small_flow())
    graph.apply([task_run("again-2", "n-train", "train", 2), state("again-2", State.RUNNING)])
    node_state = graph.states_json()["n-train"]
    assert node_state["counts"] == {"Completed": 1, "Running": 2}
    assert node_state["total"] == 3
    # Late events about the replaced run no longer count.
    graph.apply([state("n-train-2", State.COMPLETED)])
    assert graph.states_json()["n-train"]["counts"] == {"Completed": 1, "Running": 2}


def test_changes_report_what_moved() -> None:
    graph = build(small_flow())
    changes = graph.apply([log("t-load", "more")])
    assert changes.logs == {"t-load"} and not changes.states and not changes.graph
    changes = graph.apply([state("t-best", State.RUNNING)])
    assert changes.states and changes.nodes == {"n-best"} and not changes.graph
    version = graph.graph_version
    changes = graph.apply([node("n-save", "save", upstream=("n-best",))])
    assert changes.graph and graph.graph_version == version + 1


def _front_end_json(graph: ViewGraph) -> int:
    nodes = [{"id": n.id, "name": n.name, "kind": n.kind} for n in graph.nodes.values()]
    payload = {"nodes": nodes, "edges": graph.edges(), "states": graph.states_json()}
    payload["header"] = graph.header_json(now=200.0)
    return len(json.dumps(payload))


def test_json_is_bounded_by_nodes_not_task_runs() -> None:
    def flow(width: int) -> ViewGraph:
        graph = build([run_created(), run_state(State.RUNNING), *map_events("m", "train", width)])
        graph.apply([state(f"m-{i}", State.COMPLETED) for i in range(0, width, 2)])
        graph.apply([state(f"m-{i}", State.FAILED) for i in range(1, width, 4)])
        return graph

    small, large = _front_end_json(flow(12)), _front_end_json(flow(10_000))
    # Only the digits of the counts differ.
    assert large - small < 40
    assert large < 1500
    assert flow(10_000).states_json()["m"]["counts"] == {
        "Completed": 5000,
        "Failed": 2500,
        "Pending": 2500,
    }


def test_children_are_served_in_pages() -> None:
    graph = build([run_created(), *map_events("m", "train", 10_000)])
    graph.apply([state("m-150", State.FAILED)])
    first = graph.children_page("m", 0)
    assert (first["page"], first["pages"], first["total"]) == (0, 100, 10_000)
    assert [c["index"] for c in first["children"]] == list(range(100))
    second = graph.children_page("m", 1)
    assert second["children"][50] == {"id": "m-150", "index": 150, "state": "Failed"}
    assert len(json.dumps(second)) < 6000
    assert graph.children_page("m", 10_000)["page"] == 99  # clamped to the last page
    assert graph.children_page("m", -3)["page"] == 0
    assert graph.children_page("m", 0, page_size=7)["pages"] == 1429
    assert graph.children_page("missing", 0)["children"] == []


def test_logs_keep_a_bounded_tail_and_tracebacks_stay() -> None:
    graph = build(small_flow())
    graph.apply([log("t-best", f"line {i}") for i in range(MAX_LOG_LINES + 5)])
    run = graph.task_runs["t-best"]
    assert len(run.logs) == MAX_LOG_LINES and run.logged == MAX_LOG_LINES + 5
    assert run.logs[-1][2] == f"line {MAX_LOG_LINES + 4}"
    failed = graph.task_runs["n-train-2"]
    assert failed.traceback.endswith("ValueError: bad alpha")
    assert graph.current_run("n-best") is run
    assert graph.current_run("n-train") is not None
    assert graph.current_run("nope") is None


def test_events_for_unknown_task_runs_are_ignored_and_orphans_get_a_node() -> None:
    graph = build([run_created(), state("ghost", State.RUNNING), log("ghost", "boo")])
    assert graph.task_runs == {}
    graph.apply([task_run("t", "late-node", "late")])
    assert graph.nodes["late-node"].name == "late"
    graph.apply([node("late-node", "late", "task")])
    assert len(graph.nodes) == 1


def test_empty_nodes_take_a_final_state_when_the_run_ends() -> None:
    graph = build(
        [
            run_created(),
            node("a", "load"),
            task_run("ta", "a", "load"),
            state("ta", State.FAILED),
            node("m", "train", "map", ("a",)),
            node("e", "empty", "map"),
        ]
    )
    assert graph.states_json()["m"]["state"] == "Pending"
    graph.apply([finished(State.FAILED)])
    assert graph.states_json()["m"]["state"] == "UpstreamFailed"
    assert graph.states_json()["e"]["state"] == "Completed"  # a map over nothing
    graph.apply([finished(State.CANCELLED)])
    assert graph.states_json()["e"]["state"] == "Cancelled"
