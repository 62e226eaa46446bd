"""``%flow_runs``: run history as a table (HTML in a notebook, text elsewhere)."""

from __future__ import annotations

import html
import os
import threading
import time
import weakref
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from ..core.bidi import escape_bidi
from ..core.observers import add_run_observer

MAX_RUNS = 1000
_lock = threading.Lock()
# Held weakly: a run the user let go of must free its results (on Dask, the cluster's memory);
# %flow_runs then shows it from the store, as it shows runs of other processes.
_runs: deque[weakref.ref[Any]] = deque(maxlen=MAX_RUNS)
_stop: Callable[[], None] | None = None


# The latest run of each %%flow cell's flow, held: the cell's names and %flow_runs come from
# it (retry, cancel), as the names it assigned hold their values.
_cell_runs: dict[str, Any] = {}


def keep_cell_run(run: Any) -> None:
    with _lock:
        _cell_runs[run.flow_name] = run


def is_latest_cell_run(run: Any) -> bool:
    """Whether ``run`` is still the latest run of its %%flow cell (not run again since)."""
    with _lock:
        return _cell_runs.get(run.flow_name) is run


def _remember(run: Any) -> None:
    with _lock:
        _runs.append(weakref.ref(run))


def start_recording() -> None:
    """Remember every flow run started in this process from now on (idempotent)."""
    global _stop
    if _stop is None:
        _stop = add_run_observer(_remember)


def runs(flow: str | None = None) -> list[Any]:
    with _lock:
        found = [run for run in (ref() for ref in _runs) if run is not None]
    return [run for run in found if flow is None or run.flow_name == flow]


def _duration(started: float | None, ended: float | None) -> str:
    if started is None:
        return ""
    seconds = (ended or time.time()) - started
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f}min"


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))


def _row(entry: Any) -> tuple[str, ...]:
    """A table row from a live FlowRun or a stored RunRecord (same names, different shapes)."""
    if hasattr(entry, "tasks"):
        counts = dict(Counter(str(tr.state) for tr in entry.tasks if not tr.left_map))
    else:
        counts = dict(entry.counts)
    started = (
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.started)) if entry.started else ""
    )
    return (
        entry.id,
        entry.flow_name,
        str(entry.state),
        started,
        _duration(entry.started, entry.ended),
        _counts_text(counts),
        entry.origin or "",
    )


def history(flow: str | None = None, limit: int = 50, everywhere: bool = False) -> list[Any]:
    """Newest first: the runs of this kernel (its process), or with ``everywhere`` every run
    of the store (notebooks, scripts, the scheduler); this kernel's live ``FlowRun`` handles
    stand in for their own stored records."""
    live = {run.id: run for run in runs(flow)}
    stored: list[Any] = []
    from .. import store as _store

    if _store.enabled():
        from ..store.home import host_name

        mine: dict[str, Any] = {} if everywhere else {"host": host_name(), "pid": os.getpid()}
        with _store.open_store() as store:
            stored = store.list_runs(flow=flow, limit=limit, **mine)
    entries = [live.pop(record.id, record) for record in stored]
    entries += live.values()  # runs the store has not seen (store off, or not yet written)
    entries.sort(key=lambda entry: entry.started or entry.created or 0, reverse=True)
    return entries[:limit]


class RunTable:
    """Rows of run history, newest first; shown as a table, iterable as runs (``FlowRun``
    handles for this kernel's runs, stored records for the others)."""

    columns = ("run", "flow", "state", "started", "duration", "tasks", "origin")

    def __init__(self, entries: list[Any], flow: str | None = None) -> None:
        self.entries = entries
        self.flow = flow

    def rows(self) -> list[tuple[str, ...]]:
        """The table's cells as shown: a flow's name (or message) holding a bidirectional
        control is shown escaped, as the CLI's ``runs`` and the Flows panel show it."""
        return [tuple(escape_bidi(cell) for cell in _row(entry)) for entry in self.entries]

    def __iter__(self) -> Any:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def _empty(self) -> str:
        where = f" of flow {self.flow!r}" if self.flow else ""
        return f"no flow runs{where} yet"

    def __repr__(self) -> str:
        if not self.entries:
            return self._empty()
        rows = [self.columns, *self.rows()]
        widths = [max(len(row[i]) for row in rows) for i in range(len(self.columns))]
        return "\n".join(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in rows
        )

    def _repr_html_(self) -> str:
        if not self.entries:
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
