"""Rerunning a finished flow run: which task runs go back to Pending, and which failures a
downstream ``allow_failure`` made harmless. A mixin of ``FlowRun``."""

from __future__ import annotations

import time

from . import events as ev
from .graph import MapNode, StateEntry, TaskRun
from .launching import Scheduling
from .mapping import MapSources
from .states import State


class Rerunning(Scheduling):
    def _tolerated(self, tr: TaskRun) -> bool:
        """A failure that a downstream task accepted through allow_failure and survived."""
        consumers = tr.dependents + (tr.parent.dependents if tr.parent else [])
        for consumer in consumers:
            if consumer.state.is_success and (
                id(tr) in consumer.allowed or (tr.parent is not None and id(tr.parent) in consumer.allowed)
            ):
                return True
        return False

    def _cancel_unstarted(self, reason: str) -> None:
        with self._lock:
            finished: list[TaskRun | MapNode] = []
            for node in self._maps:
                if not node.expanded:
                    finished += self._fail_map(node, State.CANCELLED, reason)
            for tr in self._task_runs:
                if not tr.done and tr.handle is None:
                    self._set_final(tr, State.CANCELLED, reason)
                    finished.append(tr)
            self._settle(finished)

    def _rerun_bad(self) -> None:
        """Reset bad task runs and everything downstream of them, then start what can start."""
        to_reset: dict[int, TaskRun] = {}
        stack = [tr for tr in self._task_runs if tr.bad]
        while stack:
            tr = stack.pop()
            if id(tr) in to_reset:
                continue
            to_reset[id(tr)] = tr
            stack += tr.dependents
            if tr.parent is not None and tr.parent.done:
                stack += tr.parent.dependents
        maps_to_expand = []
        for node in self._maps:
            if node.placeholder is not None:
                to_reset.pop(id(node.placeholder), None)
                node.placeholder.parent = None
                node.placeholder = None
                node.children = []
                node.children_done = 0
                node.expanded = False
                self._open += 1
                node.waiting_to_expand = 0
                maps_to_expand.append(node)
        for tr in to_reset.values():
            if tr.parent is not None:
                tr.parent.children_done -= 1
            tr.state = State.PENDING
            tr.attempts = 0
            tr.error = None
            tr.handle = None
            tr.message = ""
            tr.ended = None
            tr.started = None
            self._open += 1
            tr.history.append(StateEntry(State.PENDING, time.time(), "retrying the run"))
            self._emit(ev.StateChanged(self.id, tr.id, State.PENDING, time.time(), "retrying the run"))
        for tr in to_reset.values():
            tr.waiting = sum(1 for up in tr.upstream if not up.done)
        finished: list[TaskRun | MapNode] = []
        for node in maps_to_expand:
            for pending in MapSources(node.sources, node.keywords).unresolved():
                node.waiting_to_expand += 1
                if node not in pending.expand_dependents:
                    pending.expand_dependents.append(node)
        for node in maps_to_expand:
            if node.waiting_to_expand == 0 and not node.expanded:
                finished += self._expand(node)
        for tr in to_reset.values():
            if tr.waiting == 0:
                finished += self._on_ready(tr)
        self._settle(finished)
