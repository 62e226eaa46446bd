"""labloom: JupyterLab as an orchestrator.

>>> from labloom import task, flow
>>> @task
... def square(x: int) -> int:
...     return x * x
>>> @flow
... def squares(n: int) -> list[int]:
...     return square.map(range(n))
>>> squares(4)
[0, 1, 4, 9]
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import defaults

# Every public name by the module it comes from: the look-up below reads this table, a test
# checks that ``__all__`` (a literal list, as type checkers need it) and the ``TYPE_CHECKING``
# imports (what they read for types) name the same. ``import labloom`` imports none of them:
# a Dask worker unpickling a chunk imports ``labloom.executors...``, so this module, and needs
# neither the engine nor the store; nor does the CLI (issue 21). The first look-up of a public
# name imports them all (``_public_api``).
_ORIGINS: dict[str, tuple[str, ...]] = {
    ".": ("limits",),  # the module labloom.limits itself
    ".core.cache_keys": ("CacheContext",),
    ".core.errors": (
        "ClusterConfigError", "DatabaseURLError", "ExperimentValueError", "ExportError",
        "FlowFailed", "FlowTimeoutError", "GraphvizNotFound", "LabloomError", "MagicArgsError",
        "NotAllowedError", "ResourceUnavailableError", "ResultLoadError", "RunCancelledError",
        "ScheduleError", "SchedulerLostError", "StoreChangeUnknownError",
        "StoreDataError", "StoreUnavailableError", "StoreUnreachableError", "StoreVersionError",
        "TargetError", "TaskCrashedError", "TaskTimeoutError", "UnknownColumnError",
        "UpstreamFailedError", "WorkerDiedError",
    ),
    ".core.experiment_values": ("log_metric", "log_metrics", "log_params"),
    ".core.flatten": ("flatten",),
    ".core.flow_run": ("FlowRun", "LogLine"),
    ".core.flows": ("Flow", "flow"),
    ".core.futures": ("MappedFuture", "TaskFuture", "allow_failure", "unmapped"),
    ".core.logs": ("get_run_logger",),
    ".core.secrets": ("Secret",),
    ".core.states": ("State",),
    ".core.task_runs": ("TaskRun",),
    ".core.tasks": ("Task", "task"),
    ".executors": ("Executor", "LocalExecutor", "ThreadExecutor"),
    ".executors.dask": ("DaskExecutor",),
    ".store.experiments": ("experiments",),
}
_HOME = {name: module for module, names in _ORIGINS.items() for name in names}
_DASK = ".executors.dask"  # distributed is heavy: imported only for the Dask executor

if TYPE_CHECKING:
    from . import limits
    from .core.cache_keys import CacheContext
    from .core.errors import (
        ClusterConfigError,
        DatabaseURLError,
        ExperimentValueError,
        ExportError,
        FlowFailed,
        FlowTimeoutError,
        GraphvizNotFound,
        LabloomError,
        MagicArgsError,
        NotAllowedError,
        ResourceUnavailableError,
        ResultLoadError,
        RunCancelledError,
        ScheduleError,
        SchedulerLostError,
        StoreChangeUnknownError,
        StoreDataError,
        StoreUnavailableError,
        StoreUnreachableError,
        StoreVersionError,
        TargetError,
        TaskCrashedError,
        TaskTimeoutError,
        UnknownColumnError,
        UpstreamFailedError,
        WorkerDiedError,
    )
    from .core.experiment_values import log_metric, log_metrics, log_params
    from .core.flatten import flatten
    from .core.flow_run import FlowRun, LogLine
    from .core.flows import Flow, flow
    from .core.futures import MappedFuture, TaskFuture, allow_failure, unmapped
    from .core.logs import get_run_logger
    from .core.secrets import Secret
    from .core.states import State
    from .core.task_runs import TaskRun
    from .core.tasks import Task, task
    from .executors import Executor, LocalExecutor, ThreadExecutor
    from .executors.dask import DaskExecutor
    from .store.experiments import experiments

__version__ = "0.1.0"

# The engine's seams get the store, the executors by name and the views; cheap (each hook
# imports its layer when first called), and done here so that any way into the package, a
# public name or an internal module, finds them wired.
defaults.install()

__all__ = [
    "CacheContext",
    "ClusterConfigError",
    "DaskExecutor",
    "DatabaseURLError",
    "Executor",
    "ExperimentValueError",
    "ExportError",
    "Flow",
    "FlowFailed",
    "FlowRun",
    "FlowTimeoutError",
    "GraphvizNotFound",
    "LabloomError",
    "LocalExecutor",
    "LogLine",
    "MagicArgsError",
    "MappedFuture",
    "NotAllowedError",
    "ResourceUnavailableError",
    "ResultLoadError",
    "RunCancelledError",
    "ScheduleError",
    "SchedulerLostError",
    "Secret",
    "State",
    "StoreChangeUnknownError",
    "StoreDataError",
    "StoreUnavailableError",
    "StoreUnreachableError",
    "StoreVersionError",
    "TargetError",
    "Task",
    "TaskCrashedError",
    "TaskFuture",
    "TaskRun",
    "TaskTimeoutError",
    "ThreadExecutor",
    "UnknownColumnError",
    "UpstreamFailedError",
    "WorkerDiedError",
    "allow_failure",
    "experiments",
    "flatten",
    "flow",
    "get_run_logger",
    "limits",
    "load_ipython_extension",
    "log_metric",
    "log_metrics",
    "log_params",
    "task",
    "unmapped",
]


def __getattr__(name: str) -> Any:
    origin = _HOME.get(name)
    if origin is None:
        raise AttributeError(f"module 'labloom' has no attribute {name!r}")
    try:
        if origin in (".", _DASK):  # the CLI's ``from .. import limits``; distributed: just it
            globals()[name] = value = _imported(origin, name)
            return value
        _public_api()
    except AttributeError as exc:
        # A module failed to import (a dependency lacking a name): out of ``__getattr__`` an
        # AttributeError reads as "no such name", ``from labloom import task`` would say only
        # "cannot import name" and ``hasattr`` False, and the cause would be lost.
        raise ImportError(f"[labloom] {name} could not be imported: {exc}") from exc
    return globals()[name]


def _public_api() -> None:
    """Every public name but the Dask executor, bound here (later look-ups do not come to
    ``__getattr__``). All at once, at the first: whoever asks for one defines and runs flows,
    and the engine is imported here, as ``import labloom`` did before, rather than inside
    the first run, where its 20-40 ms would count in the run's time."""
    for module, names in _ORIGINS.items():
        if module != _DASK:
            for name in names:
                globals()[name] = _imported(module, name)
    # And what a run is recorded and shown with (the store's writer and its kin, the terminal
    # progress), for the same reason.
    defaults.import_observers()


def _imported(module: str, name: str) -> Any:
    if module == ".":
        return importlib.import_module(f"{__name__}.{name}")
    return getattr(importlib.import_module(module, __name__), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext labloom``: registers %%tasks, %%flow and %flow_runs."""
    from .notebook.magics import load_ipython_extension as load

    # A notebook that loads the magics runs flows, often naming no public name: the engine is
    # imported here, as at the first public name, not in its first %%flow cell's run.
    _public_api()
    load(ipython)


# Jupyter's hooks: the prebuilt JupyterLab extension (built from js/ into the wheel's
# share/jupyter/labextensions/labloom) and the server extension with the REST API.
def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "labloom"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "labloom.server_extension"}]
