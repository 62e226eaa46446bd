"""Executors: where task runs run. ``resolve_executor`` turns a user's choice into one."""

from __future__ import annotations

from typing import Any

from ..core.executor import Executor, Outcome
from .local import LocalExecutor, ThreadExecutor

EXECUTOR_NAMES = ("local", "threads", "dask")
PREFIX = "cluster:"  # "cluster:k8s": a DaskExecutor for the cluster profile k8s
ADDRESS_SCHEMES = ("tcp://", "tls://", "inproc://")  # a Dask scheduler's address


def unknown_executor(choice: str) -> str | None:
    """Why ``choice``, an executor named on a command or magic line, is none, or None when it
    names one (a cluster profile's own options are checked when it is resolved)."""
    if choice in EXECUTOR_NAMES or choice.startswith((*ADDRESS_SCHEMES, PREFIX)):
        return None
    return (f"unknown executor {choice!r}; use one of {', '.join(EXECUTOR_NAMES)}, a scheduler "
            "address such as tcp://10.0.0.5:8786 or a cluster profile (--cluster)")


def resolve_executor(choice: Any, address: str | None = None) -> Executor:
    """An executor from a name ("local", "threads", "dask", "cluster:PROFILE" for a named
    cluster profile, see ``cluster_profiles.py``), an Executor, or None (threads).

    ``address`` (a Dask scheduler's) goes with "dask" or None; with any other choice it is an
    error rather than silently ignored.
    """
    if address and choice not in (None, "dask", address):
        shown = choice if isinstance(choice, str) else type(choice).__name__
        raise ValueError(
            f"the scheduler address {address} needs the dask executor, not {shown!r}; "
            "drop the executor choice or the address"
        )
    if isinstance(choice, Executor):
        return choice
    if choice is None:
        choice = "dask" if address else "threads"
    if choice == "local":
        return LocalExecutor()
    if choice == "threads":
        return ThreadExecutor()
    if choice == "dask":
        from .dask import DaskExecutor

        dask: Executor = DaskExecutor(address=address)
        return dask
    if isinstance(choice, str) and choice.startswith(PREFIX):
        from .cluster_profiles import profile_executor

        per_run: Executor = profile_executor(choice.removeprefix(PREFIX).strip())
        return per_run
    if isinstance(choice, str) and choice.startswith(ADDRESS_SCHEMES):
        from .dask import DaskExecutor

        remote: Executor = DaskExecutor(address=choice)
        return remote
    raise ValueError(
        f"unknown executor {choice!r}; use one of {', '.join(EXECUTOR_NAMES)}, a scheduler "
        "address such as tcp://10.0.0.5:8786, a cluster profile such as cluster:k8s, or an "
        "executor object such as ThreadExecutor(8)"
    )


__all__ = ["Executor", "LocalExecutor", "Outcome", "ThreadExecutor", "resolve_executor"]
