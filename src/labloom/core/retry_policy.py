"""Which failures a task retries: ``@task(retries=3, retry_on=ConnectionError)``.

Retrying a bug (a ``KeyError`` in the task's own code) spends every retry and its delay on
each child of a sweep for the same answer; what is worth another attempt is most often the
outside world's (a connection dropped, a server busy, a worker lost). ``retry_on`` says which:
``None`` (the default) retries every failure, up to ``retries``; an exception class or a tuple
of them only a failure that is an instance of one (``TaskTimeoutError`` and ``WorkerDiedError``
are labloom's, for a timeout and a lost Dask worker). A ``BaseException`` that is not an
``Exception`` (``TaskCrashedError``) is never retried, nor is labloom's refusal of a logged
value (``ExperimentValueError``), which each attempt would meet again after all its work.

``check_retries`` and ``delay_before`` are the one rule for ``retries`` and ``retry_delay``,
which tasks and flows (``@flow(retries=2)``, ``flow_retries.py``) both take.

Classes, not a function of the exception: the engine decides under its run's lock, where a
user's function that logs could wait on a task thread's handler that waits on that lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from .errors import ExperimentValueError
from .numbers import is_seconds

RetryOn = type[BaseException] | tuple[type[BaseException], ...]


def check_retries(where: str, retries: Any, delay: Any) -> tuple[int, float | list[float]]:
    """``retries`` and ``retry_delay`` as a task or a flow takes them (seconds, a timedelta,
    or a list of seconds per retry), checked where it is defined."""
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise ValueError(
            f"{where}: retries must be a whole number >= 0, got {retries!r}; "
            "use retries=0 for no retries"
        )
    if isinstance(delay, timedelta):
        delay = delay.total_seconds()
    if isinstance(delay, (list, tuple)):
        if not all(is_seconds(d, zero=True) for d in delay):
            raise ValueError(
                f"{where}: retry_delay must hold finite seconds >= 0, got {delay!r}"
            )
        if len(delay) > retries:
            raise ValueError(
                f"{where}: retry_delay lists {len(delay)} delays but retries={retries}; "
                "give at most one delay per retry, or raise retries"
            )
        return retries, [float(d) for d in delay]
    if not is_seconds(delay, zero=True):
        raise ValueError(
            f"{where}: retry_delay must be finite seconds >= 0 or a list of them, got {delay!r}"
        )
    return retries, float(delay)


def delay_before(delay: float | Sequence[float], attempt: int) -> float:
    """Seconds to wait before attempt number ``attempt`` (2 is the first retry); a list's
    last delay holds for the retries past its end."""
    if isinstance(delay, Sequence):
        return delay[min(attempt - 2, len(delay) - 1)] if delay else 0.0
    return delay


def check_retry_on(where: str, retry_on: Any) -> RetryOn | None:
    """``retry_on`` as given (a list made a tuple), checked where the task is defined."""
    if isinstance(retry_on, list):
        retry_on = tuple(retry_on)
    if retry_on is None or _is_error_class(retry_on):
        return retry_on  # type: ignore[no-any-return]
    if isinstance(retry_on, tuple) and retry_on and all(map(_is_error_class, retry_on)):
        return retry_on
    raise TypeError(
        f"{where}: retry_on must be an exception class (retry_on=ConnectionError) or a tuple "
        f"of them (retry_on=(ConnectionError, TimeoutError)); got {retry_on!r}"
    )


def _is_error_class(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseException)


def why_not_retried(retry_on: RetryOn | None, error: BaseException | None) -> str:
    """"" when a failure with ``error`` is retried under ``retry_on``, else why not (a line
    for the task run's logs)."""
    if isinstance(error, ExperimentValueError):
        # labloom's refusal of what the task logged (or returned for metrics=): another
        # attempt would compute it all again to log the same value.
        return "not retried: ExperimentValueError (a value labloom cannot record) comes back " \
            "at each attempt; fix what the task logs or returns"
    if retry_on is None or isinstance(error, retry_on):
        return ""
    names = retry_on if isinstance(retry_on, tuple) else (retry_on,)
    return (f"not retried: {type(error).__name__} is not among retry_on "
            f"({', '.join(kind.__name__ for kind in names)})")
