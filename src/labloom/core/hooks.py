"""Where the layers above the engine plug in, so that core imports none of them.

``labloom/defaults.py`` fills these in when ``import labloom`` runs: the executors by name,
the store's recorder and the terminal progress for every run, the store's concurrency slots,
where results persist, and the notebook views. Used alone, core still runs flows given an executor object: no
observers, no limits, cached results in a temporary folder.

>>> from labloom.core.hooks import hooks
>>> hooks.attach_observers = lambda run: run.subscribe(print)   # a test's own observer
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class Limiter(Protocol):
    """Concurrency slots per tag (``labloom.limits``): what the engine asks before a launch."""

    def acquire(self, tags: frozenset[str], holder: str, granted: Callable[[], None]) -> bool:
        """True when ``holder`` may start now; else ``granted()`` is called later."""
        ...

    def release(self, tags: frozenset[str], holder: str) -> None: ...


class NoLimits:
    def acquire(self, tags: frozenset[str], holder: str, granted: Callable[[], None]) -> bool:
        return True

    def release(self, tags: frozenset[str], holder: str) -> None:
        return None


def _unwired(choice: Any, address: str | None = None) -> Any:
    from .executor import Executor

    if isinstance(choice, Executor):
        return choice
    raise RuntimeError(
        f"[labloom] no executor is registered for {choice!r}: `import labloom` registers them "
        "(labloom/defaults.py), or pass an executor object"
    )


@dataclass
class Hooks:
    # A user's executor choice (a name, an address, an Executor or None) -> an Executor.
    resolve_executor: Callable[[Any, str | None], Any] = _unwired
    # Called with each new FlowRun before it starts (subscribe recorders, progress...).
    attach_observers: Callable[[Any], None] = lambda run: None
    # The limiter of runs whose executor brings none.
    default_limiter: Callable[[], Limiter] = NoLimits
    # Which results persist: "all" or "cached".
    persist_mode: Callable[[], str] = lambda: "cached"
    # The folder of persisted results.
    results_folder: Callable[[], str] = lambda: os.path.join(tempfile.gettempdir(), "labloom")
    # Views: a run's live widget; a flow's static drawing from its NodeCreated events.
    widget: Callable[[Any], Any] | None = None
    draw: Callable[[Sequence[Any], str | None], Any] | None = None
    # A flow's launcher form: (flow, executor) -> widget.
    launcher: Callable[[Any, Any], Any] | None = None
    # Older log lines of a run (beyond what the kernel keeps): (run_id, task) -> lines.
    older_logs: Callable[[str, str | None], list[Any]] | None = None
    # Where a run started when its caller does not say: "notebook" in a kernel, else "script".
    default_origin: Callable[[], str] = lambda: "script"
    # A failed task's traceback text as people read it (in a kernel: "Cell In[2], line 10").
    traceback_text: Callable[[str], str] = lambda text: text


hooks = Hooks()
