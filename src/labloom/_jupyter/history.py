"""``%flow_runs``: the runs this kernel started, as a table (HTML in a notebook, text elsewhere)."""

from __future__ import annotations

import html
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from .. import _events as ev

MAX_RUNS = 1000
_lock = threading.Lock()
_runs: deque[Any] = deque(maxlen=MAX_RUNS)
_stop: Callable[[], None] | None = None


def _remember(run: Any) -> None:
    with _lock:
        _runs.append(run)


def start_recording() -> None:
    """Remember every flow run started in this process from now on (idempotent)."""
    global _stop
    if _stop is None:
        _stop = ev.add_run_observer(_remember)


def runs(flow: str | None = None) -> list[Any]:
    with _lock:
        found = list(_runs)
    return [run for run in found if flow is None or run.flow_name == flow]


def _duration(run: Any) -> str:
    if run.started is None:
        return ""
    seconds = (run.ended or time.time()) - run.started
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f}min"


def _counts(run: Any) -> str:
    counts = Counter(str(tr.state) for tr in run.tasks)
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))


class RunTable:
    """Rows of run history; shown as a table, and iterable as ``FlowRun`` handles."""

    columns = ("run", "flow", "state", "started", "duration", "tasks", "origin")

    def __init__(self, flow_runs: list[Any], flow: str | None = None) -> None:
        self.runs = flow_runs
        self.flow = flow

    def rows(self) -> list[tuple[str, ...]]:
        rows: list[tuple[str, ...]] = []
        for run in reversed(self.runs):  # newest first
            started = (
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.started))
                if run.started
                else ""
            )
            rows.append(
                (
                    run.id,
                    run.flow_name,
                    str(run.state),
                    started,
                    _duration(run),
                    _counts(run),
                    run.origin,
                )
            )
        return rows

    def __iter__(self) -> Any:
        return iter(reversed(self.runs))

    def __len__(self) -> int:
        return len(self.runs)

    def _empty(self) -> str:
        where = f" of flow {self.flow!r}" if self.flow else ""
        return f"no flow runs{where} in this kernel yet"

    def __repr__(self) -> str:
        if not self.runs:
            return self._empty()
        rows = [self.columns, *self.rows()]
        widths = [max(len(row[i]) for row in rows) for i in range(len(self.columns))]
        return "\n".join(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in rows
        )

    def _repr_html_(self) -> str:
        if not self.runs:
            return f"<p class='labloom-runs'>{html.escape(self._empty())}</p>"
        head = "".join(f"<th>{c}</th>" for c in self.columns)
        body = "".join(
            f"<tr data-state='{html.escape(row[2])}'>"
            + "".join(f"<td>{html.escape(cell)}</td>" for cell in row)
            + "</tr>"
            for row in self.rows()
        )
        return (
            f"<table class='labloom-runs'><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>"
        )
