"""Task definitions: inert until called inside a flow. Options are checked here, at
decoration time, so a mistake surfaces where it was written and not mid-run."""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from .context import active_engine
from .experiment_values import check_options as check_experiment_options
from .logs import current_task
from .numbers import is_number as _is_number
from .numbers import is_seconds
from .retry_policy import RetryOn, check_retries, check_retry_on, delay_before

if TYPE_CHECKING:  # the engine makes futures; a definition only names them
    from .futures import MappedFuture, TaskFuture

P = ParamSpec("P")
R = TypeVar("R")

_OPTIONS = (
    "name",
    "retries",
    "retry_delay",
    "retry_on",
    "timeout",
    "tags",
    "resources",
    "cache",
    "cache_expiration",
    "cache_key",
    "log_prints",
    "batch_size",
    "params",
    "metrics",
)


def _check_options(fn_name: str, opts: dict[str, Any]) -> dict[str, Any]:
    where = f"@task on {fn_name!r}"
    unknown = sorted(set(opts) - set(_OPTIONS))
    if unknown:
        raise TypeError(
            f"{where}: unknown option(s) {', '.join(unknown)}; the options are "
            f"{', '.join(_OPTIONS)}"
        )
    name = opts.get("name", fn_name)
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"{where}: name must be a non-empty string, got {name!r}")

    retries, delay = check_retries(where, opts.get("retries", 0), opts.get("retry_delay", 0))

    timeout = opts.get("timeout")
    if isinstance(timeout, timedelta):
        timeout = timeout.total_seconds()
    if timeout is not None and not is_seconds(timeout):
        raise ValueError(
            f"{where}: timeout must be a finite number of seconds > 0, got {timeout!r}; "
            "give timeout=None for no timeout"
        )

    tags = opts.get("tags", ())
    if isinstance(tags, str):
        raise TypeError(
            f"{where}: tags must be an iterable of strings such as [{tags!r}], "
            f"got the string {tags!r}"
        )
    if not isinstance(tags, Iterable) or not all(isinstance(t, str) and t for t in tags):
        raise TypeError(f"{where}: tags must be an iterable of non-empty strings, got {tags!r}")

    resources = opts.get("resources") or {}
    if not isinstance(resources, Mapping) or not all(
        isinstance(k, str) and _is_number(v) and v >= 0 for k, v in resources.items()
    ):
        raise TypeError(
            f"{where}: resources must map resource names to amounts >= 0, such as "
            f"{{'GPU': 1, 'memory': 8e9}}; got {resources!r}"
        )

    cache_key = opts.get("cache_key")
    if cache_key is not None and not callable(cache_key):
        raise TypeError(
            f"{where}: cache_key must be a function (context, inputs) -> str or None, "
            f"got {cache_key!r}"
        )
    cache = opts.get("cache", cache_key is not None)
    if not isinstance(cache, bool):
        raise TypeError(f"{where}: cache must be True or False, got {cache!r}")
    if cache_key is not None and not cache:
        raise ValueError(
            f"{where}: cache_key= chooses a cache key, but cache=False; drop cache=False "
            "(cache_key= turns caching on), or drop cache_key"
        )
    expiration = opts.get("cache_expiration")
    if isinstance(expiration, timedelta):
        expiration = expiration.total_seconds()
    if expiration is not None and not is_seconds(expiration):
        raise ValueError(
            f"{where}: cache_expiration must be finite seconds > 0 or a timedelta, got "
            f"{expiration!r}; give None to keep results for good"
        )
    log_prints = opts.get("log_prints", True)
    if not isinstance(log_prints, bool):
        raise TypeError(f"{where}: log_prints must be True or False, got {log_prints!r}")
    batch_size = opts.get("batch_size")
    if batch_size not in (None, "auto") and (
        not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1
    ):
        raise ValueError(
            f"{where}: batch_size must be a whole number >= 1 (map children run per Dask "
            f"task; 1 for one child per Dask task) or \"auto\" (the default: chosen from "
            f"measured durations); got {batch_size!r}"
        )

    params, metrics = check_experiment_options(where, opts.get("params", False),
                                               opts.get("metrics"))
    return {
        "name": name,
        "retries": retries,
        "retry_delay": delay,
        "retry_on": check_retry_on(where, opts.get("retry_on")),
        "timeout": None if timeout is None else float(timeout),
        "tags": frozenset(tags),
        "resources": {k: float(v) for k, v in resources.items()},
        "cache": cache,
        "cache_key": cache_key,
        "cache_expiration": None if expiration is None else float(expiration),
        "log_prints": log_prints,
        "batch_size": batch_size,
        "params": params,
        "metrics": metrics,
    }


