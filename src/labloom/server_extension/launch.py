"""``flows``, ``flows/params`` and ``flows/run``: launch a flow from the Flows panel with
parameters edited in a form.

What may be launched: a schedule's flow, or a flow some run was made from a file or notebook
(the ``target`` each run records). The server never imports the user's code itself: the form's
fields come from ``labloom run TARGET --describe`` and the run is ``labloom run TARGET --origin
lab`` in its own process (``control.spawn``), so the values are checked by the CLI's own
``--param`` rules. The reply waits until the new run is in the store (it shows in the panel at
once) or until the command refused the values (400 with its one-line reason). Values travel in
the child's environment, not its argv: a secret is not in the process list nor in the log.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import tornado
from jupyter_server.auth.decorator import authorized
from tornado import web

from ..core.env_numbers import env_number
from ..core.errors import LabloomError
from ..schedule import stored_schedules as sched
from ..store.reader import RunStore
from . import control, validate
from .base import LabloomHandler

PARAMS_ENV = "LABLOOM_LAUNCH_PARAMS"
_RECENT_TARGETS = 200


def launch_wait() -> float:
    """``LABLOOM_LAUNCH_WAIT``: importing a flow's file may import heavy libraries; past this a
    launch answers 504. Read at each launch, before anything starts; a bad value answers 500
    naming the fix (it was read at import, where it made loading the extension raise)."""
    try:
        return env_number("LABLOOM_LAUNCH_WAIT", 60.0, "a number of seconds above 0",
                          lambda wait: 0 < wait < float("inf"),
                          meaning="how long a launch waits for the flow's process")
    except LabloomError as exc:
        raise web.HTTPError(500, str(exc)) from None


def target_text(record: dict[str, Any]) -> str | None:
    """The ``labloom run`` target of a run's recorded code: None for code typed in a cell."""
    if record.get("notebook"):
        return f"{record['notebook']}:{record.get('flow') or ''}".rstrip(":")
    if record.get("file") and not record.get("note"):
        return f"{record['file']}:{record.get('function') or record.get('flow')}"
    return None


def launchable(access: Any, store: RunStore) -> dict[str, Any]:
    """Every schedule's flow, then the flows of recorded runs, the latest run first."""
    flows: list[dict[str, Any]] = []
    with store.database.connect(named_rows=True) as conn:
        for s in sched.get_all(conn):
            flows.append({"target": s.target, "flow": _flow_of(s.target), "schedule": s.name,
                          "last_run": None})
        rows = conn.execute(
            "SELECT target, flow_name, MAX(created) AS latest FROM flow_runs "
            "WHERE target IS NOT NULL GROUP BY target, flow_name ORDER BY latest DESC LIMIT ?",
            (_RECENT_TARGETS,),
        ).fetchall()
    seen = {f["target"] for f in flows}
    for row in rows:
        try:
            target = target_text(json.loads(row["target"]))
        except (TypeError, ValueError):
            continue
        if target and target not in seen:
            seen.add(target)
            flows.append({"target": target, "flow": row["flow_name"], "schedule": None,
                          "last_run": row["latest"]})
    return {"flows": flows}


def _flow_of(target: str) -> str:
    head, sep, tail = target.rpartition(":")
    return tail if sep and head.endswith((".py", ".ipynb")) else Path(target).stem


def resolve(access: Any, store: RunStore, body: dict[str, Any]) -> dict[str, Any]:
    """What to run: {target, workdir, options, stored}, checked against what may be launched."""
    name = body.get("schedule")
    if name:
        with store.database.connect(named_rows=True) as conn:
            s = validate.schedule_for(conn, str(name), "run")
        options = [*(["--executor", s.executor] if s.executor else []),
                   *(["--address", s.address] if s.address else []),
                   *(["--cluster", s.cluster] if s.cluster else [])]
        return {"target": s.target, "workdir": s.workdir, "options": options,
                "stored": s.params}
    target = body.get("target")
    if not isinstance(target, str) or not target:
        raise web.HTTPError(400, "give the flow to run: {\"target\": ...} or {\"schedule\": ...}")
    if target not in {f["target"] for f in launchable(access, store)["flows"]}:
        raise web.HTTPError(
            404, f"no flow {target!r} to launch: a flow must be scheduled or have run from a "
            "file before (GET flows lists them); run it once with `labloom run`")
    path = target.rpartition(":")[0] if target.count(":") else target
    return {"target": target, "workdir": os.path.dirname(path), "options": [], "stored": {}}


