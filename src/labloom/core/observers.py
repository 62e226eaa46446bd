"""What watches a run by default: console progress outside notebooks, failure hooks.

Kept apart from the engine so the engine stays unaware of who observes it.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from . import events as ev
from .states import State

log = logging.getLogger("labloom")


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
    from ..store import attach as record

    record(run)  # first, so the store sees the run even if a later observer fails
    if progress is None:
        progress = progress_enabled() and not in_kernel()
    if progress:
        from ..cli.progress import attach

        attach(run)
    if run.flow.on_failure:
        run.subscribe(_FailureHooks(run))


class _FailureHooks:
    """Calls ``@flow(on_failure=...)`` hooks off the run's thread; a hook that raises is logged."""

    def __init__(self, run: Any) -> None:
        self.run = run

    def __call__(self, batch: Sequence[ev.Event]) -> None:
        for event in batch:
            if isinstance(event, ev.RunFinished) and event.state in (State.FAILED, State.CRASHED):
                for hook in self.run.flow.on_failure:
                    try:
                        hook(self.run)
                    except Exception:
                        log.exception("[labloom] on_failure hook %r raised; the run is unaffected", hook)
