"""Where the layers above the engine plug in, so that core imports none of them.

``labloom/defaults.py`` fills these in when ``import labloom`` runs: the executors by name,
the store's concurrency slots, where results persist, and the notebook views (what watches
every run registers in ``observers.py``). Used alone, core still runs flows given an executor
object: no observers, no limits, cached results in a temporary folder.

>>> from labloom.core.hooks import hooks
>>> hooks.default_origin = lambda: "test"   # where runs say they started
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .executor import Executor

if TYPE_CHECKING:
    from .events import NodeCreated
    from .flow_run import FlowRun
    from .flows import Flow
    from .run_logs import LogLine


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


class ExecutorResolver(Protocol):
    """A user's executor choice (a name, an address, an ``Executor`` or None) -> an Executor."""

    def __call__(self, choice: Any, address: str | None, /) -> Executor: ...


class RunWidget(Protocol):
    """A run's live widget."""

    def __call__(self, run: FlowRun, /) -> Any: ...


class Drawing(Protocol):
    """A flow's static drawing from its ``NodeCreated`` events, shown or written to a file."""

    def __call__(self, nodes: Sequence[NodeCreated], filename: str | None, /) -> Any: ...


class LaunchForm(Protocol):
    """A flow's launcher form: (flow, executor) -> widget."""

    def __call__(self, flow: Flow[Any, Any], executor: Any, /) -> Any: ...


class OlderLogs(Protocol):
    """Older log lines of a run (beyond what the kernel keeps), of one task run or all."""

    def __call__(self, run_id: str, task: str | None, /) -> list[LogLine]: ...


def _unwired(choice: Any, address: str | None = None) -> Executor:
    if isinstance(choice, Executor):
        return choice
    raise RuntimeError(
        f"[labloom] no executor is registered for {choice!r}: `import labloom` registers them "
        "(labloom/defaults.py), or pass an executor object"
    )


def _temporary_results() -> str:
    # tempfile imported here, not by ``import labloom`` (4 ms of it in a bare process):
    # ``defaults`` wires the store's folder, so only a core without it gets here.
    import tempfile

    return os.path.join(tempfile.gettempdir(), "labloom")


@dataclass
class Hooks:
    resolve_executor: ExecutorResolver = _unwired
    # The limiter of runs whose executor brings none.
    default_limiter: Callable[[], Limiter] = NoLimits
    # Which results persist: "all" or "cached".
    persist_mode: Callable[[], str] = lambda: "cached"
    # The folder of persisted results.
    results_folder: Callable[[], str] = lambda: _temporary_results()
    # Views, where the notebook layer is there.
    widget: RunWidget | None = None
    draw: Drawing | None = None
    launcher: LaunchForm | None = None
    older_logs: OlderLogs | None = None
    # Where a run started when its caller does not say: "notebook" in a kernel, else "script".
    default_origin: Callable[[], str] = lambda: "script"
    # A failed task's traceback text as people read it (in a kernel: "Cell In[2], line 10").
    traceback_text: Callable[[str], str] = lambda text: text
    # Run ``callback`` (it closes the clusters this process started) also when the process is
    # asked to shut down, before it stops its child processes: a Jupyter kernel's shutdown
    # request terminates them before the exit handlers run (``notebook/kernel_shutdown.py``).
    # Elsewhere nothing: the exit handlers run first.
    before_shutdown: Callable[[Callable[[], None]], None] = lambda callback: None


hooks = Hooks()


def executor_limiter(executor: Executor, connect: bool = True) -> Limiter:
    """The executor's own limiter (Dask's, on a cluster others share), else the store's."""
    factory = getattr(executor, "limiter", None)
    limiter = factory(connect) if callable(factory) else None
    return limiter if limiter is not None else hooks.default_limiter()
