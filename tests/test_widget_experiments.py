"""The cell's Experiments view, kernel side (issue 19, item 2): the widget answers the front
end's ``experiments`` and ``curves`` messages from a real run's events, a page at a time, in the
shapes of the REST routes, with the map node's rows only; bad questions get a clear error."""

from __future__ import annotations

import json
import threading
from typing import Any

from labloom import flow, log_metric, log_params, task
from labloom.notebook.widget.view import RunView


@task(metrics=["auc"])
def train(depth: int) -> dict[str, float]:
    log_params(depth=depth, label="<img src=x onerror=alert(1)>" if depth == 2 else "ok")
    for epoch in range(3):
        log_metric("loss", 1.0 / (depth + epoch + 1), step=epoch)
    return {"auc": float("nan") if depth == 0 else depth / 10}


@task
def quiet(x: int) -> int:
    return x  # logs nothing: no row


@flow(executor="threads")
def sweep() -> Any:
    quiet.map(range(3))
    return train.map(range(5))


class Replies:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.arrived = threading.Condition()

    def __call__(self, message: dict[str, Any]) -> None:
        json.dumps(message, allow_nan=False)  # what the comm sends must be strict JSON
        with self.arrived:
            self.sent.append(message)
            self.arrived.notify_all()

    def answer(self, view: RunView, message: dict[str, Any]) -> dict[str, Any]:
        before = len(self.sent)
        view.handle(message)
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.sent) > before, 60)
        return self.sent[-1]


def test_the_widget_pages_a_map_nodes_experiments_and_curves() -> None:
    run = sweep.run()
    assert run.state.value == "Completed"
    replies = Replies()
    view = RunView(run, lambda _payload: None, replies, layout_engine="builtin")
    view.start()
    try:
        def settled() -> bool:
            return view.read(lambda g: g.state.is_final and len(g.task_runs) == 8)

        deadline = threading.Event()
        for _ in range(1200):  # a 60 s guard
            if settled():
                break
            deadline.wait(0.05)
        node = view.read(
            lambda g: next(n.id for n in g.nodes.values() if n.name.startswith("train"))
        )

        first = replies.answer(view, {"event": "experiments", "req": "v1:1", "node": node,
                                      "sort": "auc", "desc": True, "limit": 2})
        assert first["req"] == "v1:1" and first["node"] == node
        assert first["total"] == 5 and first["next"] == 2 and "steps" not in first
        # The curves the selector offers: the metrics the columns mark, as the REST pages do.
        assert {c["name"]: c.get("steps", False) for c in first["columns"]
                if c["kind"] == "metric"} == {"auc": False, "loss": True}
        assert [r["map_index"] for r in first["rows"]] == [4, 3]
        assert {c["name"] for c in first["columns"]} == {"depth", "label", "auc", "loss"}
        assert all(r["node"] == node and r["state"] == "Completed" for r in first["rows"])
        assert first["rows"][0]["duration"] >= 0

        # The last page: NaN sorts last and travels as "NaN"; the param's text is as logged.
        last = replies.answer(view, {"event": "experiments", "req": "v1:2", "node": node,
                                     "sort": "auc", "desc": True, "limit": 2, "offset": 4})
        assert last["next"] is None and last["rows"][0]["metrics"]["auc"] == "NaN"
        everything = replies.answer(view, {"event": "experiments", "node": None, "limit": 10})
        assert everything["total"] == 5  # the whole run: quiet logged nothing
        xss = next(r for r in everything["rows"] if r["map_index"] == 2)
        assert xss["params"]["label"] == "<img src=x onerror=alert(1)>"

        # Asked again with the version it got, nothing changed since: a short answer.
        again = replies.answer(view, {"event": "experiments", "node": node, "sort": "auc",
                                      "known": first["version"]})
        assert again["unchanged"] is True and "rows" not in again

        some = [r["task_run_id"] for r in first["rows"]]
        curves = replies.answer(view, {"event": "curves", "node": node, "metric": "loss",
                                       "task_runs": some, "req": "v1:3"})
        assert curves["total"] == 6 and not curves["truncated"] and curves["req"] == "v1:3"
        assert {p["task_run_id"] for p in curves["points"]} == set(some)
        assert sorted(p["step"] for p in curves["points"]) == [0, 0, 1, 1, 2, 2]

        # Bad questions: an error naming the fix, in the answer to that question.
        bad = replies.answer(view, {"event": "experiments", "node": node, "limit": 5000})
        assert "limit must be a whole number from 0 to 1000" in bad["error"]
        gone = replies.answer(view, {"event": "experiments", "node": "nope"})
        assert "no node 'nope'" in gone["error"]
        nameless = replies.answer(view, {"event": "curves", "node": node})
        assert "curves need a metric" in nameless["error"]
    finally:
        view.close()
