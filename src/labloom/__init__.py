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

from typing import Any

from . import defaults, limits
from .core.cache_keys import CacheContext
from .core.errors import (
    ClusterConfigError,
    DatabaseURLError,
    ExperimentValueError,
    ExportError,
    FlowFailed,
    GraphvizNotFound,
    LabloomError,
    MagicArgsError,
    NotAllowedError,
    ResourceUnavailableError,
    RunCancelledError,
    ScheduleError,
    SchedulerLostError,
    StoreDataError,
    StoreUnavailableError,
    StoreUnreachableError,
    StoreVersionError,
    TargetError,
    TaskCrashedError,
    TaskTimeoutError,
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
from .store.experiments import experiments

__version__ = "0.1.0"

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
    "GraphvizNotFound",
    "LabloomError",
    "LocalExecutor",
    "LogLine",
    "MagicArgsError",
    "MappedFuture",
    "NotAllowedError",
    "ResourceUnavailableError",
    "RunCancelledError",
    "ScheduleError",
    "SchedulerLostError",
    "Secret",
    "State",
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
    # distributed is heavy: import it only when someone asks for the Dask executor.
    if name == "DaskExecutor":
        from .executors.dask import DaskExecutor

        return DaskExecutor
    raise AttributeError(f"module 'labloom' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext labloom``: registers %%tasks, %%flow and %flow_runs."""
    from .notebook.magics import load_ipython_extension as load

    load(ipython)


# Jupyter's hooks: the prebuilt JupyterLab extension (built from js/ into the wheel's
# share/jupyter/labextensions/labloom) and the server extension with the REST API.
def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "labloom"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "labloom.server_extension"}]
