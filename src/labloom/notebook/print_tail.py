"""Task prints of a ``%%flow`` cell: a bounded, scrollable area under the live DAG.

A map of 350 experiments printing a line each would push the DAG out of sight. Instead the
cell keeps the DAG on top and, under it, the latest lines, how many came before them, and where
all of them are (a click on a node, ``run.logs(...)``, ``labloom logs RUN``). It is fed by the
run's log lines, so it looks the same whether tasks ran on threads or on Dask workers, and it
is redrawn at most twice a second; its traffic is bounded by ``SHOWN`` lines, not by the run.
"""

from __future__ import annotations

import html
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

from ..core import events as ev
from ..core.bidi import escape_bidi
from ..core.logs import show_prints_elsewhere
from .widget.throttle import Throttle

SHOWN = 20
REDRAW_EVERY = 0.5


class PrintTail:
    """The area; ``show()`` puts it in the cell, the run's events fill it."""

    def __init__(self, run: Any) -> None:
        self.run_id: str = run.id
        self.lines: deque[str] = deque(maxlen=SHOWN)
        self.total = 0
        self._names: dict[str, str] = {}
        self._lock = threading.Lock()
        self._display: Any = None
        self._throttle = Throttle(self._redraw, REDRAW_EVERY)
        show_prints_elsewhere(run.id)  # recorded as ever; shown here, not on stdout
        self._unsubscribe = run.subscribe(self, replay=True)

    def show(self) -> None:
        from IPython.display import display

        self._display = display(self, display_id=True)  # type: ignore[no-untyped-call]

    def __call__(self, batch: Sequence[ev.Event]) -> None:
        changed = False
        with self._lock:
            for event in batch:
                if isinstance(event, ev.TaskRunCreated):
                    index = "" if event.map_index is None else f"[{event.map_index}]"
                    self._names[event.task_run_id] = event.task_name + index
                elif isinstance(event, ev.LogRecord):
                    name = self._names.get(event.task_run_id or "", "(flow)")
                    self.lines.append(f"{name} | {event.text}")
                    self.total += 1
                    changed = True
        if changed:
            self._throttle.request()

    def flush(self) -> None:
        """The last lines now, before the cell ends; then stop listening."""
        self._throttle.close()
        self._unsubscribe()
        show_prints_elsewhere(self.run_id, False)
        self._redraw()

    def _redraw(self) -> None:
        if self._display is not None and self.total:
            self._display.update(self)

    def _parts(self) -> tuple[str, list[str], str]:
        with self._lock:
            # Task prints, escaped as the log pane and the CLI show them: "total: \u202e0001"
            # would read "total: 1000".
            lines, total = [escape_bidi(line) for line in self.lines], self.total
        earlier = total - len(lines)
        head = f"{earlier} earlier line(s) not shown" if earlier else ""
        where = (f"all {total} line(s): click a node in the DAG above, run.logs(NAME), or "
                 f"`labloom logs {self.run_id}`")
        return head, lines, where

    def __repr__(self) -> str:
        head, lines, where = self._parts()
        return "\n".join(filter(None, [head, *lines, where]))

    def _repr_html_(self) -> str:
        head, lines, where = self._parts()
        if not lines:
            return ""
        note = f"<div class='labloom-prints-more'>… {html.escape(head)}</div>" if head else ""
        body = html.escape("\n".join(lines))
        return (
            "<div class='labloom-prints'>" + note
            + "<pre style='max-height: 16em; overflow: auto; margin: 0'>" + body + "</pre>"
            + f"<div class='labloom-prints-where'><small>{html.escape(where)}</small></div>"
            + "</div>"
        )
