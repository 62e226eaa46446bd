"""The option lines of ``%%tasks`` and ``%%flow``, parsed without IPython.

The exporter reads them from notebook files, where no kernel runs; the magics can parse with
the same functions so that both agree on the syntax::

    %%tasks [--retries N] [--retry-delay S] [--tags a,b] [--cache]
    %%flow NAME [-p PARAM ...] [--executor E] [--address ADDR] [--background] [--no-widget]
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass
from typing import Any, NoReturn

from ..core.errors import MagicArgsError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise MagicArgsError(f"{self.prog}: {message}")


@dataclass(frozen=True)
class TasksOptions:
    retries: int | None = None
    retry_delay: float | list[float] | None = None
    tags: tuple[str, ...] = ()
    cache: bool = False

    def task_kwargs(self) -> dict[str, Any]:
        """The options as ``task(...)`` keyword arguments, leaving out the defaults."""
        kwargs: dict[str, Any] = {}
        if self.retries is not None:
            kwargs["retries"] = self.retries
        if self.retry_delay is not None:
            kwargs["retry_delay"] = self.retry_delay
        if self.tags:
            kwargs["tags"] = list(self.tags)
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


def _seconds(text: str) -> float | list[float]:
    """``5`` or ``1,5,30`` (one delay per attempt); whole numbers stay ints."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"delays cannot be negative: {text!r}")
    cleaned: list[float] = [int(v) if v.is_integer() else v for v in values]
    return cleaned[0] if len(cleaned) == 1 else cleaned


def _tasks_parser() -> _Parser:
    parser = _Parser(prog="%%tasks", add_help=False)
    parser.add_argument("--retries", type=int)
    parser.add_argument("--retry-delay", type=_seconds)
    parser.add_argument("--tags", default="")
    parser.add_argument("--cache", action="store_true")
    return parser


def _flow_parser() -> _Parser:
    parser = _Parser(prog="%%flow", add_help=False)
    parser.add_argument("name")
    parser.add_argument("-p", "--param", action="append", nargs="+", default=[])
    parser.add_argument("--executor")
    parser.add_argument("--address")
    parser.add_argument("--background", action="store_true")
    parser.add_argument("--no-widget", action="store_true")
    return parser


def parse_tasks_line(line: str) -> TasksOptions:
    """Parse what follows ``%%tasks`` on the cell's first line."""
    ns = _tasks_parser().parse_args(shlex.split(line))
    if ns.retries is not None and ns.retries < 0:
        raise MagicArgsError("%%tasks: --retries cannot be negative")
    tags = tuple(t.strip() for t in ns.tags.split(",") if t.strip())
    return TasksOptions(ns.retries, ns.retry_delay, tags, ns.cache)


def parse_flow_line(line: str) -> FlowOptions:
    """Parse what follows ``%%flow`` on the cell's first line."""
    ns = _flow_parser().parse_args(shlex.split(line))
    if not ns.name.isidentifier():
        raise MagicArgsError(f"%%flow: the flow name {ns.name!r} must be a Python identifier")
    params = tuple(p for group in ns.param for p in group)
    for p in params:
        if not p.isidentifier():
            raise MagicArgsError(f"%%flow: parameter {p!r} must be a Python identifier")
    if len(set(params)) != len(params):
        raise MagicArgsError(f"%%flow: a parameter is named twice in {' '.join(params)}")
    executor = ns.executor
    if ns.address and executor not in (None, "dask"):
        raise MagicArgsError(f"%%flow: --address needs the dask executor, not {executor!r}")
    return FlowOptions(
        name=ns.name,
        params=params,
        executor=executor,
        address=ns.address,
        background=ns.background,
        widget=not ns.no_widget,
    )
