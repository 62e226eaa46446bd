"""What every run gets unless told otherwise, wired into the engine's seams (``core/hooks.py``)
when ``import labloom`` runs: executors by name, the store's recorder and concurrency slots,
terminal progress outside notebooks, and the notebook views. Nothing heavy is imported here:
each hook imports its layer when first called.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .core.hooks import hooks
from .core.observers import add_run_observer, run_observers


def in_kernel() -> bool:
    """True inside a Jupyter kernel; checked without importing IPython."""
    ipython = sys.modules.get("IPython")
    if ipython is None or "ipykernel" not in sys.modules:
        return False
    shell = ipython.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def progress_enabled() -> bool:
    return os.environ.get("LABLOOM_PROGRESS", "1").lower() not in ("0", "false", "no", "off")


def attach_default_observers(run: Any, progress: bool | None = None) -> None:
    """The store records ``run``; the terminal shows its progress outside notebooks."""
    from .store import attach as record

    record(run)  # first, so the store sees the run even if a later observer fails
    if progress is None:
        progress = progress_enabled() and not in_kernel()
    if progress:
        from .dag.console_progress import attach

        attach(run)
    elif not progress_enabled() and not in_kernel() and run.flow.retries:
        from .dag import attempt_lines  # each failed attempt said as it fails, not at the end

        attempt_lines.attach(run)


def import_observers() -> None:
    """Import what ``attach_default_observers`` records and shows a run with: ``labloom``'s
    first public name calls it, so that a process's first run imports none of it in its own
    time (issue 21 §2: the store's modules 1.5 ms of a run of 1,000 task runs, the terminal
    progress 0.7 ms). Only what this process's runs would attach, as it stands now."""
    from .store import import_recording

    import_recording()
    if progress_enabled() and not in_kernel():
        from .dag import console_progress  # noqa: F401


def _resolve_executor(choice: Any, address: str | None) -> Any:
    from .executors import resolve_executor

    return resolve_executor(choice, address)


class _StoreLimits:
    """The store's concurrency limits (``store/concurrency_limiter.py``), its module imported
    at the first task run that carries tags: a run of untagged tasks, the most common, never
    needs it (its import was 0.2 ms of a fresh process's first run, issue 21 §2). Untagged
    task runs pass as they would through ``StoreLimiter``, which takes no slot for them."""

    def acquire(self, tags: frozenset[str], holder: str, granted: Callable[[], None]) -> bool:
        if not tags:
            return True
        from .store.concurrency_limiter import process_limiter

        return process_limiter().acquire(tags, holder, granted)

    def release(self, tags: frozenset[str], holder: str) -> None:
        if tags:
            from .store.concurrency_limiter import process_limiter

            process_limiter().release(tags, holder)


_store_limits = _StoreLimits()


def _store_limiter() -> Any:
    return _store_limits


def _persist_mode() -> str:
    from .store import persist_mode

    return persist_mode()


def _results_folder() -> str:
    from .store.home import results_location

    return results_location()


def _widget(run: Any) -> Any:
    from .notebook.widget import widget_for

    return widget_for(run)


def _draw(nodes: Sequence[Any], filename: str | None) -> Any:
    from .dag.visualize import visualize

    return visualize(nodes, filename)


def _launch_form(flow: Any, executor: Any) -> Any:
    from .notebook.launch_form import launch_form

    return launch_form(flow, executor)


def _older_logs(run_id: str, task: str | None) -> list[Any]:
    from .store import enabled, open_store

    if not enabled():
        return []
    from .core.run_logs import LogLine

    with open_store() as store:
        lines, _ = store.logs(run_id, task)
    return [LogLine(e.task_run_id, e.task, e.level, e.time, e.text) for e in lines]


def _traceback_text(text: str) -> str:
    """In an IPython shell, a traceback names notebook cells as IPython does."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return text
    from .notebook.tracebacks import name_cells

    return name_cells(text, shell)


def _before_shutdown(callback: Callable[[], None]) -> None:
    """In a kernel, ``callback`` runs also as the kernel is asked to shut down."""
    if in_kernel():
        from .notebook.kernel_shutdown import call_before_shutdown

        shell = sys.modules["IPython"].get_ipython()
        call_before_shutdown(shell.kernel, callback)


def install() -> None:
    hooks.resolve_executor = _resolve_executor
    if attach_default_observers not in run_observers():  # first: the store sees every run
        add_run_observer(attach_default_observers)
    hooks.default_limiter = _store_limiter
    hooks.persist_mode = _persist_mode
    hooks.results_folder = _results_folder
    hooks.widget = _widget
    hooks.draw = _draw
    hooks.launcher = _launch_form
    hooks.older_logs = _older_logs
    hooks.default_origin = lambda: "notebook" if in_kernel() else "script"
    hooks.traceback_text = _traceback_text
    hooks.before_shutdown = _before_shutdown