def check_function(fn: Any, decorator: str) -> None:
    if not callable(fn):
        raise TypeError(
            f"{decorator} decorates a function; got {type(fn).__name__}. "
            f"Use {decorator} or {decorator}(retries=2, ...) right above a def"
        )
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        raise TypeError(
            f"{decorator}: {fn.__name__!r} is an async function, which labloom does not run; "
            "wrap it in a plain function that calls asyncio.run(...)"
        )
    if inspect.isgeneratorfunction(fn):
        raise TypeError(
            f"{decorator}: {fn.__name__!r} is a generator function; a task's result must be a "
            "value that can travel between workers: return a list instead of yielding"
        )


class Task(Generic[P, R]):
    """A function that runs as a task inside a flow, and as itself everywhere else.

    >>> @task(retries=2, retry_delay=[1, 10], tags=["db"])
    ... def load(table: str) -> list[dict]:
    ...     ...
    """

    def __init__(self, fn: Callable[P, R], **options: Any) -> None:
        check_function(fn, "@task")
        self.fn = fn
        self._options = _check_options(getattr(fn, "__name__", "task"), options)
        functools.update_wrapper(self, fn)  # name, docstring, module; signature via __wrapped__

    # Options, read-only; with_options() makes a changed copy.
    @property
    def name(self) -> str:
        return str(self._options["name"])

    @property
    def retries(self) -> int:
        return int(self._options["retries"])

    @property
    def retry_delay(self) -> float | list[float]:
        delay: float | list[float] = self._options["retry_delay"]
        return delay

    @property
    def retry_on(self) -> RetryOn | None:
        """Which failures are retried (``retry_policy.py``); None: all."""
        retry_on: RetryOn | None = self._options["retry_on"]
        return retry_on

    @property
    def timeout(self) -> float | None:
        timeout: float | None = self._options["timeout"]
        return timeout

    @property
    def tags(self) -> frozenset[str]:
        tags: frozenset[str] = self._options["tags"]
        return tags

    @property
    def resources(self) -> dict[str, float]:
        return dict(self._options["resources"])

    @property
    def cache(self) -> bool:
        return bool(self._options["cache"])

    @property
    def cache_key(self) -> Callable[..., str | None] | None:
        """The user's key policy: ``(CacheContext, inputs by parameter name) -> str | None``,
        called where the inputs are."""
        hook: Callable[..., str | None] | None = self._options["cache_key"]
        return hook

    @property
    def cache_expiration(self) -> float | None:
        expiration: float | None = self._options["cache_expiration"]
        return expiration

    @property
    def log_prints(self) -> bool:
        return bool(self._options["log_prints"])

    @property
    def batch_size(self) -> int | str:
        """On Dask, map children run this many per Dask task (each keeps its own task run);
        ``"auto"`` (the default): as many as take about 50 ms, from the durations measured so
        far; 1: one Dask task per child."""
        size: int | str | None = self._options["batch_size"]
        return "auto" if size is None else size

    @property
    def params(self) -> bool:
        """Record each call's mapped element(s) (a plain call: its arguments) as params."""
        return bool(self._options["params"])

    @property
    def metrics(self) -> tuple[str, ...]:
        """Names recorded as metrics from the dict the task returns."""
        metrics: tuple[str, ...] = self._options["metrics"]
        return metrics

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before attempt number ``attempt`` (2 is the first retry)."""
        return delay_before(self.retry_delay, attempt)

    def with_options(self, **options: Any) -> Task[P, R]:
        """A copy with some options changed: ``train.with_options(retries=3)``."""
        merged = {**self._options, **options}
        merged["tags"] = list(merged["tags"])
        if "name" not in options:
            merged["name"] = self.name
        return Task(self.fn, **merged)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        engine = active_engine()
        if engine is None:
            return self.fn(*args, **kwargs)
        wait_for = kwargs.pop("wait_for", None)
        future: Any = engine.submit(self, args, kwargs, wait_for)
        return future  # type: ignore[no-any-return]

    def submit(self, *args: P.args, **kwargs: P.kwargs) -> TaskFuture[R]:
        """Start a task run in the current flow; returns its future at once.

        Takes ``wait_for=[future, ...]`` to wait for runs whose data it does not use.
        """
        engine = _require_engine(self, "submit")
        wait_for = kwargs.pop("wait_for", None)
        future: TaskFuture[R] = engine.submit(self, args, kwargs, wait_for)
        return future

    def map(self, *iterables: Any, **kwargs: Any) -> MappedFuture[R]:
        """One task run per element of the iterables (zipped; lengths must match).

        Wrap a value in ``unmapped(...)`` to give it whole to every run. An iterable may be a
        future or another map's result: the width is then known when it resolves, and child i
        waits only for child i of the map it came from. ``flatten(other.map(...))`` maps over
        the items of that map's lists as they arrive; ``allow_failure(other.map(...))`` gives
        each child its upstream child's value or exception.
        """
        engine = _require_engine(self, "map")
        wait_for = kwargs.pop("wait_for", None)
        mapped: MappedFuture[R] = engine.map(self, iterables, kwargs, wait_for)
        return mapped

    def __repr__(self) -> str:
        return f"<Task {self.name}>"

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        # Tasks defined in a class body behave like methods.
        if instance is None:
            return self
        return functools.partial(self, instance)


def _require_engine(task: Task[Any, Any], method: str) -> Any:
    run = active_engine()
    inside = current_task()
    if run is None and inside is not None:
        raise RuntimeError(
            f"{task.name}.{method}() was called inside task {inside.task_name!r}, where tasks "
            f"are plain functions; call {task.name}.{method}() in the flow body instead, or "
            "put this work in a @flow and call that flow from the task (a nested flow run)"
        )
    if run is None:
        raise RuntimeError(
            f"{task.name}.{method}() needs a running flow: call it inside a @flow function or "
            f"a %%flow cell; outside a flow, call {task.name}(...) to run the function itself"
        )
    return run


def as_defined_now(task: Task[Any, Any]) -> Task[Any, Any]:
    """``task`` with its function as its module (a notebook's namespace) defines it now, its
    options kept: a run retried in its process after the task's cell was fixed and run again
    ran the old function, and failed the same way. ``task`` itself when its function is
    unchanged or was not defined at the top of its module."""
    fn = task.fn
    name, qualname = getattr(fn, "__name__", ""), getattr(fn, "__qualname__", "")
    now = getattr(fn, "__globals__", {}).get(name) if name == qualname else None
    now = now.fn if isinstance(now, Task) else now
    if now is fn or not isinstance(now, types.FunctionType) or now.__qualname__ != qualname:
        return task
    return Task(now, **{**task._options, "tags": list(task._options["tags"])})


@overload
def task(fn: Callable[P, R]) -> Task[P, R]: ...


@overload
def task(
    fn: None = None,
    *,
    name: str | None = None,
    retries: int = 0,
    retry_delay: float | Sequence[float] = 0,
    retry_on: RetryOn | None = None,
    timeout: float | None = None,
    tags: Iterable[str] = (),
    resources: Mapping[str, float] | None = None,
    cache: bool = False,
    cache_expiration: float | timedelta | None = None,
    cache_key: Callable[[Any, dict[str, Any]], str | None] | None = None,
    log_prints: bool = True,
    batch_size: int | str | None = None,
    params: bool = False,
    metrics: Iterable[str] | None = None,
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(fn: Any = None, **options: Any) -> Any:
    """Make a function a task, bare (``@task``) or with options (``@task(retries=2)``).

    >>> @task(retries=2, timeout=600, tags=["gpu"], resources={"GPU": 1})
    ... def train(params: dict) -> float:
    ...     ...
    """
    if fn is None:
        return lambda f: Task(f, **_drop_none_name(options))
    if isinstance(fn, str):
        raise TypeError(
            f"@task takes options by keyword: write @task(name={fn!r}), not @task({fn!r})"
        )
    return Task(fn, **_drop_none_name(options))


def _drop_none_name(options: dict[str, Any]) -> dict[str, Any]:
    if options.get("name", "") is None:
        options = {k: v for k, v in options.items() if k != "name"}
    return options
