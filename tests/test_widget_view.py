"""The widget's logic without Jupyter: throttled pushes, messages in, replies out."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from cli_helpers import wait_for
from labloom.core.states import State
from labloom.notebook.widget.throttle import Throttle
from labloom.notebook.widget.view import RunView
from widget_helpers import (
    FakeRun,
    ManualClock,
    finished,
    log,
    map_events,
    run_created,
    small_flow,
    state,
    task_run,
)


class Harness:
    def __init__(self, run: FakeRun, **options: Any) -> None:
        self.clock = ManualClock()
        self.pushes: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.view = RunView(
            run,
            self.pushes.append,
            self.sent.append,
            clock=self.clock,
            schedule=self.clock.schedule,
            **options,
        )
        self.view.start()

    def take(self) -> list[dict[str, Any]]:
        sent, self.sent[:] = list(self.sent), []
        return sent


@pytest.fixture
def run() -> FakeRun:
    r = FakeRun()
    r.emit(*small_flow())
    return r


def test_throttle_coalesces_requests_into_one_call_per_interval() -> None:
    clock = ManualClock()
    calls: list[float] = []
    # Time in quarter units (exact in binary floats); the interval is one unit.
    throttle = Throttle(lambda: calls.append(clock.now), 1.0, clock, clock.schedule)
    for _ in range(500):
        throttle.request()
    clock.advance(0)
    assert calls == [0.0]
    for _ in range(8):  # two requests every quarter unit, for two units
        clock.advance(0.25)
        throttle.request()
        throttle.request()
    clock.advance(5)
    # One call per unit at most: 0, 1, 2, and 3 for the requests made just after the call at 2;
    # none once the requests stop.
    assert calls == [0.0, 1.0, 2.0, 3.0]
    throttle.close()
    throttle.request()
    clock.advance(5)
    assert len(calls) == 4


def test_first_frame_carries_graph_states_and_header(run: FakeRun) -> None:
    h = Harness(run)
    assert len(h.pushes) == 1
    frame = h.pushes[0]
    assert [n["id"] for n in frame["graph"]["nodes"]] == ["n-load", "n-train", "n-best"]
    assert all({"x", "y", "w", "h"} <= n.keys() for n in frame["graph"]["nodes"])
    assert [(e["source"], e["target"]) for e in frame["graph"]["edges"]] == [
        ("n-load", "n-train"),
        ("n-train", "n-best"),
    ]
    assert frame["states"]["n-train"]["counts"] == {"Completed": 1, "Running": 1, "Failed": 1}
    assert frame["header"]["dashboard"] == "http://127.0.0.1:8787/status"


def test_bursts_of_events_become_few_pushes(run: FakeRun) -> None:
    h = Harness(run, layout_engine="builtin")
    run.emit(*map_events("n-more", "more", 1000, ("n-best",)))
    for i in range(1000):  # one delivered batch per event: far more often than ten a second
        run.emit(state(f"n-more-{i}", State.RUNNING))
    h.clock.advance(0)
    assert len(h.pushes) == 2
    assert h.pushes[1]["states"]["n-more"]["counts"] == {"Running": 1000}
    assert "graph" in h.pushes[1]  # a new node: laid out again
    for i in range(1000):
        run.emit(state(f"n-more-{i}", State.COMPLETED))
        h.clock.advance(0.001)
    h.clock.advance(1)
    # 1.0 s of events at 0.1 s per frame: ten more frames at most, the graph left alone.
    assert 3 <= len(h.pushes) <= 13
    assert all("graph" not in p for p in h.pushes[2:])
    assert h.pushes[-1]["states"]["n-more"]["state"] == "Completed"


def test_log_only_events_push_no_traits(run: FakeRun) -> None:
    h = Harness(run)
    run.emit(log("t-load", "quiet"))
    h.clock.advance(1)
    assert len(h.pushes) == 1


def test_select_task_shows_its_logs_then_tails_them(run: FakeRun) -> None:
    h = Harness(run)
    h.view.handle({"event": "select", "node": "n-load"})
    [detail] = h.take()
    assert detail["event"] == "detail" and detail["task_run"]["id"] == "t-load"
    assert [line["text"] for line in detail["lines"]] == ["loading 3 rows"]
    assert detail["traceback"] == ""
    run.emit(log("t-load", "one"), log("t-load", "two"), log("t-best", "elsewhere"))
    h.clock.advance(1)
    assert h.take() == [
        {
            "event": "log",
            "task_run": "t-load",
            "lines": [
                {"time": 101.0, "level": 20, "text": "one"},
                {"time": 101.0, "level": 20, "text": "two"},
            ],
        }
    ]
    run.emit(log("t-best", "not selected"))
    h.clock.advance(1)
    assert h.take() == []


def test_a_failure_on_the_selected_task_sends_its_traceback(run: FakeRun) -> None:
    h = Harness(run)
    h.view.handle({"event": "select", "node": "n-best"})
    h.take()
    run.emit(state("t-best", State.FAILED, tb="Traceback...\nKeyError: 'auc'", msg="KeyError"))
    h.clock.advance(1)
    [detail] = h.take()
    assert detail["task_run"]["state"] == "Failed"
    assert detail["traceback"].endswith("KeyError: 'auc'")


def test_a_task_run_completed_on_a_retry_shows_no_traceback(run: FakeRun) -> None:
    """While it waits to retry, why; once it completed, none (the failed attempt's is in
    its logs): the panel showed it red under "Completed"."""
    h = Harness(run)
    h.view.handle({"event": "select", "node": "n-best"})
    h.take()
    run.emit(state("t-best", State.RETRYING, tb="Traceback...\nKeyError: 'auc'", msg="KeyError"))
    h.clock.advance(1)
    [detail] = h.take()
    assert detail["traceback"].endswith("KeyError: 'auc'")
    run.emit(state("t-best", State.COMPLETED))
    h.clock.advance(1)
    [detail] = h.take()
    assert detail["task_run"]["state"] == "Completed" and detail["traceback"] == ""


def test_a_rerun_of_the_selected_task_is_followed(run: FakeRun) -> None:
    h = Harness(run)
    h.view.handle({"event": "select", "node": "n-best"})
    h.take()
    run.emit(task_run("t-best-2", "n-best", "best"), log("t-best-2", "second try"))
    h.clock.advance(1)
    [detail] = h.take()
    assert detail["task_run"]["id"] == "t-best-2"
    assert detail["lines"][0]["text"] == "second try"


def test_select_map_pages_children_and_a_child_shows_its_logs() -> None:
    run = FakeRun()
    run.emit(run_created(), *map_events("m", "train", 10_000))
    run.emit(log("m-250", "alpha=0.25"), state("m-250", State.FAILED, tb="boom"))
    h = Harness(run, layout_engine="builtin")
    h.view.handle({"event": "select", "node": "m"})
    detail, children = h.take()
    assert children["event"] == "children" and children["pages"] == 100
    assert len(children["children"]) == 100 and children["children"][0]["index"] == 0
    assert detail["kind"] == "map" and detail["task_run"] is None
    h.view.handle({"event": "page", "node": "m", "page": 2})
    [page] = h.take()
    assert page["page"] == 2 and page["children"][50] == {
        "id": "m-250",
        "index": 250,
        "state": "Failed",
    }
    h.view.handle({"event": "page", "node": "other", "page": 5})  # stale click: ignored
    assert h.take() == []
    # The open page follows its children's states.
    run.emit(state("m-201", State.RUNNING))
    h.clock.advance(1)
    [live] = h.take()
    assert live["page"] == 2 and live["children"][1]["state"] == "Running"
    h.view.handle({"event": "select", "node": "m", "task_run": "m-250"})
    [child] = h.take()
    assert child["task_run"]["index"] == 250 and child["traceback"] == "boom"
    assert child["lines"][0]["text"] == "alpha=0.25"
    h.view.handle({"event": "select", "node": None})
    assert h.take() == [{"event": "detail", "node": None}]
    h.view.handle({"event": "select", "node": "no-such-node"})
    assert h.take() == [{"event": "detail", "node": None}]


def test_a_new_drawing_asking_for_the_selection_gets_the_open_panel_again() -> None:
    # The run's end redraws the cell's output: the new drawing asks, and shows the task run
    # (and the map's page) the user had open, in its final state.
    run = FakeRun()
    run.emit(run_created(), *map_events("m", "train", 300))
    h = Harness(run, layout_engine="builtin")
    h.view.handle({"event": "selection"})
    assert h.take() == []  # nothing selected: nothing to show
    h.view.handle({"event": "select", "node": "m"})
    h.view.handle({"event": "page", "node": "m", "page": 2})
    h.view.handle({"event": "select", "node": "m", "task_run": "m-250"})
    h.take()
    run.emit(log("m-250", "alpha=0.25"), state("m-250", State.FAILED, tb="boom"))
    run.emit(finished(State.FAILED))
    h.clock.advance(1)
    h.take()
    h.view.handle({"event": "selection"})
    detail, children = h.take()
    assert detail["event"] == "detail" and detail["node"] == "m"
    assert detail["task_run"]["id"] == "m-250" and detail["task_run"]["state"] == "Failed"
    assert detail["traceback"] == "boom" and detail["lines"][0]["text"] == "alpha=0.25"
    assert children["event"] == "children" and children["page"] == 2
    h.view.handle({"event": "select", "node": None})
    h.take()
    h.view.handle({"event": "selection"})
    assert h.take() == []


def test_cancel_and_retry_call_the_run(run: FakeRun) -> None:
    h = Harness(run)
    h.view.handle({"event": "cancel"})
    h.view.handle({"event": "retry"})
    h.view.join_actions(5)
    assert sorted(run.calls) == ["cancel", "retry"]
    assert h.take() == []


def test_a_failing_action_is_reported_in_the_widget(run: FakeRun) -> None:
    h = Harness(run)
    run.fail_with = RuntimeError("run already finished")
    h.view.handle({"event": "cancel"})
    h.view.join_actions(5)
    assert h.take() == [
        {"event": "error", "message": "[labloom] cancel failed: run already finished"}
    ]
    h.view.handle({"event": "explode"})
    assert h.take() == [{"event": "error", "message": "[labloom] unknown message 'explode'"}]


def test_retry_that_returns_a_new_run_switches_the_view(run: FakeRun) -> None:
    h = Harness(run)
    h.view.handle({"event": "select", "node": "n-load"})
    again = FakeRun("run-2")
    again.emit(run_created("run-2"), *map_events("x", "only", 2), finished(State.COMPLETED))
    run.retry_result = again
    h.take()
    h.view.handle({"event": "retry"})
    h.view.join_actions(5)
    assert h.take() == [{"event": "detail", "node": None}]
    assert h.view.run is again
    assert [n["id"] for n in h.pushes[-1]["graph"]["nodes"]] == ["x"]
    # Events of the old run no longer reach the view.
    run.emit(state("t-best", State.RUNNING))
    h.clock.advance(1)
    assert "n-best" not in h.pushes[-1]["states"]


def test_close_stops_updates(run: FakeRun) -> None:
    h = Harness(run)
    h.view.close()
    run.emit(state("t-best", State.RUNNING))
    h.clock.advance(1)
    assert len(h.pushes) == 1


def test_with_the_real_timer_updates_arrive_from_the_event_thread() -> None:
    # No manual clock: the bus's own thread delivers and a timer thread pushes.
    run = FakeRun()
    run.emit(*small_flow())
    pushes: list[dict[str, Any]] = []
    done = threading.Event()

    def push(payload: dict[str, Any]) -> None:
        pushes.append(payload)
        if payload.get("states", {}).get("n-best", {}).get("state") == "Completed":
            done.set()

    view = RunView(run, push, lambda _msg: None, layout_engine="builtin")
    view.start()
    for st in (State.RUNNING, State.COMPLETED):
        run.bus.emit(state("t-best", st))  # no flush: the dispatcher thread delivers
    assert done.wait(60)  # a guard
    view.close()


def test_a_widget_has_one_timer_thread_and_closing_ends_it() -> None:
    run = FakeRun()
    pushes: list[dict[str, Any]] = []
    view = RunView(run, pushes.append, lambda message: None, interval=0.01,
                   layout_engine="builtin")
    view.start()

    def timers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "labloom-widget-timer"]

    seen = 0
    for i, event in enumerate(small_flow() * 20):
        run.emit(event)
        if i % 10 == 0:
            seen = max(seen, len(timers()))
    wait_for(lambda: len(pushes) > 1, 60, "the timer's frames")  # a guard, not 0.1 s
    assert seen == 1  # one thread for every frame, not one per frame
    view.close()
    assert timers() == []