def param_items(params: Any) -> list[str]:
    """The form's values as ``--param`` texts: strings as typed, anything else as JSON."""
    if params is None:
        return []
    if not isinstance(params, dict):
        raise web.HTTPError(400, "params must be an object of NAME: VALUE")
    items = []
    for name, value in params.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise web.HTTPError(400, f"parameter name {name!r} is not a Python identifier")
        items.append(f"{name}={value if isinstance(value, str) else json.dumps(value)}")
    return items


def _labloom(*args: str) -> list[str]:
    return [sys.executable, "-m", "labloom", *args]


def _cli_error(text: str) -> str:
    """The command's one-line reason, in the form's words: the field, not ``--param``."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("labloom: error: ")]
    line = (errors or lines or ["the launch command failed without a message"])[-1]
    line = line.removeprefix("labloom: error: ").removeprefix("--param ")
    example = re.search(r" \(e\.g\. -p (.*)\)$", line)
    if example:  # the form's field takes the value alone: -p 'tables=["a"]' is ["a"] there
        value = shlex.split(example.group(1))[0].partition("=")[2]
        line = f"{line[:example.start()]} (e.g. {value})"
    return line.replace(" (pass them as --param NAME=VALUE)", "")


def run_of(access: Any, store: RunStore, pid: int, since: float) -> str | None:
    with store.database.connect() as conn:
        row = conn.execute(
            "SELECT id FROM flow_runs WHERE pid = ? AND origin = 'lab' AND created >= ? "
            "ORDER BY created DESC LIMIT 1", (pid, since),
        ).fetchone()
    return None if row is None else str(row[0])


class FlowsHandler(LabloomHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(await self.in_pool(launchable))


class FlowParamsHandler(LabloomHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        """The form: ``?schedule=NAME`` (defaults: its stored values) or ``?target=TARGET``."""
        wait = launch_wait()
        body = {k: self.get_argument(k, None) for k in ("schedule", "target")}
        what = await self.in_pool(resolve, body)
        proc = await asyncio.create_subprocess_exec(
            *_labloom("run", what["target"], "--describe"),
            cwd=what["workdir"] if os.path.isdir(what["workdir"]) else None,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env={**os.environ, "LABLOOM_PROGRESS": "0"},
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), wait)
        except asyncio.TimeoutError:
            proc.kill()
            raise web.HTTPError(504, f"reading {what['target']} took over {wait:g}s "
                                "(LABLOOM_LAUNCH_WAIT)") from None
        if proc.returncode != 0:
            raise web.HTTPError(400, _cli_error(err.decode(errors="replace")))
        form = json.loads(out)
        for field in form["params"]:
            if field["name"] in what["stored"] and field["kind"] != "secret":
                value = what["stored"][field["name"]]
                field["default"] = value if isinstance(value, str) else json.dumps(value)
        self.reply({**form, "target": what["target"], "schedule": body["schedule"]})


class LaunchHandler(LabloomHandler):
    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        """``{"target" | "schedule": ..., "params": {NAME: VALUE}}``: 202 with the new run's id
        once it is in the store; 400 naming a value the flow refuses."""
        wait = launch_wait()
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise web.HTTPError(400, "the body must be JSON") from None
        if not isinstance(body, dict):
            raise web.HTTPError(400, "the body must be a JSON object")
        items = param_items(body.get("params"))
        what = await self.in_pool(resolve, body)
        since = time.time() - 1
        proc = control.spawn(
            _labloom("run", what["target"], "--origin", "lab", *what["options"],
                     "--params-env", PARAMS_ENV),
            f"lab-{validate.safe_label(_flow_of(what['target']))}", what["workdir"],
            {PARAMS_ENV: json.dumps(items)},
        )
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            run_id = await self.in_pool(run_of, proc.pid, since)
            if run_id is not None:
                self.reply({"run_id": run_id, "pid": proc.pid, "target": what["target"]}, 202)
                return
            if proc.poll() is not None:
                # The run may have been written just before the process ended: look once more.
                run_id = await self.in_pool(run_of, proc.pid, since)
                if run_id is not None:
                    self.reply({"run_id": run_id, "pid": proc.pid, "target": what["target"]},
                               202)
                    return
                log = control.log_of(proc)
                text = log.read_text(errors="replace") if log else ""
                raise web.HTTPError(400, _cli_error(text))
            await asyncio.sleep(0.05)
        raise web.HTTPError(504, f"the run of {what['target']} did not start within "
                            f"{wait:g}s (LABLOOM_LAUNCH_WAIT); see its log in "
                            f"{control.log_of(proc)}")
