"""Ids and names from URLs and request bodies are checked before they reach a query (which binds
them anyway); what a request names is looked up here too, with one answer per failure: 404 for
what does not exist, 403 with the access rules' reason (docs/rest-api.md)."""

from __future__ import annotations

import re
from typing import Any

from tornado import web

from ..core.errors import NotAllowedError, ScheduleError
from ..core.states import RUN_STATES, State
from ..schedule import stored_schedules as sched
from ..store import access as permissions
from .graphs import Cursor

_RUN_ID = re.compile(r"^[0-9a-f]{4,64}$")
_NODE_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,200}$")
STATES = RUN_STATES
TASK_STATES = tuple(state.value for state in State if state is not State.CRASHED)


def run_id(text: str) -> str:
    if not _RUN_ID.match(text):
        raise web.HTTPError(404, "no such run")
    return text


def is_run_id(text: str) -> bool:
    return bool(_RUN_ID.match(text))


def node_id(text: str) -> str:
    if not _NODE_ID.match(text):
        raise web.HTTPError(404, "no such node")
    return text


def schedule_name(text: str) -> str:
    """The rule ``schedule add`` applies: every name it accepts reaches its schedule here."""
    try:
        return sched.check_name(text)
    except ScheduleError:
        raise web.HTTPError(404, "no such schedule") from None


def allowed(action: str, what: str, owner: str | None) -> None:
    """403, saying why, unless this server's user may ``action`` ``what`` (store/access.py)."""
    try:
        permissions.check(action, what, owner)
    except NotAllowedError as exc:
        raise web.HTTPError(403, str(exc)) from None


def schedule_for(conn: Any, name: str, action: str) -> sched.Schedule:
    """The schedule a request names (a URL's ``{name}``, a body's ``"schedule"``), which this
    user may ``action`` (run, pause, resume): 404 when there is none, else ``allowed``."""
    try:
        schedule = sched.get(conn, schedule_name(name))
    except ScheduleError:
        raise web.HTTPError(404, "no such schedule") from None
    allowed(action, f"schedule {schedule.name!r}", schedule.owner)
    return schedule


def run_state(text: str | None) -> str | None:
    return _state(text, STATES)


def task_state(text: str | None) -> str | None:
    return _state(text, TASK_STATES)


def _state(text: str | None, states: tuple[str, ...]) -> str | None:
    """A ``state`` filter: one of ``states``, or None for none given; else 400 listing them."""
    if text in (None, ""):
        return None
    if text not in states:
        raise web.HTTPError(400, f"state must be one of {', '.join(states)}")
    return text


def cursor(text: str | None) -> Cursor | None:
    if text in (None, ""):
        return None
    try:
        return Cursor.parse(text)
    except ValueError:
        raise web.HTTPError(
            400, "since must be the cursor of a previous answer; leave it out for the whole run"
        ) from None


def safe_label(text: str) -> str:
    """A schedule name made safe for a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:80]
