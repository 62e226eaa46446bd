"""Flow definitions: a function whose body wires tasks together. Calling runs it."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from .executor import Executor
from .hooks import hooks
from .numbers import is_seconds
from .retry_policy import check_retries
from .source import source_hash
from .tasks import check_function
from .values import resolved as resolved_values

if TYPE_CHECKING:
    from .flow_run import FlowRun

P = ParamSpec("P")
R = TypeVar("R")

FailureHook = Callable[[Any], None]
_OPTIONS = ("name", "executor", "description", "on_failure", "timeout", "retries", "retry_delay")


class Flow(Generic[P, R]):
    """A flow: calling it runs it and returns its value with futures resolved.

    >>> @flow
    ... def sweep(grid: list[dict]) -> float:
    ...     scores = train.map(grid)
    ...     return best(scores)
    >>> sweep(grid)                      # runs, returns the best score
    >>> run = sweep.run(grid=grid, background=True)   # a FlowRun handle
    """

    def __init__(
        self,
        fn: Callable[P, R],
        name: str | None = None,
        executor: Any = None,
        description: str | None = None,
        on_failure: FailureHook | list[FailureHook] | None = None,
        timeout: float | timedelta | None = None,
        retries: int = 0,
        retry_delay: float | timedelta | list[float] = 0,
    ) -> None:
        check_function(fn, "@flow")
        self.fn = fn
        self.name: str = str(name or getattr(fn, "__name__", "flow"))
        if not isinstance(self.name, str) or not self.name.strip():
            raise TypeError(f"@flow: name must be a non-empty string, got {name!r}")
        if executor is not None and not isinstance(executor, Executor):
            hooks.resolve_executor(executor, None)  # validate the name now, not at run time
        self.executor = executor
        self.description = description or inspect.getdoc(fn) or ""
        on_fail = on_failure if isinstance(on_failure, list) else [on_failure] if on_failure else []
        for hook in on_fail:
            if not callable(hook):
                raise TypeError(f"@flow: on_failure takes callables (run) -> None, got {hook!r}")
        self.on_failure: list[FailureHook] = on_fail
        if isinstance(timeout, timedelta):
            timeout = timeout.total_seconds()
        if timeout is not None and not is_seconds(timeout):
            raise TypeError(f"@flow: timeout must be a finite number of seconds > 0, got "
                            f"{timeout!r}; give timeout=None for no timeout")
        # Seconds a run may take; then what has not ended is cancelled and the run Failed.
        self.timeout = None if timeout is None else float(timeout)
        # A run that ends Failed runs again in place, up to ``retries`` times (flow_retries.py).
        self.retries, self.retry_delay = check_retries("@flow", retries, retry_delay)
        if self.retry_delay and not self.retries:
            # A delay alone retries nothing: the run would fail at once, found the next day.
            raise ValueError(f"@flow: retry_delay={self.retry_delay!r} without retries does "
                             "nothing: give retries=N too (--retries N in a %%flow cell)")
        self.signature = inspect.signature(fn)
        self.source_hash = source_hash(fn)
        # The notebook file a %%flow cell came from, where the kernel knows it: a retry in
        # another process (the Flows panel, `labloom retry`) exports the flow from there.
        self.notebook: str | None = None
        functools.update_wrapper(self, fn)

    @property
    def parameters(self) -> list[str]:
        return list(self.signature.parameters)

    def bind(self, *args: Any, **params: Any) -> dict[str, Any]:
        """Check parameters against the signature before anything runs; defaults filled in."""
        try:
            bound = self.signature.bind(*args, **params)
        except TypeError as exc:
            raise TypeError(
                f"flow {self.name!r}: {exc}; its parameters are {self.describe_parameters()}"
            ) from None
        bound.apply_defaults()
        return dict(bound.arguments)

    def describe_parameters(self) -> str:
        parts = []
        for param in self.signature.parameters.values():
            if param.default is inspect.Parameter.empty:
                parts.append(f"{param.name} (required)")
            else:
                parts.append(f"{param.name}={param.default!r}")
        return ", ".join(parts) or "(none)"

    def run(
        self,
        executor: Any = None,
        background: bool = False,
        origin: str | None = None,
        address: str | None = None,
        **params: Any,
    ) -> FlowRun:
        """Start a run and return its ``FlowRun`` handle (finished unless ``background``).
        ``origin``: where it started ("notebook" in a kernel, else "script", unless given)."""
        from .flow_run import FlowRun

        # A subflow gets the values of its caller's futures: a future is valid in its own run.
        parameters = resolved_values(self.bind(**params))
        # An address given to this run outranks the executor the flow declares.
        default = None if address else self.executor
        choice = executor if executor is not None else default
        resolved = hooks.resolve_executor(choice, address)
        run = FlowRun(
            self, parameters, resolved, origin=origin or hooks.default_origin(),
            owns_executor=not isinstance(choice, Executor),
        )
        return run.start(background=background)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        parameters = self.bind(*args, **kwargs)
        run = self.run(**parameters)
        value: R = run.result()
        return value

    def visualize(self, filename: str | None = None, **params: Any) -> Any:
        """The static DAG through graphviz (an inline SVG in a notebook); nothing runs.

        The body is traced with the given (or default) parameters; a map whose width depends
        on a result shows as one node. Needs graphviz's ``dot``.
        """
        from .engine import RunEngine
        from .executor import PlanningExecutor
        from .hooks import NoLimits

        if hooks.draw is None:
            raise RuntimeError("[labloom] no drawing is registered: `import labloom` first")
        engine = RunEngine(self, self.bind(**params), PlanningExecutor(), "plan", NoLimits())
        return hooks.draw(engine.trace(), filename)

    def launcher(self, executor: Any = None) -> Any:
        """A notebook form: one input per parameter, a Run button, the live DAG below it."""
        if hooks.launcher is None:
            raise RuntimeError("[labloom] no launcher is registered: `import labloom` first")
        return hooks.launcher(self, executor)

    def __repr__(self) -> str:
        return f"<Flow {self.name}>"


@overload
def flow(fn: Callable[P, R]) -> Flow[P, R]: ...


@overload
def flow(
    fn: None = None,
    *,
    name: str | None = None,
    executor: Any = None,
    description: str | None = None,
    on_failure: FailureHook | list[FailureHook] | None = None,
    timeout: float | timedelta | None = None,
    retries: int = 0,
    retry_delay: float | timedelta | list[float] = 0,
) -> Callable[[Callable[P, R]], Flow[P, R]]: ...


def flow(fn: Any = None, **options: Any) -> Any:
    """Make a function a flow, bare (``@flow``) or with options.

    >>> @flow(name="nightly-scoring", executor="dask", timeout=3600, retries=2, retry_delay=600)
    ... def score(day: str) -> int:
    ...     ...
    """
    unknown = set(options) - set(_OPTIONS)
    if unknown:
        hint = "; the delay is retry_delay=" if "retry_delay_seconds" in unknown else ""
        raise TypeError(
            f"@flow: unknown option(s) {', '.join(sorted(unknown))}; the options are "
            f"{', '.join(_OPTIONS)}{hint}"
        )
    if fn is None:
        return lambda f: Flow(f, **options)
    if isinstance(fn, str):
        raise TypeError(f"@flow takes options by keyword: write @flow(name={fn!r})")
    return Flow(fn, **options)
