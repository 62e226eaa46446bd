"""The cell's Experiments view keeps its orders as events arrive (dag/live_order.py): after
each random batch of new rows, changed values, states and reruns, every answer is the one a
fresh full sort gives (experiment_rows.page_answer of a snapshot), for every sort the view
offers, both directions, with and without a filter, of a map node and of the whole run."""

from __future__ import annotations

import random
from typing import Any

import pytest

from labloom.core import experiments as ex
from labloom.core.events import ExperimentCalls, TaskRunCreated
from labloom.core.states import State
from labloom.dag import live_order
from labloom.dag.experiment_rows import page_answer
from labloom.dag.live_order import LiveOrders
from labloom.notebook.widget.view import RunView
from widget_helpers import RUN, FakeRun, ManualClock, node, run_created, state

NAN = float("nan")
# Few values, so many ties; NaN and None go last either way; text and bools among numbers.
VALUES = [0.1, 0.5, 0.5, 0.9, 1, 2, -0.0, 0.0, NAN, None, float("inf"), "gini", "entropy",
          True, False, 3]
STATES = [State.PENDING, State.RUNNING, State.COMPLETED, State.FAILED, State.CACHED]
SORTS = [None, ex.INDEX_ORDER, "task", "map_index", "state", "duration", "task_run_id", "auc",
         "metrics.auc", "lr", "params.lr", "mixed", "loss", "nowhere"]
FILTERS = ["", "auc>0.4", "lr=0.5 state=Completed", "gini", "mixed!=1 loss<=2", "lr=None",
           "none"]


class Sweep:
    """A run whose events a test makes: a plain task, three maps (indexes created out of
    order; two of one task, apart: that task's first row may move), values logged, states moved on, task runs rerun or started over."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.run = FakeRun()
        self.clock = ManualClock()
        self.view = RunView(self.run, lambda _payload: None, self._took, clock=self.clock,
                            schedule=self.clock.schedule, layout_engine="builtin")
        self.answers: list[dict[str, Any]] = []
        self.slots: list[tuple[str, str, int | None]] = []  # (node, task, map index)
        self.current: dict[tuple[str, int | None], str] = {}
        self.made = 0
        self.run.emit(run_created(), node("n-load", "load"), node("n-a", "train", "map"),
                      node("n-b", "score", "map"), node("n-c", "train", "map"))
        self.view.start()

    def _took(self, answer: dict[str, Any]) -> None:
        self.answers.append(answer)

    def batch(self, size: int) -> None:
        events: list[Any] = []
        calls: tuple[list[str], list[str], list[dict[str, Any]], list[int | None]] = (
            [], [], [], [])
        pick = self.random
        for _ in range(size):
            what = pick.random()
            if what < 0.3 or not self.current:
                events.append(self._new_task_run())
            elif what < 0.38:  # a rerun takes the place of its index
                node_id, task, index = pick.choice(self.slots)
                events.append(self._task_run(node_id, task, index))
            elif what < 0.6:
                trid = pick.choice(list(self.current.values()))
                at = 100.0 + pick.choice([0, 1, 2, 2, 5])
                events.append(state(trid, pick.choice(STATES), t=at))
            else:
                trid = pick.choice(list(self.current.values()))
                kind = pick.choice(["param", "metric"] * 4 + ["reset"])
                names = {"param": ["lr", "mixed", "criterion"],
                         "metric": ["auc", "loss", "mixed"], "reset": [""]}[kind]
                values = ({} if kind == "reset" else
                          {name: pick.choice(VALUES) for name in pick.sample(names, 2)})
                step = pick.choice([None, None, 1, 3]) if kind == "metric" else None
                for column, value in zip(calls, (trid, kind, values, step), strict=True):
                    column.append(value)  # type: ignore[arg-type]
        if calls[0]:
            events.append(ExperimentCalls(RUN, *calls, [101.0] * len(calls[0])))
        self.run.emit(*events)

    def _new_task_run(self) -> TaskRunCreated:
        node_id, task = self.random.choice([("n-a", "train"), ("n-a", "train"), ("n-b", "score"),
                                            ("n-c", "train"), ("n-load", "load")])
        if node_id == "n-load":
            index = None
        else:
            taken = {i for n, _t, i in self.slots if n == node_id}
            index = self.random.choice([i for i in range(len(taken) + 3) if i not in taken])
        if (node_id, index) not in self.current:
            self.slots.append((node_id, task, index))
        return self._task_run(node_id, task, index)

    def _task_run(self, node_id: str, task: str, index: int | None) -> TaskRunCreated:
        self.made += 1
        trid = f"tr-{self.made}"
        self.current[(node_id, index)] = trid
        return TaskRunCreated(RUN, trid, node_id, task, index, (), 100.0)

    def ask(self, message: dict[str, Any]) -> dict[str, Any]:
        self.view.handle({"event": "experiments", **message})
        answer = self.answers.pop()
        assert "error" not in answer, answer
        return answer

    def full_sort(self, message: dict[str, Any]) -> dict[str, Any]:
        rows = self.view.read(lambda graph: self.view.experiments.snapshot(graph,
                                                                           message.get("node")))
        return page_answer(rows, message)


def _same(ours: dict[str, Any], fresh: dict[str, Any]) -> None:
    for name in ("event", "req", "node", "version"):
        ours.pop(name, None)
    assert repr(ours) == repr(fresh)  # repr: NaN equal to NaN, -0.0 told from 0.0


@pytest.mark.parametrize("sort", SORTS, ids=[str(s) for s in SORTS])
def test_kept_orders_answer_as_a_fresh_full_sort_after_each_batch(sort: str | None) -> None:
    _asked_after_each_batch(sort, seed=len(SORTS) + SORTS.index(sort))


@pytest.mark.parametrize("sort", ["auc", ex.INDEX_ORDER])
def test_orders_made_again_after_more_touched_than_rows_answer_the_same(
        sort: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A node touched more than its rows since last asked (a view closed a while) notes
    nothing more and makes its orders again when asked: the same answers."""
    monkeypatch.setattr(live_order, "REMAKE_MARGIN", 0)
    _asked_after_each_batch(sort, seed=99)


