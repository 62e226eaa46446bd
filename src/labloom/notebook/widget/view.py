"""The widget's logic without the widget: events in, trait payloads and replies out.

``RunView`` subscribes to a run, folds events into a ``ViewGraph``, and at most ten times a second
pushes what changed (graph with positions, node states, header) through ``push``. Messages from
the front end (select, selection, page, cancel, retry) arrive through ``handle``; replies and
the live log tail leave through ``send``. Nothing here imports Jupyter, so the tests drive it
directly and the anywidget class stays a thin shell.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from ...core.errors import LabloomError
from ...core.events import Event
from ...core.kept_parameters import readable
from ...core.states import shown_traceback
from ...dag.experiment_rows import ExperimentRows, curve_answer
from ...dag.live_order import LiveOrders
from ...dag.model import PAGE_SIZE, Changes, TaskRunInfo, ViewGraph, log_lines
from ...dag.payload import graph_payload, graph_shape, lay_out
from ...dag.timeline import Span, timeline
from .throttle import CallLater, Throttle

log = logging.getLogger("labloom")

Payload = dict[str, Any]
T = TypeVar("T")


class RunHandle(Protocol):
    """What a view needs from ``FlowRun``: events to observe and two user actions."""

    def subscribe(
        self, callback: Callable[[list[Event]], None], replay: bool = True
    ) -> Callable[[], None]: ...

    def cancel(self) -> Any: ...

    def retry(self) -> Any: ...


class RunView:
    def __init__(
        self,
        run: RunHandle,
        push: Callable[[Payload], None],
        send: Callable[[Payload], None],
        *,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        schedule: CallLater | None = None,
        layout_engine: str = "auto",
        page_size: int = PAGE_SIZE,
        on_finished: Callable[[], None] | None = None,
    ) -> None:
        self.run = run
        self.graph = ViewGraph()
        self.experiments = ExperimentRows()
        self._version = 0  # bumped by each batch of events: a re-asked page may be unchanged
        self._orders = LiveOrders()  # the orders of the rows asked for, kept as events arrive
        self._asking = threading.Lock()  # one question at a time: its order is sorted unlocked
        self._push = push
        self._deliver = send
        self._layout_engine = layout_engine
        self._page_size = page_size
        # One lock for the model and for sending, so replies and pushes leave in model order.
        self._lock = threading.RLock()
        self._pending = Changes()
        self._laid_out = -1
        self._node: str | None = None  # selected node
        self._child: str | None = None  # a map child picked from the list
        self._page = 0
        self._shown: str | None = None  # task run whose logs the front end holds
        self._shown_lines = 0
        self._unsubscribe: Callable[[], None] | None = None
        self._actions: list[threading.Thread] = []
        # Called once per run, after the frame that shows the run in a final state.
        self._on_finished = on_finished
        self._finished = False
        self._throttle = Throttle(self.flush, interval, clock, schedule)

    # -- events in ------------------------------------------------------------------------

    def start(self) -> None:
        """Subscribe with replay and push the state so far at once (the first frame)."""
        # Never hold the view's lock while calling into the bus: the bus holds its own lock
        # while delivering to ``_on_events``, which takes ours (lock order: bus, then view).
        self._unsubscribe = self.run.subscribe(self._on_events, replay=True)
        self.flush()

    def _on_events(self, batch: list[Event]) -> None:
        with self._lock:
            self._pending.merge(self.graph.apply(batch))
            self.experiments.apply(batch)
            self._orders.note(batch)
            self._version += 1
        self._throttle.request()

    def flush(self) -> None:
        # The layout may run graphviz's ``dot``: never under the lock that events wait for.
        with self._lock:
            version = self.graph.graph_version
            shape = graph_shape(self.graph) if version != self._laid_out else None
        laid = lay_out(shape, self._layout_engine) if shape is not None else None
        with self._lock:
            changes, self._pending = self._pending, Changes()
            payload: Payload = {}
            if laid is not None and version > self._laid_out:
                self._laid_out = version
                payload["graph"] = laid
            if changes.states or "graph" in payload:
                payload["states"] = self.graph.states_json()
            if changes.header or "graph" in payload:
                payload["header"] = self.graph.header_json(time.time())
            if payload:
                self._push(payload)
            self._follow_selection(changes)
            finished = self.graph.state.is_final and not self._finished
            self._finished |= finished
        if finished and self._on_finished is not None:
            self._on_finished()

    def settle(self) -> None:
        """Fold in the run's events delivered so far and draw them now, in this thread: at
        process exit, when neither the subscription's thread nor the timer may run again."""
        drain = getattr(self._unsubscribe, "drain", None)  # core's Subscription: deliver now
        if drain is not None:
            drain()
        self.flush()

    @property
    def finished(self) -> bool:
        """Whether a frame has shown the run in a final state (then ``on_finished`` is called)."""
        return self._finished

    def read(self, fn: Callable[[ViewGraph], T]) -> T:
        """``fn(graph)`` with the model steady (no event folded in meanwhile)."""
        with self._lock:
            return fn(self.graph)

    def graph_json(self) -> Payload:
        self._laid_out = self.graph.graph_version
        return graph_payload(self.graph, self._layout_engine)

    # -- messages in ----------------------------------------------------------------------

    def handle(self, message: Payload) -> None:
        event = message.get("event")
        if event == "select":
            self.select(message.get("node"), message.get("task_run"))
        elif event == "selection":
            self.resend_selection()
        elif event == "page":
            with self._lock:
                if message.get("node") == self._node:
                    self._page = int(message.get("page") or 0)
                    self._send_children()
        elif event == "timeline":
            self._send_timeline()
        elif event in ("experiments", "curves"):
            self._send_experiments(message)
        elif event == "cancel":
            self._act("cancel", self.run.cancel)
        elif event == "retry":
            self._act("retry", self._retry)
        else:
            self._send({"event": "error", "message": f"[labloom] unknown message {event!r}"})

    def _act(self, name: str, action: Callable[[], Any]) -> None:
        # Off the kernel's message thread: a retry may run for a while, and the widget must
        # keep answering clicks meanwhile.
        thread = threading.Thread(
            target=self._guarded, args=(name, action), name=f"labloom-widget-{name}", daemon=True
        )
        self._actions.append(thread)
        thread.start()

    def _guarded(self, name: str, action: Callable[[], Any]) -> None:
        try:
            action()
        except Exception as exc:
            # The user clicked a button; tell them in the widget rather than in the kernel log.
            log.debug("[labloom] %s from the widget failed", name, exc_info=True)
            self._send({"event": "error", "message": f"[labloom] {name} failed: {exc}"})

    def join_actions(self, timeout: float | None = None) -> None:
        """Wait for the cancel/retry calls started from the front end (tests, shutdown)."""
        for thread in list(self._actions):
            thread.join(timeout)
        self._actions = [t for t in self._actions if t.is_alive()]

    def _retry(self) -> None:
        again = self.run.retry()
        # If retrying yields a new run handle, the widget follows it.
        if again is not None and again is not self.run and hasattr(again, "subscribe"):
            self.rebind(again)

    def rebind(self, run: RunHandle) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()  # outside our lock: see ``start``
        with self._lock:
            self.run, self.graph, self._pending = run, ViewGraph(), Changes()
            self.experiments = ExperimentRows()
            self._orders = LiveOrders()
            self._laid_out, self._shown, self._finished = -1, None, False
            self._node = self._child = None
            self._send({"event": "detail", "node": None})
        self.start()

    def select(self, node: str | None, child: str | None = None) -> None:
        with self._lock:
            if node is None and child is not None and child in self.graph.task_runs:
                # A timeline bar names its task run only; it opens as its node's child would.
                node = self.graph.task_runs[child].node_id
            # Picking a child keeps the map's list where it is; a new node starts at page 0.
            same_list = child is not None and node == self._node
            self._node, self._child, self._shown = node, child, None
            if node is None or node not in self.graph.nodes:
                self._node = None
                self._send({"event": "detail", "node": None})
                return
            self._send_detail()  # first: it tells every open view which node is selected
            if not same_list:
                self._page = 0
                if self.graph.nodes[node].kind == "map":
                    self._send_children()

    def resend_selection(self) -> None:
        """What is selected, sent again: a new drawing of the widget asks for it as it starts.

        The end of a run redraws the cell's output (``RunWidget.show``), and the new drawing's
        panel starts hidden; the kernel owns the selection, so it tells the new drawing (and
        the others, which show the same) which task run's panel the user had open."""
        with self._lock:
            if self._node is None or self._node not in self.graph.nodes:
                return
            self._send_detail()
            if self.graph.nodes[self._node].kind == "map":
                self._send_children()  # the page the user had turned to

    def _target(self) -> TaskRunInfo | None:
        """The task run whose logs the selection shows: a picked child, or a task's run."""
        if self._node is None:
            return None
        if self._child is not None:
            return self.graph.task_runs.get(self._child)
        if self.graph.nodes[self._node].kind == "map":
            return None
        return self.graph.current_run(self._node)

    def _send_detail(self) -> None:
        assert self._node is not None
        node = self.graph.nodes[self._node]
        target = self._target()
        self._shown = target.id if target else None
        self._shown_lines = target.logged if target else 0
        self._send(
            {
                "event": "detail",
                "node": node.id,
                "name": node.name,
                "kind": node.kind,
                "state": self.graph.node_state(node).value,
                "task_run": target.to_json() if target else None,
                "lines": log_lines(target.logs) if target else [],
                "traceback": shown_traceback(target.state, target.traceback) if target else "",
            }
        )

    def _send_timeline(self) -> None:
        """The run's timeline (``dag.timeline``), the shape ``GET runs/{id}/timeline`` answers:
        the front end asks while it shows it, at most once a second."""
        with self._lock:
            graph = self.graph
            spans = [
                Span(tr.id, tr.name if tr.map_index is None else f"{tr.name}[{tr.map_index}]",
                     tr.worker, tr.state.value, tr.start, tr.end, bool(tr.left_map))
                for tr in graph.task_runs.values()
            ]
            now, run_id, state = graph.end or time.time(), graph.run_id, graph.state.value
        # Outside the lock: bucketing 100,000 task runs must not hold events back.
        answer = timeline(spans, now)
        answer.update(event="timeline", run=run_id, state=state)
        self._send(answer)

    def _send(self, message: Payload) -> None:
        # A comm message is sent as UTF-8 with ``surrogateescape`` and read back with
        # ``replace``: a lone surrogate (a file name's byte that is not UTF-8, logged as a
        # param or printed) arrived as U+FFFD, the byte lost. Escaped, as the run's views show
        # it (``caf\\udce9.csv``).
        self._deliver(readable(message))

    def _send_experiments(self, message: Payload) -> None:
        """A page of the Experiments view's rows, or one metric's curve points, asked for by
        the front end (``dag/experiment_rows.py``); ``req`` comes back so each open view
        takes only its own answers. A page asked again with the ``version`` it last got is
        answered "unchanged" when no event arrived since; else from the order kept for its
        question, the rows events touched since placed again (``dag/live_order.py``)."""
        kind = message["event"]
        reply: Payload = {"event": kind, "req": message.get("req"), "node": message.get("node")}
        try:
            with self._asking:
                with self._lock:
                    version = reply["version"] = self._version
                    order = None
                    if kind == "curves":
                        reply.update(curve_answer(self.experiments, self.graph, message))
                    elif message.get("known") == version:
                        reply["unchanged"] = True
                    else:
                        order = self._orders.order_for(self.graph, self.experiments, message)
                # A new question sorts every row, a while at 100,000: outside the lock that
                # events wait for (then the events meanwhile are placed, under it).
                if order is not None and not order.sorted:
                    order.sort()
                if order is not None:
                    with self._lock:
                        reply["version"] = self._version
                        reply.update(LiveOrders.page(order, message))
        except LabloomError as exc:
            reply["error"] = str(exc)
        self._send(reply)

    def _send_children(self) -> None:
        assert self._node is not None
        page = self.graph.children_page(self._node, self._page, self._page_size)
        self._page = page["page"]
        self._send({"event": "children", **page})

    def _follow_selection(self, changes: Changes) -> None:
        """Keep the open panel live: new log lines, state changes, a map's current page."""
        if self._node is None or self._node not in self.graph.nodes:
            return
        if self._node in changes.nodes and self.graph.nodes[self._node].kind == "map":
            self._send_children()
        target = self._target()
        target_id = target.id if target else None
        if target_id != self._shown or (target_id and target_id in changes.task_runs):
            self._send_detail()  # a rerun replaced the task run, or its state moved on
        elif target is not None and target.logged > self._shown_lines:
            fresh = min(target.logged - self._shown_lines, len(target.logs))
            self._shown_lines = target.logged
            self._send(
                {"event": "log", "task_run": target.id, "lines": log_lines(target.logs[-fresh:])}
            )

    def close(self) -> None:
        self._throttle.close()
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()  # outside our lock: see ``start``
