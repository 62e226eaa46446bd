"""The option lines of ``%%tasks`` and ``%%flow``, parsed without IPython.

The one grammar of the two magics: the kernel's magics (``notebook/magics.py``) parse their
line with these functions and the exporter reads notebook files with them, so both accept
exactly the same lines. It lives here, below the notebook layer, so both import it::

    %%tasks [--retries N] [--retry-delay S] [--retry-on E,F] [--tags a,b] [--timeout S]
            [--cache]
    %%flow NAME [-p PARAM ...] [--executor E] [--address ADDR] [--cluster PROFILE]
          [--timeout S] [--retries N] [--retry-delay S] [--background] [--no-widget]

``tasks_help()`` and ``flow_help()`` give the usage text the magics show (``%%flow?``).
"""

from __future__ import annotations

import argparse
import keyword
import shlex
from dataclasses import dataclass
from typing import Any, NoReturn

from ..core.errors import MagicArgsError
from ..core.numbers import is_seconds


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # Raised while argparse handles its own ArgumentError: without `from None` a cell
        # showed that traceback of argparse's internals first, then this one.
        raise MagicArgsError(f"{self.prog}: {message}") from None


@dataclass(frozen=True)
class TasksOptions:
    retries: int | None = None
    retry_delay: float | list[float] | None = None
    tags: tuple[str, ...] = ()
    timeout: float | None = None
    cache: bool = False
    # Exception classes by name as written (``ConnectionError``, ``requests.Timeout``): the
    # kernel looks them up in the notebook's names, the exporter writes them as source.
    retry_on: tuple[str, ...] = ()

    def task_kwargs(self) -> dict[str, Any]:
        """The options as ``task(...)`` keyword arguments, leaving out the defaults and
        ``retry_on`` (names, which the kernel and the exporter each turn into their own)."""
        kwargs: dict[str, Any] = {}
        if self.retries is not None:
            kwargs["retries"] = self.retries
        if self.retry_delay is not None:
            kwargs["retry_delay"] = self.retry_delay
        if self.tags:
            kwargs["tags"] = list(self.tags)
        if self.timeout is not None:
            kwargs["timeout"] = self.timeout
        if self.cache:
            kwargs["cache"] = True
        return kwargs


@dataclass(frozen=True)
class FlowOptions:
    name: str
    params: tuple[str, ...] = ()
    executor: str | None = None
    address: str | None = None
    background: bool = False
    widget: bool = True
    cluster: str | None = None  # a named cluster profile: a cluster started for each run
    timeout: float | None = None  # seconds a run may take (``@flow(timeout=...)``)
    retries: int = 0  # ``@flow(retries=...)``: a failed run runs again in place
    retry_delay: float | list[float] = 0

    def flow_kwargs(self) -> dict[str, Any]:
        """The run options as ``flow(...)`` keyword arguments, leaving out the defaults."""
        kwargs: dict[str, Any] = {}
        if self.timeout is not None:
            kwargs["timeout"] = self.timeout
        if self.retries:
            kwargs["retries"] = self.retries
        if self.retry_delay:
            kwargs["retry_delay"] = self.retry_delay
        return kwargs