def _asked_after_each_batch(sort: str | None, seed: int) -> None:
    sweep = Sweep(seed=seed)
    questions = [{"node": node_id, "sort": sort, "desc": desc, "filter": query}
                 for node_id in ("n-a", None)
                 for desc, query in ((False, ""), (True, ""), (False, FILTERS[SORTS.index(sort)
                                                                              % 4 + 1]),
                                     (True, "auc>0.4"))]
    try:
        for size in [5, 30, 1, 0, 200, 12, 80, 3, 40, 300, 7, 25, 2, 150, 60]:
            sweep.batch(size)
            for question in questions:
                limit = sweep.random.choice([1000, 1000, 7])
                offset = 0 if limit == 1000 else sweep.random.randrange(0, 60)
                asked = {**question, "limit": limit, "offset": offset}
                _same(sweep.ask(asked), sweep.full_sort(asked))
    finally:
        sweep.view.close()
    whole = sweep.ask({"sort": sort, "limit": 1000})
    assert whole["total"] > 60  # the run grew to rows enough for ties and many moves


def test_an_order_is_kept_for_its_own_question_and_made_again_for_another() -> None:
    """Asked again, a question's order is the one kept (its rows placed again); another
    sort, direction or filter makes its own; a node's rows are kept apart from the run's."""
    sweep = Sweep(seed=1)
    sweep.batch(40)
    orders = LiveOrders()
    asked = {"node": "n-a", "sort": "auc", "desc": True}
    view = sweep.view
    first = view.read(lambda graph: orders.order_for(graph, view.experiments, asked))
    again = view.read(lambda graph: orders.order_for(graph, view.experiments, asked))
    assert again is first
    for other in ({**asked, "desc": False}, {**asked, "sort": "lr"}, {**asked, "filter": "x"},
                  {**asked, "node": None}):
        made = view.read(lambda graph, o=other: orders.order_for(graph, view.experiments, o))
        assert made is not first, other
    sweep.view.close()


def test_index_order_follows_a_task_whose_first_row_moves_to_an_earlier_node() -> None:
    """index_order ranks the tasks by their first row the filter keeps: one task's rows in two
    nodes, the earlier node's row coming into the filter moves that task before another
    without any task coming or going."""
    sweep = Sweep(seed=2)
    created = [sweep._task_run(node_id, task, 0) for node_id, task in
               (("n-a", "train"), ("n-b", "score"), ("n-c", "train"))]
    sweep.run.emit(*created, ExperimentCalls(RUN, [t.task_run_id for t in created], ["metric"] * 3,
                                             [{"auc": 0.1}, {"auc": 0.9}, {"auc": 0.8}],
                                             [None] * 3, [101.0] * 3))
    asked = [{"node": None, "sort": ex.INDEX_ORDER, "desc": desc, "filter": "auc>0.4"}
             for desc in (False, True)]
    try:
        for question in asked:
            _same(sweep.ask(question), sweep.full_sort(question))
        sweep.run.emit(ExperimentCalls(RUN, [created[0].task_run_id], ["metric"], [{"auc": 0.7}],
                                       [None], [102.0]))
        for question in asked:
            ours, fresh = sweep.ask(question), sweep.full_sort(question)
            assert [row["task"] for row in fresh["rows"]] == (
                ["train", "train", "score"] if not question["desc"] else
                ["score", "train", "train"])
            _same(ours, fresh)
    finally:
        sweep.view.close()


@pytest.mark.parametrize("sort", ["auc", ex.INDEX_ORDER])
def test_events_folded_while_a_new_order_sorts_are_placed_before_its_page(sort: str) -> None:
    """A new question's order is sorted outside the view's lock; the events folded meanwhile
    are placed before its page is read: the page is a full sort's of the rows by then."""
    sweep = Sweep(seed=5)
    sweep.batch(120)
    view = sweep.view
    orders = LiveOrders()
    # Told of each batch after the view folded it into its graph and rows, as the view does.
    unsubscribe = sweep.run.subscribe(orders.note, replay=False)
    try:
        asked = {"node": "n-a", "sort": sort, "desc": True, "limit": 1000}
        order = view.read(lambda graph: orders.order_for(graph, view.experiments, asked))
        assert not order.sorted
        sweep.batch(150)  # folded while the order is not sorted yet
        ours = view.read(lambda _graph: LiveOrders.page(order, asked))
        _same(ours, sweep.full_sort(asked))
    finally:
        unsubscribe()
        view.close()
