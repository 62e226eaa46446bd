"""The API's actions: cancel through the store, retry and "run now" as new processes.

The server never runs flows itself: a retry is ``labloom retry RUN_ID`` (the retry service,
``export/retry.py``, says first whether the run's code is in a file) and a schedule's "run now"
is the command ``labloom serve`` would start, each in its own process and session, logging to
``LABLOOM_HOME/logs``; the new run shows up in the store like any other.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tornado import web

from ..core.errors import NotAllowedError
from ..export.retry import replay_refusal, retry_source
from ..store.cancel import NotCancellable, request_cancel
from ..store.home import home
from ..store.reader import RunStore
from .queries import exact_run
from .validate import allowed

CANCEL_REASON = "cancelled from the Flows panel"
_children: list[subprocess.Popen[bytes]] = []
_logs: dict[int, Path] = {}  # a child's pid -> its log file (the launch form reads its error)


def cancel(access: Any, store: RunStore, run_id: str) -> dict[str, Any]:
    try:
        state = request_cancel(run_id, CANCEL_REASON, store.path)
    except KeyError:
        raise web.HTTPError(404, "no such run") from None
    except NotAllowedError as exc:
        raise web.HTTPError(403, str(exc)) from None
    except NotCancellable as exc:
        raise web.HTTPError(409, str(exc)) from None
    return {"run_id": run_id, "state": state, "requested": True}


def retry(access: Any, store: RunStore, run_id: str) -> dict[str, Any]:
    run = exact_run(store, run_id, parameters=True)  # replay_refusal reads them
    if run is None:
        raise web.HTTPError(404, "no such run")
    allowed("retry", f"run {run_id}", run.user)
    if run.state in ("Pending", "Running"):
        raise web.HTTPError(409, f"run {run_id} is still {run.state}; cancel it or wait")
    target = run.target or {}
    source = retry_source(target)
    if not source:
        raise web.HTTPError(
            409,
            f"run {run_id} cannot be retried from here: its code is not in a file "
            f"({target.get('note') or 'no file recorded'}); call run.retry() in the kernel "
            "that ran it, or export the notebook with `labloom export` and run the module",
        )
    if not os.path.isfile(source):  # said now: the new process would say it only in its log
        what = "its notebook" if target.get("notebook") else "the flow's file"
        raise web.HTTPError(
            409, f"run {run_id}: {what} {source} is gone; restore it, or run the flow afresh"
        )
    refusal = replay_refusal(run, store.parameters_escaped(run.id))  # said now, not in a log
    if refusal:
        raise web.HTTPError(409, refusal)
    # A %%flow cell's run is retried from its notebook (exported afresh), as `labloom retry`.
    workdir = os.path.dirname(source)
    proc = spawn([sys.executable, "-m", "labloom", "retry", run_id], f"retry-{run_id}", workdir)
    return {"run_id": run_id, "retrying": True, "pid": proc.pid}


def spawn(
    argv: list[str], label: str, workdir: str | None, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session, output to ``LABLOOM_HOME/logs/<label>-<time>.log``."""
    _reap()
    logs = home() / "logs"
    logs.mkdir(exist_ok=True, mode=0o700)
    log_path = logs / f"{label}-{time.strftime('%Y%m%dT%H%M%S')}.log"
    child_env = {**os.environ, "LABLOOM_PROGRESS": "0", **(env or {})}
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            argv, cwd=workdir if workdir and Path(workdir).is_dir() else None, env=child_env,
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _children.append(proc)
    _logs[proc.pid] = log_path
    while len(_logs) > 256:  # the oldest children's: nobody asks for those any more
        del _logs[next(iter(_logs))]
    return proc


def log_of(proc: subprocess.Popen[bytes]) -> Path | None:
    return _logs.get(proc.pid)


def _reap() -> None:
    # Children end on their own; collect their exit status so none lingers as a zombie.
    for proc in list(_children):
        if proc.poll() is not None:
            _children.remove(proc)