def _seconds(text: str) -> float | list[float]:
    """``5`` or ``1,5,30`` (one delay per attempt); whole numbers stay ints."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not all(is_seconds(v, zero=True) for v in values):
        raise argparse.ArgumentTypeError(
            f"delays must be finite seconds >= 0, such as 5 or 1,10,60: {text!r}"
        )
    cleaned: list[float] = [int(v) if v.is_integer() else v for v in values]
    return cleaned[0] if len(cleaned) == 1 else cleaned


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not is_seconds(value):
        raise argparse.ArgumentTypeError(
            f"must be a finite number of seconds, more than 0, such as 600: {text!r}"
        )
    return int(value) if value.is_integer() else value


def _class_names(text: str) -> tuple[str, ...]:
    """``ConnectionError,requests.Timeout``: names of classes, dotted through modules."""
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    for name in names:
        if not all(p.isidentifier() and not keyword.iskeyword(p) for p in name.split(".")):
            raise argparse.ArgumentTypeError(
                f"{name!r} is not the name of an exception class (ConnectionError, "
                "requests.Timeout)"
            )
    if not names:
        raise argparse.ArgumentTypeError("name one exception class or more: ConnectionError")
    return names


def _tasks_parser() -> _Parser:
    parser = _Parser(prog="%%tasks", add_help=False)
    parser.add_argument("--retries", type=int, metavar="N", help="Retries after a failed attempt.")
    parser.add_argument("--retry-delay", type=_seconds, metavar="S",
                        help="Seconds before each retry, or a comma list per attempt (1,10,60).")
    parser.add_argument("--retry-on", type=_class_names, default=(), metavar="E,F",
                        help="Retry only failures of these exception classes (ConnectionError, "
                        "requests.Timeout); others fail at once.")
    parser.add_argument("--tags", default="", help="Comma-separated tags, e.g. db,gpu.")
    parser.add_argument("--timeout", type=_positive, metavar="S",
                        help="Seconds before an attempt fails.")
    parser.add_argument("--cache", action="store_true",
                        help="Persist results keyed by source and inputs.")
    return parser


def _flow_parser() -> _Parser:
    parser = _Parser(prog="%%flow", add_help=False)
    parser.add_argument("name", help="The flow's name; afterwards this variable holds the Flow.")
    parser.add_argument("-p", "--param", action="append", nargs="+", default=[], metavar="PARAM",
                        help="Notebook variables that become parameters (their values are the "
                        "defaults): -p a -p b,c d")
    parser.add_argument("--executor", help="local, threads or dask (default Labloom.executor).")
    parser.add_argument("--address", help="A Dask scheduler address, tcp://host:8786.")
    parser.add_argument("--cluster", metavar="PROFILE",
                        help="A cluster profile of Labloom.clusters: a Dask cluster started "
                        "for each run and closed after it.")
    parser.add_argument("--timeout", type=_positive, metavar="S",
                        help="Seconds a run may take; then what has not ended is cancelled "
                        "and the run fails.")
    parser.add_argument("--retries", type=int, default=0, metavar="N",
                        help="Runs again in place, up to N times, a run that failed.")
    parser.add_argument("--retry-delay", type=_seconds, default=0, metavar="S",
                        help="Seconds before each retry of the run, or a comma list (60,600).")
    parser.add_argument("--background", action="store_true",
                        help="Return at once; names are set when it ends.")
    parser.add_argument("--no-widget", action="store_true", help="Do not show the live DAG.")
    return parser


def tasks_help() -> str:
    return _tasks_parser().format_help()


def flow_help() -> str:
    return _flow_parser().format_help()


def parse_tasks_line(line: str) -> TasksOptions:
    """Parse what follows ``%%tasks`` on the cell's first line."""
    ns = _tasks_parser().parse_args(shlex.split(line))
    if ns.retries is not None and ns.retries < 0:
        raise MagicArgsError("%%tasks: --retries cannot be negative")
    tags = tuple(t.strip() for t in ns.tags.split(",") if t.strip())
    return TasksOptions(ns.retries, ns.retry_delay, tags, ns.timeout, ns.cache, ns.retry_on)


def parse_flow_line(line: str) -> FlowOptions:
    """Parse what follows ``%%flow`` on the cell's first line."""
    ns = _flow_parser().parse_args(shlex.split(line))
    if not ns.name.isidentifier() or keyword.iskeyword(ns.name):
        raise MagicArgsError(
            f"%%flow: the flow name {ns.name!r} must be a Python identifier, such as sweep"
        )
    params = tuple(
        part.strip() for group in ns.param for p in group for part in p.split(",") if part.strip()
    )
    for p in params:
        if not p.isidentifier() or keyword.iskeyword(p):
            raise MagicArgsError(f"%%flow: parameter {p!r} must be a Python identifier")
    if len(set(params)) != len(params):
        raise MagicArgsError(f"%%flow: a parameter is named twice in {' '.join(params)}")
    executor = ns.executor
    if ns.address and executor not in (None, "dask"):
        raise MagicArgsError(f"%%flow: --address needs the dask executor, not {executor!r}")
    if ns.cluster is not None and (executor or ns.address):
        given = "--executor" if executor else "--address"
        raise MagicArgsError(f"%%flow: --cluster starts a cluster for each run, {given} names "
                             "another executor; drop one of them")
    if ns.cluster is not None and (not ns.cluster.strip() or ":" in ns.cluster):
        raise MagicArgsError(f"%%flow: --cluster takes a profile name such as k8s, "
                             f"got {ns.cluster!r}")
    if ns.retries < 0:
        raise MagicArgsError("%%flow: --retries cannot be negative; --retries 0 for none")
    delays = ns.retry_delay if isinstance(ns.retry_delay, list) else [ns.retry_delay]
    if any(delays) and not ns.retries:  # as Flow() refuses retry_delay alone, in one line
        raise MagicArgsError("%%flow: --retry-delay without --retries does nothing; give "
                             "--retries N too")
    if len(delays) > max(ns.retries, 1):
        raise MagicArgsError(f"%%flow: --retry-delay lists {len(delays)} delays but --retries "
                             f"is {ns.retries}; give at most one delay per retry")
    return FlowOptions(
        name=ns.name,
        params=params,
        executor=executor,
        address=ns.address,
        background=ns.background,
        widget=not ns.no_widget,
        cluster=ns.cluster,
        timeout=ns.timeout,
        retries=ns.retries,
        retry_delay=ns.retry_delay,
    )
